"""Draw fig1: four benchmarks side by side, η and objective above, accuracies below.

    python scripts/plot_fig1.py scale=mini|small|paper [runs=<runs root>] [out=<dir>] [publish=true]

What it draws: experiments/analysis/plots/fig1.py. runs= is a runs tree or the committed evidence
(figures/data); default $AGD_RUNS_DIR, else runs/. Output: out=, else <runs root>/figures/
(figures/ only with publish=true).
"""

import sys

from experiments.analysis.plots import fig1
from experiments.analysis.plots.style import cli

if __name__ == "__main__":
    sys.exit(cli(fig1.plot, sys.argv[1:]))
