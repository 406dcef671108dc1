"""Roofline model: pure functions of a problem, a time and a ceiling.

Forward FLOPs count the two matmuls, ``QK^T`` and ``PV``: 2 FLOPs per
multiply-add, ``2 * 2 * B * Hq * Sq * Sk * D`` = ``4 B Hq Sq Sk D``.  Causal
masks count exactly the visible (query, key) pairs under PyTorch's top-left
convention: ``sum_i min(i + 1, Sk)`` -- ``S (S + 1) / 2`` for a square problem,
not ``S^2 / 2``.  Softmax FLOPs are not counted (FlashAttention's convention).

Bytes are the fewest any kernel must move: Q, K, V read once, O written once
(K and V at their own head count, so GQA reads less).

Training passes (``Problem.mode``) scale the forward count exactly, causal and
GQA included (FlashAttention's convention): the backward recomputes
``S = QK^T`` and computes ``dV = P^T dO``, ``dP = dO V^T``, ``dQ = dS K`` and
``dK = dS^T Q`` -- five matmuls to the forward's two, **2.5x** the forward
FLOPs; ``fwd+bwd`` is **3.5x**.  Backward bytes, the fewest a FlashAttention-
style backward moves: Q, K, V, O and dO read once, the per-row log-sum-exp
read (fp32, one value per query row and head), dQ, dK and dV written once
(dK, dV at the K/V head count).  ``fwd+bwd`` is the forward's bytes plus the
log-sum-exp it writes for the backward, plus the backward's bytes (O and the
LSE go through memory between the two, as they do in every fused kernel pair).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .peaks import Peak
from .problem import Problem, precision_key

# Below this floor time a call is dominated by fixed launch / host overhead
# rather than by its bytes or FLOPs: a CUDA kernel launch costs a few us and a
# PyTorch op several us of dispatch; even back to back (CUDA graph) a kernel
# on a large GPU takes a few us to fill and drain, however little work it has.
# On a CPU, per-op dispatch and thread wake-up cost ~10-20 us.
LATENCY_FLOOR_S = {"cuda": 5e-6, "cpu": 20e-6}

# A kernel may not run faster than the roofs allow.  More than this factor above
# them (5 %: the spread of a ceiling measured on a quiet machine) means the roof
# is wrong -- measured under load, or not this kernel's roof -- never that the
# kernel is efficient beyond 100 %.
BEATEN_MARGIN = 1.05

REGIMES = ("latency-bound", "memory-bound", "compute-bound")
BOTTLENECK = {  # legacy single-config reports' `roofline.bottleneck` strings
    "latency-bound": "Latency (launch/host overhead)",
    "memory-bound": "Memory Bandwidth",
    "compute-bound": "Compute",
}


def causal_pairs(seq_q: int, seq_kv: int) -> int:
    """Visible (query, key) pairs under a top-left causal mask: sum_i min(i+1, Sk)."""
    full = min(seq_q, seq_kv)  # rows 0..full-1 see i+1 keys
    return full * (full + 1) // 2 + max(0, seq_q - seq_kv) * seq_kv


def attention_pairs(p: Problem) -> int:
    per_head = causal_pairs(p.seq_q, p.seq_kv) if p.causal else p.seq_q * p.seq_kv
    return p.batch * p.heads * per_head


# FLOPs of each pass in halves of the forward's (integers: the forward count is even).
PASS_FLOP_HALVES = {"fwd": 2, "bwd": 5, "fwd+bwd": 7}
LSE_BYTES = 4  # one fp32 log-sum-exp per query row and head


def forward_flops(p: Problem) -> int:
    """Forward FLOPs: 4 * D per visible (query, key) pair (whatever ``p.mode``)."""
    return 4 * p.head_dim * attention_pairs(p)


def flops(p: Problem) -> int:
    """FLOPs of ``p``'s pass: the forward's x1, x2.5 (bwd), x3.5 (fwd+bwd)."""
    return forward_flops(p) * PASS_FLOP_HALVES[p.mode] // 2


def bytes_moved(p: Problem) -> int:
    """Fwd: Q + K + V read once, O written once.  Bwd: Q, K, V, O, dO and the LSE
    read, dQ, dK, dV written.  Fwd+bwd: both, plus the LSE the forward writes."""
    q_like = p.batch * p.heads * p.seq_q * p.head_dim    # Q, O, dO, dQ each
    kv_like = p.batch * p.kv_heads * p.seq_kv * p.head_dim  # K, V, dK, dV each
    lse = LSE_BYTES * p.batch * p.heads * p.seq_q
    fwd = p.element_size * (2 * q_like + 2 * kv_like)
    bwd = p.element_size * (4 * q_like + 4 * kv_like) + lse
    return {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd + lse + bwd}[p.mode]


def arithmetic_intensity(p: Problem) -> float:
    return flops(p) / bytes_moved(p)


@dataclasses.dataclass(frozen=True)
class Ceiling:
    """The two roofs for one dtype on one device."""

    tflops: float
    bandwidth_gb_s: float
    source: str  # "measured" or "datasheet: ..."

    @property
    def ridge_point(self) -> float:
        """FLOP/byte at which the compute roof meets the memory roof."""
        return self.tflops * 1e12 / (self.bandwidth_gb_s * 1e9)


@dataclasses.dataclass(frozen=True)
class Roofline:
    flops: int
    bytes: int
    arithmetic_intensity: float
    ridge_point: float
    compute_floor_s: float
    memory_floor_s: float
    floor_s: float
    time_s: float
    achieved_tflops: float
    achieved_gb_s: float
    x_over_floor: float
    efficiency_pct: float
    regime: str
    bottleneck: str
    ceiling_tflops: float
    ceiling_gb_s: float
    ceiling_source: str
    recommendations: list[str]
    # Q, K, V and O together fit in the last-level cache: back-to-back device time
    # (CUDA graph, warm L2) can then run above the DRAM roof, x_over_floor < 1.
    cache_resident: bool = False
    # The kernel ran faster than a roof allows (by more than BEATEN_MARGIN; the
    # memory roof only where the cache does not explain it): efficiency_pct is
    # kept as measured but is not meaningful; ceiling_note says why and what to do.
    ceiling_beaten: bool = False
    ceiling_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["floor_ms"] = self.floor_s * 1e3
        return d


def floors(
    p: Problem, ceiling: Ceiling, work: tuple[int | None, int | None] = (None, None)
) -> tuple[float, float]:
    """(compute floor, memory floor) in seconds: FLOPs over the compute roof, bytes over the
    memory roof.  ``work``: a kernel's own (FLOPs, bytes), None where this model applies."""
    f, b = work_of(p, work)
    return f / (ceiling.tflops * 1e12), b / (ceiling.bandwidth_gb_s * 1e9)


