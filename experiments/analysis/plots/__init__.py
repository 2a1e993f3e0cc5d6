"""One module per figure, each with `plot(scale, runs=None, out=None) -> list[Path]`; style.py
holds what they share. The registry (experiments/analysis/registry.py) names which draws what."""
