"""PyTorch ``scaled_dot_product_attention``: default dispatch and each backend forced.

Forcing uses ``torch.nn.attention.sdpa_kernel``.  A backend that PyTorch
refuses for a given problem (dtype, head_dim, GQA, device) raises
:class:`KernelUnavailableError` carrying PyTorch's own reasons, so the config is
recorded as unavailable rather than crashing the sweep.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import KernelUnavailableError
from ..model.problem import PASSES, Problem
from .spec import KernelSpec, kv_group

try:  # torch >= 2.3
    from torch.nn.attention import SDPBackend, sdpa_kernel
except ImportError:  # pragma: no cover - very old torch
    SDPBackend = None  # type: ignore[assignment, misc]  # absent: the kernels say so
    sdpa_kernel = None  # type: ignore[assignment]

# backend tag -> SDPBackend member name
BACKENDS = {
    "math": "MATH",
    "flash": "FLASH_ATTENTION",
    "efficient": "EFFICIENT_ATTENTION",
    "cudnn": "CUDNN_ATTENTION",
}
_CUDA_ONLY = {"efficient", "cudnn"}


def _supports_enable_gqa() -> bool:
    return tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 5)


def _call(q: Tensor, k: Tensor, v: Tensor, causal: bool, scale: float) -> Tensor:
    g = kv_group(q, k)
    if g > 1:
        if _supports_enable_gqa():
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale,
                                                  enable_gqa=True)
        k = k.repeat_interleave(g, dim=1)
        v = v.repeat_interleave(g, dim=1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)


def _describe(q: Tensor, k: Tensor, causal: bool) -> str:
    return (f"q {tuple(q.shape)} k/v {tuple(k.shape)} {str(q.dtype).replace('torch.', '')}"
            f"{' causal' if causal else ''}")


def _forced(tag: str) -> Callable[..., Tensor]:
    member = BACKENDS[tag]

    def run(q: Tensor, k: Tensor, v: Tensor, *, causal: bool, scale: float) -> Tensor:
        backend = getattr(SDPBackend, member)
        try:
            # The timed path: nothing but the forcing context and the call.
            with sdpa_kernel(backend):
                return _call(q, k, v, causal, scale)
        except RuntimeError as exc:
            if "No available kernel" not in str(exc) and "No viable backend" not in str(exc):
                raise
        # Refused: call again only to collect PyTorch's reasons (its warnings).
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with sdpa_kernel(backend):
                    _call(q, k, v, causal, scale)
            except RuntimeError as exc:
                why = _reasons(caught) or str(exc)
            else:  # pragma: no cover - refused once, accepted now: report the refusal
                why = "refused on the first call"
        raise KernelUnavailableError(
            f"PyTorch refuses sdpa backend {tag} for {_describe(q, k, causal)} on "
            f"{q.device.type}: {why}")
    run.__name__ = f"sdpa_{tag}"
    return run


def _reasons(caught: list[warnings.WarningMessage]) -> str:
    """PyTorch's refusal warnings, minus source locations and our own forcing."""
    out = []
    for w in caught:
        text = re.sub(r"\(Triggered internally at [^)]*\)", "", str(w.message))
        text = " ".join(text.split()).strip()
        if not text or text.endswith("because:") or "runtime disabled" in text:
            continue
        out.append(text)
    return "; ".join(dict.fromkeys(out))


def _backend_present(tag: str) -> bool:
    return SDPBackend is not None and hasattr(SDPBackend, BACKENDS[tag])


def _check_forced(tag: str) -> Callable[[Problem, str], str | None]:
    def supports(problem: Problem, device: str) -> str | None:
        if not _backend_present(tag):
            return f"torch {torch.__version__} has no SDPBackend.{BACKENDS[tag]}"
        if tag == "flash" and device == "cuda" and problem.dtype == "float32":
            return "flash attention on CUDA needs float16 or bfloat16 (got float32)"
        if tag == "cudnn" and device == "cuda" and problem.dtype == "float32":
            return "cuDNN attention needs float16 or bfloat16 (got float32)"
        return None
    return supports


def _check_default(problem: Problem) -> str | None:
    if SDPBackend is None:
        return f"torch {torch.__version__} lacks torch.nn.attention"
    return None


def _math_workspace(p: Problem) -> int:
    # Scores, probabilities (and the float upcast PyTorch makes for softmax).
    return p.batch * p.heads * p.seq_q * p.seq_kv * (2 * p.element_size + 4)


def dispatched_backend(q: Tensor, k: Tensor, v: Tensor, *, causal: bool,
                       scale: float) -> str | None:
    """Which backend PyTorch's default dispatch picks for these tensors.

    Uses ``torch._fused_sdp_choice``, the dispatcher's own selection function
    (what ``scaled_dot_product_attention`` calls).  Returns a tag of
    :data:`BACKENDS` or ``None`` if this PyTorch cannot say.
    """
    choose = getattr(torch, "_fused_sdp_choice", None)
    if choose is None or SDPBackend is None:
        return None
    try:
        kwargs: dict[str, bool | float] = {"is_causal": causal, "scale": scale}
        if kv_group(q, k) > 1 and _supports_enable_gqa():
            kwargs["enable_gqa"] = True
        index = int(choose(q, k, v, **kwargs))
    except (RuntimeError, TypeError):
        return None
    for tag, member in BACKENDS.items():
        if hasattr(SDPBackend, member) and int(getattr(SDPBackend, member).value) == index:
            return tag
    return None


def _default(q: Tensor, k: Tensor, v: Tensor, *, causal: bool, scale: float) -> Tensor:
    return _call(q, k, v, causal, scale)


KERNELS = [KernelSpec(
    name="sdpa", fn=_default, family="sdpa", supports=_check_default,
    description="torch scaled_dot_product_attention, default dispatch",
    provenance=dispatched_backend, passes=PASSES)] + [KernelSpec(
        name=f"sdpa_{tag}", fn=_forced(tag), family="sdpa", supports=_check_forced(tag),
        devices=("cuda",) if tag in _CUDA_ONLY else ("cpu", "cuda"),
        description=f"torch scaled_dot_product_attention forced to the {tag} backend",
        workspace_bytes=_math_workspace if tag == "math" else None, passes=PASSES)
    for tag in BACKENDS]

