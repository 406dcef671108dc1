"""A supervised worker process: run jobs in a child that may die, with a time limit.

The kernel under test is arbitrary code.  It can hang, segfault, call
``sys.exit``/``os._exit``, take minutes per call, leave a CUDA error that
poisons its context for every later kernel, or start processes of its own.
:class:`Worker` runs each job in a child process and tells the caller what
became of it: :class:`Done` (the handler's value), :class:`Crashed` (the child
died: signal or exit code) or :class:`TimedOut` (no answer within the limit:
the child is killed).  The next job gets a fresh child.  This module knows
processes only; what a job means lives with the caller
(``measure/session.py``).

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

No process a kernel starts outlives the child that ran it:

* The child leads a session (and process group) of its own; whenever a child
  ends -- answered, retired, crashed, timed out or closed -- the whole group is
  killed (SIGKILL), which takes every process the kernel started that stayed
  in it, ``os.fork()`` copies included.
* While children live, this process is a *child subreaper* (Linux): what
  leaves the group (``start_new_session=True``, a double-forked daemon) is
  re-parented here, not to init, when its parent dies, and after a child ends
  :data:`~attnperf.measure.reaper.REAPER` kills and reaps it
  (:mod:`attnperf.measure.reaper`).
* A kernel's ``os.fork()`` copy that returns into the child's job loop exits
  at once, without flushing anything: it never answers, never takes a job.

A child leaves SIGINT and SIGTERM at their defaults (it dies quietly: no
traceback; Ctrl-C in a terminal does not reach it, it has a session of its
own, so the supervisor decides), dies with its server (``PR_SET_PDEATHSIG``
on Linux; the server exits when the supervisor does), exits quietly when the
supervisor is gone, and writes its stdout to stderr, so kernel prints never
mix into a table on stdout.  Children see the environment the server started
with (the first child's start in this process).  Elsewhere than Linux the
group kill still applies where process groups exist; the subreaper does not.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import weakref
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # ForkServerContext exists only where there is a forkserver
    from multiprocessing.context import ForkServerContext, SpawnContext

from ..errors import WorkerStartError as StartError
from .reaper import PR_SET_PDEATHSIG, REAPER, kill_group, prctl, signals_held

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


# ---------------------------------------------------------------- the child
def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent (the server) exits."""
    if prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL)) is None:
        return
    if os.getppid() == 1:  # the parent was already gone
        os._exit(1)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # a closed or broken stream: nothing to keep
            pass


def _child(conn: Connection[Any, Any], setup: Callable[[Any], Any], setup_arg: Any,
           handle: Callable[[Any, Any], tuple[Any, bool]]) -> None:
    """The child's main loop: ``state = setup(arg)``; then for each job
    ``(value, retire) = handle(state, job)`` until told to stop or retiring.

    Ends with ``os._exit``: no atexit handlers, no joining a kernel's threads,
    no second flush of what a forked copy inherited."""
    me = os.getpid()
    for signum in (signal.SIGINT, signal.SIGTERM):  # die of them, quietly
        signal.signal(signum, signal.SIG_DFL)
    if hasattr(os, "setsid"):
        try:
            os.setsid()  # a session and process group of its own (module doc)
        except OSError:  # pragma: no cover - already a group leader
            pass
    _die_with_parent()
    _flush()
    os.dup2(2, 1)
    code = 0
    try:
        state = setup(setup_arg)
        _send(conn, ("ready", me))
        while True:
            try:
                job = conn.recv()
            except (EOFError, OSError):  # the supervisor is gone
                break
            if job is None:
                break
            value, retire = handle(state, job)
            if os.getpid() != me:  # a kernel's fork() copy came back here
                os._exit(0)
            _flush()
            _send(conn, ("done", value, retire))
            if retire:
                break
    except SystemExit as exc:  # the kernel's sys.exit(): its code, as Python would
        if os.getpid() != me:
            os._exit(0)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:  # a kernel's own SIGINT handler, or its raise
        os._exit(0 if os.getpid() != me else 128 + signal.SIGINT)
    except BaseException:
        if os.getpid() != me:
            os._exit(0)
        raise  # multiprocessing prints it; the supervisor records the exit code
    _flush()
    os._exit(code)


def _send(conn: Connection[Any, Any], msg: tuple[Any, ...]) -> None:
    try:
        conn.send(msg)
    except (OSError, EOFError):  # the supervisor is gone: nobody to tell
        os._exit(0)


# ----------------------------------------------------------- the supervisor
def _pid(proc: BaseProcess) -> int:
    """A started child's pid (``BaseProcess.pid`` is None only before ``start()``)."""
    assert proc.pid is not None, "the child was started"
    return proc.pid


