"""Pull runs from Weights & Biases into a local runs tree in the run-directory schema, so that
every plot and scripts/report.py read them exactly like runs trained here.

    python scripts/pull_wandb.py project=agd-reproduction [entity=<team>] [group=fig3_paper] \
        out=wandb_runs
    python scripts/plot_fig3.py scale=paper runs=wandb_runs

What each pulled run holds: experiments/analysis/wandb_pull.py.
"""

import sys

from experiments.analysis.wandb_pull import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