def work_of(p: Problem, work: tuple[int | None, int | None] = (None, None)) -> tuple[int, int]:
    """(FLOPs, bytes) of ``p``: a kernel's own model where given (KernelSpec flops/bytes)."""
    f, b = work
    return (flops(p) if f is None else f), (bytes_moved(p) if b is None else b)


def classify(compute_floor_s: float, memory_floor_s: float, device: str) -> str:
    floor = max(compute_floor_s, memory_floor_s)
    if floor < LATENCY_FLOOR_S.get(device, LATENCY_FLOOR_S["cuda"]):
        return "latency-bound"
    return "compute-bound" if compute_floor_s >= memory_floor_s else "memory-bound"


def recommendations(regime: str, efficiency_pct: float, p: Problem,
                    cache_resident: bool = False) -> list[str]:
    recs = {
        "latency-bound": [
            "Fixed launch/host overhead dominates: batch more work per call (more heads or "
            "sequences), replay with CUDA graphs, or fuse with neighbouring ops."],
        "memory-bound": [
            "Bytes dominate: cut traffic (GQA/MQA, lower-precision K/V, fuse surrounding ops) "
            "and keep loads 16-byte wide and coalesced."],
        "compute-bound": [
            "Math dominates: use a fused flash-style kernel on tensor cores (fp16/bf16), "
            "tune tile sizes for occupancy, and skip fully masked tiles when causal."],
    }[regime]
    if regime != "latency-bound" and efficiency_pct < 30:
        recs.append(f"At {efficiency_pct:.0f}% of the binding ceiling there is large headroom: "
                    "profile (ncu) for re-reads, low occupancy or non-tensor-core math.")
    if efficiency_pct > 100 and cache_resident:
        recs.append(f"Efficiency {efficiency_pct:.0f}%: the inputs fit in the last-level cache, so "
                    "back-to-back calls run from cache above the DRAM roof; on a GPU the latency "
                    "figure (L2 flushed) is the cold-cache number.")
    if p.dtype == "float32" and regime == "compute-bound":
        recs.append("float32 runs off the tensor cores; bf16/fp16 (or TF32) raise the roof.")
    return recs


