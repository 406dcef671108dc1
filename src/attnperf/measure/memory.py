"""Device memory: admission before a kernel allocates, and the peak of one call.

Admission (:func:`check_fits`): a config whose estimated footprint
(:func:`memory_needed`) exceeds :data:`MEMORY_HEADROOM` of the free memory is
skipped before anything is allocated, so one oversized problem cannot take the
device down for the configs after it.

Peak (``torch.cuda`` allocator statistics).  On a GPU, :func:`peak_memory` runs one call between
``torch.cuda.reset_peak_memory_stats`` and ``torch.cuda.max_memory_allocated``
and subtracts what was allocated just before it: the figure is what the call
itself allocated at its peak -- its output and every temporary -- with the
inputs, the float64 reference and the previous output excluded.  The session
takes it on a warm call (the checked first call has already done any one-time
set-up: autotuning, the cuBLAS workspace, cuDNN plans), outside CUDA graphs.
Memory a kernel takes past PyTorch's caching allocator (a raw ``cudaMalloc`` in
an extension) is not seen.

On a CPU the figure is unavailable.  PyTorch's CPU allocator keeps no
statistics.  ``torch.profiler`` with ``profile_memory=True`` does record c10's
allocation events, and their running sum gives a plausible peak, but it sees
only tensors PyTorch allocates, not BLAS/oneDNN scratch, and its kineto back
end writes two lines to the process's stderr on every start and stop (not
silenced by ``KINETO_LOG_LEVEL``) -- they would land between ``attnperf
run``'s table rows and in every asv log.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InsufficientMemoryError
from ..kernels.spec import KernelSpec
from ..model import roofline
from ..model.problem import Problem
from ..model.records import PeakMemory

MEMORY_HEADROOM = 0.85  # use at most this fraction of free memory


def available_memory(device: str) -> int | None:
    """Free bytes on ``device`` (None if unknown).  On a GPU, what PyTorch's caching
    allocator holds but does not use counts as free: it hands those blocks out
    again, and releases them to the driver before it reports out-of-memory."""
    if device == "cuda":
        import torch
        cached = torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
        return int(torch.cuda.mem_get_info()[0]) + max(0, int(cached))
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def input_bytes(p: Problem) -> int:
    """Q, K and V (and dO): the saved copies that detect a kernel writing to its inputs."""
    q_like = p.batch * p.heads * p.seq_q * p.head_dim * (2 if p.backward else 1)
    return (q_like + 2 * p.batch * p.kv_heads * p.seq_kv * p.head_dim) * p.element_size


def memory_needed(spec: KernelSpec, p: Problem) -> int:
    """Inputs (and their saved copies), output (and gradients), kernel scratch, and
    the float64 reference (chunked to <= 1 GiB; with gradients in training passes)."""
    scores = min(1 << 30, (48 if p.backward else 24) * p.seq_q * p.seq_kv * p.heads)
    elements = p.batch * p.heads * p.seq_q * p.head_dim
    if p.backward:  # float64 O and dQ, dK, dV
        elements = 2 * elements + 2 * p.batch * p.kv_heads * p.seq_kv * p.head_dim
    return roofline.bytes_moved(p) + input_bytes(p) + spec.scratch_bytes(p) + 8 * elements + scores


def check_fits(spec: KernelSpec, problem: Problem, device: str) -> None:
    """Raise :class:`InsufficientMemoryError` when ``spec`` on ``problem`` needs more
    than :data:`MEMORY_HEADROOM` of the memory free on ``device``."""
    need, free = memory_needed(spec, problem), available_memory(device)
    if free is not None and need > MEMORY_HEADROOM * free:
        raise InsufficientMemoryError(
            f"{problem.id} needs ~{need / 2**30:.2f} GiB on {device}, "
            f"{free / 2**30:.2f} GiB free")

METHOD_CUDA = "torch.cuda.max_memory_allocated"
NOTE_CUDA = ("one warm call: max_memory_allocated minus memory_allocated before the call "
             "(output and temporaries; inputs excluded)")
CPU_UNAVAILABLE = ("unavailable on a CPU: PyTorch's CPU allocator keeps no statistics "
                   "(see attnperf.measure.memory)")


def peak_memory(call: Callable[[], object], device: str) -> PeakMemory:
    """What one ``call()`` allocates at its peak on ``device`` (runs it once on a GPU,
    not at all on a CPU)."""
    if device != "cuda":
        return PeakMemory(None, "unavailable", CPU_UNAVAILABLE)
    import torch

    torch.cuda.synchronize()
    before = int(torch.cuda.memory_allocated())
    torch.cuda.reset_peak_memory_stats()
    call()
    torch.cuda.synchronize()
    peak = int(torch.cuda.max_memory_allocated())
    return PeakMemory(max(0, peak - before), METHOD_CUDA, NOTE_CUDA, baseline_bytes=before)
