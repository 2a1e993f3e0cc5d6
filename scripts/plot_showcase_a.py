"""Draw showcase-a: depth-32 FCN, AGD against Adam and SGD at their default learning rates.

    python scripts/plot_showcase_a.py scale=mini|small|paper [runs=<runs root>] [out=<dir>] [publish=true]

What it draws: experiments/analysis/plots/showcase_a.py. runs= is a runs tree or the committed evidence
(figures/data); default $AGD_RUNS_DIR, else runs/. Output: out=, else <runs root>/figures/
(figures/ only with publish=true).
"""

import sys

from experiments.analysis.plots import showcase_a
from experiments.analysis.plots.style import cli

if __name__ == "__main__":
    sys.exit(cli(showcase_a.plot, sys.argv[1:]))
