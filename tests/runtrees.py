"""Synthetic runs trees in the real on-disk schema (agd.results' own writers), for the plot,
report and evidence tests: no training, metrics chosen so every verdict is known in advance."""

from __future__ import annotations

import math

from agd.results import EPOCH_COLUMNS, STEP_COLUMNS, write_json, write_rows

OPT = {"agd": "agd.optim.AGD", "adam": "torch.optim.Adam", "sgd": "torch.optim.SGD",
       "prodigy": "prodigyopt.Prodigy", "dadapt_adam": "dadaptation.DAdaptAdam",
       "dadapt_adam_recommended": "dadaptation.DAdaptAdam"}


def make_run(root, group, name, *, opt="agd", lr=None, depth=4, width=64, batch=128, epochs=4,
             final_acc=0.9, final_loss=0.1, data="agd.data.mnist1d.load", steps=0, status="complete",
             seed=None, precision=None, scale="mini", converged=True, model="agd.models.FCN", data_keys=None,
             summary=None):
    """One run directory <root>/<group>/<name>[,seed=<seed>] whose last epochs have the given
    train accuracy and loss: linear from the first epoch, then flat from before the last quarter, so a
    run's final value (the mean of its last 3 epochs) is the given one and its curves meet the
    convergence criterion (experiments/analysis/convergence.py) unless `converged=False`, where
    they rise linearly to the last epoch. `model` is the model's _target_, `data_keys` more data.*
    keys (augment, pad, ...), `summary` more summary.json keys (commit, dirty, ...)."""
    run_dir = root / group / (name if seed is None else f"{name},seed={seed}")
    optimizer = {"_target_": OPT[opt], "init": "paper" if opt == "agd" else "default"}
    if lr is not None:
        optimizer["lr"] = lr
    write_json(run_dir / "config.json", {
        "epochs": epochs, "batch_size": batch, "seed": seed or 0, "scale": scale, "group": group,
        "model": {"_target_": model, "depth": depth, "width": width},
        "data": {"_target_": data, **(data_keys or {})}, "optimizer": optimizer})
    rows = []
    # the epoch the final values are reached: before the criterion's first window (the 3-epoch
    # window ending where the last quarter starts) and before the last 3 epochs
    quarter = math.ceil(epochs / 4)
    reach = max(1, min(epochs - 2, epochs - quarter - min(3, quarter) + 1)) if converged else epochs
    for e in range(1, epochs + 1):
        f = min(1.0, e / reach)
        rows.append({"epoch": e, "step": e * 10, "train_loss": 1 - (1 - final_loss) * f,
                     "train_acc": 0.1 + (final_acc - 0.1) * f, "test_loss": 1 - 0.5 * f,
                     "test_acc": 0.1 + (final_acc - 0.2) * f, "eta_mean": 0.2, "eta_min": 0.1,
                     "eta_max": 0.3, "update_mean": 0.01, "update_min": 0.005, "update_max": 0.02,
                     "time_s": float(e)})
    write_rows(run_dir / "metrics.csv", rows, EPOCH_COLUMNS)
    if steps:
        write_rows(run_dir / "steps.csv", [
            {"epoch": 1, "step": s, "train_loss": 1.0, "train_acc": 0.1,
             "eta": 0.3 - 0.2 * (s == 2) * (batch / 4096), "update": 0.01}
            for s in range(1, steps + 1)], STEP_COLUMNS)
    summary = {"status": status, **(summary or {})}
    if precision:
        summary["precision"] = precision
    write_json(run_dir / "summary.json", summary)
    return run_dir


def seeded(root, group, name, values, **kw):
    """One setting over seeds 0, 1, 2, ...: values = per-seed dicts of make_run keywords."""
    return [make_run(root, group, name, seed=s, **{**kw, **v}) for s, v in enumerate(values)]


def small_tree(root):
    """A small-scale tree with three seeds per setting where verdicts depend on the spread:

    showcase_a: Adam stays at chance (10.6 ± 0.4 %: held), SGD trains (35 %: did not hold);
    fig2: Adam's tuned objective is clearly below SGD's (held), AGD's is 0.20 ± 0.10 against
    SGD's 0.25 ± 0.03 (within noise); fig3: wider is better except at depth 32 (did not hold)."""
    g, kw = "showcase_a_small", {"depth": 32, "scale": "small", "precision": "fp32"}
    seeded(root, g, "optimizer=agd", [{"final_acc": a} for a in (0.95, 0.96, 0.97)], **kw)
    seeded(root, g, "optimizer=adam", [{"final_acc": a} for a in (0.106, 0.110, 0.102)], opt="adam",
           lr=1e-3, **kw)
    seeded(root, g, "optimizer=sgd", [{"final_acc": a} for a in (0.35, 0.36, 0.34)], opt="sgd", lr=0.1, **kw)
    g, kw = "fig2_small", {"depth": 8, "scale": "small", "precision": "bf16"}
    seeded(root, g, "optimizer=agd", [{"final_loss": x} for x in (0.10, 0.30, 0.20)], **kw)
    for lr, losses in ((1e-4, (0.04, 0.05, 0.06)), (1e-3, (0.2, 0.2, 0.2))):
        seeded(root, g, f"optimizer.lr={lr},optimizer=adam", [{"final_loss": x} for x in losses],
               opt="adam", lr=lr, **kw)
    for lr, losses in ((1e-2, (0.5, 0.5, 0.5)), (1e-1, (0.25, 0.22, 0.28))):
        seeded(root, g, f"optimizer.lr={lr},optimizer=sgd", [{"final_loss": x} for x in losses],
               opt="sgd", lr=lr, **kw)
    for depth in (8, 16, 32):
        for i, width in enumerate((8, 16, 32)):
            loss = 0.5 / (i + 1) if not (depth == 32 and width == 32) else 0.6
            seeded(root, "fig3_small", f"model.depth={depth},model.width={width}",
                   [{"final_loss": loss + 0.01 * s} for s in range(3)], depth=depth, width=width,
                   final_acc=0.5 + 0.1 * i, scale="small")
    return root
