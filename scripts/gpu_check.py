"""The one-shot check for a machine with a GPU: `pytest -m gpu`, the benchmarks on CUDA, one
paper-scale epoch of fig2 and of showcase-b on synthetic CIFAR-shaped data, and a table for
BENCHMARKS.md (images/s, the AGD step's share of an iteration, host syncs per step, peak memory).

    python scripts/gpu_check.py                        # on one GPU, at most about ten minutes
    python scripts/gpu_check.py --device cpu --quick   # the same steps at small sizes, seconds

Exit status 0 when every step passed, 1 when one failed (the table marks it), 2 for --device
cuda without CUDA. What each step measures and how: experiments/gpu_check.py.
"""

import sys

from experiments.gpu_check import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