def beaten_note(efficiency_pct: float, source: str, remeasured: bool) -> str:
    """Why an efficiency above the roof is not believed, and what to do."""
    if remeasured:
        return (f"ran at {efficiency_pct:.0f}% of the ceiling even after the ceilings were "
                f"measured again ({source}): this kernel beats the copy/matmul roof here, so "
                "efficiency is not meaningful for it")
    if source.startswith("datasheet"):
        return (f"ran at {efficiency_pct:.0f}% of the ceiling ({source}): the datasheet figure "
                "does not fit this device; measure its ceilings with `attnperf ceilings`")
    return (f"ran at {efficiency_pct:.0f}% of the ceiling: the ceiling was measured too low "
            "(a busy machine?); measure it again with `attnperf ceilings --refresh`")


def analyze(p: Problem, time_s: float, ceiling: Ceiling, device: str,
            cache_bytes: int | None = None,
            work: tuple[int | None, int | None] = (None, None),
            remeasured: bool = False) -> Roofline:
    """Place one measured time on the roofline of ``ceiling``.

    ``cache_bytes``: the device's last-level cache (GPU L2, CPU L3) when the
    time was taken with warm caches; problems that fit are marked
    ``cache_resident``.  A time under a floor by more than ``BEATEN_MARGIN``
    (the memory floor: unless cache-resident) marks the result
    ``ceiling_beaten`` (with a note; ``remeasured``: the ceilings were already
    measured again for it).
    ``work``: the kernel's own (FLOPs, bytes) model, None where this module's applies.
    """
    if time_s <= 0:
        raise ValueError(f"time must be positive, got {time_s}")
    f, b = work_of(p, work)
    compute_floor, memory_floor = floors(p, ceiling, (f, b))
    floor = max(compute_floor, memory_floor)
    regime = classify(compute_floor, memory_floor, device)
    efficiency = 100.0 * floor / time_s
    resident = bool(cache_bytes) and b <= (cache_bytes or 0)
    # The cache can lift a call above the DRAM roof, never above the compute roof.
    beaten = (compute_floor / time_s > BEATEN_MARGIN
              or (memory_floor / time_s > BEATEN_MARGIN and not resident))
    note = beaten_note(efficiency, ceiling.source, remeasured) if beaten else ""
    recs = recommendations(regime, efficiency, p, resident)
    if beaten:
        recs.append(f"Ceiling beaten: this call {note}.")
    return Roofline(
        flops=f, bytes=b, arithmetic_intensity=f / b, ridge_point=ceiling.ridge_point,
        compute_floor_s=compute_floor, memory_floor_s=memory_floor, floor_s=floor, time_s=time_s,
        achieved_tflops=f / time_s / 1e12, achieved_gb_s=b / time_s / 1e9,
        x_over_floor=time_s / floor, efficiency_pct=efficiency, regime=regime,
        bottleneck=BOTTLENECK[regime], ceiling_tflops=ceiling.tflops,
        ceiling_gb_s=ceiling.bandwidth_gb_s, ceiling_source=ceiling.source,
        recommendations=recs, cache_resident=resident, ceiling_beaten=beaten, ceiling_note=note)


def ceiling_for(
    p: Problem, measured: dict[str, Any] | None, peak: Peak | None, tf32: bool = False
) -> Ceiling | None:
    """The binding roofs for ``p``'s dtype: measured figures first, datasheet second.

    A half-precision kernel may do its math in float32 (CPU kernels do: a CPU's
    fp16 matmul ran at 1 GFLOP/s where fp32 ran at 236), so its compute roof is
    the faster of the two measured rates; on a GPU that is the half-precision one.
    """
    key = precision_key(p.dtype, tf32)
    tflops: float | None = None
    bandwidth: float | None = None
    sources: list[str] = []
    if measured:
        rates = measured.get("matmul_tflops") or {}
        tflops = rates.get(key)
        if tflops and key in ("float16", "bfloat16") and (rates.get("float32") or 0) > tflops:
            tflops = rates["float32"]
        bandwidth = measured.get("bandwidth_gb_s")
        if tflops or bandwidth:
            sources.append("measured")
    if peak is not None:
        if not tflops and peak.tflops.get(key):
            tflops = peak.tflops[key]
            sources.append(f"datasheet {peak.name} (compute)")
        if not bandwidth and peak.bandwidth_tb_s:
            bandwidth = peak.bandwidth_tb_s * 1e3
            sources.append(f"datasheet {peak.name} (memory)")
    if not tflops or not bandwidth:
        return None
    return Ceiling(tflops=tflops, bandwidth_gb_s=bandwidth, source=", ".join(sources))
