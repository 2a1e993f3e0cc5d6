"""Run groups as tables, from a runs tree or from the committed evidence, with seeds made explicit.

Every plot and the report read runs only through `load_group`, so they work the same on

* a runs tree written by training (`<root>/<group>/<override dirname>/metrics.csv`, ...), and
* the evidence folder written by `python scripts/evidence.py export` (default `figures/data/`): one
  compact CSV per run group (`<root>/<scale>/<group>.csv[.gz]`, per-step rows in
  `<group>.steps.csv[.gz]`) listed in `<root>/index.csv`.

Both give the same frame: one row per run x epoch (or step) with the run's config columns, plus

    run        the run's path below the root, e.g. "fig2_small/optimizer=adam,seed=1"
    opt        the optimiser config's name ("adam", "dadapt_adam_recommended"; from the run's
               `optimizer=` override, else from the optimiser class)
    config_id  the run's name without its `seed=` override: the runs of one setting across seeds
    precision  the run's arithmetic (fp32 / bf16) where its summary.json records it
    date       when the run last wrote its metrics (UTC)

A run's "final" value, wherever a verdict or the tuned choice reads one, is the mean over its
last FINAL_EPOCHS epochs (`final_means`; the last epoch's own value rides along as `<metric>_last`):
a CNN's test accuracy can swing by 20 points from one epoch to the next, so one epoch is a poor
judge. "Tuned" (the paper's baseline choice) is decided here once, by `tuned`, for every figure,
verdict and the beyond-the-paper rows: the setting with the lowest training objective (final
train loss, mean over seeds of each run's mean over its last FINAL_EPOCHS epochs). It reads the
training split only, never the test split (for the GPT the held-out text is its test split, so
it too is tuned on its train loss). Provenance: `commit`, `dirty` and `mixed_code` (from each
run's summary.json, experiments/provenance.py) travel with the runs into the evidence.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import subprocess
from functools import cache
from pathlib import Path

import pandas as pd
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from agd.results import SUMMARY_FILE, load_runs, read_json
from experiments import paths
from experiments.analysis import journal
from experiments.analysis.args import BadArgument
from experiments.pipeline import register_resolvers
from experiments.provenance import TRAINING_CODE

INDEX_FILE = "index.csv"
FOLLOWUPS_FILE = "followups.csv"  # in figures/: claim id -> follow-up run group -> what it tests

# config columns kept in the evidence (besides every optimizer.*, model.* and data.* key, data.pad
# among them); commit, dirty and mixed_code say which code trained each run (summary.json)
CONFIG_COLUMNS = ["data._target_", "loss._target_", "batch_size", "seed", "epochs", "scale",
                  "group", "step_rows", "amp", "status", "precision", "date", "run",
                  "commit", "dirty", "mixed_code", "floor_unigram", "floor_bigram"]
FLOOR_COLUMNS = ("floor_unigram", "floor_bigram")  # text runs: count-model floors, nats per character
FINAL_EPOCHS = 3  # a run's final value: the mean over its last 3 epochs (module docstring)
METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")

_OPT_CLASSES = {"dadaptadam": "dadapt_adam", "adamwschedulefree": "schedulefree_adamw",
                "schedulefreeadamw": "schedulefree_adamw", "pdog": "dog"}


def is_evidence(root: str | os.PathLike) -> bool:
    return (Path(root) / INDEX_FILE).exists()


def default_out(runs: str | os.PathLike | None = None) -> Path:
    """Where figures and REPORT.md go unless the user publishes: `<runs root>/figures`, never the
    committed figures/ folder (an evidence folder's output goes under $AGD_RUNS_DIR or runs/)."""
    root = paths.runs_root(runs)
    if is_evidence(root):
        root = paths.runs_root(None)
    return root / "figures"


def output_dir(out: str | None, publish: bool | str, runs: str | os.PathLike | None) -> Path:
    """out= wins; else figures/ when publishing, else default_out(runs)."""
    if out:
        return Path(out)
    return paths.FIGURES_DIR if str(publish).lower() == "true" else default_out(runs)


def split_name(name: str) -> dict[str, str]:
    """'optimizer.lr=0.001,optimizer=adam,seed=1' -> {'optimizer.lr': '0.001', ...}."""
    pairs = re.findall(r"(?:^|,)([\w./@+-]+)=((?:\[[^\]]*\]|[^,])*)", name)
    return dict(pairs)


def _opt_name(run: str, target) -> str:
    chosen = split_name(Path(run).name).get("optimizer")
    if chosen:
        return chosen
    short = str(target).rsplit(".", 1)[-1].lower()
    return _OPT_CLASSES.get(short, short)


def _config_id(run: str) -> str:
    path = Path(run)
    kept = {k: v for k, v in split_name(path.name).items() if k != "seed"}
    name = ",".join(f"{k}={v}" for k, v in kept.items()) if kept else path.name
    return str(path.parent / name) if kept or "seed=" not in path.name else str(path.parent)


def annotate(df: pd.DataFrame) -> pd.DataFrame:
    """Add opt and config_id (see the module docstring) to a frame that has `run`."""
    if df.empty:
        return df.assign(opt=pd.Series(dtype=str), config_id=pd.Series(dtype=str))
    target = df["optimizer._target_"] if "optimizer._target_" in df else pd.Series("", index=df.index)
    runs = df["run"].astype(str)
    opts = {r: _opt_name(r, t) for r, t in zip(runs, target, strict=True)}
    return df.assign(opt=runs.map(opts), config_id=runs.map({r: _config_id(r) for r in opts}))


def _run_extras(run_dir: Path) -> dict:
    """precision and, for text runs, the count-model floors (summary.json, if recorded), and the
    date metrics.csv was last written."""
    extras = {"precision": None, "date": None}
    summary = run_dir / SUMMARY_FILE
    if summary.exists():
        recorded = read_json(summary)
        extras["precision"] = recorded.get("precision")
        extras.update({key: recorded[key] for key in FLOOR_COLUMNS if key in recorded})
    metrics = run_dir / "metrics.csv"
    if metrics.exists():
        stamp = dt.datetime.fromtimestamp(metrics.stat().st_mtime, dt.timezone.utc)
        extras["date"] = stamp.strftime("%Y-%m-%d %H:%M UTC")
    return extras


def read_tree(root: Path, group: str, steps: bool = False) -> pd.DataFrame:
    """One group of a runs tree through agd.results.load_runs, plus run, precision and date."""
    path = root / group
    if not path.is_dir():
        return pd.DataFrame(columns=["run", "run_dir", "status", "epoch", "step"])
    df = load_runs(path, steps=steps)
    if df.empty:
        return df.assign(run=pd.Series(dtype=str))
    extras = {d: _run_extras(Path(d)) for d in df.run_dir.unique()}
    runs = {d: Path(d).relative_to(root).as_posix() for d in extras}
    floors = {key: df.run_dir.map({d: e.get(key) for d, e in extras.items()}) for key in FLOOR_COLUMNS
              if any(key in e for e in extras.values())}  # only text runs record them
    return df.assign(run=df.run_dir.map(runs),
                     precision=df.run_dir.map({d: e["precision"] for d, e in extras.items()}),
                     date=df.run_dir.map({d: e["date"] for d, e in extras.items()}), **floors)


def evidence_file(root: Path, group: str, steps: bool = False) -> Path | None:
    """The evidence CSV of a group (plain or gzip), found through the index."""
    index = pd.read_csv(root / INDEX_FILE)
    kind = "steps" if steps else "epochs"
    hit = index[(index.group == group) & (index.kind == kind)]
    return None if hit.empty else root / hit.file.iloc[0]


def read_evidence(root: Path, group: str, steps: bool = False) -> pd.DataFrame:
    path = evidence_file(root, group, steps)
    if path is None or not path.exists():
        return pd.DataFrame(columns=["run", "run_dir", "status", "epoch", "step"])
    # one type per column over the whole file: read in chunks, a column that is empty in one chunk
    # and boolean in the next (a setting only some optimisers have) is typed per chunk
    df = pd.read_csv(path, low_memory=False)
    return df.assign(run_dir=df["run"])


def load_group(group: str, root: str | os.PathLike | None = None, steps: bool = False) -> pd.DataFrame:
    """Every run of one group, one row per epoch (or per recorded step); empty if none."""
    root = paths.runs_root(root)
    if is_evidence(root):
        journal.settle_evidence(root)  # a publication stopped part-way is finished before anyone reads
        return annotate(read_evidence(root, group, steps))
    return annotate(read_tree(root, group, steps))


def final_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The last epoch of every run (one row per run)."""
    if df.empty:
        return df
    # positions, not labels: a concatenation of groups may repeat index labels
    order = df[["run_dir", "epoch"]].reset_index(drop=True).sort_values("epoch")  # as a full sort would
    return df.iloc[order.groupby("run_dir").tail(1).index]


def final_means(df: pd.DataFrame, epochs: int = FINAL_EPOCHS) -> pd.DataFrame:
    """One row per run: its last epoch's row with each metric replaced by the mean over the run's
    last `epochs` epochs (NaN if any of them is NaN: a diverged run stays diverged) and the last
    epoch's own value kept as `<metric>_last`."""
    last = final_rows(df)
    if last.empty:
        return last
    metrics = [m for m in METRICS if m in df]
    narrow = df[["run_dir", "epoch", *metrics]].reset_index(drop=True).sort_values("epoch")  # only what is averaged
    tail = narrow.groupby("run_dir").tail(epochs)
    means = tail.groupby("run_dir")[metrics].mean()
    means = means.where(~tail[metrics].isna().assign(run_dir=tail.run_dir).groupby("run_dir").any())
    kept = last.assign(**{f"{m}_last": last[m] for m in metrics})
    return kept.assign(**{m: kept["run_dir"].map(means[m]) for m in metrics})


def complete(df: pd.DataFrame) -> pd.DataFrame:
    return df[df.status == "complete"] if not df.empty and "status" in df else df


def tuned(rows: pd.DataFrame, opt: str) -> pd.DataFrame:
    """THE rule for "tuned", used by every figure, verdict and the beyond-the-paper rows: among
    `opt`'s settings (config_id) in `rows` (epoch rows, several epochs per run), the one with the
    lowest training objective: the mean over its seeds of each run's mean train loss over its
    last FINAL_EPOCHS epochs. Returns that setting's final_means rows (one per seed); for AGD,
    which has one setting per model and batch, simply its runs. Only complete runs with a finite
    loss compete; empty if `opt` has none. The test split is never read."""
    final = final_means(complete(rows))
    if final.empty or "opt" not in final:
        return final.iloc[0:0]
    final = final[final.opt == opt].dropna(subset=["train_loss"])
    if final.empty:
        return final
    best = final.groupby("config_id").train_loss.mean().idxmin()
    return final[final.config_id == best]


# ---- provenance: which code trained the runs, against the code at HEAD ----

GIT_TIMEOUT_S = 30.0


SCALES = ("mini", "small", "paper")
_SCALE_FILE = re.compile(r"conf/scale/(?:[^/]+/)?(?P<scale>[^/]+)\.yaml")


def _git_out(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=GIT_TIMEOUT_S)


@cache
def changed_training_files(commit: str, repo: Path = paths.REPO_ROOT) -> tuple[str, ...] | None:
    """The training-code files (TRAINING_CODE) that differ between `commit` and HEAD; None when
    git cannot say (no git, not a checkout, a commit it does not have)."""
    try:
        done = _git_out(repo, "diff", "--name-only", "--no-renames", commit, "HEAD", "--", *TRAINING_CODE)
    except (OSError, subprocess.TimeoutExpired):  # no git binary, or a hung repository: git cannot say
        return None
    if done.returncode != 0:
        return None
    return tuple(sorted(line for line in done.stdout.decode(errors="replace").splitlines() if line))


def _yaml_at(repo: Path, rev: str, path: str) -> tuple[list[str], str] | None:
    """(the `# @` header lines Hydra reads, the content as OmegaConf parses it) of `path` at `rev`;
    None where the file is absent there."""
    done = _git_out(repo, "show", f"{rev}:{path}")
    if done.returncode != 0:
        return None
    text = done.stdout.decode(errors="replace")
    header = [line.strip() for line in text.splitlines() if line.strip().startswith("# @")]
    try:
        return header, repr(OmegaConf.to_container(OmegaConf.create(text)))  # repr: 20 and 20.0 differ
    except (yaml.YAMLError, OmegaConfBaseException):  # a file Hydra cannot read: compare its text
        return header, text


def bears_on(path: str, scale: str | None, commit: str, repo: Path = paths.REPO_ROOT) -> bool:
    """Whether a training-code file that changed between `commit` and HEAD can change what a run at
    `scale` computes. Under conf/ Hydra reads YAML files only, and only those of the run's scale
    among the scale files (conf/scale/<scale>.yaml, conf/scale/<experiment>/<scale>.yaml: an
    experiment picks its block by ${scale}; tests/test_provenance.py checks that no file names
    another scale's); a YAML file whose content and `# @package` header parse the same at both commits
    (comments, layout) changes nothing. Everything else bears on it."""
    if not path.startswith("conf/"):
        return True
    if not path.endswith(".yaml"):
        return False
    match = _SCALE_FILE.fullmatch(path)
    if match and scale in SCALES and match["scale"] in SCALES and match["scale"] != scale:
        return False
    before, after = _yaml_at(repo, commit, path), _yaml_at(repo, "HEAD", path)
    return before is None or after is None or before != after


@cache
def same_code_as_head(commit: str, scale: str | None = None, repo: Path = paths.REPO_ROOT) -> str:
    """'yes' when no training-code file (TRAINING_CODE) that differs between `commit` and HEAD
    bears on a run at `scale` (`bears_on`), 'no' when one does, 'unknown' when git cannot say."""
    changed = changed_training_files(commit, repo)
    if changed is None:
        return "unknown"
    return "no" if any(bears_on(path, scale, commit, repo) for path in changed) else "yes"


def _flag(value) -> bool:
    return str(value).strip().lower() == "true"


def run_code(run: pd.Series) -> str:
    """One run against HEAD: 'yes', 'no (uncommitted changes)', 'no (several commits)', 'no',
    'unknown' or 'not recorded' (trained before runs recorded their commit)."""
    commit = run.get("commit")
    if commit is None or pd.isna(commit) or str(commit) == "":
        return "not recorded"
    if str(commit) == "unknown":
        return "unknown"
    if _flag(run.get("dirty")):
        return "no (uncommitted changes)"
    if _flag(run.get("mixed_code")):
        return "no (several commits)"
    scale = run.get("scale")
    return same_code_as_head(str(commit), None if scale is None or pd.isna(scale) else str(scale))


def group_code(df: pd.DataFrame) -> tuple[str, str]:
    """(the commits that trained a group's runs, with run counts when several; whether that code is
    the code at HEAD): the report's provenance columns."""
    runs = df.drop_duplicates("run")
    if "commit" not in runs or runs.commit.isna().all():
        return "not recorded", "not recorded"
    commits = runs.commit.fillna("not recorded").astype(str)
    counts = commits.value_counts()
    text = (commits.iloc[0][:10] if len(counts) == 1 else
            "several: " + ", ".join(f"{c[:10]} ({n} runs)" for c, n in sorted(counts.items())))
    states = sorted({run_code(r) for _, r in runs.iterrows()})
    if states == ["yes"]:
        return text, "yes"
    if len(states) == 1:
        return text, states[0]
    return text, "no: runs differ (" + "; ".join(states) + ")"


def seed_curves(df: pd.DataFrame, column: str, x: str = "epoch") -> pd.DataFrame:
    """mean, min, max and n of `column` across the runs (seeds) of `df`, per x."""
    grouped = df.groupby(x)[column]
    return pd.DataFrame({"mean": grouped.mean(), "min": grouped.min(), "max": grouped.max(),
                         "n": grouped.count()}).reset_index()


# ---- budgets: what the runs were given against what the experiment declares ----

def group_parts(group: str) -> tuple[str, str | None, bool]:
    """'fig2_small_x2' -> ('fig2', 'small', True); a name without a scale -> (group, None, False)."""
    double = group.endswith("_x2")
    stem = group.removesuffix("_x2")
    for scale in paths.SCALES:
        if stem.endswith(f"_{scale}"):
            return stem.removesuffix(f"_{scale}"), scale, double
    return group, None, False


class DoesNotCompose(BadArgument):
    """An experiment config that Hydra cannot compose: one sentence naming it (exit 2 via args.entry)."""


@cache
def experiment_facts(experiment: str, scale: str) -> dict | None:
    """{'epochs', 'group', 'seed', 'params'} of one experiment at one scale, composed with Hydra
    from conf/ exactly as the training command composes it; None only when there is no such
    experiment (no conf/experiment/<name>.yaml). A config that exists but does not compose stops
    with DoesNotCompose: its budget is unknown, never "as declared"."""
    if not (paths.CONF_DIR / "experiment" / f"{experiment}.yaml").exists():
        return None
    register_resolvers()
    try:
        with initialize_config_dir(config_dir=str(paths.CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=[f"experiment={experiment}", f"scale={scale}"],
                          return_hydra_config=True)
            return {"epochs": int(cfg.epochs), "group": str(cfg.group), "seed": int(cfg.seed),
                    "params": {str(k): str(v) for k, v in (cfg.hydra.sweeper.params or {}).items()}}
    except Exception as err:  # Hydra and OmegaConf raise many types; each is re-raised as one sentence
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DoesNotCompose(f"conf/experiment/{experiment}.yaml does not compose at scale={scale} "
                             f"({type(err).__name__}: {first}); fix that config (or its "
                             f"conf/scale/{experiment}/{scale}.yaml) before reading its runs.") from err


def _group_template(experiment: str, conf: Path, seen: tuple = ()) -> str | None:
    """The `group:` an experiment file sets, or inherits from the experiment it extends (the
    first plain name in its defaults list), read from the YAML without composing."""
    path = conf / "experiment" / f"{experiment}.yaml"
    if not path.exists() or experiment in seen:
        return None
    node = yaml.safe_load(path.read_text()) or {}
    if "group" in node:
        return str(node["group"])
    parents = [d for d in node.get("defaults", []) if isinstance(d, str) and d != "_self_"
               and not d.startswith(("/", "override"))]
    return _group_template(parents[0], conf, (*seen, experiment)) if parents else None


@cache
def _group_templates(conf: Path) -> dict[str, str | None]:
    """{experiment: its group template} for every conf/experiment/*.yaml, read once per process."""
    return {p.stem: _group_template(p.stem, conf) for p in sorted((conf / "experiment").glob("*.yaml"))}


def experiments_of(base: str) -> list[str]:
    """Every experiment writing to the run group `<base>_<scale>` (e.g. fig2 and fig2_baselines)."""
    return [n for n, t in _group_templates(paths.CONF_DIR).items() if t == base + "_${scale}"]


def group_base(experiment: str) -> str:
    """The scale-free name of the run group an experiment writes to (`<base>_<scale>`), read from
    its YAML without composing; the naming rule where the file sets no `group: <base>_${scale}`."""
    template = _group_templates(paths.CONF_DIR).get(experiment)
    if template and template.endswith("_${scale}"):
        return template.removesuffix("_${scale}")
    return experiment.removesuffix("_baselines")


def group_of(experiment: str, scale: str) -> str:
    """The run group an experiment writes to (its composed `group`, else the naming rule)."""
    facts = experiment_facts(experiment, scale)
    return facts["group"] if facts else f"{group_base(experiment)}_{scale}"


def followups() -> list[dict]:
    """figures/followups.csv: claim id -> follow-up run group -> what it tests (none if absent)."""
    path = paths.FIGURES_DIR / FOLLOWUPS_FILE
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def declared(base: str, scale: str) -> dict | None:
    """{'epochs', 'seeds', 'sweep_keys'} declared for a run group: every experiment writing to
    it (composed); None if none composes."""
    names = experiments_of(base)
    facts = [f for f in (experiment_facts(n, scale) for n in names) if f is not None]
    if not facts:
        return None
    seeds = {int(s) for f in facts for s in f["params"].get("seed", str(f["seed"])).split(",")}
    return {"epochs": {f["epochs"] for f in facts}, "seeds": seeds,
            "sweep_keys": {k for f in facts for k in f["params"]}}


def budget_problems(df: pd.DataFrame, group: str) -> list[str]:
    """Ways the runs of `group` depart from one declared budget: epochs that differ between its
    runs (mixed budgets), or from the experiment's declared epochs; seeds other than declared;
    run names carrying overrides the experiment does not sweep (e.g. `epochs=1`)."""
    if df.empty:
        return []
    runs = df.drop_duplicates("run")
    epochs = sorted({int(e) for e in runs.epochs.dropna()}) if "epochs" in runs else []
    problems = []
    if len(epochs) > 1:
        per_opt = runs.groupby("opt").epochs.agg(lambda e: "/".join(str(int(v)) for v in sorted(set(e))))
        problems.append("mixed budgets: " + ", ".join(f"{o} {e} epochs" for o, e in per_opt.items()))
    base, scale, double = group_parts(group)
    facts = declared(base, scale) if scale else None
    if facts is None:
        return problems
    want_epochs = sorted(e * (2 if double else 1) for e in facts["epochs"])
    if set(epochs) - set(want_epochs):
        problems.append(f"epochs {'/'.join(map(str, epochs))}, declared {'/'.join(map(str, want_epochs))}")
    seeds = {int(s) for s in runs.seed.dropna()} if "seed" in runs else set()
    want_seeds = {0} if double else facts["seeds"]
    if seeds and seeds != want_seeds:
        problems.append(f"seeds {sorted(seeds)}, declared {sorted(want_seeds)}")
    allowed = facts["sweep_keys"] | {"seed", "epochs"} if double else facts["sweep_keys"]
    extra = sorted({f"{k}={v}" for r in runs.run for k, v in split_name(Path(r).name).items()
                    if k not in allowed})
    if extra:
        problems.append("overrides not in the experiment: " + ", ".join(extra))
    return problems
