"""The CPU clocks: what one CPU sample reads, and how fast the CPU runs right now.

A CPU sample is ``number`` back-to-back calls of the kernel between two reads
of one or more clocks (:func:`sample_clocks`).  Which clock the gated figure is
depends on the threads:

* At one PyTorch thread the kernel runs on the calling thread, so the
  measuring thread's **CPU time** (``time.thread_time``,
  ``CLOCK_THREAD_CPUTIME_ID``) is all its work, and time the thread spends
  descheduled -- another job on the core -- does not count.  Wall time is
  read too and kept as a view.
* With several threads the CPU time of one thread would miss the others'
  work: wall time (``perf_counter``) is the figure.

A vCPU of a shared host also runs *slower* at times, which no per-thread
clock removes.  So every thread-time sample is bracketed by a fixed reference
burst (:func:`cpu_reference_burst`) and recorded a second time at the
reference speed (:func:`normalise`).  That figure is recorded, never gated: it
narrows the spread under load but also shrinks real differences.

glibc's adaptive malloc thresholds make a kernel with large temporaries pay
page faults on every call in some processes and not in others;
:func:`fix_malloc_thresholds` fixes them once per process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from .budget import Budget, keep_sampling

# normalised_s is in seconds at the speed where the reference burst takes this
# long (about the burst's unloaded thread CPU time on the CPU machine kind the
# project's CPU thresholds are calibrated on).  Changing it rescales every
# recorded normalised figure.
CPU_REFERENCE_S = 0.8e-3
REFERENCE_N = 256
CPU_CLOCK = "thread"  # what the gated CPU figure is (the asv entry's cpu_clock)


def sample_clocks(fn: Callable[[], object], budget: Budget,
                  clocks: Sequence[Callable[[], float]],
                  between: Callable[[], float] | None = None
                  ) -> tuple[list[list[float]], int, int]:
    """The CPU sampling loop: warm up, choose the calls per sample, sample until the
    budget says stop.

    ``clocks[0]`` paces warm-up and budget; every clock is read around each
    sample (nested: the first clock innermost).  ``between()`` runs once before
    the first sample and after every sample, returning seconds the budget also
    counts (all but the first run).  Returns (per-call times per clock, calls
    per sample, warm-up calls).
    """
    pace = clocks[0]
    warm, t0 = 0, pace()
    while warm < 2 or pace() - t0 < budget.warmup_s:
        fn()
        warm += 1
    per_call = max((pace() - t0) / warm, 1e-9)
    number = max(1, int(budget.target_sample_s / per_call))
    times: list[list[float]] = [[] for _ in clocks]
    spent = 0.0
    if between:
        between()
    while keep_sampling(times[0], spent, budget):
        start = [c() for c in reversed(clocks)][::-1]
        for _ in range(number):
            fn()
        end = [c() for c in clocks]
        for series, a, b in zip(times, start, end, strict=False):
            series.append((b - a) / number)
        spent += end[0] - start[0] + (between() if between else 0.0)
    return times, number, warm


def fix_malloc_thresholds() -> bool:
    """Fix glibc's mmap and trim thresholds (1 GiB) for this process, so a
    kernel's large temporaries are reused from the heap instead of being
    mapped, faulted in and returned per call -- which glibc's adaptive
    defaults do in some processes and not in others.  False where there is
    no glibc ``mallopt``."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 30))


def cpu_reference_burst(cpu_clock: Callable[[], float] = time.thread_time) -> Callable[[], float]:
    """A fixed piece of work (two 256x256 float32 matmuls on this thread) that
    returns its own thread CPU seconds: how fast the CPU runs right now."""
    import torch

    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(REFERENCE_N, REFERENCE_N, generator=gen) for _ in range(2))
    out = torch.empty(REFERENCE_N, REFERENCE_N)

    def burst() -> float:
        # One untimed matmul first: right after a kernel's sample the operands are
        # out of cache, and a cold burst reads slower after longer samples, which
        # would bias the normalised figure of long kernels.
        torch.mm(a, b, out=out)
        t0 = cpu_clock()
        torch.mm(a, b, out=out)
        torch.mm(a, b, out=out)
        return cpu_clock() - t0

    for _ in range(3):
        burst()
    return burst


def normalise(thread_s: Sequence[float], reference_s: Sequence[float]) -> list[float]:
    """Each sample at the reference speed: its thread time x :data:`CPU_REFERENCE_S`
    over the mean of the two reference bursts on either side of it
    (``reference_s`` holds one more burst than there are samples)."""
    return [t * CPU_REFERENCE_S / max((a + b) / 2, 1e-12)
            for t, a, b in zip(thread_s, reference_s, reference_s[1:], strict=False)]
