"""The run lifecycle: one training job in its run directory, from the first check to the last
status. It resumes from the checkpoint, skips a complete run, checkpoints every epoch, turns every
way out into a status and an exit code, and never lets a refused command change what is on disk
(experiments/run_store.py keeps the files). Building the objects from the config is
experiments/build.py; stopping on a signal is experiments/signals.py.

Kept apart from experiments/train.py (the thin Hydra entry point) so that tests, the reproduce
driver and the SLURM launcher all call the same code.
"""

from __future__ import annotations

import errno
import logging
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from agd import distributed
from agd.results import CONFIG_FILE, SAMPLES_FILE, atomic_write_bytes
from agd.train import LoopOptions, NonFiniteLossError, train

# build_optimizer, register_resolvers, speed_settings and validate are re-exported: scripts, the
# notebook and tests import them from here
from experiments.build import (  # noqa: F401
    ConfigError,
    Parts,
    build,
    build_optimizer,
    register_resolvers,
    semantic_config,
    speed_settings,
    validate,
)
from experiments.run_store import RunBusy, RunStore, checkpoint_identity, config_sha256, foreign_reason
from experiments.signals import Interrupted, StopOnSignal

log = logging.getLogger("agd")


@dataclass
class Progress:
    """The rows a run holds so far, where its next epoch starts, and what its checkpoint says of
    the run besides: its identity (run_store.checkpoint_identity) and the code of every session
    that trained it (commit and diff hash, experiments/provenance.py)."""

    rows: list
    step_rows: list
    start_epoch: int = 0
    time_offset: float = 0.0
    identity: dict = field(default_factory=dict)
    codes: list = field(default_factory=list)


def run(cfg: DictConfig, run_dir: str | Path, multirun: bool = False, overrides=()) -> dict:
    """Run one training job in `run_dir`; returns its summary. Every way out says why in one
    line on stderr and, once the run has started, in summary.json. Alone, a user error exits 2;
    in a sweep it is returned as the job's status (failed, diverged, busy, and interrupted when
    submitit declined to requeue) with the exit status it would have had (`exit_code`), and the
    sweep goes on. Any other interruption (SIGTERM, SIGINT, a requeue) ends the process."""
    store = RunStore(run_dir, writer=distributed.detect().is_main)
    try:
        return _run(cfg, store, overrides)
    except (Exception, KeyboardInterrupt, Interrupted) as err:
        outcome = _outcome(err, store)
        if outcome is None:  # a bug: keep the traceback, and leave the run marked failed
            store.finish("failed", f"{type(err).__name__}: {err}")
            raise
        status, message, code = outcome
        ends_process = status == "interrupted" and not getattr(err, "not_requeued", None)
    store.finish(status, message)
    if not store.started and multirun and status == "failed":
        store.record_refusal(message)
    elif not store.started:
        store.remove_if_empty()
    print(f"{'interrupted' if status == 'interrupted' else 'error'}: {message}", file=sys.stderr, flush=True)
    if ends_process or (status == "interrupted" and not multirun):
        raise SystemExit(code)
    if multirun:
        return {"status": status, "error": message, "run_dir": str(store.path), "exit_code": code}
    sys.exit(code)


def _interruption(err: BaseException, store: RunStore) -> tuple[str, str, int]:
    name = err.signal_name if isinstance(err, Interrupted) else "SIGINT"
    code = err.code if isinstance(err, Interrupted) else 130
    stopped = f"{store.path} stopped by {name} after epoch {store.state.get('logged_epoch', 0)}"
    if getattr(err, "requeued", False):
        return "interrupted", f"{stopped}; submitit requeued the job, which resumes from its last checkpoint.", code
    if getattr(err, "not_requeued", None):
        return "interrupted", (f"{stopped} and not requeued ({err.not_requeued.rstrip('.')}); rerun the same "
                               "command to resume from its last checkpoint."), code
    return "interrupted", f"{stopped}; rerun the same command to resume from its last checkpoint.", code


