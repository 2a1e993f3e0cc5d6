"""Reproduce one figure (or all) of the paper: launch its runs, then draw it.

    python scripts/reproduce.py figure=fig3 scale=mini           # laptop CPU, offline data, minutes
    python scripts/reproduce.py figure=fig3 scale=small          # real stand-in data, seeds 0,1,2
    python scripts/reproduce.py figure=fig3 scale=paper          # the paper's settings (GPU)
    python scripts/reproduce.py figure=fig3 scale=paper hydra/launcher=slurm   # on a cluster
    python scripts/reproduce.py figure=all scale=small publish=true           # + figures/, evidence
    python scripts/reproduce.py figure=fig3 scale=small check=double          # seed 0, 2x epochs
    python scripts/reproduce.py figure=all scale=small plot_only=true source=evidence publish=true

Own arguments: figure=<id|all> scale=mini|small|paper plot_only=true runs=<dir>
source=runs|evidence out=<dir> publish=true check=double jobs=N; every other key=value goes to
each launch (`python experiments/train.py -m experiment=<id> scale=<scale> ...`). What each
means: experiments/analysis/reproduce.py; the figures: experiments/analysis/registry.py.
"""

import sys

from experiments.analysis.reproduce import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
