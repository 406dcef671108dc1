"""A supervised worker process: run jobs in a child that may die, with a time limit.

The kernel under test is arbitrary code.  It can hang, segfault, call
``sys.exit``/``os._exit``, take minutes per call, or leave a CUDA error that
poisons its context for every later kernel.  :class:`Worker` runs each job in a
child process and tells the caller what became of it: :class:`Done` (the
handler's value), :class:`Crashed` (the child died: signal or exit code) or
:class:`TimedOut` (no answer within the limit: the child is killed).  The next
job gets a fresh child.  This module knows processes only; what a job means
lives with the caller (``measure/session.py``).

Why this shape:

* A fresh interpreter per job would pay ``import torch`` every time: seconds
  per config.
* ``fork`` of the measuring process is unsafe: after CUDA is initialised (the
  session's fingerprint and ceilings do that), and after GNU OpenMP has run a
  parallel region (a matmul on several threads before the fork can hang every
  forked child).
* So children come from multiprocessing's ``forkserver``: one clean server
  process imports torch and attnperf once (``preload``), never touches CUDA or
  OpenMP, and forks each child in milliseconds.  A child survives between
  jobs and is replaced only when it dies, times out, or asks to retire (the
  session retires it after any error on a GPU).

A child ignores SIGINT (Ctrl-C in a terminal reaches the whole process group;
the supervisor decides), dies with its server (``PR_SET_PDEATHSIG`` on Linux;
the server exits when the supervisor does), and writes its stdout to stderr,
so kernel prints never mix into a table on stdout.  Children see the
environment the server started with (the first child's start in this process).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import pickle
import signal
import sys
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from typing import Any

from ..errors import WorkerStartError as StartError

log = logging.getLogger(__name__)

# Starting a child includes, the first time, the server's own start and its
# preload (``import torch``: seconds, more on a loaded machine) and, on a GPU,
# CUDA init and a warm-up.  Not the kernel's time.
STARTUP_TIMEOUT_S = 300.0


@dataclasses.dataclass
class Done:
    value: Any


@dataclasses.dataclass
class Crashed:
    reason: str


@dataclasses.dataclass
class TimedOut:
    reason: str


def describe_exit(code: int | None) -> str:
    """Words for a child's exit code (negative: the signal that killed it)."""
    if code is None:
        return "is still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown signal"
        return f"was killed by signal {-code} ({name})"
    return f"exited with code {code}"


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent (the server) exits."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - no prctl: best effort
        return
    if os.getppid() == 1:  # the parent was already gone
        os._exit(1)


def _child(conn, setup: Callable[[Any], Any], setup_arg: Any,
           handle: Callable[[Any, Any], tuple]) -> None:
    """The child's main loop: ``state = setup(arg)``; then for each job
    ``(value, retire) = handle(state, job)`` until told to stop or retiring."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    sys.stdout.flush()
    os.dup2(2, 1)
    state = setup(setup_arg)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the supervisor is gone
            return
        if job is None:
            return
        value, retire = handle(state, job)
        conn.send(("done", value, retire))
        if retire:
            return


class Worker:
    """One child process at a time, started on demand, replaced when it dies.

    ``setup(setup_arg)`` runs once in each child, ``handle(state, job)`` per
    job; both must be importable module-level functions and ``job`` and the
    value picklable.  ``preload`` names modules the forkserver imports once.
    """

    def __init__(self, setup: Callable[[Any], Any], setup_arg: Any,
                 handle: Callable[[Any, Any], tuple], preload: Sequence[str] = (),
                 startup_timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        self._setup, self._setup_arg, self._handle = setup, setup_arg, handle
        self._startup_timeout_s = startup_timeout_s
        # spawn where there is no forkserver (Windows): slower starts, same semantics.
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        self._ctx = multiprocessing.get_context(method)
        if preload and method == "forkserver":
            # Effective only before the server starts (once per process).
            self._ctx.set_forkserver_preload(list(preload))
        self._proc = None
        self._conn = None
        self.started = 0  # children started so far

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _start(self) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_child, name="attnperf-worker", daemon=True,
                                 args=(child, self._setup, self._setup_arg, self._handle))
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        self.started += 1
        ready = wait([parent, proc.sentinel], self._startup_timeout_s)
        msg = None
        if parent in ready:
            try:
                msg = parent.recv()
            except (EOFError, OSError):
                msg = None
        if msg is None or msg[0] != "ready":
            what = (f"gave no sign of life within {self._startup_timeout_s:g} s" if not ready
                    else self._reap())
            self.close(force=True)
            raise StartError(f"the worker process {what} before it was ready")
        log.debug("worker %d ready", proc.pid)

    def _reap(self) -> str:
        self._proc.join(5)
        return describe_exit(self._proc.exitcode)

    def run(self, job: Any, timeout_s: float):
        """Run ``job`` in the child; :class:`Done`, :class:`Crashed` or :class:`TimedOut`."""
        if self._proc is None or not self._proc.is_alive():
            self.close(force=True)
            try:
                self._start()
            except StartError as exc:
                return Crashed(str(exc))
        try:
            self._conn.send(job)
        except (BrokenPipeError, OSError):
            reason = self._reap()
            self.close(force=True)
            return Crashed(f"the worker process {reason}")
        ready = wait([self._conn, self._proc.sentinel], timeout_s)
        if not ready:
            self.close(force=True)
            return TimedOut(f"no result within the {timeout_s:g} s limit per config; "
                            "the worker process was killed")
        msg = None
        if self._conn.poll():  # an answer, or end of file from a dead child
            try:
                msg = self._conn.recv()
            except (EOFError, OSError, pickle.UnpicklingError):
                pass
        if msg is None or msg[0] != "done":
            reason = self._reap()
            self.close(force=True)
            return Crashed(f"the worker process {reason}")
        _, value, retire = msg
        if retire:  # it answered and is exiting: the next job starts a fresh one
            self.close()
        return Done(value)

    def close(self, force: bool = False) -> None:
        """Stop the child: politely (finish, exit) unless ``force`` (SIGKILL now)."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is None:
            return
        if not force and proc.is_alive():
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            proc.join(2)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        conn.close()
        try:
            proc.close()
        except ValueError:  # pragma: no cover - still running after SIGKILL + 5 s
            log.warning("worker %s did not exit after SIGKILL", proc.pid)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.close(force=exc[0] is not None)
