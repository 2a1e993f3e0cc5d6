"""The bill before a launch (`reproduce.py ... dry_run=true`, experiments/analysis/planner.py):
its arithmetic on hand-set costs, the GPU numbers it reads from BENCHMARKS.md, that a dry run
creates nothing, and (slow) that its projection is within 2x of the measured wall time."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import pytest
from hydra.utils import instantiate

from experiments import paths
from experiments.analysis import planner, reproduce

REPO = paths.REPO_ROOT


class FixedMeter:
    """A Meter whose measurements are set by hand."""

    def __init__(self, data, cost, job_s=0.5, first_load_s=3.0, load_s=0.2):
        self.job_s, self.process_s = job_s, 4.0
        self._data, self._cost = (data, first_load_s, load_s), cost

    def data(self, cfg):
        return self._data

    def cost(self, cfg):
        return self._cost


COST = planner.Cost(step_s=0.01, eval_batch_s=0.05, checkpoint_s=0.02, build_s=0.1, step_flops=2.5e12,
                    step_ops=100, eval_flops=1e9, eval_ops=10)


def fig2_jobs():
    return planner.plan([("fig2_baselines", reproduce.launch_overrides("mini", []))], "mini",
                        paths.REPO_ROOT / "runs")["fig2_baselines"]


def test_a_jobs_bill_is_its_epochs_of_steps_evaluations_and_checkpoints():
    job = fig2_jobs()[0]
    data = instantiate(job.cfg.data)
    n, batch, epochs = len(data.x_train), int(job.cfg.batch_size), int(job.cfg.epochs)
    steps_per_epoch, eval_batches = math.ceil(n / batch), math.ceil(len(data.x_test) / 1000)
    meter = FixedMeter(data, COST)
    steps, samples, cpu_s, gpu_s, measured = planner.job_bill(meter, job.cfg, "fig2_baselines")
    assert steps == epochs * steps_per_epoch and samples == epochs * n
    fixed = 0.5 + 0.2 + 0.1  # composing and recording, loading its data again, building
    assert cpu_s == pytest.approx(fixed + epochs * (steps_per_epoch * 0.01 + eval_batches * 0.05 + 0.02))
    # 2.5e12 FLOPs at 25 TFLOP/s: 0.1 s a step (more than 100 kernels at 5 us); evaluation: its kernels
    gpu_epoch = steps_per_epoch * 0.1 + eval_batches * 10 * 5e-6 + 0.02
    assert gpu_s == pytest.approx(fixed + epochs * gpu_epoch) and not measured


def test_a_launch_pays_once_for_its_process_and_its_datas_first_load():
    jobs = fig2_jobs()[:3]
    data = instantiate(jobs[0].cfg.data)
    meter = FixedMeter(data, COST)
    line = planner.launch_line(meter, "fig2_baselines", jobs)
    one = planner.job_bill(meter, jobs[0].cfg, "fig2_baselines")[2]
    assert line.runs == 3 and line.cpu_s == pytest.approx(4.0 + (3.0 - 0.2) + 3 * one)


def test_launches_run_jobs_at_a_time():
    assert planner.makespan([3.0, 1.0, 1.0, 1.0], 2) == 3.0
    assert planner.makespan([3.0, 1.0, 1.0, 1.0], 1) == 6.0
    assert planner.makespan([2.0, 2.0, 2.0], 2) == 4.0
    crowded = [planner.Line("a", 1, "1", 1, 1, "images", 10.0, None, False)] * 2
    assert planner.wall_here(crowded, 2, 1) == pytest.approx(10.0 * max(1.0, 2 / (os.cpu_count() or 1)))


BENCH = """
# GPU check: cpu (a laptop), torch 2.5
| fig2: FCN 8x256, batch 128, fp32 | 9,999 (80 images, 0.1 s) | 10% | n/a (CPU) | n/a (CPU) |
# GPU check: cuda (NVIDIA H100 80GB HBM3), torch 2.5
| fig2: FCN 8x256, batch 128, fp32 | 512,000 (50,000 images, 0.1 s) | 3.1% | 0.000 | 812 |
| showcase_b: ResNet-18, batch 128, bf16 | not measured |
"""


def test_gpu_numbers_come_from_a_cuda_gpu_check_table_for_agd_at_paper_settings(compose):
    paper = compose(["experiment=fig2", "scale=paper"])
    assert planner.gpu_measured(paper, "fig2", BENCH) == 512_000.0  # the CUDA row, not the CPU one
    assert planner.gpu_measured(compose(["experiment=fig2", "scale=mini"]), "fig2", BENCH) is None
    assert planner.gpu_measured(compose(["experiment=fig2", "scale=paper", "batch_size=256"]), "fig2", BENCH) is None
    adam = compose(["experiment=fig2_baselines", "scale=paper", "optimizer=adam"])
    assert planner.gpu_measured(adam, "fig2_baselines", BENCH) is None  # the table measures AGD
    assert planner.gpu_measured(compose(["experiment=showcase_b", "scale=paper"]), "showcase_b", BENCH) is None


def test_a_dry_run_prints_the_bill_and_creates_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(planner, "MEASURE_S", 0.2)
    root = tmp_path / "runs"
    assert reproduce.main(["figure=showcase_a", "scale=mini", "dry_run=true", f"runs={root}"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| figure / launch | runs | epochs | optimiser steps | seen | wall time here |")
    # showcase-a at mini: 9 runs of 30 epochs of 32 steps (4,000 MNIST-1D samples, batch 128)
    assert rows[1].startswith("| **showcase_a** | 9 | 30 | 8.6k | 1.1M samples | ")
    assert "(estimate) |" in rows[1] and rows[-1].startswith("| **total** (each experiment once) | 9 |")
    assert not root.exists()


def test_a_dry_run_refuses_what_a_launch_would_refuse(tmp_path, capsys):
    assert reproduce.main(["figure=fig4", "scale=mini", "dry_run=true", "epochs=abc", f"runs={tmp_path}"]) == 2
    assert "epochs must be an integer >= 1, got 'abc'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_projection_is_within_2x_of_the_measured_wall_time(tmp_path):
    """showcase-a at mini scale, seed 0 (3 runs of 60 epochs): projected, then run for real."""
    root, budget = tmp_path / "runs", ["seed=0"]
    jobs = planner.plan([("showcase_a", reproduce.launch_overrides("mini", budget))], "mini", root)["showcase_a"]
    line = planner.launch_line(planner.Meter(threads=1), "showcase_a", jobs)
    projected = planner.wall_here([line], 2, 1)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "reproduce.py"), "figure=showcase_a", "scale=mini",
                           *budget, f"runs={root}"], cwd=tmp_path, capture_output=True, text=True, timeout=1800,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    measured = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    print(f"showcase_a mini seed 0: projected {projected:.0f} s, measured {measured:.0f} s")
    assert projected / 2 <= measured <= projected * 2
