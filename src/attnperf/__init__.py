"""attnperf: truthful measurement and history of attention kernels.

The public API is what ``__all__`` names; everything else is private by
convention.  Names resolve lazily, so ``import attnperf`` stays cheap (no
torch until a measuring name is used).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# Bumped whenever the public measurement API used by benchmarks/ changes, so
# the asv suite from HEAD can feature-detect older commits during `asv find`.
# 2: the layered package (attnperf.asv.suite replaces attnperf.suite).
API_VERSION = 2

_API = {
    "Problem": "attnperf.model.problem",
    "KernelSpec": "attnperf.kernels.spec",
    "kernel": "attnperf.kernels.spec",
    "KERNEL_API_VERSION": "attnperf.kernels.spec",
    "add_kernel_reference": ("attnperf.kernels.registry", "add_reference"),
    "Session": "attnperf.measure.session",
    "Measurement": "attnperf.model.records",
    "get_kernel": ("attnperf.kernels.registry", "get"),
    "kernel_names": ("attnperf.kernels.registry", "names"),
    "load_report": ("attnperf.io.report", "read_results"),
    "AttnperfError": "attnperf.errors",
}
__all__ = ["__version__", "API_VERSION", *_API]


def __getattr__(name: str) -> Any:
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'attnperf' has no attribute {name!r}")
    module, attr = target if isinstance(target, tuple) else (target, name)
    return getattr(importlib.import_module(module), attr)
