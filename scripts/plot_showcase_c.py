"""Draw showcase-c: ResNet-50 (ImageNet layout), AGD against SGD.

    python scripts/plot_showcase_c.py scale=mini|small|paper [runs=<runs root>] [out=<dir>] [publish=true]

What it draws: experiments/analysis/plots/showcase_c.py. runs= is a runs tree or the committed evidence
(figures/data); default $AGD_RUNS_DIR, else runs/. Output: out=, else <runs root>/figures/
(figures/ only with publish=true).
"""

import sys

from experiments.analysis.plots import showcase_c
from experiments.analysis.plots.style import cli

if __name__ == "__main__":
    sys.exit(cli(showcase_c.plot, sys.argv[1:]))
