"""Data parallelism on the CPU (gloo): N ranks with global batch B step exactly like 1 process
with batch B, and the entry point runs under torchrun with rank 0 alone writing results."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp
from conftest import REPO

from agd import distributed
from agd.data.loader import DeviceLoader
from agd.init import init_weights
from agd.losses import SquareLoss
from agd.models.fcn import FCN
from agd.optim import AGD
from agd.results import EPOCH_COLUMNS
from agd.train import train

N_TRAIN, N_TEST, FEATURES, CLASSES, BATCH, EPOCHS = 96, 40, 12, 10, 32, 3  # 3 steps/epoch, 9 steps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_small(info: distributed.DistEnv):
    """A depth-3 FCN trained by AGD for 9 steps on fixed random data, sharded for `info`."""
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(N_TRAIN + N_TEST, FEATURES, generator=gen), torch.randint(
        0, CLASSES, (N_TRAIN + N_TEST,), generator=gen)
    common = dict(mean=(0.0,), std=(1.0,), pixel_scale=1.0, rank=info.rank,
                  world_size=info.world_size)
    train_loader = DeviceLoader(x[:N_TRAIN], y[:N_TRAIN], BATCH, shuffle=True, seed=3, **common)
    test_loader = DeviceLoader(x[N_TRAIN:], y[N_TRAIN:], 20, **common)
    model = FCN(depth=3, width=64, input_shape=(FEATURES,), num_classes=CLASSES)
    init_weights(model, torch.Generator().manual_seed(0))
    optimizer = AGD(model.parameters(), check_finite=False)
    rows = train(distributed.wrap_model(model, info), optimizer, train_loader, test_loader,
                 SquareLoss(CLASSES), EPOCHS, progress=False)
    return rows, model


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    info = distributed.setup(torch.device("cpu"), distributed.DistEnv(rank, world, rank, "torchrun"))
    rows, model = _train_small(info)
    if rank == 0:
        torch.save({"state": model.state_dict(), "rows": rows}, out)
    distributed.cleanup()


def test_two_gloo_ranks_match_one_process(tmp_path):
    ref_rows, ref_model = _train_small(distributed.DistEnv())
    out = tmp_path / "ddp.pt"
    ctx = mp.start_processes(_ddp_worker, args=(2, _free_port(), str(out)), nprocs=2, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the 2-rank DDP run did not finish in 120 s")
    ddp = torch.load(out, weights_only=True)
    diffs = [(ddp["state"][k] - v).abs().max().item() for k, v in ref_model.state_dict().items()]
    max_diff = max(diffs)
    print(f"DDP (2 ranks, global batch {BATCH}) vs 1 process after {EPOCHS * 3} AGD steps: "
          f"max |Δw| = {max_diff:.3e}")
    assert max_diff < 1e-5
    # the weights did move: a broken all-reduce that left both at init would not pass this
    start = FCN(depth=3, width=64, input_shape=(FEATURES,), num_classes=CLASSES)
    init_weights(start, torch.Generator().manual_seed(0))
    assert max((ref_model.state_dict()[k] - v).abs().max().item()
               for k, v in start.state_dict().items()) > 1e-3
    for mine, theirs in zip(ref_rows, ddp["rows"], strict=True):
        assert mine["epoch"] == theirs["epoch"] and mine["step"] == theirs["step"]
        assert mine["train_acc"] == theirs["train_acc"] and mine["test_acc"] == theirs["test_acc"]
        for key in ("train_loss", "test_loss", "eta_mean", "eta_min", "eta_max", "update_mean",
                    "update_min", "update_max"):
            assert theirs[key] == pytest.approx(mine[key], rel=1e-5), key


def test_ranks_come_from_torchrun_then_srun_then_submitit():
    assert distributed.detect({}) == distributed.DistEnv()
    torchrun = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "SLURM_PROCID": "0",
                "SLURM_STEP_NUM_TASKS": "2"}
    assert distributed.detect(torchrun) == distributed.DistEnv(3, 8, 1, "torchrun")
    srun = {"SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "8", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8"}
    assert distributed.detect(srun) == distributed.DistEnv(5, 8, 1, "slurm")
    # inside the sbatch script itself only SLURM_NTASKS is set and one process runs
    assert distributed.detect({"SLURM_PROCID": "0", "SLURM_NTASKS": "8"}).world_size == 1
    local = {"SUBMITIT_LOCAL_GLOBALID": "1", "SUBMITIT_LOCAL_NTASKS": "2", "SUBMITIT_LOCAL_LOCALID": "1"}
    assert distributed.detect(local) == distributed.DistEnv(1, 2, 1, "submitit_local")


@pytest.mark.parametrize("nodes, first", [("gpu007", "gpu007"), ("gpu[007-009,012],cpu1", "gpu007"),
                                          ("a-b[3,5]", "a-b3"), ("n1,n2", "n1")])
def test_rendezvous_host_is_the_first_slurm_node(nodes, first):
    assert distributed.first_host(nodes) == first


def test_global_batch_is_split_evenly_or_refused():
    assert distributed.local_batch_size(128, distributed.DistEnv(0, 4)) == 32
    with pytest.raises(ValueError, match="not divisible"):
        distributed.local_batch_size(130, distributed.DistEnv(0, 4))
    assert distributed.make_sampler(range(10), distributed.DistEnv(), shuffle=True, seed=0) is None
    sampler = distributed.make_sampler(range(10), distributed.DistEnv(1, 2), shuffle=False, seed=0)
    assert list(sampler) == [1, 3, 5, 7, 9]


@pytest.mark.slow
def test_torchrun_entry_point_matches_single_process(tmp_path):
    """`torchrun --nproc_per_node=2 experiments/train.py` = `python experiments/train.py`."""
    args = ["epochs=2", "logger=none", "progress=false", "model.width=32", "device=cpu"]
    env = dict(os.environ, WANDB_MODE="offline", OMP_NUM_THREADS="1")
    results = {}
    for name, launcher in (("one", [sys.executable]),
                           ("two", [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                                    f"--master_port={_free_port()}"])):
        runs = tmp_path / name
        proc = subprocess.run([*launcher, str(REPO / "experiments" / "train.py"), *args], cwd=REPO,
                              env=dict(env, AGD_RUNS_DIR=str(runs)), capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        run_dir = runs / "train" / "epochs=2,model.width=32"
        assert proc.stdout.count("done:") == 1  # rank 0 alone reports and writes
        results[name] = (pd.read_csv(run_dir / "metrics.csv"),
                         torch.load(run_dir / "checkpoint.pt", weights_only=True))
    (m1, c1), (m2, c2) = results["one"], results["two"]
    assert list(m2.columns) == EPOCH_COLUMNS and list(m2["epoch"]) == [1, 2]
    pd.testing.assert_frame_equal(m1.drop(columns="time_s"), m2.drop(columns="time_s"), rtol=1e-5)
    assert max((c1["model"][k] - v).abs().max().item() for k, v in c2["model"].items()) < 1e-5
