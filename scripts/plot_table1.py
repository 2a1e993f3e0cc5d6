"""Draw Table 1: optimiser memory (weights plus state) in units of the weights, measured.

    python scripts/plot_table1.py [scale=mini|small|paper] [out=<dir>] [publish=true]

What it draws: experiments/analysis/plots/table1.py, from experiments/analysis/memory_table.py
(measured here, no runs): table1.md, table1.csv and table1_<scale>.png/.pdf in out=, else
<runs root>/figures/ (figures/ only with publish=true).
"""

import sys

from experiments.analysis.plots import table1
from experiments.analysis.plots.style import cli

if __name__ == "__main__":
    sys.exit(cli(table1.plot, sys.argv[1:]))
