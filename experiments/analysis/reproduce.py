"""Reproduce one figure (or all) of the paper: launch its runs, then draw it.

    python scripts/reproduce.py figure=fig3 scale=mini           # laptop CPU, offline data, minutes
    python scripts/reproduce.py figure=fig3 scale=small          # real stand-in data, seeds 0,1,2
    python scripts/reproduce.py figure=fig3 scale=paper          # the paper's settings (GPU)
    python scripts/reproduce.py figure=fig3 scale=paper hydra/launcher=slurm   # on a cluster
    python scripts/reproduce.py figure=all scale=small publish=true           # + figures/, evidence
    python scripts/reproduce.py figure=fig3 scale=small check=double          # seed 0, 2x epochs
    python scripts/reproduce.py figure=all scale=small plot_only=true source=evidence publish=true
    python scripts/reproduce.py figure=all scale=small dry_run=true           # the bill, nothing run

Figures: those of the figure registry (registry.py): showcase_a showcase_b showcase_c fig1 fig2
fig3 fig4 table1 beyond, or all (in that order).
Every launch is `python experiments/train.py -m experiment=<id> scale=<scale> ...`, i.e. the
documented training command: the same code path as a hand-launched sweep. Complete runs are
skipped by the pipeline, so rerunning after an interruption only trains what is missing. Any
other key=value argument (a Hydra launcher, `epochs=1`, `device=cuda`) is passed to every launch
(a figure drawn from such runs says on it that its budget differs from the experiment's).
Every job of every launch is composed and checked with the training command's own checks before
the first launch (planner.py): a value that cannot work is one sentence and exit 2, with nothing
created. At the end every job's run is read back, after waiting for any run another process is
training (two reproductions of one figure on one runs root share the work): the exit status is
0 when every run ended complete (or diverged: a result of a learning-rate sweep), else 1. Each
launch logs to `<runs root>/.reproduce-logs/<experiment>_<scale>-<time>-<pid>.log`.

Own arguments:
  figure=<id|all>          default all
  scale=mini|small|paper   default mini
  plot_only=true           draw from existing runs, launch nothing
  runs=<dir>               runs root (default $AGD_RUNS_DIR, else runs/)
  source=runs|evidence     evidence: draw from the committed figures/data/ (needs plot_only=true)
  out=<dir>                where figures and REPORT.md go (default <runs root>/figures/; not
                           with publish=true)
  publish=true             write figures/*.png|pdf, export the runs behind them to
                           figures/data/ (evidence.py), and write figures/REPORT.md from
                           that evidence (every scale published so far), all as one
                           publication (journal.py: every file old or every file new); the
                           only way the committed figures change
  check=double             instead of the figure's runs, launch each of its experiments once
                           more with seed 0 at twice every length counted in epochs or in the
                           run's steps (DOUBLED), into `<group>_x2`: the report shows whether
                           more training would flip a verdict
  dry_run=true             print the bill (planner.py): per figure its runs, epochs, steps,
                           samples seen and projected wall time here and on a GPU; runs nothing
  jobs=N                   experiments launched at once (default 2 at mini/small scale, each
                           single-threaded; 1 at paper scale, where the Hydra launcher, e.g.
                           hydra/launcher=slurm, provides the parallelism)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from agd.results import SUMMARY_FILE, read_json, run_is_live
from experiments import paths
from experiments.analysis import evidence, journal, planner, registry, report
from experiments.analysis import rundata as rd
from experiments.analysis.args import BadArgument, check_choice, entry, parse_keys

OWN = {"figure": "all", "scale": "mini", "plot_only": "false", "runs": None, "out": None,
       "jobs": None, "publish": "false", "source": "runs", "check": "none", "dry_run": "false"}
# check=double doubles every length counted in epochs or in the steps of a whole run: the
# epochs and the warm-up + cosine schedule's length (conf/optimizer/adamw_cosine.yaml reads
# `schedule_steps`; its warm-up is a fraction of it). Not doubled: steps_per_epoch (the size of
# an epoch), step_rows (the early steps fig4 records: epoch 1 stays epoch 1) and a peer's
# warmup_steps (its recommended warm-up, a fixed number of steps).
DOUBLED = ("epochs", "schedule_steps")
NOT_DOUBLED = ("steps_per_epoch", "step_rows", "warmup_steps", "total_steps", "warmup_fraction")


def figure_list(figure: str) -> list[str]:
    check_choice("figure", figure, [*registry.figure_ids(), "all"])
    return registry.all_ids() if figure == "all" else [figure]


def parse(argv: list[str]) -> tuple[dict, list[str]]:
    passthrough: list[str] = []
    own = parse_keys(argv, OWN, passthrough)
    figure_list(own["figure"])
    check_choice("scale", own["scale"], paths.SCALES)
    for key in ("plot_only", "publish", "dry_run"):
        check_choice(key, own[key].lower(), ("true", "false"))
    check_choice("source", own["source"], ("runs", "evidence"))
    check_choice("check", own["check"], ("none", "double"))
    if own["jobs"] is not None and not (own["jobs"].isdigit() and int(own["jobs"]) > 0):
        raise BadArgument(f"jobs must be a whole number of experiments launched at once, 1 or more; "
                          f"got {own['jobs']!r}.")
    if own["source"] == "evidence" and own["plot_only"].lower() != "true":
        raise BadArgument("source=evidence draws from the committed evidence and launches nothing; "
                          "add plot_only=true.")
    if own["publish"].lower() == "true" and own["out"]:
        raise BadArgument("publish=true writes the committed figures/, figures/data/ and REPORT.md together; "
                          "drop out=, or drop publish=true to write the figures elsewhere.")
    return own, passthrough


def launch_overrides(scale: str, passthrough: list[str]) -> list[str]:
    """A launch's overrides after experiment= and scale=: the pass-through values, then the
    driver's defaults the user did not set."""
    extra = list(passthrough)
    if not any(a.startswith("logger=") for a in extra) and scale != "paper":
        extra.append("logger=none")  # CPU-scale runs are checks: no W&B run per job
    if not any(a.startswith("progress=") for a in extra):
        extra.append("progress=false")
    return extra


