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
wrote (it once passed that way, rel_error 1.5e-07).
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch

from ..kernels.spec import causal_mask
from ..model.problem import MAX_ABS_FACTOR, TOLERANCES, Problem, precision_key
from ..model.records import Correctness

_REF_CHUNK_BYTES = 1 << 30


def reference(q, k, v, problem: Problem) -> torch.Tensor:
    """Exact attention in float64 (on the inputs' device), chunked over B*H."""
    b, h, sq, d = q.shape
    g, sk = problem.gqa_group, problem.seq_kv
    out = torch.empty((b, h, sq, d), dtype=torch.float64, device=q.device)
    per_head = sq * sk * 8 * 3
    heads_per_chunk = max(1, _REF_CHUNK_BYTES // max(per_head, 1))
    mask = None
    if problem.causal:
        mask = causal_mask(sq, sk, q.device)
    scale = 1.0 / math.sqrt(d)
    for bi in range(b):
        for h0 in range(0, h, heads_per_chunk):
            h1 = min(h, h0 + heads_per_chunk)
            kv_idx = torch.arange(h0, h1, device=q.device) // g
            qs = q[bi, h0:h1].double()
            ks = k[bi].index_select(0, kv_idx).double()
            vs = v[bi].index_select(0, kv_idx).double()
            s = torch.matmul(qs, ks.transpose(-2, -1)) * scale
            if mask is not None:
                s.masked_fill_(~mask, float("-inf"))
            out[bi, h0:h1] = torch.matmul(torch.softmax(s, dim=-1), vs)
    return out


def compare(out: torch.Tensor, ref: torch.Tensor, problem: Problem,
            tf32: bool = False, tolerance: Optional[float] = None) -> Correctness:
    """Error figures of ``out`` against the float64 ``ref``."""
    key = precision_key(problem.dtype, tf32)
    tol = TOLERANCES[key] if tolerance is None else tolerance
    o = out.double()
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


INPUT_NAMES = ("q", "k", "v")


def modified_inputs(inputs: Sequence[torch.Tensor], saved: Sequence[torch.Tensor]) -> List[str]:
    """Names of the inputs that differ (bit for bit) from their saved copies."""
    return [name for name, now, before in zip(INPUT_NAMES, inputs, saved)
            if not torch.equal(now, before)]


def verify(out, ref: torch.Tensor, problem: Problem, tf32: bool = False,
           modified: Sequence[str] = (), tolerances: Optional[dict] = None) -> Correctness:
    """Judge one output against the float64 ``ref``; modified inputs fail it.
    ``tolerances`` overrides :data:`TOLERANCES` per precision key (project config).

    Raises TypeError/ValueError for an output that is not a tensor of the query's
    shape (the kernel is broken, not wrong: the session records an error).
    """
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"kernel returned a {type(out).__name__}, expected a tensor shaped like q "
                        f"{tuple(ref.shape)}")
    if tuple(out.shape) != tuple(ref.shape):
        raise ValueError(f"kernel returned shape {tuple(out.shape)}, expected {tuple(ref.shape)} "
                         "(the shape of q)")
    tol = (tolerances or {}).get(precision_key(problem.dtype, tf32))
    c = compare(out, ref, problem, tf32=tf32, tolerance=tol)
    if modified:
        c.modified_inputs = list(modified)
        c.passed = False
    return c


def check(fn, q, k, v, problem: Problem, tf32: bool = False,
          tolerances: Optional[dict] = None) -> Correctness:
    """Run ``fn(q, k, v, problem)`` once and judge its output against the float64
    reference of the inputs as they were before the call; inputs it changed fail it."""
    ref = reference(q, k, v, problem)
    saved = [x.clone() for x in (q, k, v)]
    out = fn(q, k, v, problem)
    return verify(out, ref, problem, tf32=tf32, modified=modified_inputs((q, k, v), saved),
                  tolerances=tolerances)
