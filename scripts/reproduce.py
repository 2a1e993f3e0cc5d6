"""Reproduce one figure (or all) of the paper: launch its runs, then draw it.

    python scripts/reproduce.py figure=fig3 scale=mini           # laptop CPU, offline data
    python scripts/reproduce.py figure=fig3 scale=paper          # the paper's settings (GPU)
    python scripts/reproduce.py figure=fig3 scale=paper hydra/launcher=slurm   # on a cluster
    python scripts/reproduce.py figure=all scale=mini            # every figure + figures/REPORT.md

Figures: showcase_a showcase_b showcase_c fig1 fig2 fig3 fig4 table1 beyond, or all.
Every launch is `python experiments/train.py -m experiment=<id> scale=<scale> ...`, i.e. the
documented training command: the same code path as a hand-launched sweep. Complete runs are
skipped by the pipeline, so rerunning after an interruption only trains what is missing. Any
other key=value argument (a Hydra launcher, `epochs=1`, `device=cuda`) is passed to every launch.

Own arguments: figure=<id|all> (default all), scale=mini|paper (default mini),
plot_only=true (draw from existing runs, launch nothing), runs=<dir> (runs root; default
$AGD_RUNS_DIR or runs/), out=<dir> (figures directory, default figures/), jobs=N (experiments
launched at once; default 2 at mini scale, each single-threaded, 1 at paper scale, where the
Hydra launcher, e.g. hydra/launcher=slurm, provides the parallelism).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

# figure id -> (experiments to launch, in order; plot module). fig1's ResNet-18 panel reuses
# showcase-b's runs and its ImageNet panel reuses showcase-c's (same settings in the paper).
FIGURES: dict[str, tuple[list[str], str | None]] = {
    "showcase_a": (["showcase_a"], "plot_showcase_a"),
    "fig2": (["fig2", "fig2_baselines"], "plot_fig2"),
    "fig3": (["fig3"], "plot_fig3"),
    "fig4": (["fig4"], "plot_fig4"),
    "showcase_b": (["showcase_b", "showcase_b_baselines"], "plot_showcase_b"),
    "showcase_c": (["showcase_c"], "plot_showcase_c"),
    "fig1": (["fig1_fcn", "fig1_fcn_baselines", "showcase_b", "showcase_b_baselines",
              "fig1_vgg16", "fig1_vgg16_baselines", "showcase_c"], "plot_fig1"),
    "table1": ([], "plot_table1"),
    # beyond the paper: parameter-free peers on the showcase-a and fig2 settings
    "beyond": (["showcase_a", "beyond_showcase_a", "fig2", "beyond_fig2"], None),
}
ALL = ["showcase_a", "fig2", "fig3", "fig4", "showcase_b", "showcase_c", "fig1", "table1", "beyond"]


def parse(argv: list[str]) -> tuple[dict, list[str]]:
    own = {"figure": "all", "scale": "mini", "plot_only": "false", "runs": None, "out": None,
           "jobs": None}
    passthrough = []
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"arguments are key=value; got {item!r}")
        if key in own:
            own[key] = value
        else:
            passthrough.append(item)
    if own["figure"] != "all" and own["figure"] not in FIGURES:
        raise SystemExit(f"figure must be one of {', '.join(FIGURES)} or all; got {own['figure']!r}")
    if own["scale"] not in ("mini", "paper"):
        raise SystemExit(f"scale must be mini or paper; got {own['scale']!r}")
    return own, passthrough


def launch_command(experiment: str, scale: str, passthrough: list[str]) -> list[str]:
    extra = list(passthrough)
    if not any(a.startswith("logger=") for a in extra) and scale == "mini":
        extra.append("logger=none")  # mini runs are checks on a laptop: no W&B run per job
    if not any(a.startswith("progress=") for a in extra):
        extra.append("progress=false")
    return [sys.executable, str(REPO_ROOT / "experiments" / "train.py"), "-m",
            f"experiment={experiment}", f"scale={scale}", *extra]


def launch_all(experiments: list[str], scale: str, passthrough: list[str], env: dict,
               jobs: int) -> list[str]:
    """Run each experiment's multirun as a subprocess, `jobs` at a time; return the failures.

    With jobs > 1 every process gets one intra-op thread (OMP_NUM_THREADS=1) unless the caller
    set it: on a small CPU, k single-threaded processes beat one k-threaded process by far for
    these small networks (measured: depth-32 width-64 FCN, 0.33 s/epoch single-threaded vs
    several s/epoch with 2 threads on a busy 2-core machine)."""
    if jobs > 1:
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **env}
    pending = list(experiments)
    running: list[tuple[str, subprocess.Popen, float]] = []
    failures = []
    while pending or running:
        while pending and len(running) < jobs:
            experiment = pending.pop(0)
            cmd = launch_command(experiment, scale, passthrough)
            print("$", " ".join(cmd[1:]), flush=True)
            log = open(Path(env["AGD_RUNS_DIR"]) / f".reproduce-{experiment}_{scale}.log", "w")
            proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            proc.log = log  # type: ignore[attr-defined]
            running.append((experiment, proc, time.perf_counter()))
        time.sleep(0.5)
        for item in list(running):
            experiment, proc, started = item
            if proc.poll() is None:
                continue
            running.remove(item)
            proc.log.close()  # type: ignore[attr-defined]
            print(f"  {experiment}: exit {proc.returncode} after {time.perf_counter() - started:.0f} s "
                  f"(log: {proc.log.name})", flush=True)  # type: ignore[attr-defined]
            if proc.returncode != 0:
                tail = Path(proc.log.name).read_text().strip().splitlines()[-3:]  # type: ignore[attr-defined]
                failures.append(f"{experiment} at scale={scale} exited {proc.returncode}: "
                                + " | ".join(tail))
    return failures


def failed_runs(runs_root: Path, experiment: str, scale: str) -> list[str]:
    """Runs whose summary says failed (a sweep goes on past a failed job)."""
    sys.path.insert(0, str(REPO_ROOT))
    from agd.results import read_json

    group = experiment.removesuffix("_baselines") + f"_{scale}"
    bad = []
    for summary in (runs_root / group).rglob("summary.json"):
        state = read_json(summary)
        # a learning rate too large for its optimiser diverging is a result of an lr sweep
        # (drawn as such), not a failure of the reproduction
        if state.get("status") == "failed" and "non-finite" not in str(state.get("error")):
            bad.append(f"{summary.parent}: {state.get('error')}")
    return bad


def main(argv: list[str]) -> int:
    own, passthrough = parse(argv)
    figures = ALL if own["figure"] == "all" else [own["figure"]]
    scale = own["scale"]
    env = dict(os.environ)
    if own["runs"]:
        env["AGD_RUNS_DIR"] = str(Path(own["runs"]).resolve())
    runs_root = Path(env.get("AGD_RUNS_DIR") or REPO_ROOT / "runs")
    env["AGD_RUNS_DIR"] = str(runs_root)
    os.environ["AGD_RUNS_DIR"] = str(runs_root)  # for the in-process plots below
    started = time.perf_counter()
    problems: list[str] = []
    runs_root.mkdir(parents=True, exist_ok=True)
    if own["plot_only"].lower() != "true":
        experiments = list(dict.fromkeys(e for f in figures for e in FIGURES[f][0]))
        jobs = int(own["jobs"]) if own["jobs"] else (2 if scale == "mini" else 1)
        problems += launch_all(experiments, scale, passthrough, env, jobs)
        for experiment in experiments:
            problems += failed_runs(runs_root, experiment, scale)
    for figure in figures:
        plot_module = FIGURES[figure][1]
        if plot_module is None:
            continue
        try:
            module = importlib.import_module(plot_module)
            module.plot(scale=scale, runs=str(runs_root), out=own["out"])
        except Exception as err:  # one broken figure must not hide the others
            problems.append(f"{figure}: plotting failed: {type(err).__name__}: {err}")
            print(f"error: {problems[-1]}", file=sys.stderr)
    if own["figure"] in ("all", "beyond"):
        import report

        report.main([f"runs={runs_root}"] + ([f"out={own['out']}"] if own["out"] else []))
    print(f"reproduce {own['figure']} scale={scale}: {time.perf_counter() - started:.0f} s wall")
    if problems:
        print("problems:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