def launch_command(experiment: str, scale: str, passthrough: list[str]) -> list[str]:
    return [sys.executable, str(paths.REPO_ROOT / "experiments" / "train.py"), "-m",
            f"experiment={experiment}", f"scale={scale}", *launch_overrides(scale, passthrough)]


def double_budget(experiment: str, scale: str) -> list[str]:
    """The overrides of the double-budget check: seed 0, twice every DOUBLED length the
    experiment's composed config sets, `<group>_x2`."""
    with planner.Composer() as composer:
        cfg = composer.compose([f"experiment={experiment}", f"scale={scale}"])
    doubled = [f"{key}={2 * int(cfg[key])}" for key in DOUBLED if cfg.get(key) is not None]
    return ["seed=0", *doubled, f"group={cfg.group}_x2"]


def _start(experiment: str, cmd: list[str], env: dict, tag: str) -> subprocess.Popen:
    print("$", " ".join(cmd[1:]), flush=True)
    logs = Path(env["AGD_RUNS_DIR"]) / ".reproduce-logs"
    logs.mkdir(parents=True, exist_ok=True)
    # one log per launch and per process: two reproductions on one runs root never share one
    log = open(logs / f"{tag}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log", "w")  # closed in _finish
    proc = subprocess.Popen(cmd, cwd=paths.REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def _finish(experiment: str, scale: str, proc: subprocess.Popen, started: float) -> str | None:
    """None when the launch exited 0, else its exit status and the last lines of its log."""
    proc.log.close()  # type: ignore[attr-defined]
    name = proc.log.name  # type: ignore[attr-defined]
    print(f"  {experiment}: exit {proc.returncode} after {time.perf_counter() - started:.0f} s (log: {name})",
          flush=True)
    if proc.returncode == 0:
        return None
    tail = Path(name).read_text().strip().splitlines()[-3:]
    return f"{experiment} at scale={scale} exited {proc.returncode}: " + " | ".join(tail)


def launch_all(launches: list[tuple[str, list[str]]], scale: str, env: dict, jobs: int) -> dict[str, str]:
    """Run each (experiment, extra overrides) multirun as a subprocess, `jobs` at a time; return
    {experiment: why its launch exited non-zero} (whether its runs completed is read after).

    With jobs > 1 every process gets one intra-op thread (OMP_NUM_THREADS=1) unless the caller
    set it: on a small CPU, k single-threaded processes beat one k-threaded process by far for
    these small networks (measured: depth-32 width-64 FCN, 0.33 s/epoch single-threaded vs
    several s/epoch with 2 threads on a busy 2-core machine)."""
    if jobs > 1:
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **env}
    pending = list(launches)
    running: list[tuple[str, subprocess.Popen, float]] = []
    exits = {}
    while pending or running:
        while pending and len(running) < jobs:
            experiment, extra = pending.pop(0)
            tag = f"{experiment}_{scale}" + ("_x2" if any(a.startswith("group=") for a in extra) else "")
            proc = _start(experiment, launch_command(experiment, scale, extra), env, tag)
            running.append((experiment, proc, time.perf_counter()))
        time.sleep(0.5)
        for item in [r for r in running if r[1].poll() is not None]:
            running.remove(item)
            failure = _finish(item[0], scale, item[1], item[2])
            if failure:
                exits[item[0]] = failure
    return exits


