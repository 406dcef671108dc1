"""Kernels that misbehave, for the isolation and correctness tests and tools/gpu/acceptance.py.

Loaded by reference, the way a worker process finds kernels: in-process with
``REGISTRY.add_reference("faultkernels:KERNELS")``, and by a real ``attnperf run``
subprocess with ``ATTNPERF_KERNEL_MODULES=faultkernels:KERNELS`` and this
directory on ``PYTHONPATH``.  Each is a plain module-level function of the
public kernel API ``fn(q, k, v, *, causal, scale) -> out``.

``ATTNPERF_TEST_PIDFILE``, when set, receives the pid of the process that
calls ``fault_hang`` (the test then knows the sweep is inside it, and which
process must be gone afterwards).

The ``fault_leave_*`` kernels start processes a careless kernel leaves running
(:func:`leave_processes`), each carrying a marker (the ``marker`` argument, else
``ATTNPERF_TEST_MARKER``) in its command line or name, so a test can look for
them among every process on the machine afterwards.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import threading
import time

import torch

from attnperf.errors import ReportError
from attnperf.kernels.naive import naive_attention
from attnperf.kernels.spec import KernelSpec

# Per call; the tests run fault_slow with a limit of a few seconds, and one
# config makes at least 1 checked + 2 warm-up + 10 timed calls.
SLOW_CALL_S = 1.0


def fault_hang(q, k, v, *, causal, scale):
    print(
        "fault_hang: hanging now", flush=True
    )  # a kernel's print: stderr, never the table's stdout
    path = os.environ.get("ATTNPERF_TEST_PIDFILE")
    if path:
        with open(path + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(path + ".tmp", path)
    threading.Event().wait()  # forever


def fault_segfault(q, k, v, *, causal, scale):
    ctypes.string_at(0)  # reads address 0: SIGSEGV


def fault_exit3(q, k, v, *, causal, scale):
    sys.exit(3)


def fault_os_exit0(q, k, v, *, causal, scale):
    os._exit(0)


def fault_report_error(q, k, v, *, causal, scale):
    raise ReportError("raised by a kernel: attnperf's own exception type")


def fault_zero_q(q, k, v, *, causal, scale):
    """Zeroes q in place, then returns the right answer for the zeros."""
    q.zero_()
    return naive_attention(q, k, v, causal=causal, scale=scale)


def _calls(tensor) -> int:
    """How often this tensor object was passed in (a mark on the tensor itself)."""
    tensor._fault_calls = getattr(tensor, "_fault_calls", 0) + 1
    return tensor._fault_calls


def fault_nan_after_first(q, k, v, *, causal, scale):
    """Right on the first call with these inputs, NaN on every later one."""
    out = naive_attention(q, k, v, causal=causal, scale=scale)
    return out if _calls(q) == 1 else out * float("nan")


def fault_mutate_later(q, k, v, *, causal, scale):
    """Right and harmless on the first call; writes to v from the second on."""
    out = naive_attention(q, k, v, causal=causal, scale=scale)
    if _calls(v) > 1:
        v.mul_(1.0 + 1e-3)
    return out


def fault_slow(q, k, v, *, causal, scale):
    time.sleep(SLOW_CALL_S)
    return naive_attention(q, k, v, causal=causal, scale=scale)


def fault_bad_index(q, k, v, *, causal, scale):
    """Reads far out of bounds: an IndexError on a CPU, a device-side assert (a sticky CUDA
    error) on a GPU."""
    return q + q.flatten()[torch.full((1,), 1 << 40, device=q.device, dtype=torch.long)].sum()


def fault_grad_off(q, k, v, *, causal, scale):
    """Right values, gradients 10 % too large: only the gradient check can catch it."""
    out = naive_attention(q, k, v, causal=causal, scale=scale)
    return out + 0.1 * (out - out.detach())

# ------------------------------------------------ processes left behind ----
MARKER_ENV = "ATTNPERF_TEST_MARKER"
LEFT_S = 120  # how long what the fault_leave_* kernels start lives on its own

_left = False  # once per process (a forked copy inherits it: no copies of copies)


def _marker(marker):
    return marker or os.environ.get(MARKER_ENV) or "attnperf-fault"


def _name_process(marker: str) -> None:
    """Name this process ``marker`` (its comm, 15 bytes): a fork copy runs no new command."""
    ctypes.CDLL(None).prctl(15, ctypes.c_char_p(marker.encode()[:15]), ctypes.c_ulong(0),
                            ctypes.c_ulong(0), ctypes.c_ulong(0))  # PR_SET_NAME


def leave_processes(marker: str, copy_returns: bool) -> None:
    """Once per process, leave running: a sleeper in a session of its own
    (``Popen(start_new_session=True)``), a double-forked daemon (new session, the
    middle process exits) and an ``os.fork()`` copy that sleeps; with
    ``copy_returns`` also an ``os.fork()`` copy that returns to the caller as if it
    were the kernel.  Each carries ``marker`` in its command line or its name."""
    global _left
    if _left:
        return
    _left = True
    sleeper = [sys.executable, "-c", f"import time; time.sleep({LEFT_S})", marker]
    subprocess.Popen(sleeper, start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    middle = os.fork()
    if middle == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, sleeper)
        finally:
            os._exit(0)
    os.waitpid(middle, 0)
    if os.fork() == 0:
        _name_process(marker)
        time.sleep(LEFT_S)
        os._exit(0)
    if copy_returns and os.fork() == 0:
        _name_process(marker)  # and on, as the kernel


def marked(marker: str) -> dict:
    """Live processes (zombies aside) that carry ``marker`` in their command line,
    name or environment: pid -> command line."""
    found, token = {}, marker.encode()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        texts = []
        for part in ("stat", "cmdline", "environ"):
            try:
                with open(f"/proc/{name}/{part}", "rb") as fh:
                    texts.append(fh.read())
            except OSError:  # gone, or not ours to read
                texts.append(b"")
        stat = texts[0]
        if not stat or stat[stat.rfind(b")") + 2:][:1] == b"Z":
            continue
        if any(token in t for t in texts):
            found[int(name)] = texts[1].replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def fault_leave_ok(q, k, v, *, causal, scale, marker=None):
    """Leaves processes running (and a fork copy returning to the caller); right answer."""
    leave_processes(_marker(marker), copy_returns=True)
    return naive_attention(q, k, v, causal=causal, scale=scale)


def fault_leave_hang(q, k, v, *, causal, scale, marker=None):
    """Leaves processes running, then hangs (as fault_hang)."""
    leave_processes(_marker(marker), copy_returns=False)
    return fault_hang(q, k, v, causal=causal, scale=scale)


def fault_leave_segfault(q, k, v, *, causal, scale, marker=None):
    """Leaves processes running, then reads address 0."""
    leave_processes(_marker(marker), copy_returns=False)
    return fault_segfault(q, k, v, causal=causal, scale=scale)


# --------------------------------------------- a job handler for Worker tests
def worker_setup(tag):
    return {"tag": tag, "jobs": 0}


def worker_handle(state, job):
    """Jobs for the Worker tests: echo, retire, exit, signal, hang, fork (a copy of the
    child returns here too: (this pid, what fork returned))."""
    state["jobs"] += 1
    what, arg = job
    if what == "echo":
        return (state["tag"], arg, state["jobs"], os.getpid()), False
    if what == "retire":
        return os.getpid(), True
    if what == "exit":
        os._exit(arg)
    if what == "signal":
        os.kill(os.getpid(), arg)
    if what == "hang":
        threading.Event().wait()
    if what == "fork":
        return (os.getpid(), os.fork()), False
    raise ValueError(f"unknown job {what!r}")


KERNELS = [KernelSpec(name=fn.__name__, fn=fn, family="test-fault",
                      description=(fn.__doc__ or fn.__name__).strip().splitlines()[0])
           for fn in (fault_hang, fault_segfault, fault_exit3, fault_os_exit0, fault_report_error,
                      fault_zero_q, fault_nan_after_first, fault_mutate_later, fault_slow,
                      fault_bad_index, fault_grad_off, fault_leave_ok, fault_leave_hang,
                      fault_leave_segfault)]
NAMES = [s.name for s in KERNELS]
