"""Draw fig4: AGD on a depth-4 FCN at several batch sizes, against iterations.

    python scripts/plot_fig4.py scale=mini|small|paper [runs=<runs root>] [out=<dir>] [publish=true]

What it draws: experiments/analysis/plots/fig4.py. runs= is a runs tree or the committed evidence
(figures/data); default $AGD_RUNS_DIR, else runs/. Output: out=, else <runs root>/figures/
(figures/ only with publish=true).
"""

import sys

from experiments.analysis.plots import fig4
from experiments.analysis.plots.style import cli

if __name__ == "__main__":
    sys.exit(cli(fig4.plot, sys.argv[1:]))
