"""What a kernel is: :class:`KernelSpec`, the contract every kernel module fills.

A kernel is a callable ``fn(q, k, v, problem) -> out`` over PyTorch tensors in
SDPA layout (see :class:`attnperf.model.problem.Problem`).  ``check(problem,
device)`` answers *before* anything is allocated whether the kernel can run
there and, if not, why.  Some limits are only known to PyTorch at dispatch
time; those surface as :class:`~attnperf.errors.KernelUnavailableError` from
the call.

Kernel modules import this module, never the registry: the registry finds them
(:mod:`attnperf.kernels.registry`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Tuple

from ..model.problem import Problem

Availability = Tuple[bool, str]


def always_available(problem: Problem, device: str) -> Availability:
    return True, "available"


def no_workspace(problem: Problem) -> int:
    return 0


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    name: str
    fn: Callable
    family: str
    description: str
    check: Callable[[Problem, str], Availability] = always_available
    # Extra bytes of scratch memory beyond Q, K, V, O (for the memory estimate).
    # (Defaults are module-level functions: a spec of importable functions
    # pickles, so an isolated worker process can receive it.)
    workspace_bytes: Callable[[Problem], int] = no_workspace
    # Optional: which backend actually ran (default dispatch only).
    provenance: Optional[Callable] = None


def causal_mask(seq_q: int, seq_kv: int, device):
    """True where query i may see key j (PyTorch's top-left aligned convention)."""
    import torch

    return torch.ones(seq_q, seq_kv, dtype=torch.bool, device=device).tril()
