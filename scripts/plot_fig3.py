"""Draw fig3: AGD on the FCN depth × width grid.

    python scripts/plot_fig3.py scale=mini|small|paper [runs=<runs root>] [out=<dir>] [publish=true]

What it draws: experiments/analysis/plots/fig3.py. runs= is a runs tree or the committed evidence
(figures/data); default $AGD_RUNS_DIR, else runs/. Output: out=, else <runs root>/figures/
(figures/ only with publish=true).
"""

import sys

from experiments.analysis.plots import fig3
from experiments.analysis.plots.style import cli

if __name__ == "__main__":
    sys.exit(cli(fig3.plot, sys.argv[1:]))
