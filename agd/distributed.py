"""Data-parallel plumbing: who this process is, starting and stopping torch.distributed, and
wrapping the model. Torch only (how a run stops on a signal is experiments/signals.py).

The ranks come from the environment, first match wins:
  torchrun                RANK, WORLD_SIZE, LOCAL_RANK (torchrun also sets MASTER_ADDR/PORT)
  srun (a SLURM step)     SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID. submitit runs every
                          task of a SLURM job through srun, so its JobEnvironment reads these same
                          variables. The rendezvous host is the first node of the step.
  submitit local          SUBMITIT_LOCAL_GLOBALID, SUBMITIT_LOCAL_NTASKS, SUBMITIT_LOCAL_LOCALID
  otherwise               one process.
SLURM_NTASKS alone is not trusted: it is also set in the batch script itself, where only one
process runs, and a world size taken from it would wait forever for ranks that never start.

Data parallelism is plain DistributedDataParallel: each rank computes the gradient of its own
mean loss over its slice of the global batch, DDP averages the gradients (sum / world size), and
every rank then takes the same AGD step on the same averaged gradient. With equal slices the
average of slice means is the global batch mean, so N ranks with global batch B step exactly as
one process with batch B does (to float summation order).
"""

from __future__ import annotations

import atexit
import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

DEFAULT_PORT = 29500


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    source: str = "single"  # torchrun | slurm | submitit_local | single

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def first_host(nodelist: str) -> str:
    """The first host of a SLURM host list: "gpu[007-009,12],cpu1" -> "gpu007"."""
    head = re.match(r"([^,\[]*)(?:\[([^\]]*)\])?", nodelist.strip())
    prefix, ranges = head.group(1), head.group(2)
    if not ranges:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def _port_from_job(job_id: str | None) -> int:
    # two jobs sharing a node must not share a port; job ids are unique, ports 20000..39999
    digits = re.sub(r"\D", "", job_id or "")
    return 20000 + int(digits) % 20000 if digits else DEFAULT_PORT


def detect(environ=None) -> DistEnv:
    """Read this process's rank, world size and local rank from the launcher's variables."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistEnv(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)),
                       "torchrun")
    if "SLURM_PROCID" in env and "SLURM_STEP_NUM_TASKS" in env:
        return DistEnv(int(env["SLURM_PROCID"]), int(env["SLURM_STEP_NUM_TASKS"]),
                       int(env.get("SLURM_LOCALID", 0)), "slurm")
    if "SUBMITIT_LOCAL_GLOBALID" in env and "SUBMITIT_LOCAL_NTASKS" in env:
        return DistEnv(int(env["SUBMITIT_LOCAL_GLOBALID"]), int(env["SUBMITIT_LOCAL_NTASKS"]),
                       int(env.get("SUBMITIT_LOCAL_LOCALID", 0)), "submitit_local")
    return DistEnv()


def _rendezvous(info: DistEnv) -> None:
    """Fill MASTER_ADDR/MASTER_PORT for launchers that do not set them (srun, submitit)."""
    if info.source == "slurm":
        nodes = os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_JOB_NODELIST", "")
        os.environ.setdefault("MASTER_ADDR", first_host(nodes) if nodes else "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_port_from_job(os.environ.get("SLURM_JOB_ID"))))
    elif info.source == "submitit_local":
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT",
                              str(_port_from_job(os.environ.get("SUBMITIT_LOCAL_JOB_ID"))))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(DEFAULT_PORT))


def device_for(info: DistEnv, device: torch.device) -> torch.device:
    """On CUDA each rank uses the GPU of its local rank (modulo the GPUs it can see, for
    clusters that hand each task a single visible GPU)."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", info.local_rank % max(torch.cuda.device_count(), 1))
    return device


def setup(device: torch.device, info: DistEnv | None = None) -> DistEnv:
    """Start the process group when there is more than one rank (gloo on CPU, nccl on CUDA).
    Idempotent: a group started by the caller (tests, notebooks) is kept."""
    info = detect() if info is None else info
    if not info.distributed or dist.is_initialized():
        return info
    _rendezvous(info)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=info.rank, world_size=info.world_size,
                            init_method="env://", **({"device_id": device} if backend == "nccl" else {}))
    atexit.register(cleanup)
    return info


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def wrap_model(model: torch.nn.Module, info: DistEnv) -> torch.nn.Module:
    """DistributedDataParallel over all ranks (gradients averaged in backward); the model itself
    with one rank. DDP broadcasts rank 0's weights at construction."""
    if not info.distributed:
        return model
    device_ids = [model_device(model)] if model_device(model).type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def all_reduce(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Sum (or min/max) across data-parallel ranks when torch.distributed is running; identity
    otherwise."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=getattr(dist.ReduceOp, op.upper()))
    return t


def reduce_stats(stats: torch.Tensor) -> torch.Tensor:
    """Rows of (mean, min, max) over each rank's batches -> over all ranks' batches: the mean of
    the rank means (every rank holds an equal slice of each global batch, so this is the global
    mean), the min of the mins and the max of the maxes."""
    if not (dist.is_available() and dist.is_initialized()):
        return stats
    means = all_reduce(stats[:, 0].contiguous()) / dist.get_world_size()
    lows = all_reduce(stats[:, 1].contiguous(), "min")
    highs = all_reduce(stats[:, 2].contiguous(), "max")
    return torch.stack([means, lows, highs], dim=1)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def local_batch_size(batch_size: int, info: DistEnv) -> int:
    """Per-rank batch for a global batch of `batch_size` (for DataLoader-based datasets)."""
    if batch_size % info.world_size:
        raise ValueError(f"batch_size {batch_size} is not divisible by the {info.world_size} ranks; "
                         "choose a multiple so every rank holds an equal slice of the global batch.")
    return batch_size // info.world_size


def make_sampler(dataset, info: DistEnv, *, shuffle: bool, seed: int):
    """The sampler hook for DataLoader-based datasets (ImageNet): None with one rank, else a
    DistributedSampler giving each rank a disjoint 1/world_size of every epoch. Pair it with
    `local_batch_size`, and call `sampler.set_epoch(epoch)` each epoch so the order depends on
    (seed, epoch) only, the same contract as DeviceLoader."""
    if not info.distributed:
        return None
    from torch.utils.data.distributed import DistributedSampler

    return DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                              shuffle=shuffle, seed=seed, drop_last=False)
