"""The committed evidence behind the figures: one compact CSV per run group, so every published
figure and figures/REPORT.md rebuild without training.

    python scripts/evidence.py export scale=small [figure=all] [runs=<runs root>] [out=figures/data]
    python scripts/reproduce.py figure=all scale=small plot_only=true source=evidence publish=true

`export` writes, for every run group behind the chosen figures (their experiments' groups, the
double-budget `<group>_x2` groups and the follow-up groups of figures/followups.csv, where they
exist), `<out>/<scale>/<group>.csv`: every run's per-epoch rows with the config columns the
plots and the report read (optimizer.*, model.*, dataset, batch size, seed, epochs, status,
precision, date, run). Groups with per-step rows (fig4) also get `<group>.steps.csv`. A file
over GZIP_OVER bytes is written gzip-compressed (`.csv.gz`). `<out>/index.csv` lists every file.
Exporting a group replaces its files; other groups and scales are left alone. An export is one
publication (journal.py): the folder shows every old file or every new one, never a mix, and
the index only ever lists files that exist. Readers call `journal.settle_evidence(root)` first.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pandas as pd

from agd.results import EPOCH_COLUMNS, STEP_COLUMNS
from experiments import paths
from experiments.analysis import journal, registry, samples
from experiments.analysis import rundata as rd
from experiments.analysis.args import BadArgument, check_choice, entry, parse_keys

GZIP_OVER = 1_000_000  # bytes: above this a group's CSV is stored gzip-compressed
INDEX_COLUMNS = ["scale", "group", "kind", "file", "runs", "rows"]
README = """# Evidence behind the committed figures

Written by `python scripts/evidence.py export` (or `scripts/reproduce.py ... publish=true`); do not edit.
`index.csv` lists one file per run group and kind: `<scale>/<group>.csv` holds every run's per-epoch rows,
`<scale>/<group>.steps.csv` its recorded per-step rows (`.csv.gz` when large). Each row carries the run's
config columns (optimizer.*, model.*, batch_size, seed, epochs, status, precision, date) and `run`, the
run's directory below the runs root. Rebuild every figure and REPORT.md from it without training:

    python scripts/reproduce.py figure=all scale=small plot_only=true source=evidence publish=true
"""


def compact(df: pd.DataFrame, steps: bool) -> pd.DataFrame:
    """The columns worth committing, in a stable order (rows sorted by run, then epoch/step)."""
    keep = [c for c in df.columns if c.startswith(("optimizer.", "model.", "data."))]
    keep += [c for c in rd.CONFIG_COLUMNS if c in df.columns]
    metrics = [c for c in (STEP_COLUMNS if steps else EPOCH_COLUMNS) if c in df.columns]
    order = ["run", "step"] if steps else ["run", "epoch"]
    return df[metrics + sorted(set(keep) - set(metrics))].sort_values(order).reset_index(drop=True)


def write_table(path: Path, df: pd.DataFrame) -> Path:
    """CSV, gzip-compressed (mtime 0, so identical data gives identical bytes) when large."""
    data = df.to_csv(index=False, lineterminator="\n").encode()
    if len(data) > GZIP_OVER:
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as f:
            f.write(data)
        data, path = buffer.getvalue(), path.with_name(path.name + ".gz")
    journal.write_bytes(path, data)
    return path


def export_group(runs_root: Path, group: str, scale: str, out: Path) -> list[dict]:
    """Write one group's evidence; return its index rows (none if the group has no runs)."""
    rows = []
    for steps in (False, True):
        df = rd.read_tree(runs_root, group, steps=steps)
        if df.empty:
            continue
        path = write_table(out / scale / f"{group}{'.steps' if steps else ''}.csv", compact(df, steps))
        rows.append({"scale": scale, "group": group, "kind": "steps" if steps else "epochs",
                     "file": path.relative_to(out).as_posix(), "runs": df.run.nunique(), "rows": len(df)})
    return rows


def read_index(out: Path) -> list[dict]:
    if not (out / rd.INDEX_FILE).exists():
        return []
    with open(out / rd.INDEX_FILE, newline="") as f:
        return list(csv.DictReader(f))


