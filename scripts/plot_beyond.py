"""Draw the beyond-the-paper figures (docs/beyond.md): whole-model AGD, a small GPT, width transfer.

    python scripts/plot_beyond.py scale=mini|small|paper [runs=<runs root>] [out=<dir>] [publish=true]

What it draws: experiments/analysis/plots/beyond.py. runs= is a runs tree or the committed evidence
(figures/data); default $AGD_RUNS_DIR, else runs/. Output: out=, else <runs root>/figures/
(figures/ only with publish=true).
"""

import sys

from experiments.analysis.plots import beyond
from experiments.analysis.plots.style import cli

if __name__ == "__main__":
    sys.exit(cli(beyond.plot, sys.argv[1:]))