def _outcome(err: BaseException, store: RunStore) -> tuple[str, str, int] | None:
    """(status, one-sentence message, exit code) for a way out a user can act on; None for a bug."""
    if isinstance(err, (Interrupted, KeyboardInterrupt)):
        return _interruption(err, store)
    if isinstance(err, RunBusy):
        return "busy", str(err), 2
    if isinstance(err, FloatingPointError):  # NonFiniteLossError, or AGD's own finiteness check
        message = str(err) if isinstance(err, NonFiniteLossError) else f"non-finite values: {err}"
        return "diverged", f"training stopped: {message}", 2
    if isinstance(err, ConfigError):
        return "failed", str(err), 2
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return "failed", (f"no space left on the device while writing {err.filename or store.path}; "
                          "free some space and rerun the same command to resume."), 1
    if isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "failed", (f"cannot write {err.filename or store.path} ({err.strerror}); set AGD_RUNS_DIR "
                          "to a folder you can write."), 2
    if isinstance(err, FileNotFoundError):  # a missing dataset file
        return "failed", str(err), 2
    return None


def _previous_run(store: RunStore, config: dict, resume: bool) -> dict:
    """The summary of the run already in the directory ({} when none or resume=false). Refuses
    a different config. Only reads."""
    stored = store.read(CONFIG_FILE) if resume else None
    if stored is None:
        return {}
    if semantic_config(stored) != semantic_config(config):
        raise ConfigError(f"{store.path} already holds a run with a different config; pass "
                          "resume=false to overwrite it or choose another directory.")
    return store.summary()


def _already_complete(store: RunStore, previous: dict, config: dict, with_steps: bool) -> dict:
    rebuilt = store.repair_tables(config_sha256(semantic_config(config)), with_steps)
    store.set_aside_damaged("the facts of the session that trained it are not recorded again")
    if store.writer:
        if rebuilt:
            print(f"rebuilt {' and '.join(rebuilt)} of {store.path} from its checkpoint")
        print(f"already complete: {store.path} (pass resume=false to train again)")
    return previous


def _run(cfg: DictConfig, store: RunStore, overrides) -> dict:
    validate(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    previous = _previous_run(store, config, cfg.resume)
    if (previous.get("status") == "complete" and not store.needs_repair(cfg.step_rows > 0)
            and not _samples_missing(cfg, store)):
        return _already_complete(store, previous, config, cfg.step_rows > 0)
    # SIGTERM/SIGUSR1/SIGINT end the run between checkpoint writes (experiments/signals.py)
    with StopOnSignal() as guard:
        parts = build(cfg)
        with store.owned():
            previous = _previous_run(store, config, cfg.resume)  # as it is now that it is ours
            if previous.get("status") == "complete":
                if _samples_missing(cfg, store):
                    _samples_of_complete_run(cfg, config, store, parts)
                return _already_complete(store, previous, config, cfg.step_rows > 0)
            return _train_owned(cfg, config, store, parts, previous, guard, overrides)


def _rng_states() -> dict:
    """Every global generator a run may touch. The data order and the paper init use their own
    generators seeded from (seed, epoch) and seed, so they need no saving."""
    np_state = np.random.get_state()
    return {"torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python_rng": random.getstate(),
            "numpy_rng": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": np_state[2],
                          "has_gauss": np_state[3], "gauss": np_state[4]}}


def _set_rng_states(checkpoint: dict) -> None:
    torch.set_rng_state(checkpoint["torch_rng"])
    if checkpoint.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
    if "python_rng" in checkpoint:
        version, state, gauss = checkpoint["python_rng"]
        random.setstate((version, tuple(state), gauss))
    if "numpy_rng" in checkpoint:
        saved = checkpoint["numpy_rng"]
        np.random.set_state(("MT19937", saved["key"].numpy().astype(np.uint32), saved["pos"],
                             saved["has_gauss"], saved["gauss"]))


