"""FlashAttention forward and backward written in Triton (attnperf's in-repo GPU kernel).

Public API
----------
``flash_attention(q, k, v, causal=False, scale=None)``
    q: (B, Hq, Sq, D); k, v: (B, Hkv, Sk, D) with ``Hq % Hkv == 0`` (GQA/MQA),
    D in {64, 128}, bf16 or fp16.  Differentiable (``torch.autograd.Function``).
    ``causal=True`` uses PyTorch's *top-left* convention: query ``i`` sees keys
    ``0..i`` (``F.scaled_dot_product_attention(is_causal=True)``), also when
    ``Sq != Sk``.  ``scale`` defaults to ``1/sqrt(D)``.
``unsupported_reason(dtype, head_dim, device_type, compute_capability)``
    ``None`` when the kernel can run, else a one-line reason.
``TRITON_IMPORT_ERROR``
    ``None`` when Triton imported, else why it did not (the package still imports).
``KERNELS``
    The ``triton_flash`` kernel spec, found by the registry through the
    ``attnperf.kernels`` entry point ``attnperf.kernels.triton_flash:KERNELS``.

Where things live
-----------------
:mod:`.config`    the Triton import, what is supported, tiles, pipelining and autotuning;
:mod:`.forward`   the forward kernel: online softmax in the log2 domain, ragged lengths,
                  causal block skipping, GQA;
:mod:`.backward`  the backward kernels: ``Delta``, dK/dV per K/V block, dQ per query block;
:mod:`.launch`    input checks, grids and the autograd function.

*FLOP model* (what benchmark TF/s figures divide by): forward
``4 * B * Hq * Sq * Sk * D`` (two matmuls, 2 FLOPs per multiply-add); causal
counts only the visible (query, key) pairs, ``Sq*(Sq+1)/2`` for ``Sq == Sk``,
i.e. roughly half.  Backward is counted as ``2.5x`` the forward (five matmuls
against two: ``QK^T`` recomputed, ``dO V^T``, ``P^T dO``, ``dS^T Q``, ``dS K``).

Whether the kernels are built for Triton's CPU interpreter (``TRITON_INTERPRET=1``)
is decided when they are defined; ``importlib.reload`` of this package defines
them again (the interpreter tests rely on it).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

import torch

# A reload of the package rebuilds the kernel modules too, in dependency order.
for _name in ("config", "forward", "backward", "launch"):
    if f"{__name__}.{_name}" in sys.modules:
        importlib.reload(sys.modules[f"{__name__}.{_name}"])

from .config import _INTERPRETED, TRITON_IMPORT_ERROR, unsupported_reason  # noqa: E402,F401
from .launch import flash_attention  # noqa: E402

if TYPE_CHECKING:
    from ...model.problem import Problem
    from ..spec import KernelSpec

__all__ = ["flash_attention", "unsupported_reason", "TRITON_IMPORT_ERROR", "KERNELS"]


# ---- registration (the registry finds KERNELS by reference, like every kernel) ----
def _supports(problem: Problem, device: str) -> str | None:
    cc = (
        torch.cuda.get_device_capability()
        if device == "cuda" and torch.cuda.is_available()
        else None
    )
    return unsupported_reason(getattr(torch, problem.dtype), problem.head_dim, device, cc)


def _kernels() -> list[KernelSpec]:
    from ..spec import KernelSpec

    return [
        KernelSpec(
            name="triton_flash",
            fn=flash_attention,
            family="in-repo",
            supports=_supports,
            dtypes=("float16", "bfloat16"),
            passes=("fwd", "bwd", "fwd+bwd"),
            description=("in-repo Triton FlashAttention (online softmax, autotuned; "
                         "forward + backward)"),
        )
    ]


KERNELS = _kernels()
