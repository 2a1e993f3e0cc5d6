"""Benchmarks behind BENCHMARKS.md: `optimizer` (one AGD step, or a whole training iteration,
against SGD and Adam) and `train` (training throughput against the standard torchvision
pipeline); run them through scripts/bench_optimizer.py and scripts/bench_train.py."""
