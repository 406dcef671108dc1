"""Named problems (presets) and sweeps: the catalog every front end shares.

Presets are looked up by name; the asv history is keyed by each problem's
:attr:`~attnperf.model.problem.Problem.id`, never by the preset name (a preset's
shape may be edited, an id never changes meaning).
"""

from __future__ import annotations

from ..errors import InvalidShapeError, UnknownNameError
from .problem import Problem

# ---- named problems and sweeps --------------------------------------------
PRESETS: dict[str, Problem] = {
    # The single configuration of legacy single-config reports (their benchmark script's defaults).
    "seed": Problem(batch=8, heads=4, seq_q=64, head_dim=64, dtype="float16"),
    # One new token against a 4k KV cache, grouped-query (Llama-style 32q/8kv).
    "decode": Problem(batch=8, heads=32, kv_heads=8, seq_q=1, seq_kv=4096,
                      head_dim=128, dtype="bfloat16"),
    "gqa": Problem(batch=2, heads=32, kv_heads=8, seq_q=1024, head_dim=128,
                   causal=True, dtype="bfloat16"),
    "causal": Problem(batch=1, heads=8, seq_q=512, head_dim=64, causal=True,
                      dtype="bfloat16"),
    "mid": Problem(batch=2, heads=8, seq_q=1024, head_dim=64, dtype="bfloat16"),
    "train": Problem(batch=4, heads=16, seq_q=2048, head_dim=128, dtype="bfloat16"),
    "train_long_causal": Problem(batch=2, heads=32, seq_q=8192, head_dim=128,
                                 causal=True, dtype="bfloat16"),
    # CPU-sized problems (fp32: CPU half-precision kernels are slow and rare).
    "cpu_seed": Problem(batch=8, heads=4, seq_q=64, head_dim=64, dtype="float32"),
    "cpu_decode": Problem(batch=4, heads=8, kv_heads=2, seq_q=1, seq_kv=1024,
                          head_dim=64, dtype="float32"),
    "cpu_causal": Problem(batch=1, heads=8, seq_q=512, head_dim=64, causal=True,
                          dtype="float32"),
    "cpu_gqa": Problem(batch=1, heads=8, kv_heads=2, seq_q=256, head_dim=64,
                       dtype="float32"),
}

SWEEPS: dict[str, list[str]] = {
    # Default of `attnperf run` on a CPU: well under a minute on 2 cores.
    "cpu-small": ["cpu_seed", "cpu_decode", "cpu_causal", "cpu_gqa"],
    # Default of `attnperf run` on a GPU.
    "gpu-default": ["seed", "decode", "gqa", "causal", "mid", "train"],
    # A short sweep: the `seed` preset's shape and a large training shape.
    "seed-train": ["seed", "train"],
    "gpu-full": ["seed", "decode", "gqa", "causal", "mid", "train", "train_long_causal"],
}


def resolve(name_or_id: str) -> Problem:
    """A preset by name (``seed``) or any problem by its id (``b8_h4_sq64_d64_fp16``)."""
    if name_or_id in PRESETS:
        return PRESETS[name_or_id]
    try:
        return Problem.from_id(name_or_id)
    except InvalidShapeError:
        raise UnknownNameError(
            f"unknown problem {name_or_id!r}: neither a preset ({', '.join(sorted(PRESETS))}) "
            "nor a problem id like b8_h4_sq64_d64_fp16") from None


def sweep(name: str) -> list[Problem]:
    if name not in SWEEPS:
        raise UnknownNameError(
            f"unknown sweep {name!r}; allowed: {', '.join(sorted(SWEEPS))}")
    return [PRESETS[p] for p in SWEEPS[name]]


def pass_id(problem: str, mode: str) -> str:
    """The id of a forward problem (id or preset name) under the pass ``mode``
    (``fwd``: unchanged; ``bwd`` / ``fwd+bwd``: the pass tag appended)."""
    return resolve(problem).with_pass(mode).id
