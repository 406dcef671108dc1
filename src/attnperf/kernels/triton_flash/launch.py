"""Host side: input checks, the launches, and the autograd function behind ``flash_attention``."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from . import backward, forward
from .config import (
    _INTERPRETED,
    LOG2E,
    TRITON_IMPORT_ERROR,
    TensorDescriptor,
    _bucket,
    _capability,
    _cdiv,
    unsupported_reason,
)


def _check_inputs(q: Tensor, k: Tensor, v: Tensor, allow_fp32: bool) -> None:
    if TRITON_IMPORT_ERROR is not None:
        raise RuntimeError(f"Triton is unavailable: {TRITON_IMPORT_ERROR}")
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be 4-D (B, H, S, D)")
    b, hq, _, d = q.shape
    bk, hkv, sk, dk = k.shape
    if v.shape != k.shape or bk != b or dk != d:
        raise ValueError(
            f"shape mismatch: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if hq % hkv:
        raise ValueError(f"query heads {hq} not a multiple of kv heads {hkv}")
    if sk < 1 or q.shape[2] < 1:
        raise ValueError("empty sequence")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError("q, k, v must share a dtype")
    cc = _capability(q.device) if q.device.type == "cuda" else None
    reason = unsupported_reason(
        torch.bfloat16 if (allow_fp32 and q.dtype == torch.float32) else q.dtype,
        d,
        q.device.type,
        cc,
    )
    if reason is not None:
        raise ValueError(reason)


def _last_dim_contiguous(t: Tensor) -> Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def _strides(t: Tensor) -> tuple[int, int, int]:
    return t.stride(0), t.stride(1), t.stride(2)


def _want_tma(q: Tensor, k: Tensor, v: Tensor, use_tma: bool) -> bool:
    # Off by default: on an H100 the TMA loads measured slower than pointer loads.
    if not use_tma:
        return False
    if not (k.is_contiguous() and v.is_contiguous()):
        return False
    return _INTERPRETED or (q.is_cuda and _capability(q.device) >= (9, 0))


def _kv_descriptor(t: Tensor) -> Any:  # a triton TensorDescriptor (untyped)
    # 2-D (B*Hkv*Sk, D) view; the block shape is set per config by _size_kv_descriptors.
    rows = t.shape[0] * t.shape[1] * t.shape[2]
    return TensorDescriptor(t, [rows, t.shape[3]], [t.shape[3], 1], [16, t.shape[3]])


def _fwd(q: Tensor, k: Tensor, v: Tensor, causal: bool, scale: float, shift: int,
         drop_last: bool, use_tma: bool = False) -> tuple[Tensor, Tensor]:
    b, hq, sq, d = q.shape
    hkv, sk = k.shape[1], k.shape[2]
    use_tma = _want_tma(q, k, v, use_tma)
    k_desc: Any
    v_desc: Any
    k_desc, v_desc = (_kv_descriptor(k), _kv_descriptor(v)) if use_tma else (k, v)
    o = torch.empty_like(q)
    lse = torch.empty((b * hq, sq), device=q.device, dtype=torch.float32)
    grid = lambda meta: (_cdiv(sq, meta["BLOCK_M"]), b * hq)  # noqa: E731
    forward._attn_fwd[grid](
        q,
        k,
        v,
        o,
        lse,
        k_desc,
        v_desc,
        *_strides(q),
        *_strides(k),
        *_strides(v),
        *_strides(o),
        hq,
        hq // hkv,
        sq,
        sk,
        scale * LOG2E,
        _bucket(sq),
        _bucket(sk),
        HEAD_DIM=d,
        CAUSAL=causal,
        SHIFT=shift,
        DROP_LAST=drop_last,
        USE_TMA=use_tma,
    )
    return o, lse


def _bwd(do: Tensor, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, causal: bool,
         scale: float, shift: int, drop_last: bool) -> tuple[Tensor, Tensor, Tensor]:
    b, hq, sq, d = q.shape
    hkv, sk = k.shape[1], k.shape[2]
    do = _last_dim_contiguous(do)
    delta = torch.empty_like(lse)
    pre_block = 64
    backward._bwd_preprocess[(_cdiv(sq, pre_block), b * hq)](
        o, do, delta, *_strides(o), *_strides(do), hq, sq, HEAD_DIM=d, BLOCK_M=pre_block)
    dq = torch.empty_like(q)
    dk = torch.empty_like(k)
    dv = torch.empty_like(v)
    qk_scale = scale * LOG2E
    grid_kv = lambda meta: (_cdiv(sk, meta["BLOCK_N"]), b * hkv)  # noqa: E731
    backward._attn_bwd_dkdv[grid_kv](q, k, v, do, lse, delta, dk, dv,
                            *_strides(q), *_strides(k), *_strides(v), *_strides(do),
                            *_strides(dk), *_strides(dv),
                            hq, hkv, hq // hkv, sq, sk, qk_scale, scale, _bucket(sq), _bucket(sk),
                            HEAD_DIM=d, CAUSAL=causal, SHIFT=shift, DROP_LAST=drop_last)
    grid_q = lambda meta: (_cdiv(sq, meta["BLOCK_M"]), b * hq)  # noqa: E731
    backward._attn_bwd_dq[grid_q](q, k, v, do, lse, delta, dq,
                         *_strides(q), *_strides(k), *_strides(v), *_strides(do), *_strides(dq),
                         hq, hq // hkv, sq, sk, qk_scale, scale, _bucket(sq), _bucket(sk),
                         HEAD_DIM=d, CAUSAL=causal, SHIFT=shift, DROP_LAST=drop_last)
    return dq, dk, dv


class _FlashAttention(torch.autograd.Function):

    @staticmethod
    def forward(ctx: Any, q: Tensor, k: Tensor, v: Tensor, causal: bool, scale: float,
                shift: int, drop_last: bool, use_tma: bool) -> Tensor:
        o, lse = _fwd(q, k, v, causal, scale, shift, drop_last, use_tma)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.causal, ctx.scale, ctx.shift, ctx.drop_last = causal, scale, shift, drop_last
        return o

    @staticmethod
    def backward(ctx: Any, do: Tensor) -> tuple[Tensor | None, ...]:
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = _bwd(do, q, k, v, o, lse, ctx.causal, ctx.scale, ctx.shift, ctx.drop_last)
        return dq, dk, dv, None, None, None, None, None


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                    scale: float | None = None, *, _debug_scale_mult: float = 1.0,
                    _debug_drop_last_block: bool = False, _debug_causal_shift: int = 0,
                    _allow_fp32: bool = False, _use_tma: bool = False) -> torch.Tensor:
    """Scaled dot-product attention ``softmax(scale * Q K^T [+ causal mask]) V`` in Triton.

    q: (B, Hq, Sq, D); k, v: (B, Hkv, Sk, D), Hq % Hkv == 0; D in {64, 128};
    bf16/fp16.  Returns (B, Hq, Sq, D) in q's dtype.  Differentiable in q, k, v.

    The underscore keywords are for tests only: ``_debug_*`` inject known faults
    (scale multiplied, last K/V block skipped, causal boundary shifted) so the
    tests can show their checks catch them; ``_allow_fp32`` admits float32
    inputs (used by interpreter tests on CPU); ``_use_tma=True`` makes the
    forward load full K/V blocks through TMA descriptors (sm90+, contiguous
    K/V; experimental, off by default, see :mod:`.forward`).
    """
    _check_inputs(q, k, v, _allow_fp32)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    scale = float(scale) * float(_debug_scale_mult)
    q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    out: Tensor = _FlashAttention.apply(  # type: ignore[no-untyped-call]  # torch: untyped
        q, k, v, bool(causal), scale, int(_debug_causal_shift), bool(_debug_drop_last_block),
        _use_tma)
    return out