def _resume_or_start(cfg: DictConfig, config: dict, store: RunStore, parts: Parts, previous: dict,
                     guard: StopOnSignal, overrides) -> tuple[Progress, Parts]:
    """Load the checkpoint into the objects (or clear a previous attempt), then mark the run
    started: config.json and facts.json written, temp files of a killed write removed. A
    checkpoint of another run, or one that cannot be loaded, is set aside and the run starts
    afresh (with objects built anew when a failed load may have changed them)."""
    distributed.setup(parts.device, parts.dist_env)
    checkpoint = store.load_checkpoint() if cfg.resume else None
    distributed.barrier()  # every rank has read the run dir before rank 0 changes it
    store.started = True  # from here every way out leaves a status saying why
    store.set_aside_damaged()
    # the W&B id survives in summary.json from the first second, in the checkpoint after epoch 1
    store.state = {"wandb_id": previous.get("wandb_id"), "logged_epoch": previous.get("logged_epoch", 0)}
    identity = checkpoint_identity(semantic_config(config), parts.model)
    progress = None
    if checkpoint is not None:
        progress, parts = _resume(cfg, store, parts, checkpoint, identity, guard)
    if progress is None:
        store.start_fresh()
        store.state["logged_epoch"] = 0
        progress = Progress([], [], identity=identity)
    git = parts.provenance.get("git", {})
    code = {"commit": git.get("commit", "unknown"), "diff_sha256": git.get("diff_sha256")}
    if code not in progress.codes:
        progress.codes.append(code)
    store.state.update(commit=code["commit"], dirty=git.get("dirty"), mixed_code=len(progress.codes) > 1)
    store.clean_temp_files()
    store.begin(config, {**parts.facts(cfg, overrides), "trained_by": progress.codes})
    return progress, parts


def _resume(cfg: DictConfig, store: RunStore, parts: Parts, checkpoint: dict, identity: dict,
            guard: StopOnSignal) -> tuple[Progress | None, Parts]:
    """(the checkpoint's progress, the objects holding its state); (None, objects) after setting
    aside a checkpoint that is not this run's or cannot be loaded into its objects."""
    reason = foreign_reason(checkpoint, identity)
    if reason is None:
        try:
            parts.model.load_state_dict(checkpoint["model"])
            parts.optimizer.load_state_dict(checkpoint["optimizer"])
            _set_rng_states(checkpoint)
            rows = checkpoint["rows"]
            progress = Progress(rows, checkpoint["step_rows"], checkpoint["epoch"], rows[-1]["time_s"] if rows else 0.0,
                                identity, list(checkpoint.get("codes", [])))
        except Exception as err:  # noqa: BLE001 - whatever the load tripped on, the run can start afresh
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            reason = f"could not be loaded into this run's objects ({type(err).__name__}: {first[:300]})"
            parts = build(cfg)  # the objects may hold part of the checkpoint: the same seed builds them afresh
    if reason is not None:
        store.set_aside_checkpoint(reason)
        return None, parts
    store.state["wandb_id"] = checkpoint.get("wandb_id") or store.state["wandb_id"]
    log.info("resuming %s from epoch %d", store.path, progress.start_epoch)
    with guard.critical():
        store.write_tables(progress.rows, progress.step_rows)
    return progress, parts


def _callbacks(store: RunStore, parts: Parts, progress: Progress, guard: StopOnSignal):
    """on_epoch and on_steps for agd.train: checkpoint, tables, W&B and status agree after each
    epoch (a signal waits until they do)."""
    def on_steps(new_rows):
        progress.step_rows.extend(new_rows)
        if store.writer:
            with guard.critical():
                store.write_tables(progress.rows, progress.step_rows)
            parts.logger.log_steps(new_rows)

    def on_epoch(row):
        progress.rows.append(row)
        if not store.writer:
            return
        with guard.critical():
            store.save_checkpoint({
                "model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
                "epoch": row["epoch"], "rows": progress.rows, "step_rows": progress.step_rows,
                "wandb_id": store.state["wandb_id"], "identity": progress.identity, "codes": progress.codes,
                **_rng_states()})
            store.write_tables(progress.rows, progress.step_rows)
            parts.logger.log(row, step=row["epoch"])
            store.state["logged_epoch"] = row["epoch"]
            store.write_status("running")

    return on_epoch, on_steps


