"""Draw fig2: FCN depth 8 width 256, AGD against tuned Adam and SGD, with the relative update size.

    python scripts/plot_fig2.py scale=mini|small|paper [runs=<runs root>] [out=<dir>] [publish=true]

What it draws: experiments/analysis/plots/fig2.py. runs= is a runs tree or the committed evidence
(figures/data); default $AGD_RUNS_DIR, else runs/. Output: out=, else <runs root>/figures/
(figures/ only with publish=true).
"""

import sys

from experiments.analysis.plots import fig2
from experiments.analysis.plots.style import cli

if __name__ == "__main__":
    sys.exit(cli(fig2.plot, sys.argv[1:]))
