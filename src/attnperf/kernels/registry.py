"""The kernel registry: every kernel attnperf can measure, by name.

Kernels come from ``module:attribute`` references, each naming a
:class:`~attnperf.kernels.spec.KernelSpec` or a list of them.  The built-ins
are such references (:data:`BUILTINS`); the registry imports them on first
use, and kernel modules never import the registry (no import circle).

Extra references load with :meth:`Registry.load` or from the environment
variable ``ATTNPERF_KERNEL_MODULES`` (comma-separated ``module:attribute``);
:meth:`Registry.references` lists them, so a measuring worker process can load
the same kernels by name.
"""

from __future__ import annotations

import importlib
import os
from typing import Dict, List

from ..errors import UnknownNameError
from .spec import KernelSpec

BUILTINS = (
    "attnperf.kernels.sdpa:KERNELS",
    "attnperf.kernels.naive:KERNELS",
    "attnperf.kernels.tiled:KERNELS",
)

ENV_MODULES = "ATTNPERF_KERNEL_MODULES"

# Old names that must keep resolving (history keys are never renamed).
ALIASES = {"pytorch_sdpa": "sdpa"}  # the seed's kernel_name


def canonical_name(name: str) -> str:
    return ALIASES.get(name, name)


def load_reference(ref: str) -> List[KernelSpec]:
    """The spec(s) that ``module:attribute`` names."""
    module, _, attr = ref.partition(":")
    obj = getattr(importlib.import_module(module), attr)
    specs = list(obj) if isinstance(obj, (list, tuple)) else [obj]
    for s in specs:
        if not isinstance(s, KernelSpec):
            raise TypeError(f"{ref} holds a {type(s).__name__}, expected a KernelSpec")
    return specs


class Registry:
    def __init__(self) -> None:
        self._kernels: Dict[str, KernelSpec] = {}
        self._loaded = False
        self._references: List[str] = []

    def register(self, spec: KernelSpec) -> KernelSpec:
        if spec.name in self._kernels:
            raise ValueError(f"kernel {spec.name!r} registered twice")
        self._kernels[spec.name] = spec
        return spec

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for ref in BUILTINS:
            for spec in load_reference(ref):
                self.register(spec)
        for ref in filter(None, (r.strip() for r in os.environ.get(ENV_MODULES, "").split(","))):
            self.load(ref)

    def load(self, ref: str) -> List[KernelSpec]:
        """Register the spec(s) that ``module:attribute`` names (once per reference)."""
        self._load()
        if ref in self._references:
            return []
        try:
            specs = load_reference(ref)
        except (ImportError, AttributeError, TypeError, ValueError) as exc:
            raise UnknownNameError(f"kernel reference {ref!r} cannot be loaded "
                                   f"({type(exc).__name__}: {exc}); expected module:attribute "
                                   "naming a KernelSpec or a list of them") from None
        for spec in specs:
            self.register(spec)
        self._references.append(ref)
        return specs

    def references(self) -> List[str]:
        """The extra ``module:attribute`` references loaded (not the built-ins)."""
        self._load()
        return list(self._references)

    def get(self, name: str) -> KernelSpec:
        self._load()
        name = canonical_name(name)
        if name not in self._kernels:
            raise UnknownNameError(
                f"unknown kernel {name!r}; allowed: {', '.join(self.names())}")
        return self._kernels[name]

    def names(self) -> List[str]:
        self._load()
        return list(self._kernels)


REGISTRY = Registry()


def get(name: str) -> KernelSpec:
    return REGISTRY.get(name)


def names() -> List[str]:
    return REGISTRY.names()