def run_outcome(run_dir: Path) -> str | None:
    """None when the run ended complete (or diverged: in a learning-rate sweep a result, drawn
    as such), else what it says. A run another process is training is waited for."""
    said = False
    while run_is_live(run_dir):
        if not said:
            print(f"  waiting for {run_dir}: another process is training it", flush=True)
            said = True
        time.sleep(1.0)
    try:
        state = read_json(run_dir / SUMMARY_FILE)
    except FileNotFoundError:
        return f"{run_dir}: no summary.json (the job never started)"
    except ValueError as err:
        return f"{run_dir}: summary.json cannot be read ({err})"
    status, error = state.get("status"), state.get("error")
    if status in ("complete", "diverged") or (status == "failed" and "non-finite" in str(error)):
        return None
    return f"{run_dir}: {status}" + (f": {error}" if error else "")


def unfinished(plans: dict[str, list[planner.Job]], exits: dict[str, str]) -> list[str]:
    """One problem per launch whose runs did not all end complete (its exit status alone does
    not say: a job another reproduction was training counts as busy there)."""
    problems = []
    for experiment, jobs in plans.items():
        bad = [why for why in (run_outcome(job.run_dir) for job in jobs) if why]
        if bad:
            head = exits.get(experiment, f"{experiment}: its launch exited 0")
            problems.append(f"{head}; {len(bad)} of {len(jobs)} runs did not complete, first: {bad[0]}")
    return problems


def launches_for(figures: list[str], scale: str, check: str, passthrough: list[str],
                 problems: list[str]) -> list[tuple[str, list[str]]]:
    """(experiment, overrides) to launch; experiments without a config are reported, skipped."""
    launches = []
    for experiment in dict.fromkeys(e for f in figures for e in registry.FIGURES[f].experiments):
        if not (paths.CONF_DIR / "experiment" / f"{experiment}.yaml").exists():
            problems.append(f"experiment {experiment} has no config conf/experiment/{experiment}.yaml: "
                            f"not launched")
            continue
        try:
            extra = double_budget(experiment, scale) if check == "double" else []
        except (HydraException, OmegaConfBaseException) as err:
            problems.append(f"experiment {experiment} does not compose at scale={scale} "
                            f"({type(err).__name__}): no double-budget run")
            continue
        launches.append((experiment, passthrough + extra))
    return launches


def draw(figures: list[str], scale: str, runs: Path, out: Path, problems: list[str]) -> None:
    """Every figure's plot function, in-process; a broken one is reported, not fatal."""
    for figure in figures:
        try:
            registry.FIGURES[figure].plot(scale=scale, runs=str(runs), out=str(out))
        except Exception as err:  # one broken figure must not hide the others
            problems.append(f"{figure}: plotting failed: {type(err).__name__}: {err}")
            print(f"error: {problems[-1]}", file=sys.stderr)


