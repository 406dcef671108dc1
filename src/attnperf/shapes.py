"""Attention problems: a frozen, validated description of one attention call.

A :class:`Problem` is what every other module takes: kernels run it, the
roofline counts its FLOPs and bytes, reports key results by its :attr:`id`.
The id is a history key (asv parameter values, JSON reports): it must never
change for a given problem.  Add aliases, never rename.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple

from .errors import InvalidShapeError, UnknownNameError

# dtype name -> (element size in bytes, short tag used in ids)
DTYPES: Dict[str, Tuple[int, str]] = {
    "float16": (2, "fp16"),
    "bfloat16": (2, "bf16"),
    "float32": (4, "fp32"),
}
DTYPE_ALIASES = {
    "fp16": "float16", "half": "float16", "float16": "float16",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
    "fp32": "float32", "float": "float32", "float32": "float32",
}
MODES = ("fwd",)  # "bwd" is reserved: the id format already carries the mode.


def canonical_dtype(name: str) -> str:
    """Return the canonical dtype name for ``name`` or raise InvalidShapeError."""
    key = str(name).strip().lower()
    if key not in DTYPE_ALIASES:
        raise InvalidShapeError(
            f"unknown dtype {name!r}; allowed: {', '.join(sorted(DTYPE_ALIASES))}")
    return DTYPE_ALIASES[key]


def _positive_int(field: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidShapeError(f"{field} must be a positive integer, got {value!r}")
    if value <= 0:
        raise InvalidShapeError(f"{field} must be a positive integer, got {value}")
    return value


@dataclasses.dataclass(frozen=True)
class Problem:
    """One attention call: ``softmax(Q K^T / sqrt(D) [+ causal mask]) V``.

    Layout is PyTorch SDPA's: Q is (batch, heads, seq_q, head_dim), K and V are
    (batch, kv_heads, seq_kv, head_dim).  ``kv_heads < heads`` is grouped-query
    attention.  ``causal`` uses PyTorch's convention (top-left aligned mask:
    query i sees keys 0..i).
    """

    batch: int
    heads: int
    seq_q: int
    head_dim: int
    seq_kv: Optional[int] = None
    kv_heads: Optional[int] = None
    causal: bool = False
    dtype: str = "float16"
    mode: str = "fwd"

    def __post_init__(self) -> None:
        _positive_int("batch", self.batch)
        _positive_int("heads", self.heads)
        _positive_int("seq_q", self.seq_q)
        _positive_int("head_dim", self.head_dim)
        if self.seq_kv is None:
            object.__setattr__(self, "seq_kv", self.seq_q)
        _positive_int("seq_kv", self.seq_kv)
        if self.kv_heads is None:
            object.__setattr__(self, "kv_heads", self.heads)
        _positive_int("kv_heads", self.kv_heads)
        if self.heads % self.kv_heads != 0:
            raise InvalidShapeError(
                f"heads={self.heads} is not divisible by kv_heads={self.kv_heads}; "
                f"kv_heads must divide heads (GQA groups)")
        if not isinstance(self.causal, bool):
            raise InvalidShapeError(f"causal must be true or false, got {self.causal!r}")
        object.__setattr__(self, "dtype", canonical_dtype(self.dtype))
        if self.mode not in MODES:
            raise InvalidShapeError(
                f"unknown mode {self.mode!r}; allowed: {', '.join(MODES)}")

    # ---- derived -----------------------------------------------------------
    @property
    def element_size(self) -> int:
        return DTYPES[self.dtype][0]

    @property
    def gqa_group(self) -> int:
        return self.heads // self.kv_heads

    @property
    def id(self) -> str:
        """Stable history key, e.g. ``b8_h4_sq64_d64_fp16`` or
        ``b1_h32_kv8_sq1_sk4096_d128_bf16``.  Never change its format."""
        parts = [f"b{self.batch}", f"h{self.heads}"]
        if self.kv_heads != self.heads:
            parts.append(f"kv{self.kv_heads}")
        parts.append(f"sq{self.seq_q}")
        if self.seq_kv != self.seq_q:
            parts.append(f"sk{self.seq_kv}")
        parts.append(f"d{self.head_dim}")
        parts.append(DTYPES[self.dtype][1])
        if self.causal:
            parts.append("causal")
        if self.mode != "fwd":
            parts.append(self.mode)
        return "_".join(parts)

    def to_config(self) -> dict:
        """The report's ``config`` block: the seed's keys plus the new ones."""
        return {
            "id": self.id,
            "batch_size": self.batch,
            "num_heads": self.heads,
            "num_kv_heads": self.kv_heads,
            "seq_len": self.seq_q,
            "seq_len_kv": self.seq_kv,
            "head_dim": self.head_dim,
            "causal": self.causal,
            "dtype": self.dtype,
            "mode": self.mode,
        }

    @classmethod
    def from_config(cls, cfg: dict) -> "Problem":
        """Inverse of :meth:`to_config`; also reads the seed's config block."""
        try:
            return cls(
                batch=cfg["batch_size"], heads=cfg["num_heads"], seq_q=cfg["seq_len"],
                head_dim=cfg["head_dim"], seq_kv=cfg.get("seq_len_kv"),
                kv_heads=cfg.get("num_kv_heads"), causal=bool(cfg.get("causal", False)),
                dtype=cfg.get("dtype", "float16"), mode=cfg.get("mode", "fwd"))
        except KeyError as exc:
            raise InvalidShapeError(f"config is missing the key {exc.args[0]!r}") from None

    @classmethod
    def from_id(cls, problem_id: str) -> "Problem":
        """Parse an id made by :attr:`id` (used to read history keys back)."""
        fields = {"b": "batch", "h": "heads", "kv": "kv_heads", "sq": "seq_q",
                  "sk": "seq_kv", "d": "head_dim"}
        kw: dict = {}
        tags = {tag: name for name, (_, tag) in DTYPES.items()}
        for part in problem_id.split("_"):
            if part in tags:
                kw["dtype"] = tags[part]
            elif part == "causal":
                kw["causal"] = True
            elif part in MODES or part == "bwd":
                kw["mode"] = part
            else:
                prefix = part.rstrip("0123456789")
                digits = part[len(prefix):]
                if prefix not in fields or not digits:
                    raise InvalidShapeError(f"cannot parse problem id {problem_id!r} at {part!r}")
                kw[fields[prefix]] = int(digits)
        try:
            return cls(**kw)
        except TypeError:
            raise InvalidShapeError(f"problem id {problem_id!r} lacks a size") from None

    def __str__(self) -> str:
        return self.id


# ---- named problems and sweeps --------------------------------------------
PRESETS: Dict[str, Problem] = {
    # The seed project's single configuration (integrated_test.py defaults).
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

SWEEPS: Dict[str, List[str]] = {
    # Default of `attnperf run` on a CPU: well under a minute on 2 cores.
    "cpu-small": ["cpu_seed", "cpu_decode", "cpu_causal", "cpu_gqa"],
    # Default of `attnperf run` on a GPU.
    "gpu-default": ["seed", "decode", "gqa", "causal", "mid", "train"],
    # The acceptance sweep: the seed shape and a large training shape.
    "seed-train": ["seed", "train"],
    "gpu-full": ["seed", "decode", "gqa", "causal", "mid", "train", "train_long_causal"],
}


def preset(name: str) -> Problem:
    if name not in PRESETS:
        raise UnknownNameError(
            f"unknown problem preset {name!r}; allowed: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


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


def sweep(name: str) -> List[Problem]:
    if name not in SWEEPS:
        raise UnknownNameError(
            f"unknown sweep {name!r}; allowed: {', '.join(sorted(SWEEPS))}")
    return [PRESETS[p] for p in SWEEPS[name]]