def write_groups(runs_root: Path, scale: str, groups: list[str], out: Path) -> list[dict]:
    """Write `groups` of `runs_root` at `scale` into the folder `out` (a staging copy of the
    evidence during a publication) and its index; returns the new index rows."""
    for group in groups:  # a group's old files go, whatever their compression was
        for old in (out / scale).glob(f"{group}.*csv*"):
            old.unlink()
    written = [row for group in groups for row in export_group(runs_root, group, scale, out)]
    for group in groups:  # text runs' generated samples travel with their group (<group>_samples.csv)
        samples.export_samples(runs_root, group, out, scale)
    index = [row for row in read_index(out) if (row["scale"], row["group"]) not in
             {(scale, g) for g in groups}] + written
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=INDEX_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(index, key=lambda r: (r["scale"], r["group"], r["kind"])))
    journal.write_bytes(out / rd.INDEX_FILE, buffer.getvalue().encode())
    journal.write_bytes(out / "README.md", README.encode())
    return written


def publication_of(out: Path) -> tuple[Path, str]:
    """(published folder, evidence folder relative to it): the committed evidence is published
    with figures/ (one lock, one journal for both); any other folder on its own."""
    out, evidence = Path(out).resolve(), paths.EVIDENCE_DIR.resolve()
    figures = paths.FIGURES_DIR.resolve()
    if out == evidence and figures in evidence.parents:
        return figures, evidence.relative_to(figures).as_posix()
    return out, ""


def export(runs_root: Path, scale: str, groups: list[str], out: Path | None = None) -> list[dict]:
    """Export `groups` of `runs_root` at `scale` into `out` (default figures/data) as one
    publication; returns the new index rows. Nothing is written when no group has runs."""
    out = Path(out) if out else paths.EVIDENCE_DIR
    if not groups:
        print("evidence: no run groups to export")
        return []
    if rd.is_evidence(runs_root) and runs_root.resolve() == out.resolve():
        raise SystemExit(f"{runs_root} is already the evidence folder; export from a runs tree (runs=<dir>).")
    base, rel = publication_of(out)
    with journal.Publication(base, mirror=(rel,)) as publication:
        written = write_groups(runs_root, scale, groups, publication.staging / rel)
        publication.commit()
    total = sum((out / r["file"]).stat().st_size for r in written)
    print(f"evidence: {len(written)} files, {total / 1e6:.2f} MB under {out / scale}")
    return written


def groups_of(figures: list[str], scale: str, runs_root: Path) -> list[str]:
    """The run groups behind `figures` at `scale` that exist under runs_root: each experiment's
    group, its `_x2` double-budget group and the follow-up groups named in figures/followups.csv."""
    names = []
    for figure in figures:
        for experiment in registry.FIGURES[figure].experiments:
            group = rd.group_of(experiment, scale)
            names += [group, f"{group}_x2"]
    names += [f["group"] for f in rd.followups() if f["group"].endswith(f"_{scale}")
              or f"_{scale}_" in f["group"]]
    return [g for g in dict.fromkeys(names) if (runs_root / g).is_dir()]


USAGE = ("usage: python scripts/evidence.py export scale=mini|small|paper [figure=all] [runs=<runs root>] "
         "[out=figures/data]")


def _main(argv: list[str]) -> int:
    if not argv or argv[0] != "export":
        raise BadArgument(USAGE)
    args = parse_keys(argv[1:], {"scale": "mini", "figure": "all", "runs": None, "out": None})
    check_choice("scale", args["scale"], paths.SCALES)
    check_choice("figure", args["figure"], [*registry.figure_ids(), "all"])
    figures = registry.all_ids() if args["figure"] == "all" else [args["figure"]]
    root = paths.runs_root(args["runs"])
    journal.settle_evidence(Path(args["out"]) if args["out"] else paths.EVIDENCE_DIR)
    export(root, args["scale"], groups_of(figures, args["scale"], root), args["out"])
    return 0


def main(argv: list[str]) -> int:
    """scripts/evidence.py: a bad argument is one sentence on stderr and exit 2."""
    return entry(_main, argv, "evidence.py")
