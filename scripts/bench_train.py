"""Training throughput: our pipeline vs the standard torchvision one, and ResNet-50 (BENCHMARKS.md).

    python scripts/bench_train.py                    # CPU: FCN on all 50,000 images, ResNet-18
                                                     # on a 256-image slice, ResNet-50 2 steps
    python scripts/bench_train.py --device cuda      # GPU: full 50,000-image epochs

What is timed and how: experiments/bench/train.py (`--help` lists every flag).
"""

import sys

from experiments.bench.train import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
