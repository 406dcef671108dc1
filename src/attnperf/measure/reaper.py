"""Process groups and orphans: what a kernel started never outlives the worker that ran it.

A worker (:mod:`attnperf.measure.worker`, :mod:`attnperf.measure.paired`) leads
a session and process group of its own; :func:`kill_group` ends the group
(the worker and whatever it started that stayed there, ``os.fork()`` copies
included).  What left the group -- ``start_new_session=True``, a double-forked
daemon -- is re-parented, when its parent dies, to the nearest *child
subreaper* among its ancestors: :data:`REAPER` makes this process one (Linux,
``prctl(PR_SET_CHILD_SUBREAPER)``) while workers live, and after a worker ends
kills and reaps every child of this process that is not a live worker, the
forkserver, the resource tracker or a child this process already had,
repeating until none is left.  It never touches a process that is not a
descendant of this one.  Where there is no prctl or no /proc the group kill
alone applies.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

# How long one sweep may go on killing and reaping (a process in uninterruptible
# sleep, e.g. inside a driver, dies only when it leaves it).
SWEEP_TIMEOUT_S = 30.0

PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 1, 36, 37


def kill_group(pgid: int) -> None:
    """SIGKILL process group ``pgid`` (a child that leads its own session: it and
    every process it started that stayed in it); nothing where it is gone."""
    if not hasattr(os, "killpg") or pgid <= 0:
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:  # no such group (already gone, or never formed)
        pass


def prctl(option: int, arg: Any = 0) -> int | None:
    """Linux ``prctl(option, arg)`` (``arg``: an int or a ``ctypes.byref``); its return
    value (0: done), or None where there is no prctl."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        if isinstance(arg, int):
            arg = ctypes.c_ulong(arg)
        result: int = libc.prctl(ctypes.c_int(option), arg, ctypes.c_ulong(0),
                                 ctypes.c_ulong(0), ctypes.c_ulong(0))  # restype: C int
        return result
    except (OSError, AttributeError):  # pragma: no cover - no prctl: best effort
        return None


def _children(pid: int) -> dict[int, int]:
    """The children of ``pid`` now: pid -> start time (clock ticks since boot; with
    the pid it names one process for good).  Empty where there is no /proc."""
    out: dict[int, int] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
            # after the command name "(...)": state, ppid, ..., starttime (the 20th)
            fields = stat[stat.rfind(b")") + 2:].split()
            if int(fields[1]) == pid:
                out[int(name)] = int(fields[19])
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
    return out


def _multiprocessing_helpers() -> set[int]:
    """The forkserver's and the resource tracker's pids: children of this process
    that multiprocessing itself waits for."""
    pids = set()
    try:
        from multiprocessing import forkserver, resource_tracker
        for owner, attr in ((forkserver._forkserver, "_forkserver_pid"),
                            (resource_tracker._resource_tracker, "_pid")):
            pid = getattr(owner, attr, None)
            if isinstance(pid, int):
                pids.add(pid)
    except (ImportError, AttributeError):  # pragma: no cover - another multiprocessing
        pass
    return pids


class Reaper:
    """This process as the child subreaper while workers live, and the sweep of
    the orphans that reach it (module doc).

    Users :meth:`acquire` it before they start a worker and :meth:`release` it
    after the worker ended (which sweeps; the last release restores the
    subreaper setting found at the first acquire).  :meth:`keep` names children
    that are live workers; children this process had at the first acquire, the
    forkserver and the resource tracker are never swept either."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._users = 0
        self._previous: int | None = None
        self._before: set[tuple[int, int]] = set()
        self._keep: set[int] = set()

    def acquire(self) -> None:
        with self._lock:
            self._users += 1
            if self._users > 1:
                return
            self._before = set(_children(os.getpid()).items())
            self._previous = None
            import ctypes
            flag = ctypes.c_int(0)
            if prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag)) == 0:
                self._previous = flag.value
                if not flag.value and prctl(_PR_SET_CHILD_SUBREAPER, 1) != 0:
                    self._previous = None  # could not set it: nothing to restore

    def release(self) -> None:
        with self._lock:
            if self._users <= 0:
                return
            try:
                self.sweep()
            finally:
                self._users -= 1
                if self._users == 0:
                    if self._previous == 0:
                        prctl(_PR_SET_CHILD_SUBREAPER, 0)
                    self._previous = None
                    self._before = set()

    def keep(self, pid: int) -> None:
        with self._lock:
            self._keep.add(pid)

    def forget(self, pid: int) -> None:
        with self._lock:
            self._keep.discard(pid)

    def orphans(self) -> dict[int, int]:
        """The children of this process that the sweep would kill now."""
        spare = self._keep | _multiprocessing_helpers()
        return {pid: start for pid, start in _children(os.getpid()).items()
                if pid not in spare and (pid, start) not in self._before}

    def sweep(self) -> int:
        """Kill and reap the :meth:`orphans`, and theirs in turn, until none is
        left (or :data:`SWEEP_TIMEOUT_S` passed); returns how many it killed."""
        killed = 0
        with self._lock, signals_held():
            if self._users <= 0:
                return 0
            deadline = time.monotonic() + SWEEP_TIMEOUT_S
            while time.monotonic() < deadline:
                found = self.orphans()
                if not found:
                    break
                for pid in found:  # a child of ours: its pid stays its own until reaped
                    try:
                        os.kill(pid, signal.SIGKILL)
                        killed += 1
                    except OSError:
                        pass
                for pid in found:
                    _reap(pid, deadline)
            else:
                log.warning("processes left by a kernel were still there after %g s: %s",
                            SWEEP_TIMEOUT_S, sorted(self.orphans()))
        if killed:
            log.debug("killed %d process(es) a kernel left behind", killed)
        return killed


def _reap(pid: int, deadline: float) -> None:
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere
            return
        if done or time.monotonic() >= deadline:
            return
        time.sleep(0.005)


class signals_held:
    """SIGINT/SIGTERM held back in the main thread for the block (a kill-and-reap
    is never cut half way); a no-op elsewhere."""

    def __enter__(self) -> signals_held:
        self._old: set[int | signal.Signals] | None = None
        if hasattr(signal, "pthread_sigmask") and \
                threading.current_thread() is threading.main_thread():
            self._old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._old)


REAPER = Reaper()