def _train_owned(cfg: DictConfig, config: dict, store: RunStore, parts: Parts, previous: dict,
                 guard: StopOnSignal, overrides) -> dict:
    """Train in a run directory this process owns, from its checkpoint if it has one."""
    progress, parts = _resume_or_start(cfg, config, store, parts, previous, guard, overrides)
    train_model = distributed.wrap_model(parts.model, parts.dist_env)  # DDP: gradients averaged
    if cfg.get("compile", False):  # checkpoints keep saving `model`, so their keys do not change
        train_model = torch.compile(train_model)
    store.state["wandb_id"] = parts.logger.start(config, str(store.path), group=cfg.group, tags=cfg.tags,
                                                 run_id=store.state["wandb_id"])
    exit_code = 1
    try:
        for row in progress.rows:  # rows checkpointed but not yet mirrored to W&B when killed
            if row["epoch"] > store.state["logged_epoch"]:
                parts.logger.log(row, step=row["epoch"])
        store.state["logged_epoch"] = progress.rows[-1]["epoch"] if progress.rows else 0
        store.write_status("running")
        on_epoch, on_steps = _callbacks(store, parts, progress, guard)
        options = LoopOptions(start_epoch=progress.start_epoch, step_rows=cfg.step_rows,
                              time_offset=progress.time_offset, track_update_size=cfg.track_update_size,
                              progress=cfg.progress and store.writer, amp_dtype=parts.amp_dtype,
                              channels_last=parts.channels_last)
        started = time.perf_counter()
        train(train_model, parts.optimizer, *parts.loaders, parts.loss_fn, cfg.epochs, options,
              on_epoch=on_epoch, on_steps=on_steps if cfg.step_rows else None)
        summary = _complete(cfg, store, parts, progress, time.perf_counter() - started, overrides)
        exit_code = 0
        return summary
    finally:
        parts.logger.finish(exit_code)


def _text_outputs(cfg: DictConfig, store: RunStore, parts: Parts) -> dict:
    """For text data: the count-model floors (summary fields, nats per character) and, when
    `sample_chars` > 0, samples.txt: that many characters sampled from the trained model (seeded
    by the run's seed, so a rerun writes the same text)."""
    fields = {}
    if callable(getattr(parts.data, "floors", None)):
        floors = parts.data.floors()
        fields = {"floor_unigram": floors["unigram"], "floor_bigram": floors["bigram"]}
    n_chars = cfg.get("sample_chars", 0) or 0
    if n_chars > 0 and callable(getattr(parts.data, "decode", None)) and store.writer:
        from agd.textgen import generate

        vocab = getattr(parts.data, "vocab", "\n")
        prompt = "\n" if "\n" in vocab else vocab[0]  # a line break starts a sample, when the corpus has one
        text = generate(parts.model, parts.data, n_chars=n_chars, seed=cfg.seed, prompt=prompt)
        atomic_write_bytes(store.path / SAMPLES_FILE, text.encode())
    return fields


def _samples_missing(cfg: DictConfig, store: RunStore) -> bool:
    return (cfg.get("sample_chars") or 0) > 0 and not (store.path / SAMPLES_FILE).exists()


def _samples_of_complete_run(cfg: DictConfig, config: dict, store: RunStore, parts: Parts) -> None:
    """samples.txt for a run that completed without it (sample_chars changes no training), from
    the model in its checkpoint, when the checkpoint is this run's."""
    checkpoint = store.load_checkpoint()
    identity = checkpoint_identity(semantic_config(config), parts.model)
    if checkpoint is None or foreign_reason(checkpoint, identity) is not None:
        return
    parts.model.load_state_dict(checkpoint["model"])
    _text_outputs(cfg, store, parts)
    if (store.path / SAMPLES_FILE).exists() and store.writer:
        print(f"wrote {store.path / SAMPLES_FILE} from the trained model in its checkpoint")


def _complete(cfg, store: RunStore, parts: Parts, progress: Progress, wall_s: float, overrides) -> dict:
    final = progress.rows[-1]
    facts = parts.facts(cfg, overrides)
    text_fields = _text_outputs(cfg, store, parts)
    summary = store.write_status(
        "complete", epochs=final["epoch"], train_loss=final["train_loss"], train_acc=final["train_acc"],
        test_loss=final["test_loss"], test_acc=final["test_acc"], time_s=final["time_s"],
        wall_s_this_session=wall_s, run_dir=str(store.path), world_size=parts.dist_env.world_size,
        device=facts["device"], precision=facts["precision"], channels_last=facts["channels_last"], **text_fields)
    if store.writer:
        print(f"done: {store.path} | epochs {final['epoch']} | train acc {final['train_acc']:.4f} | "
              f"test acc {final['test_acc']:.4f} | {final['time_s']:.1f} s")
    return summary
