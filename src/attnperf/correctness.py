"""Correctness against a float64 reference, with per-dtype tolerances.

The reference is exact attention in float64 on the same device, computed a few
(batch, head) slices at a time so it fits next to the kernel's own memory.
A result passes when nothing is NaN/Inf, the relative error
``||out - ref|| / ||ref||`` is under the dtype's tolerance, and no single
element is off by more than ``max_abs_factor`` times that tolerance (relative to
``max|ref|``), which catches a wrong tile that a norm would average away.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import torch

from .inputs import causal_mask
from .shapes import Problem

# Relative Frobenius-norm error a GPU expert accepts for attention outputs of
# standard-normal inputs.  Storage rounding alone costs ~eps/2 per element
# (bf16 eps = 7.8e-3, fp16 eps = 9.8e-4); fused kernels add accumulation-order
# differences.  TF32 rounds matmul operands to 10 mantissa bits (~5e-4).
TOLERANCES = {
    "float64": 1e-10,
    "float32": 1e-4,
    "tf32": 3e-3,
    "float16": 5e-3,
    "bfloat16": 2e-2,
}
MAX_ABS_FACTOR = 10.0
_REF_CHUNK_BYTES = 1 << 30


@dataclasses.dataclass
class Correctness:
    passed: bool
    max_abs_error: float
    mean_abs_error: float
    rel_error: float
    correlation: float
    nonfinite: int
    tolerance: float
    tolerance_key: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        return (f"rel_error={self.rel_error:.3e} (tolerance {self.tolerance:.1e}, "
                f"{self.tolerance_key}), max_abs_error={self.max_abs_error:.3e}, "
                f"nonfinite={self.nonfinite}")


def tolerance_key(problem: Problem, tf32: bool = False) -> str:
    if problem.dtype == "float32" and tf32:
        return "tf32"
    return problem.dtype


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
    key = tolerance_key(problem, tf32)
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


def check(fn, q, k, v, problem: Problem, tf32: bool = False) -> Correctness:
    """Run ``fn`` once on these inputs and compare its output to the float64 reference."""
    out = fn(q, k, v, problem)
    if tuple(out.shape) != tuple(q.shape):
        raise ValueError(f"kernel returned shape {tuple(out.shape)}, expected {tuple(q.shape)}")
    return compare(out, reference(q, k, v, problem), problem, tf32=tf32)
