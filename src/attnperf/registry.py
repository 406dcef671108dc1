"""The kernel registry: named attention kernels with an availability check.

A kernel is a callable ``fn(q, k, v, problem) -> out`` over PyTorch tensors in
SDPA layout (see :class:`attnperf.shapes.Problem`).  ``check(problem, device)``
answers *before* anything is allocated whether the kernel can run there and,
if not, why.  Some limits are only known to PyTorch at dispatch time; those
surface as :class:`~attnperf.errors.KernelUnavailableError` from the call.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Tuple

from .errors import UnknownNameError
from .shapes import Problem

Availability = Tuple[bool, str]


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    name: str
    fn: Callable
    family: str
    description: str
    check: Callable[[Problem, str], Availability]
    # Extra bytes of scratch memory beyond Q, K, V, O (for the memory estimate).
    workspace_bytes: Callable[[Problem], int] = lambda p: 0
    # Optional: which backend actually ran (default dispatch only).
    provenance: Optional[Callable] = None


class Registry:
    def __init__(self) -> None:
        self._kernels: Dict[str, KernelSpec] = {}

    def register(self, spec: KernelSpec) -> KernelSpec:
        if spec.name in self._kernels:
            raise ValueError(f"kernel {spec.name!r} registered twice")
        self._kernels[spec.name] = spec
        return spec

    def get(self, name: str) -> KernelSpec:
        if name not in self._kernels:
            raise UnknownNameError(
                f"unknown kernel {name!r}; allowed: {', '.join(self.names())}")
        return self._kernels[name]

    def names(self) -> List[str]:
        return list(self._kernels)

    def availability(self, name: str, problem: Problem, device: str) -> Availability:
        return self.get(name).check(problem, device)


REGISTRY = Registry()

# Old names that must keep resolving (history keys are never renamed).
ALIASES = {"pytorch_sdpa": "sdpa"}  # the seed's kernel_name


def canonical_name(name: str) -> str:
    return ALIASES.get(name, name)


def _load_builtin() -> None:
    from .kernels import naive, sdpa, tiled  # noqa: F401  (they register themselves)


def get(name: str) -> KernelSpec:
    _load_builtin()
    return REGISTRY.get(canonical_name(name))


def names() -> List[str]:
    _load_builtin()
    return REGISTRY.names()
