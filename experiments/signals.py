"""How a run stops when it is told to, and the exit status it leaves.

SIGTERM and SIGUSR1 (what SLURM, torchrun and `kill` send before a kill) and SIGINT (Ctrl-C)
become an `Interrupted` exit, but never in the middle of a `critical()` block (checkpoint and
result writes): a signal arriving there is held until the block ends. The state on disk is always
the last end-of-epoch checkpoint, written atomically, so an exit at any other point loses at most
the epoch in progress, which a resumed run replays bit for bit (its data order depends only on
seed and epoch).

Under submitit (hydra/launcher=slurm or local; SUBMITIT_EXECUTOR is set) the job's process starts
with submitit's own handlers: SIGTERM is ignored ("bypassed") and its preemption signal (USR2,
or $SUBMITIT_PREEMPT_SIGNAL) checkpoints the job description, requeues the job and exits. Ours
are installed over them for the length of a run: SIGTERM (a plain `scancel`, `scontrol requeue`)
stops the run as anywhere else, and the preemption signal is first held until the checkpoint is
whole, then handed to submitit's handler, so the job is requeued and resumes from that checkpoint.

Exit status of a run: 0 done, 2 a usage error (one sentence), 1 a machine or code failure, 75
(EX_TEMPFAIL, "try again later") stopped by SIGTERM/SIGUSR1, 130 by Ctrl-C; submitit's own exit
status (-1, i.e. 255) when it requeued the job.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Iterable

EXIT_INTERRUPTED = 75
SUBMITIT_SIGNAL_ENV = "SUBMITIT_PREEMPT_SIGNAL"


def submitit_signal(environ=None) -> int | None:
    """The signal submitit answers by requeuing the job, when this process is a submitit job."""
    env = os.environ if environ is None else environ
    if not env.get("SUBMITIT_EXECUTOR"):
        return None
    return getattr(signal, "SIG" + env.get(SUBMITIT_SIGNAL_ENV, "USR2"), None)


class Interrupted(SystemExit):
    """Raised in the main thread when a signal stops the run. A SystemExit, so Hydra's job wrapper
    (which catches Exception) lets it through; `finally` blocks still run (W&B is finished).

    requeued: submitit requeued the job (it resumes by itself); `not_requeued` is submitit's reason
    when its handler declined to requeue (e.g. timed out too many times)."""

    def __init__(self, signum: int, code: int | None = None, requeued: bool = False,
                 not_requeued: str | None = None):
        if code is None:
            code = 128 + signum if signum == signal.SIGINT else EXIT_INTERRUPTED
        super().__init__(code)
        self.signum = signum
        self.requeued = requeued
        self.not_requeued = not_requeued

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


class StopOnSignal:
    """The handlers for the length of a run (a context manager); `critical()` defers a signal."""

    def __init__(self, signals: Iterable[int] = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)):
        self.requeue_signal = submitit_signal()
        self.signals = tuple(dict.fromkeys([*signals, *([self.requeue_signal] if self.requeue_signal else [])]))
        self.previous: dict[int, object] = {}
        self.pending: int | None = None
        self.depth = 0

    def _handle(self, signum, frame):
        if self.depth:
            self.pending = signum
            return
        self._stop(signum, frame)

    def _stop(self, signum, frame):
        chained = self.previous.get(signum)
        if signum == self.requeue_signal and callable(chained):
            self._hand_to_submitit(chained, signum, frame)
            return  # submitit declined to act (a rank other than 0): training goes on
        raise Interrupted(signum)

    @staticmethod
    def _hand_to_submitit(handler, signum, frame):
        """submitit's handler requeues and exits (SystemExit), or raises why it did not requeue."""
        try:
            handler(signum, frame)
        except SystemExit as done:
            raise Interrupted(signum, code=done.code, requeued=True) from None
        except Exception as err:  # noqa: BLE001 - submitit's UncompletedJobError: the job ends here
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise Interrupted(signum, not_requeued=reason) from None

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in self.signals:
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()
        return False

    class _Critical:
        def __init__(self, owner):
            self.owner = owner

        def __enter__(self):
            self.owner.depth += 1

        def __exit__(self, *exc):
            self.owner.depth -= 1
            if not self.owner.depth and self.owner.pending is not None and exc[0] is None:
                signum, self.owner.pending = self.owner.pending, None
                self.owner._stop(signum, None)
            return False

    def critical(self):
        return self._Critical(self)


def exit_status_at_end(code: int) -> None:
    """End this process with `code` once it would otherwise exit 0: after every other exit
    handler has run (logging flushed, W&B and torch.distributed closed).

    For a submitit job whose run did not complete: the job must return normally, so that submitit
    writes its result file and the sweep that launched it reads the job's status, yet the
    scheduler must record a failure (SLURM's FAILED, not COMPLETED 0:0) from the exit status."""
    def _exit():
        atexit.unregister(_exit)
        atexit._run_exitfuncs()  # the handlers registered before this one (LIFO order)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)

    atexit.register(_exit)
