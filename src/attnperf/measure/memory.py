"""Peak device memory of one kernel call (``torch.cuda`` allocator statistics).

On a GPU, :func:`peak_memory` runs one call between
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
allocation events, and their running sum gives a plausible peak (checked on
torch 2.13 CPU: naive at 1,8,512,64 causal peaks at 17 MiB, twice its 8 MiB
score matrix), but it sees only tensors PyTorch allocates, not BLAS/oneDNN
scratch, and its kineto back end writes two lines to the process's stderr on
every start and stop (not silenced by ``KINETO_LOG_LEVEL``) -- they would land
between ``attnperf run``'s table rows and in every asv log.
"""

from __future__ import annotations

from typing import Callable

from ..model.records import PeakMemory

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
