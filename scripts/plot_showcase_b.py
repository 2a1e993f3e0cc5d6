"""Draw showcase-b: ResNet-18, Adam and SGD over the learning-rate grid, AGD as flat lines.

    python scripts/plot_showcase_b.py scale=mini|small|paper [runs=<runs root>] [out=<dir>] [publish=true]

What it draws: experiments/analysis/plots/showcase_b.py. runs= is a runs tree or the committed evidence
(figures/data); default $AGD_RUNS_DIR, else runs/. Output: out=, else <runs root>/figures/
(figures/ only with publish=true).
"""

import sys

from experiments.analysis.plots import showcase_b
from experiments.analysis.plots.style import cli

if __name__ == "__main__":
    sys.exit(cli(showcase_b.plot, sys.argv[1:]))
