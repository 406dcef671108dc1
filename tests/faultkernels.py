"""Kernels that misbehave, for the isolation and correctness tests and tools/gpu/acceptance.py.

Loaded by reference, the way a worker process finds kernels: in-process with
``REGISTRY.add_reference("faultkernels:KERNELS")``, and by a real ``attnperf run``
subprocess with ``ATTNPERF_KERNEL_MODULES=faultkernels:KERNELS`` and this
directory on ``PYTHONPATH``.  Each is a plain module-level function of the
public kernel API ``fn(q, k, v, *, causal, scale) -> out``.

``ATTNPERF_TEST_PIDFILE``, when set, receives the pid of the process that
calls ``fault_hang`` (the test then knows the sweep is inside it, and which
process must be gone afterwards).
"""

from __future__ import annotations

import ctypes
import os
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
    """Reads far out of bounds: an IndexError on a CPU, a device-side assert (a sticky CUDA error) on a GPU."""
    return q + q.flatten()[torch.full((1,), 1 << 40, device=q.device, dtype=torch.long)].sum()


def fault_grad_off(q, k, v, *, causal, scale):
    """Right values, gradients 10 % too large: only the gradient check can catch it."""
    out = naive_attention(q, k, v, causal=causal, scale=scale)
    return out + 0.1 * (out - out.detach())

# --------------------------------------------- a job handler for Worker tests
def worker_setup(tag):
    return {"tag": tag, "jobs": 0}


def worker_handle(state, job):
    """Jobs for tests/test_isolation.py's Worker tests: echo, retire, exit, signal, hang."""
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
    raise ValueError(f"unknown job {what!r}")


KERNELS = [
    KernelSpec(
        name=fn.__name__,
        fn=fn,
        family="test-fault",
        description=(fn.__doc__ or fn.__name__).strip().splitlines()[0],
    )
    for fn in (
        fault_hang,
        fault_segfault,
        fault_exit3,
        fault_os_exit0,
        fault_report_error,
        fault_zero_q,
        fault_nan_after_first,
        fault_mutate_later,
        fault_slow,
        fault_bad_index,
        fault_grad_off,
    )
]
NAMES = [s.name for s in KERNELS]
