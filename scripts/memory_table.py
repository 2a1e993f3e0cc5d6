"""Table 1, measured: weights plus optimiser state after one step, in units of the weights, for
every optimiser config in conf/optimizer/ (and SGD with momentum 0.9).

    python scripts/memory_table.py                     # FCN depth 8 width 256 and ResNet-18, CIFAR-10 shapes
    python scripts/memory_table.py --out table1.md     # also write the Markdown table

How it is measured: experiments/analysis/memory_table.py.
"""

import sys

from experiments.analysis.memory_table import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
