"""Train one network (or a sweep with -m). Quickstart, offline, on a CPU:

    python experiments/train.py
    python experiments/train.py model.depth=8 model.width=512 optimizer=adam optimizer.lr=1e-4
    python experiments/train.py -m model.depth=2,4,8

At scale (README "Running at scale"), the same file:

    torchrun --nproc_per_node=4 experiments/train.py ...           # data parallel, one GPU each
    python experiments/train.py -m ... hydra/launcher=slurm        # a sweep as a SLURM job array

Runs land in runs/<group>/<overrides> (AGD_RUNS_DIR overrides the root); rerunning the same
command resumes an interrupted run and skips a complete one.
"""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `experiments` without install

from experiments.pipeline import register_resolvers, run  # noqa: E402

register_resolvers()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig):
    hydra_cfg = HydraConfig.get()
    summary = run(cfg, hydra_cfg.runtime.output_dir, multirun=hydra_cfg.mode == RunMode.MULTIRUN)
    return summary


if __name__ == "__main__":
    main()
