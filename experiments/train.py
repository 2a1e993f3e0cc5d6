"""Train one network (or a sweep with -m). Quickstart, offline, on a CPU:

    python experiments/train.py
    python experiments/train.py model.depth=8 model.width=512 optimizer=adam optimizer.lr=1e-4
    python experiments/train.py -m model.depth=2,4,8

At scale (README "Running at scale"), the same file:

    torchrun --nproc_per_node=4 experiments/train.py ...           # data parallel, one GPU each
    python experiments/train.py -m ... hydra/launcher=slurm        # a sweep as a SLURM job array

Runs land in runs/<group>/<overrides> (AGD_RUNS_DIR overrides the root); rerunning the same
command resumes an interrupted run and skips a complete one.

Exit status: 0 done; 2 a bad command or config (one sentence on stderr, nothing written); 1 a
failure of the machine (disk full) or of the code (with its traceback); 75 stopped by
SIGTERM/SIGUSR1 and 130 by Ctrl-C (rerun to resume). A sweep exits 1 when any job failed, 75 when
none failed but some were stopped, and 3 when none failed or stopped but some diverged
(experiments/sweep.py). Under submitit (hydra/launcher=slurm or
local) each job's process exits with its run's status too, so SLURM records a failed run as FAILED
(experiments/signals.py).
"""

import errno
import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from experiments import slurm, sweep
from experiments.build import one_sentence, register_resolvers
from experiments.pipeline import run
from experiments.signals import exit_status_at_end

register_resolvers()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig):
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    summary = run(cfg, hydra_cfg.runtime.output_dir, multirun=multirun, overrides=list(hydra_cfg.overrides.task))
    if multirun:
        sweep.record(summary, hydra_cfg.job.num)
        if os.environ.get("SUBMITIT_EXECUTOR") and summary.get("status") != "complete":
            # the job returns, so submitit hands its status to the sweep; the scheduler still
            # records a failure (SLURM: FAILED with this exit code, not COMPLETED 0:0)
            exit_status_at_end(summary.get("exit_code") or 1)
    return summary


def cli() -> None:
    """main() with the errors Hydra would print as tracebacks turned into one sentence, exit 2."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # Hydra's own errors reach us as exceptions
    try:
        with slurm.launch_errors_as_sentences():  # a SLURM sweep that went wrong: one sentence
            main()
    except (HydraException, OmegaConfBaseException) as err:
        print(f"error: {one_sentence(err)}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.ENOSPC):
            raise
        print(f"error: cannot create {err.filename} ({err.strerror}); set AGD_RUNS_DIR to a folder you "
              "can write, with room to spare.", file=sys.stderr)
        sys.exit(2)
    finally:
        sweep.discard_outcomes()  # a sweep stopped early (SIGTERM) leaves no outcomes folder


if __name__ == "__main__":
    cli()
