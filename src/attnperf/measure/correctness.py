"""Correctness against a float64 reference, with per-dtype tolerances.

The reference is exact attention in float64 on the same device, computed a few
(batch, head) slices at a time so it fits next to the kernel's own memory.
A result passes when nothing is NaN/Inf, the relative error
``||out - ref|| / ||ref||`` is under the dtype's tolerance, and no single
element is off by more than ``max_abs_factor`` times that tolerance (relative to
``max|ref|``), which catches a wrong tile that a norm would average away.

The reference is computed from the inputs *before* the kernel sees them, and
the inputs are compared with saved copies after the call: a kernel that
zeroes ``q`` in place must not be judged against attention of the zeros it
wrote (judged that way, such a kernel would pass).

Training passes (``bwd``, ``fwd+bwd``) are judged on dQ, dK and dV too
(:func:`reference_grads`, :func:`verify_grads`): autograd through the same
float64 reference attention, from float64 copies of the inputs and of the dO
drawn (fixed random generator state) before the kernel runs, each gradient judged
like an output with the same figures and rule against
:data:`~attnperf.model.problem.GRAD_TOLERANCES` (looser than the forward's; the
comment there says why).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch

from ..kernels.spec import causal_mask
from ..model.problem import GRAD_TOLERANCES, MAX_ABS_FACTOR, TOLERANCES, Problem, precision_key
from ..model.records import Correctness

_REF_CHUNK_BYTES = 1 << 30


def _chunks(q: torch.Tensor, problem: Problem, bytes_per_score: int
            ) -> Iterator[tuple[int, int, int, torch.Tensor]]:
    """(batch, first head, last head + 1, K/V head index) slices of at most ~1 GiB of scores."""
    b, h, sq, _ = q.shape
    per_head = sq * problem.seq_kv * bytes_per_score
    heads_per_chunk = max(1, _REF_CHUNK_BYTES // max(per_head, 1))
    for bi in range(b):
        for h0 in range(0, h, heads_per_chunk):
            h1 = min(h, h0 + heads_per_chunk)
            yield bi, h0, h1, torch.arange(h0, h1, device=q.device) // problem.gqa_group


def _attention64(qs: torch.Tensor, ks: torch.Tensor, vs: torch.Tensor,
                 mask: torch.Tensor | None, scale: float) -> torch.Tensor:
    s = torch.matmul(qs, ks.transpose(-2, -1)) * scale
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.matmul(torch.softmax(s, dim=-1), vs)


def _mask(q: torch.Tensor, problem: Problem) -> torch.Tensor | None:
    return causal_mask(q.shape[2], problem.seq_kv, q.device) if problem.causal else None


def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              problem: Problem) -> torch.Tensor:
    """Exact attention in float64 (on the inputs' device), chunked over B*H."""
    out = torch.empty(q.shape, dtype=torch.float64, device=q.device)
    mask, scale = _mask(q, problem), 1.0 / math.sqrt(q.shape[-1])
    with torch.no_grad():
        for bi, h0, h1, kv_idx in _chunks(q, problem, 8 * 3):
            out[bi, h0:h1] = _attention64(
                q[bi, h0:h1].double(),
                k[bi].index_select(0, kv_idx).double(),
                v[bi].index_select(0, kv_idx).double(),
                mask,
                scale,
            )
    return out


def reference_grads(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dout: torch.Tensor,
                    problem: Problem
                    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The float64 output and (dQ, dK, dV) of ``out`` for the cotangent ``dout``:
    autograd through :func:`reference`'s attention, chunked over B*H (a K/V head's
    gradient sums over its GQA group's query heads).  Reads ``q``, ``k``, ``v``
    and ``dout`` only (their float64 copies carry the autograd graph)."""
    out = torch.empty(q.shape, dtype=torch.float64, device=q.device)
    dq = torch.empty(q.shape, dtype=torch.float64, device=q.device)
    dk = torch.zeros(k.shape, dtype=torch.float64, device=q.device)
    dv = torch.zeros(v.shape, dtype=torch.float64, device=q.device)
    mask, scale = _mask(q, problem), 1.0 / math.sqrt(q.shape[-1])
    with torch.enable_grad():
        for bi, h0, h1, kv_idx in _chunks(q, problem, 8 * 6):  # scores, probs and their grads
            # only the K/V heads this chunk's query heads read (a contiguous range)
            kv0, kv1 = h0 // problem.gqa_group, (h1 - 1) // problem.gqa_group + 1
            qs = q[bi, h0:h1].detach().double().requires_grad_(True)
            ks = k[bi, kv0:kv1].detach().double().requires_grad_(True)
            vs = v[bi, kv0:kv1].detach().double().requires_grad_(True)
            o = _attention64(qs, ks.index_select(0, kv_idx - kv0), vs.index_select(0, kv_idx - kv0),
                             mask, scale)
            gq, gk, gv = torch.autograd.grad(o, (qs, ks, vs), dout[bi, h0:h1].detach().double())
            out[bi, h0:h1] = o.detach()
            dq[bi, h0:h1] = gq
            dk[bi, kv0:kv1] += gk
            dv[bi, kv0:kv1] += gv
    return out, (dq, dk, dv)


def compare(out: torch.Tensor, ref: torch.Tensor, problem: Problem,
            tf32: bool = False, tolerance: float | None = None,
            tolerances: dict[str, float] = TOLERANCES) -> Correctness:
    """Error figures of ``out`` against the float64 ``ref`` (``tolerances``: the
    default bound per precision key, :data:`TOLERANCES` for outputs)."""
    key = precision_key(problem.dtype, tf32)
    tol = tolerances[key] if tolerance is None else tolerance
    o = out.detach().double()
    finite = torch.isfinite(o)
    nonfinite = int((~finite).sum().item())
    diff = torch.where(finite, o - ref, torch.zeros_like(ref))
    ref_norm = float(torch.linalg.vector_norm(ref).item()) or 1.0
    rel = float(torch.linalg.vector_norm(diff).item()) / ref_norm
    max_abs = float(diff.abs().max().item()) if diff.numel() else 0.0
    mean_abs = float(diff.abs().mean().item()) if diff.numel() else 0.0
    oc = torch.where(finite, o, torch.zeros_like(o)).flatten()
    rc = ref.flatten()
    if oc.numel() > 1 and float(oc.std()) > 0 and float(rc.std()) > 0:
        corr = float(torch.corrcoef(torch.stack([oc, rc]))[0, 1].item())
    else:
        corr = 1.0 if torch.equal(oc, rc) else 0.0
    ref_max = float(ref.abs().max().item()) if ref.numel() else 0.0
    passed = (nonfinite == 0 and rel <= tol
              and max_abs <= MAX_ABS_FACTOR * tol * max(ref_max, 1e-30))
    if nonfinite:
        rel = max_abs = mean_abs = float("nan")
    return Correctness(passed=bool(passed), max_abs_error=max_abs, mean_abs_error=mean_abs,
                       rel_error=rel, correlation=corr, nonfinite=nonfinite,
                       tolerance=tol, tolerance_key=key)


INPUT_NAMES = ("q", "k", "v", "dout")
GRAD_NAMES = ("dq", "dk", "dv")


def modified_inputs(inputs: Sequence[torch.Tensor], saved: Sequence[torch.Tensor]) -> list[str]:
    """Names of the inputs that differ (bit for bit) from their saved copies."""
    return [name for name, now, before in zip(INPUT_NAMES, inputs, saved, strict=False)
            if not torch.equal(now, before)]


def verify(out: object, ref: torch.Tensor, problem: Problem, tf32: bool = False,
           modified: Sequence[str] = (),
           tolerances: dict[str, float] | None = None) -> Correctness:
    """Judge one output against the float64 ``ref``; modified inputs fail it.
    ``tolerances`` overrides :data:`TOLERANCES` per precision key (project config).

    Raises TypeError/ValueError for an output that is not a tensor of the query's
    shape, of the problem's dtype and on the inputs' device (the kernel is broken, not
    wrong: the session records an error).  A float64 result for a float32 problem
    is not a float32 kernel's result, however close its numbers.
    """
    tensor = _check_shape(out, ref, "kernel returned", dtype=problem.dtype)
    tol = (tolerances or {}).get(precision_key(problem.dtype, tf32))
    c = compare(tensor, ref, problem, tf32=tf32, tolerance=tol)
    if modified:
        c.modified_inputs = list(modified)
        c.passed = False
    return c


def _check_shape(out: object, ref: torch.Tensor, what: str, like: str = "the shape of q",
                 dtype: str | None = None) -> torch.Tensor:
    """``out`` must be a tensor shaped like ``ref``, on ``ref``'s device (the inputs'), of
    ``dtype`` (the problem's) when given: output dtype, shape and device are part of
    correctness.  Returns ``out``, checked."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"{what} a {type(out).__name__}, expected a tensor shaped {tuple(ref.shape)}"
        )
    if tuple(out.shape) != tuple(ref.shape):
        raise ValueError(f"{what} shape {tuple(out.shape)}, expected {tuple(ref.shape)} ({like})")
    if dtype is not None and out.dtype != getattr(torch, dtype):
        raise TypeError(f"{what} dtype {str(out.dtype).replace('torch.', '')}, expected {dtype} "
                        "(the problem's dtype)")
    if out.device != ref.device:
        raise ValueError(
            f"{what} a tensor on {out.device}, expected {ref.device} (the inputs' device)"
        )
    return out


def verify_grads(grads: Sequence[torch.Tensor | None], refs: Sequence[torch.Tensor],
                 problem: Problem, tf32: bool = False,
                 modified: Sequence[str] = ()) -> dict[str, Correctness]:
    """Judge (dQ, dK, dV) against the float64 ``refs`` of :func:`reference_grads`:
    one :class:`Correctness` per name of :data:`GRAD_NAMES`, against
    :data:`GRAD_TOLERANCES`; modified inputs fail each.  A missing (None) or
    misshapen gradient raises TypeError/ValueError (the kernel is broken)."""
    out: dict[str, Correctness] = {}
    for name, g, ref in zip(GRAD_NAMES, grads, refs, strict=False):
        what = f"the backward returned {name} as" if g is None else f"{name} has"
        grad = _check_shape(g, ref, what, like=f"the shape of {name[1]}", dtype=problem.dtype)
        c = compare(grad, ref, problem, tf32=tf32, tolerances=GRAD_TOLERANCES)
        if modified:
            c.modified_inputs, c.passed = list(modified), False
        out[name] = c
    return out


def check(fn: Callable[..., object], q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
          problem: Problem, tf32: bool = False,
          tolerances: dict[str, float] | None = None) -> Correctness:
    """Run ``fn(q, k, v, problem)`` once and judge its output against the float64
    reference of the inputs as they were before the call; inputs it changed fail it."""
    ref = reference(q, k, v, problem)
    saved = [x.clone() for x in (q, k, v)]
    out = fn(q, k, v, problem)
    return verify(out, ref, problem, tf32=tf32, modified=modified_inputs((q, k, v), saved),
                  tolerances=tolerances)
