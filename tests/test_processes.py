"""No process a kernel starts outlives the worker that ran it (measure/worker.py: the
worker's own process group, this process as child subreaper, the sweep), whatever
became of the config -- ok, timed out, crashed, or the run stopped by a signal --
and workers die of SIGINT/SIGTERM without a traceback.

The fault kernels (tests/faultkernels.py, ``fault_leave_*``) leave a sleeper in a
session of its own, a double-forked daemon, an ``os.fork()`` copy that sleeps and
one that returns to its caller; each carries a marker made for the test, and
afterwards no live process on the machine may carry it.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import faultkernels
from attnperf.kernels import registry
from attnperf.kernels.registry import ENV_MODULES, REGISTRY
from attnperf.kernels.spec import KernelSpec
from attnperf.measure.options import MeasureOptions
from attnperf.measure.reaper import REAPER
from attnperf.measure.session import Session
from attnperf.measure.timing import Budget

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the subreaper and /proc are Linux's")

TESTS = Path(__file__).resolve().parent
LIMIT_S = 3
QUICK = MeasureOptions(budget=Budget(min_samples=3, max_samples=3, budget_s=0.01, warmup_s=0.0),
                       latency=False)


def _wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def none_left(marker: str, seconds: float = 5.0) -> None:
    """Every process carrying ``marker`` is gone (SIGKILL is delivered at once, but
    a dying process may show for a moment)."""
    try:
        _wait_for(lambda: not faultkernels.marked(marker), seconds, "none to be left")
    except AssertionError:
        raise AssertionError(f"left running: {faultkernels.marked(marker)}") from None


@pytest.fixture
def marker():
    """A token no other process carries; what a failing test left is killed by pid."""
    token = "apq" + secrets.token_hex(6)  # 15 characters: fits a process name
    yield token
    for pid in faultkernels.marked(token):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.fixture
def leaving(marker):
    """Registers a ``fault_leave_*`` kernel bound to this test's marker (pickled to
    the worker); returns its name."""
    registry.names()  # the built-ins first
    added = []

    def register(fn) -> str:
        name = f"{fn.__name__}_{marker}"
        REGISTRY.register(KernelSpec(name=name, fn=functools.partial(fn, marker=marker),
                                     family="test-fault", description=name))
        added.append(name)
        return name

    yield register
    for name in added:
        REGISTRY._kernels.pop(name, None)


# ---------------------------------------------------- an isolated session --
def test_an_ok_kernel_leaves_nothing_and_its_fork_copy_never_answers(leaving, marker,
                                                                     tiny_problem):
    name = leaving(faultkernels.fault_leave_ok)
    with Session("cpu", isolate=True) as s:
        m = s.measure(name, tiny_problem, QUICK)
        n = s.measure("sdpa", tiny_problem, QUICK)
        left = faultkernels.marked(marker)
        assert len(left) >= 3, left  # the sleeper, the daemon, the sleeping copy: running
    assert (m.kernel, m.status) == (name, "ok"), m.reason
    assert (n.kernel, n.status) == ("sdpa", "ok"), n.reason  # the copy's answer never came
    none_left(marker)


def test_a_timed_out_kernel_leaves_nothing_once_it_is_killed(leaving, marker, tiny_problem):
    name = leaving(faultkernels.fault_leave_hang)
    with Session("cpu", isolate=True) as s:
        m = s.measure(name, tiny_problem, QUICK, timeout_s=LIMIT_S)
        none_left(marker)  # at the kill, not only when the session closes
        after = s.measure("sdpa", tiny_problem, QUICK)
    assert m.status == "timed_out" and "killed" in m.reason
    assert after.status == "ok"  # the sweep goes on


def test_a_crashed_kernel_leaves_nothing(leaving, marker, tiny_problem):
    name = leaving(faultkernels.fault_leave_segfault)
    with Session("cpu", isolate=True) as s:
        m = s.measure(name, tiny_problem, QUICK)
        none_left(marker)
        after = s.measure("naive", tiny_problem, QUICK)
    assert m.status == "crashed" and "SIGSEGV" in m.reason
    assert after.status == "ok"


def test_the_subreaper_setting_is_restored_and_older_children_are_spared():
    import ctypes

    def subreaper() -> int:
        flag = ctypes.c_int(-1)
        ctypes.CDLL(None).prctl(37, ctypes.byref(flag), ctypes.c_ulong(0), ctypes.c_ulong(0),
                                ctypes.c_ulong(0))  # PR_GET_CHILD_SUBREAPER
        return flag.value

    older = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        before = subreaper()
        REAPER.acquire()
        try:
            assert subreaper() == 1
            assert older.pid not in REAPER.orphans()
        finally:
            REAPER.release()
        assert subreaper() == before and older.poll() is None
    finally:
        older.kill()
        older.wait()


# ---------------------------------------------- a real `attnperf run` ------
@pytest.mark.parametrize("signum,code,group", [
    (signal.SIGTERM, 143, False),  # kill PID: the parent alone
    (signal.SIGINT, 130, True),    # Ctrl-C: the whole foreground process group
])
def test_a_run_stopped_by_a_signal_leaves_nothing(tmp_path, tiny_run_args, marker, signum,
                                                 code, group):
    pidfile = tmp_path / "worker.pid"
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
               ATTNPERF_TEST_PIDFILE=str(pidfile), **{ENV_MODULES: "faultkernels:KERNELS",
                                                      faultkernels.MARKER_ENV: marker})
    proc = subprocess.Popen([sys.executable, "-m", "attnperf", "run", *tiny_run_args, "--kernel",
                             "sdpa,fault_leave_hang", "--timeout-s", "300"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        _wait_for(lambda: pidfile.exists() and pidfile.read_text(), 120, "fault_leave_hang")
        assert any(marker in cmd for cmd in faultkernels.marked(marker).values())  # sleepers
        (os.killpg(proc.pid, signum) if group else proc.send_signal(signum))
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    none_left(marker, 20)  # the forkserver and the resource tracker follow their parent


# ---------------------------------------- workers die of signals quietly ---
SCRIPT = """
import os, sys, time
import faultkernels
from attnperf.measure.worker import Worker


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


sig = int(sys.argv[1])
with Worker(faultkernels.worker_setup, "T", faultkernels.worker_handle) as w:
    pid = w.run(("echo", 0), 120).value[3]
    os.kill(pid, sig)  # idle, waiting for a job
    deadline = time.monotonic() + 30
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    idle = w.run(("echo", 1), 120)
    busy = w.run(("signal", sig), 120)  # inside a job
    print(type(idle).__name__, w.started, "|", type(busy).__name__, busy.reason)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_worker_killed_by_a_signal_dies_quietly(signum):
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(int(signum))], capture_output=True,
                         text=True, env=env, timeout=300)
    name = signal.Signals(signum).name
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["Done", "2", "|", "Crashed", "the", "worker", "process", "was",
                                  "killed", "by", "signal", str(int(signum)), f"({name})"]
    for word in ("Traceback", "KeyboardInterrupt", "BrokenPipe", "Error"):
        assert word not in res.stderr, res.stderr
