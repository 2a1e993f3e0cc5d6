"""scripts/gpu_check.py, the one-shot GPU check, kept working on a CPU: its steps at --quick sizes
give the table BENCHMARKS.md takes, and the synthetic CIFAR-10 it trains on is read by the real
CIFAR-10 loader."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from agd.data.cifar import load_cifar10
from experiments.gpu_check import write_synthetic_cifar10


def test_synthetic_cifar10_is_read_by_the_cifar10_loader(tmp_path):
    write_synthetic_cifar10(tmp_path, train=23, test=7)
    data = load_cifar10(root=str(tmp_path), download=False)
    assert tuple(data.x_train.shape) == (23, 3, 32, 32) and data.x_train.dtype == torch.uint8
    assert len(data.x_test) == len(data.y_test) == 7
    assert 0 <= int(data.y_train.min()) and int(data.y_train.max()) <= 9
    assert data.x_train.float().std() > 50  # random pixels over 0..255, not a constant image


def test_quick_cpu_check_prints_every_step_and_the_benchmarks_table(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", AGD_RUNS_DIR=str(tmp_path / "runs"))
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--device", "cpu", "--quick"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("# GPU check: cpu (") for line in lines)
    steps = {row.split(" | ")[0].lstrip("| "): row for row in lines if row.startswith("| ")}
    assert re.search(r"\| \d+ (skipped|passed)", steps["pytest -m gpu"])  # no CUDA: every gpu test skips
    benches = [row for name, row in steps.items() if name.startswith("scripts/bench_")]
    assert len(benches) == 3 and all("| exit 0 |" in row for row in benches)
    for name, model in (("fig2", "FCN 8x256"), ("showcase_b", "ResNet-18")):
        assert steps[f"{name} at paper settings, one epoch"].split(" | ")[1] == "done"
        row = next(r for r in lines if r.startswith(f"| {name}: {model}, batch 32, fp32 | "))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert re.fullmatch(r"[\d,]+ \(64 images, [\d.]+ s\)", cells[1]), row
        assert 0 <= float(cells[2].rstrip("%")) < 100, row
        assert cells[3] == cells[4] == "n/a (CPU)", row


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_cuda_without_cuda_is_refused_in_one_sentence():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py")], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "--device cpu --quick" in proc.stderr
