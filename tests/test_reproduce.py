"""scripts/reproduce.py without training: its own arguments, where figures go (never the
committed figures/ unless publish=true), what an empty runs root does to published figures, the
double-budget launch, and missing experiments or broken plots."""

from __future__ import annotations

import subprocess
import sys

import pytest
from runtrees import seeded, small_tree

from experiments import paths
from experiments.analysis import claims, evidence, registry, report, reproduce
from experiments.analysis import rundata as rd
from experiments.analysis.claims import Claim
from experiments.analysis.plots import fig2
from experiments.analysis.plots import style as ps
from experiments.analysis.registry import Figure

REPO = paths.REPO_ROOT


@pytest.fixture(autouse=True)
def _quick_figures(monkeypatch):
    monkeypatch.setenv("AGD_FIG_DPI", "50")


@pytest.fixture
def published(tmp_path, monkeypatch):
    """A stand-in for the committed figures/ folder, holding one published figure."""
    folder = tmp_path / "published"
    folder.mkdir()
    (folder / "fig2_small.png").write_bytes(b"published png")
    monkeypatch.setattr(paths, "FIGURES_DIR", folder)
    monkeypatch.setattr(paths, "EVIDENCE_DIR", folder / "data")
    return folder


@pytest.mark.parametrize("arg, message", [
    ("jobs=0", "jobs must be a whole number of experiments launched at once, 1 or more; got '0'."),
    ("jobs=abc", "jobs must be a whole number of experiments launched at once, 1 or more; got 'abc'."),
    ("scale=huge", "scale must be one of paper, small, mini; got 'huge'."),
    ("figure=fig9", "figure must be one of"),
    ("check=triple", "check must be one of none, double; got 'triple'."),
    ("source=evidence", "source=evidence draws from the committed evidence and launches nothing; add plot_only=true."),
    ("oops", "arguments are key=value; got 'oops'."),
])
def test_bad_arguments_exit_2_with_one_sentence(arg, message, capsys):
    assert reproduce.main([arg]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"reproduce.py: {message}") and len(err.splitlines()) == 1


def test_without_publish_the_committed_figures_are_untouched(tmp_path, published):
    root = small_tree(tmp_path / "runs")
    before = {p.name: p.read_bytes() for p in published.iterdir()}
    assert reproduce.main(["figure=fig2", "scale=small", "plot_only=true", f"runs={root}"]) == 0
    assert {p.name: p.read_bytes() for p in published.iterdir()} == before
    assert (root / "figures" / "fig2_small.png").stat().st_size > 3_000


def test_publish_from_an_empty_root_keeps_published_figures(tmp_path, published):
    empty = tmp_path / "empty"
    assert reproduce.main(["figure=fig2", "scale=small", "plot_only=true", f"runs={empty}",
                           "publish=true"]) == 0
    assert (published / "fig2_small.png").read_bytes() == b"published png"
    assert not (published / "data" / "small").exists()  # no evidence from no runs


def test_publish_writes_figures_report_and_evidence_then_rebuilds_from_it(tmp_path, published, monkeypatch):
    monkeypatch.setattr(claims, "memory_rows", lambda: [])
    monkeypatch.setitem(registry.FIGURES, "beyond", Figure("beyond", (), lambda **kw: []))  # report only
    root = small_tree(tmp_path / "runs")
    args = ["figure=beyond", "scale=small", "plot_only=true"]
    reproduce.main([*args, f"runs={root}", "publish=true"])  # beyond: report, no figure
    reproduce.main(["figure=fig2", "scale=small", "plot_only=true", f"runs={root}", "publish=true"])
    assert (published / "fig2_small.png").read_bytes() != b"published png"
    assert (published / "data" / "small" / "fig2_small.csv").exists()
    report = (published / "REPORT.md").read_text()
    (published / "fig2_small.png").unlink()
    assert reproduce.main(["figure=fig2", "scale=small", "plot_only=true", "source=evidence",
                           "publish=true"]) == 0
    assert (published / "fig2_small.png").stat().st_size > 3_000  # redrawn from the evidence alone
    reproduce.main([*args, "source=evidence", "publish=true"])
    rows = [line for line in (published / "REPORT.md").read_text().splitlines() if line.startswith("| fig2")]
    assert rows and rows == [line for line in report.splitlines() if line.startswith("| fig2")]


def test_double_budget_launch_reads_the_experiments_epochs(compose):
    epochs = compose(["experiment=fig2", "scale=small"]).epochs
    extra = reproduce.double_budget("fig2_baselines", "small")
    assert extra == ["seed=0", f"epochs={2 * epochs}", "group=fig2_small_x2"]
    cmd = reproduce.launch_command("fig2_baselines", "paper", ["hydra/launcher=slurm", *extra])
    assert cmd[2:] == ["-m", "experiment=fig2_baselines", "scale=paper", "hydra/launcher=slurm", *extra,
                       "progress=false"]


