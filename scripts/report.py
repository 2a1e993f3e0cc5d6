"""Write REPORT.md: every published number of the paper next to what our runs give, per scale.

    python scripts/report.py [runs=<runs root or evidence folder>] [source=evidence] [out=<dir>] [publish=true]

The report goes to `<runs root>/figures/REPORT.md` unless publish=true (figures/REPORT.md) or
out= is given; source=evidence reads the committed figures/data/. What it contains and how each
verdict is drawn: experiments/analysis/report.py and claims.py.
"""

import sys

from experiments.analysis.report import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