_LIVE: weakref.WeakSet[Worker] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """A caller that never closed its worker: its processes still end with this one."""
    for worker in list(_LIVE):
        worker.close(force=True)


class Worker:
    """One child process at a time, started on demand, replaced when it dies.

    ``setup(setup_arg)`` runs once in each child, ``handle(state, job)`` per
    job; both must be importable module-level functions and ``job`` and the
    value picklable.  ``preload`` names modules the forkserver imports once.
    Every end of a child (:meth:`close`, a crash, a timeout, a retirement)
    kills its process group and sweeps what it left (module doc).
    """

    def __init__(self, setup: Callable[[Any], Any], setup_arg: Any,
                 handle: Callable[[Any, Any], tuple[Any, bool]], preload: Sequence[str] = (),
                 startup_timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        self._setup, self._setup_arg, self._handle = setup, setup_arg, handle
        self._startup_timeout_s = startup_timeout_s
        # spawn where there is no forkserver (Windows): slower starts, same semantics.
        self._method = ("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                        else "spawn")
        self._ctx: ForkServerContext | SpawnContext = (
            multiprocessing.get_context("forkserver") if self._method == "forkserver"
            else multiprocessing.get_context("spawn"))
        if preload and self._method == "forkserver":
            # Effective only before the server starts (once per process).
            self._ctx.set_forkserver_preload(list(preload))
        self._proc: BaseProcess | None = None
        self._conn: Connection[Any, Any] | None = None
        self._reaping = False  # holds REAPER while a child lives
        self.started = 0  # children started so far

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _start(self) -> tuple[BaseProcess, Connection[Any, Any]]:
        """A fresh child, ready for jobs: its process and the pipe to it."""
        if self._method == "forkserver":
            # The server (and the resource tracker) first: children this process
            # already has are never the sweep's.
            from multiprocessing import forkserver
            forkserver.ensure_running()
        if not self._reaping:
            REAPER.acquire()
            self._reaping = True
        _LIVE.add(self)
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_child, name="attnperf-worker", daemon=True,
                                 args=(child, self._setup, self._setup_arg, self._handle))
        proc.start()
        child.close()
        REAPER.keep(_pid(proc))
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
                    else self._reap(proc))
            self.close(force=True)
            raise StartError(f"the worker process {what} before it was ready")
        log.debug("worker %d ready", proc.pid)
        return proc, parent

    @staticmethod
    def _reap(proc: BaseProcess) -> str:
        proc.join(5)
        return describe_exit(proc.exitcode)

    def run(self, job: Any, timeout_s: float) -> Done | Crashed | TimedOut:
        """Run ``job`` in the child; :class:`Done`, :class:`Crashed` or :class:`TimedOut`."""
        proc, conn = self._proc, self._conn
        if proc is None or conn is None or not proc.is_alive():
            self.close(force=True)
            try:
                proc, conn = self._start()
            except StartError as exc:
                return Crashed(str(exc))
        try:
            conn.send(job)
        except (BrokenPipeError, OSError):
            reason = self._reap(proc)
            self.close(force=True)
            return Crashed(f"the worker process {reason}")
        ready = wait([conn, proc.sentinel], timeout_s)
        if not ready:
            self.close(force=True)
            return TimedOut(f"no result within the {timeout_s:g} s limit per config; "
                            "the worker process was killed")
        msg = None
        if conn.poll():  # an answer, or end of file from a dead child
            try:
                msg = conn.recv()
            except (EOFError, OSError, pickle.UnpicklingError):
                pass
        if msg is None or msg[0] != "done":
            reason = self._reap(proc)
            self.close(force=True)
            return Crashed(f"the worker process {reason}")
        _, value, retire = msg
        if retire:  # it answered and is exiting: the next job starts a fresh one
            self.close()
        return Done(value)

    def close(self, force: bool = False) -> None:
        """Stop the child: politely (finish, exit) unless ``force`` (SIGKILL now);
        then kill its process group and sweep what it left (module doc)."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is not None and conn is not None:  # set and cleared together
            with signals_held():
                self._stop(proc, conn, force)
        if self._reaping:
            self._reaping = False
            REAPER.release()
        _LIVE.discard(self)

    @staticmethod
    def _stop(proc: BaseProcess, conn: Connection[Any, Any], force: bool) -> None:
        if not force and proc.is_alive():
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            proc.join(2)
        kill_group(_pid(proc))  # its session: whatever it started that stayed there
        if proc.is_alive():  # no group of its own (it died before forming one, or no setsid)
            proc.kill()
        proc.join(5)
        REAPER.forget(_pid(proc))
        conn.close()
        try:
            proc.close()
        except ValueError:  # pragma: no cover - still running after SIGKILL + 5 s
            log.warning("worker %s did not exit after SIGKILL", proc.pid)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(force=exc[0] is not None)