def test_missing_experiment_or_broken_plot_is_reported_and_the_rest_goes_on(tmp_path, monkeypatch, capsys):
    def broken(scale, runs, out):
        raise KeyError("model.depth")

    ghost = Figure("ghost", ("ghost_experiment",), broken)
    monkeypatch.setattr(registry, "FIGURES", {"ghost": ghost, "fig2": registry.FIGURES["fig2"]})
    root = small_tree(tmp_path / "runs")
    monkeypatch.setattr(reproduce, "launch_all", lambda launches, *a: [] if not launches else ["launched"])
    assert reproduce.main(["figure=ghost", "scale=small", f"runs={root}"]) == 1
    err = capsys.readouterr().err
    assert "experiment ghost_experiment has no config conf/experiment/ghost_experiment.yaml: not launched" in err
    assert "ghost: plotting failed: KeyError: 'model.depth'" in err
    assert reproduce.main(["figure=all", "scale=small", "plot_only=true", f"runs={root}",
                           f"out={tmp_path / 'out'}"]) == 1  # the broken figure does not stop the others
    assert (tmp_path / "out" / "fig2_small.png").exists() and (tmp_path / "out" / "REPORT.md").exists()


def test_scripts_run_as_scripts(tmp_path):
    """As a user runs them, from another folder: the scripts import the installed package,
    evidence as a plot source."""
    root = small_tree(tmp_path / "runs")
    data, out = tmp_path / "data", tmp_path / "out"

    def script(*args):
        return subprocess.run([sys.executable, *map(str, args)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)

    done = script(REPO / "scripts" / "evidence.py", "export", "scale=small", "figure=fig2", f"runs={root}",
                  f"out={data}")
    assert done.returncode == 0, done.stderr
    assert (data / "small" / "fig2_small.csv").exists() and not (data / "small" / "fig3_small.csv").exists()
    done = script(REPO / "scripts" / "plot_fig2.py", "scale=small", f"runs={data}", f"out={out}")
    assert done.returncode == 0, done.stderr
    assert (out / "fig2_small.png").stat().st_size > 3_000


def test_plot_and_report_arguments_exit_2(capsys):
    assert ps.cli(fig2.plot, ["scale=large"]) == 2
    assert capsys.readouterr().err.strip() == "scale must be one of paper, small, mini; got 'large'."
    assert report.main(["publish=yes"]) == 2
    assert capsys.readouterr().err.strip() == "report.py: publish must be one of true, false; got 'yes'."


def test_double_budget_launches_every_experiment_of_the_figure_after_the_passthrough():
    problems = []
    launches = reproduce.launches_for(["fig2"], "small", "double", ["hydra/launcher=slurm"], problems)
    assert [e for e, _ in launches] == ["fig2", "fig2_baselines"] and problems == []
    for _, extra in launches:
        assert extra[0] == "hydra/launcher=slurm" and extra[1] == "seed=0"
        assert extra[3] == "group=fig2_small_x2"


# ---- a figure added as docs/adding_a_figure.md says: one plot function and one registry entry ----

def toy_plot(scale: str, runs=None, out=None):
    """AGD's train accuracy per epoch, mean over seeds with a band, from the toy figure's group."""
    name, df = ps.figure_runs("toy", scale, runs)
    if df.empty:
        return ps.no_runs_figure("toy", scale, out, runs)
    fig, ax = ps.plt.subplots(figsize=(3.0, 2.0))
    for opt, rows in rd.complete(df).groupby("opt"):
        ps.seed_line(ax, rows, "train_acc", ps.color(opt), factor=100, label=ps.label(opt))
    ps.log_epochs(ax)
    ps.scale_note(fig, scale, problems=rd.budget_problems(df, name))
    return ps.save(fig, name, out, runs)


TOY = Figure("toy", ("toy",), toy_plot, (
    Claim("toy.agd_train_acc", "AGD final train accuracy (toy FCN)", "95", "%",
          claims.number("toy", "train_acc", opt="agd"), tolerance=1.0),
))


def test_a_registered_figure_is_drawn_judged_and_exported(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "memory_rows", lambda: [])  # table 1 is not what this is about
    monkeypatch.setitem(registry.FIGURES, "toy", TOY)
    root, out, data = tmp_path / "runs", tmp_path / "out", tmp_path / "data"
    seeded(root, "toy_small", "optimizer=agd", [{"final_acc": a} for a in (0.94, 0.95, 0.96)], scale="small")
    assert reproduce.main(["figure=toy", "scale=small", "plot_only=true", f"runs={root}", f"out={out}"]) == 0
    assert (out / "toy_small.png").stat().st_size > 3_000 and (out / "toy_small.pdf").exists()
    row = "| toy.agd_train_acc | AGD final train accuracy (toy FCN) | 95 % | not run | 95.0 ± 1.0 (n=3) **shown** |"
    text, _ = report.build(root)
    assert any(line.startswith(row) for line in text.splitlines()), text
    # its run group travels to the evidence, and the figure and its row rebuild from there
    evidence.export(root, "small", evidence.groups_of(["toy"], "small", root), data)
    (out / "toy_small.png").unlink()
    assert reproduce.main(["figure=toy", "scale=small", "plot_only=true", f"runs={data}", f"out={out}"]) == 0
    assert (out / "toy_small.png").stat().st_size > 3_000
    assert any(line.startswith(row) for line in report.build(data)[0].splitlines())


def test_registry_claims_are_named_by_their_figure_and_unique():
    ids = [claim.id for _, claim in registry.claims()]
    assert len(ids) == len(set(ids)) and len(ids) >= 30
    assert all(claim.id.startswith(figure.id + ".") for figure, claim in registry.claims())


# ---- every launch checked before the first one; check=double doubles every epoch-derived length ----

@pytest.mark.parametrize("arg, message", [
    ("epochs=abc", "experiment fig4 at scale=mini, job batch_size=32,seed=0,epochs=abc: epochs must be an "
                   "integer >= 1, got 'abc'. Nothing was launched."),
    ("epoch=3", "experiment fig4 at scale=mini does not compose with epoch=3: Could not override 'epoch'"),
    ("batch_size=0", "experiment fig4 at scale=mini, job batch_size=0,seed=0: batch_size must be an integer >= 1"),
])
def test_a_bad_pass_through_value_is_refused_before_anything_is_launched(tmp_path, monkeypatch, capsys, arg,
                                                                          message):
    launched = []
    monkeypatch.setattr(reproduce, "launch_all", lambda *a: launched.append(a) or {})
    root = tmp_path / "runs"
    assert reproduce.main(["figure=fig4", "scale=mini", arg, f"runs={root}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"reproduce.py: {message}") and len(err.splitlines()) == 1
    assert not launched and not root.exists()  # nothing launched, nothing created


def test_a_config_bad_for_one_experiment_of_a_figure_stops_every_launch(tmp_path, monkeypatch, capsys):
    """fig2's second experiment (the baselines' grid) has a job that cannot work: its first
    experiment is not launched either."""
    from experiments.analysis import planner
    from experiments.build import ConfigError

    real = planner.check

    def refuse_adam(cfg):
        if str(cfg.optimizer._target_).endswith("Adam"):
            raise ConfigError("optimizer: Adam refused for this test.")
        real(cfg)

    monkeypatch.setattr(planner, "check", refuse_adam)
    monkeypatch.setattr(reproduce, "launch_all", lambda *a: pytest.fail("launched"))
    assert reproduce.main(["figure=fig2", "scale=mini", f"runs={tmp_path / 'runs'}"]) == 2
    assert "experiment fig2_baselines at scale=mini, job optimizer=adam" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_planned_run_directories_are_the_sweeps_own(tmp_path):
    from experiments.analysis import planner
    jobs = planner.plan([("fig2_baselines", reproduce.launch_overrides("mini", []))], "mini", tmp_path)
    dirs = [job.run_dir for job in jobs["fig2_baselines"]]
    assert len(dirs) == 30 == len(set(dirs))  # adam, sgd x 5 learning rates x 3 seeds
    assert tmp_path / "fig2_mini" / "optimizer.lr=1e-05,optimizer=adam,seed=0" in dirs


def test_double_budget_doubles_the_schedule_with_the_epochs(compose):
    """AdamW's warm-up + cosine schedule runs over schedule_steps: doubled with the epochs, so
    the doubled run's schedule ends where its training does."""
    base = compose(["experiment=beyond_gpt_baselines", "scale=mini"])
    extra = reproduce.double_budget("beyond_gpt_baselines", "mini")
    assert f"schedule_steps={2 * base.schedule_steps}" in extra
    doubled = compose(["experiment=beyond_gpt_baselines", "scale=mini", *extra])
    assert doubled.epochs == 2 * base.epochs
    assert doubled.optimizer.total_steps == 2 * base.optimizer.total_steps
    assert doubled.optimizer.total_steps == doubled.epochs * doubled.data.steps_per_epoch


def _lengths(node, prefix=""):
    """Every key of a config whose name says it counts steps or epochs."""
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _lengths(value, name + ".")
        elif any(word in str(key) for word in ("step", "epoch", "warmup")):
            yield str(key), name


def test_every_length_in_steps_or_epochs_is_either_doubled_or_said_not_to_be():
    """A new key counting steps or epochs (a scheduler's length, a warm-up) must be classified
    for check=double in reproduce.DOUBLED or NOT_DOUBLED."""
    from omegaconf import OmegaConf

    from experiments.analysis import planner
    names = sorted(p.stem for p in (paths.CONF_DIR / "experiment").glob("*.yaml"))
    found = {}
    with planner.Composer() as composer:
        for name in names:
            for scale in ("mini", "paper"):
                cfg = OmegaConf.to_container(composer.compose([f"experiment={name}", f"scale={scale}"]),
                                             resolve=False)
                cfg.pop("hydra")
                found.update({key: f"{where} ({name}, {scale})" for key, where in _lengths(cfg)})
    unclassified = {k: v for k, v in found.items() if k not in reproduce.DOUBLED + reproduce.NOT_DOUBLED}
    assert not unclassified
    assert {"epochs", "schedule_steps", "step_rows", "total_steps"} <= found.keys()