def publish(figures: list[str], scale: str, root: Path, from_runs: bool, problems: list[str]) -> None:
    """Figures, their evidence and REPORT.md as one publication of figures/ (journal.py): all
    staged, then committed at once. REPORT.md is rebuilt from the evidence as the publication
    leaves it (every scale published so far), or from the runs while nothing was ever exported."""
    base, rel = evidence.publication_of(paths.EVIDENCE_DIR)
    if base != paths.FIGURES_DIR.resolve():
        raise BadArgument(f"the evidence folder {paths.EVIDENCE_DIR} must lie inside {paths.FIGURES_DIR}, so that "
                          "both publish at once.")
    with journal.Publication(base, mirror=(rel,)) as publication:
        data = publication.staging / rel
        draw(figures, scale, root, publication.staging, problems)
        groups = evidence.groups_of(figures, scale, root) if from_runs else []
        if groups:
            evidence.write_groups(root, scale, groups, data)
        source = data if rd.is_evidence(data) else root
        if rd.is_evidence(source) or any(p.is_dir() for p in root.iterdir()):
            journal.fault_point()
            report.write(source, publication.staging)
        changed = publication.commit()
    print(f"published {len(changed)} changed files under {base}" + (f": {', '.join(changed)}" if changed else ""))


def _root(own: dict) -> Path:
    if own["source"] == "evidence" and not own["runs"]:
        return paths.EVIDENCE_DIR.resolve()
    return paths.runs_root(own["runs"]).resolve()


def run(own: dict, passthrough: list[str]) -> list[str]:
    figures, scale = figure_list(own["figure"]), own["scale"]
    publish_now, plot_only = own["publish"].lower() == "true", own["plot_only"].lower() == "true"
    root, problems = _root(own), []
    plans: dict[str, list[planner.Job]] = {}
    if not plot_only:  # every job composed and checked before anything is created
        launches = launches_for(figures, scale, own["check"], passthrough, problems)
        plans = planner.plan([(e, launch_overrides(scale, x)) for e, x in launches], scale, root)
    env = dict(os.environ)
    if own["source"] != "evidence":
        env["AGD_RUNS_DIR"] = os.environ["AGD_RUNS_DIR"] = str(root)
        root.mkdir(parents=True, exist_ok=True)
    if plans:
        problems += unfinished(plans, launch_all(launches, scale, env, jobs_at_once(own)))
    journal.settle(paths.FIGURES_DIR)
    if rd.is_evidence(root):
        journal.settle_evidence(root)
    if publish_now:
        publish(figures, scale, root, own["source"] != "evidence", problems)
        return problems
    out = rd.output_dir(own["out"], False, root)
    draw(figures, scale, root, out, problems)
    if own["figure"] in ("all", "beyond"):
        report.write(root, out)
    return problems


def jobs_at_once(own: dict) -> int:
    return int(own["jobs"]) if own["jobs"] else (1 if own["scale"] == "paper" else 2)


def dry_run(own: dict, passthrough: list[str]) -> int:
    """The bill (planner.py): every launch composed and checked, its cost measured; nothing runs."""
    figures, scale, problems = figure_list(own["figure"]), own["scale"], []
    per_figure = {f: [(e, launch_overrides(scale, x)) for e, x in launches_for([f], scale, own["check"], passthrough,
                                                                                problems)] for f in figures}
    print(planner.bill(per_figure, scale, jobs_at_once(own), _root(own)))
    if problems:
        print("problems:\n  " + "\n  ".join(dict.fromkeys(problems)), file=sys.stderr)
        return 1
    return 0


def _main(argv: list[str]) -> int:
    own, passthrough = parse(argv)
    if own["dry_run"].lower() == "true":
        return dry_run(own, passthrough)
    started = time.perf_counter()
    problems = run(own, passthrough)
    print(f"reproduce {own['figure']} scale={own['scale']}: {time.perf_counter() - started:.0f} s wall")
    if problems:
        print("problems:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    """scripts/reproduce.py: a bad argument is one sentence on stderr and exit 2."""
    return entry(_main, argv, "reproduce.py")
