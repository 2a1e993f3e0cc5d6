"""Time AGD against SGD, SGD+momentum and Adam: one optimiser step, or a whole training iteration.

    python scripts/bench_optimizer.py --threads 1                    # step only, CPU, three models
    python scripts/bench_optimizer.py --threads 1 --whole-iteration  # forward + backward + step
    python scripts/bench_optimizer.py --device cuda                  # on a GPU (adds CUDA-graph AGD)
    python scripts/bench_optimizer.py --compile                      # also torch.compile'd AGD step

What is timed and how: experiments/bench/optimizer.py (`--help` lists every flag).
"""

import sys

from experiments.bench.optimizer import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
