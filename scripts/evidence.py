"""Export the runs behind the figures as compact CSVs (figures/data/), so every figure and
REPORT.md rebuild without training.

    python scripts/evidence.py export scale=small [figure=all] [runs=<runs root>] [out=figures/data]
    python scripts/reproduce.py figure=all scale=small plot_only=true source=evidence publish=true

What is exported, and how: experiments/analysis/evidence.py.
"""

import sys

from experiments.analysis.evidence import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
