"""Reproduce one figure (or all) of the paper: launch its runs, then draw it.

    python scripts/reproduce.py figure=fig3 scale=mini           # laptop CPU, offline data, minutes
    python scripts/reproduce.py figure=fig3 scale=small          # real stand-in data, seeds 0,1,2
    python scripts/reproduce.py figure=fig3 scale=paper          # the paper's settings (GPU)
    python scripts/reproduce.py figure=fig3 scale=paper hydra/launcher=slurm   # on a cluster
    python scripts/reproduce.py figure=all scale=small publish=true           # + figures/, evidence
    python scripts/reproduce.py figure=fig3 scale=small check=double          # seed 0, 2x epochs
    python scripts/reproduce.py figure=all scale=small plot_only=true source=evidence publish=true

Figures: those of the figure registry (registry.py): showcase_a showcase_b showcase_c fig1 fig2
fig3 fig4 table1 beyond, or all (in that order).
Every launch is `python experiments/train.py -m experiment=<id> scale=<scale> ...`, i.e. the
documented training command: the same code path as a hand-launched sweep. Complete runs are
skipped by the pipeline, so rerunning after an interruption only trains what is missing. Any
other key=value argument (a Hydra launcher, `epochs=1`, `device=cuda`) is passed to every launch
(a figure drawn from such runs says on it that its budget differs from the experiment's).

Own arguments:
  figure=<id|all>          default all
  scale=mini|small|paper   default mini
  plot_only=true           draw from existing runs, launch nothing
  runs=<dir>               runs root (default $AGD_RUNS_DIR, else runs/)
  source=runs|evidence     evidence: draw from the committed figures/data/ (needs plot_only=true)
  out=<dir>                where figures and REPORT.md go (default <runs root>/figures/)
  publish=true             write figures/*.png|pdf, export the runs behind them to
                           figures/data/ (evidence.py), and write figures/REPORT.md from
                           that evidence (every scale published so far); the only way the
                           committed figures change
  check=double             instead of the figure's runs, launch each of its experiments once
                           more with seed 0 at twice its epochs, into `<group>_x2`: the report
                           shows whether more training would flip a verdict
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

from agd.results import read_json
from experiments import paths
from experiments.analysis import evidence, registry, report
from experiments.analysis import rundata as rd
from experiments.analysis.args import BadArgument, check_choice, entry, parse_keys
from experiments.sweep import EXIT_DIVERGED

OWN = {"figure": "all", "scale": "mini", "plot_only": "false", "runs": None, "out": None,
       "jobs": None, "publish": "false", "source": "runs", "check": "none"}


def figure_list(figure: str) -> list[str]:
    check_choice("figure", figure, [*registry.figure_ids(), "all"])
    return registry.figure_ids() if figure == "all" else [figure]


def parse(argv: list[str]) -> tuple[dict, list[str]]:
    passthrough: list[str] = []
    own = parse_keys(argv, OWN, passthrough)
    figure_list(own["figure"])
    check_choice("scale", own["scale"], paths.SCALES)
    for key in ("plot_only", "publish"):
        check_choice(key, own[key].lower(), ("true", "false"))
    check_choice("source", own["source"], ("runs", "evidence"))
    check_choice("check", own["check"], ("none", "double"))
    if own["jobs"] is not None and not (own["jobs"].isdigit() and int(own["jobs"]) > 0):
        raise BadArgument(f"jobs must be a whole number of experiments launched at once, 1 or more; "
                          f"got {own['jobs']!r}.")
    if own["source"] == "evidence" and own["plot_only"].lower() != "true":
        raise BadArgument("source=evidence draws from the committed evidence and launches nothing; "
                          "add plot_only=true.")
    return own, passthrough


def launch_command(experiment: str, scale: str, passthrough: list[str]) -> list[str]:
    extra = list(passthrough)
    if not any(a.startswith("logger=") for a in extra) and scale != "paper":
        extra.append("logger=none")  # CPU-scale runs are checks: no W&B run per job
    if not any(a.startswith("progress=") for a in extra):
        extra.append("progress=false")
    return [sys.executable, str(paths.REPO_ROOT / "experiments" / "train.py"), "-m",
            f"experiment={experiment}", f"scale={scale}", *extra]


def double_budget(experiment: str, scale: str) -> list[str]:
    """The overrides of the double-budget check: seed 0, twice the declared epochs, `<group>_x2`."""
    facts = rd.experiment_facts(experiment, scale)
    return ["seed=0", f"epochs={2 * facts['epochs']}", f"group={facts['group']}_x2"]


def _start(experiment: str, cmd: list[str], env: dict, tag: str) -> subprocess.Popen:
    print("$", " ".join(cmd[1:]), flush=True)
    log = open(Path(env["AGD_RUNS_DIR"]) / f".reproduce-{tag}.log", "w")  # closed in _finish
    proc = subprocess.Popen(cmd, cwd=paths.REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def _finish(experiment: str, scale: str, proc: subprocess.Popen, started: float) -> str | None:
    proc.log.close()  # type: ignore[attr-defined]
    name = proc.log.name  # type: ignore[attr-defined]
    print(f"  {experiment}: exit {proc.returncode} after {time.perf_counter() - started:.0f} s (log: {name})",
          flush=True)
    if proc.returncode in (0, EXIT_DIVERGED):  # diverged runs of a learning-rate sweep are results
        return None
    tail = Path(name).read_text().strip().splitlines()[-3:]
    return f"{experiment} at scale={scale} exited {proc.returncode}: " + " | ".join(tail)


def launch_all(launches: list[tuple[str, list[str]]], scale: str, env: dict, jobs: int) -> list[str]:
    """Run each (experiment, extra overrides) multirun as a subprocess, `jobs` at a time; return
    the failures.

    With jobs > 1 every process gets one intra-op thread (OMP_NUM_THREADS=1) unless the caller
    set it: on a small CPU, k single-threaded processes beat one k-threaded process by far for
    these small networks (measured: depth-32 width-64 FCN, 0.33 s/epoch single-threaded vs
    several s/epoch with 2 threads on a busy 2-core machine)."""
    if jobs > 1:
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **env}
    pending = list(launches)
    running: list[tuple[str, subprocess.Popen, float]] = []
    failures = []
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
            failures += [failure] if failure else []
    return failures


def failed_runs(runs_root: Path, group: str) -> list[str]:
    """Runs whose summary says failed (a sweep goes on past a failed job)."""
    bad = []
    for summary in (runs_root / group).rglob("summary.json"):
        state = read_json(summary)
        # a learning rate too large for its optimiser diverging is a result of an lr sweep
        # (drawn as such), not a failure of the reproduction
        if state.get("status") == "failed" and "non-finite" not in str(state.get("error")):
            bad.append(f"{summary.parent}: {state.get('error')}")
    return bad


def launches_for(figures: list[str], scale: str, check: str, passthrough: list[str],
                 problems: list[str]) -> list[tuple[str, list[str]]]:
    """(experiment, overrides) to launch; experiments without a config are reported, skipped."""
    launches = []
    for experiment in dict.fromkeys(e for f in figures for e in registry.FIGURES[f].experiments):
        if not (paths.CONF_DIR / "experiment" / f"{experiment}.yaml").exists():
            problems.append(f"experiment {experiment} has no config conf/experiment/{experiment}.yaml: "
                            f"not launched")
            continue
        if check == "double" and rd.experiment_facts(experiment, scale) is None:
            problems.append(f"experiment {experiment} does not compose at scale={scale}: no double-budget run")
            continue
        extra = double_budget(experiment, scale) if check == "double" else []
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


def run(own: dict, passthrough: list[str]) -> list[str]:
    figures, scale = figure_list(own["figure"]), own["scale"]
    publish = own["publish"].lower() == "true"
    env = dict(os.environ)
    root = paths.EVIDENCE_DIR if own["source"] == "evidence" and not own["runs"] else paths.runs_root(own["runs"])
    root = root.resolve()
    if own["source"] != "evidence":
        env["AGD_RUNS_DIR"] = os.environ["AGD_RUNS_DIR"] = str(root)
        root.mkdir(parents=True, exist_ok=True)
    out = rd.output_dir(own["out"], publish, root)
    problems: list[str] = []
    if own["plot_only"].lower() != "true":
        launches = launches_for(figures, scale, own["check"], passthrough, problems)
        jobs = int(own["jobs"]) if own["jobs"] else (1 if scale == "paper" else 2)
        problems += launch_all(launches, scale, env, jobs)
        for experiment, extra in launches:
            group = next((a[6:] for a in extra if a.startswith("group=")), rd.group_of(experiment, scale))
            problems += failed_runs(root, group)
    draw(figures, scale, root, out, problems)
    if publish and own["source"] != "evidence":
        evidence.export(root, scale, evidence.groups_of(figures, scale, root))
    if own["figure"] in ("all", "beyond"):
        # a published report reads the evidence, which keeps every scale published so far
        report.write(paths.EVIDENCE_DIR if publish and rd.is_evidence(paths.EVIDENCE_DIR) else root, out)
    return problems


def _main(argv: list[str]) -> int:
    own, passthrough = parse(argv)
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
