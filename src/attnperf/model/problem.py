"""Attention problems: a frozen, validated description of one attention call.

A :class:`Problem` is what every other module takes: kernels run it, the
roofline counts its FLOPs and bytes, reports key results by its :attr:`id`.
The id is a history key (asv parameter values, JSON reports): it must never
change for a given problem.  Add aliases, never rename.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ..errors import InvalidShapeError

# dtype name -> (element size in bytes, short tag used in ids)
DTYPES: dict[str, tuple[int, str]] = {
    "float16": (2, "fp16"),
    "bfloat16": (2, "bf16"),
    "float32": (4, "fp32"),
}
DTYPE_ALIASES = {
    "fp16": "float16", "half": "float16", "float16": "float16",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
    "fp32": "float32", "float": "float32", "float32": "float32",
}
# The pass a problem times (``Problem.mode``): the forward call, the backward
# (dQ, dK, dV from a saved forward; ``torch.autograd.grad``), or both.  The
# forward keeps its id; the others add a tag (ids are history keys, and the
# tags stay plain words: asv's ``-b`` regexes, URLs and file names).
PASSES = ("fwd", "bwd", "fwd+bwd")
PASS_TAGS = {"fwd": "", "bwd": "bwd", "fwd+bwd": "fwdbwd"}

# Relative Frobenius-norm error a GPU expert accepts for attention outputs of
# standard-normal inputs, per precision key (see :func:`precision_key`).
# Storage rounding alone costs ~eps/2 per element (bf16 eps = 7.8e-3, fp16
# eps = 9.8e-4); fused kernels add accumulation-order differences.  TF32 rounds
# matmul operands to 10 mantissa bits (~5e-4).
TOLERANCES = {
    "float64": 1e-10,
    "float32": 1e-4,
    "tf32": 3e-3,
    "float16": 5e-3,
    "bfloat16": 2e-2,
}
# dQ, dK and dV against autograd through the float64 reference.  A backward
# rounds P, dP and dS to storage once more than the forward, so its error is
# somewhat larger than the forward's of the same kernel.  The bounds keep the
# forward's margin over the worst gradient error of the built-in kernels on
# seeded normal inputs and dO (bf16 ~4x, fp16 ~6x), so a scale off by 1 %
# (which puts >= 1 % into dQ and dK) fails fp32 and fp16 and a dropped K/V
# block fails every dtype.
GRAD_TOLERANCES = {
    "float64": 1e-10,
    "float32": 2e-4,
    "tf32": 5e-3,
    "float16": 5e-3,
    "bfloat16": 3e-2,
}
# No single element may be off by more than this times the tolerance (relative
# to max|ref|): catches a wrong tile that a norm would average away.
MAX_ABS_FACTOR = 10.0


def precision_key(dtype: str, tf32: bool = False) -> str:
    """THE TF32 rule: float32 matmuls that run as TF32 are judged (tolerance) and
    roofed (ceiling) as ``tf32``; every other dtype is its own key."""
    return "tf32" if dtype == "float32" and tf32 else dtype


def canonical_dtype(name: str) -> str:
    """Return the canonical dtype name for ``name`` or raise InvalidShapeError."""
    key = str(name).strip().lower()
    if key not in DTYPE_ALIASES:
        raise InvalidShapeError(
            f"unknown dtype {name!r}; allowed: {', '.join(sorted(DTYPE_ALIASES))}")
    return DTYPE_ALIASES[key]


def _positive_int(field: str, value: object) -> int:
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
    # None (the default) means "as seq_q" / "as heads": __post_init__ fills it in, so a
    # built Problem always holds an int (the constructor's types are in __init__ below).
    seq_kv: int = None  # type: ignore[assignment]
    kv_heads: int = None  # type: ignore[assignment]
    causal: bool = False
    dtype: str = "float16"
    mode: str = "fwd"

    if TYPE_CHECKING:  # what the generated __init__ accepts; the fields above are what it keeps
        def __init__(self, batch: int, heads: int, seq_q: int, head_dim: int,
                     seq_kv: int | None = None, kv_heads: int | None = None,
                     causal: bool = False, dtype: str = "float16", mode: str = "fwd") -> None:
            ...

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
        if self.mode not in PASSES:
            raise InvalidShapeError(
                f"unknown pass {self.mode!r}; allowed: {', '.join(PASSES)}")

    # ---- derived -----------------------------------------------------------
    @property
    def element_size(self) -> int:
        return DTYPES[self.dtype][0]

    @property
    def gqa_group(self) -> int:
        return self.heads // self.kv_heads

    @property
    def backward(self) -> bool:
        """Whether this problem's pass computes gradients (``bwd``, ``fwd+bwd``)."""
        return self.mode != "fwd"

    def with_pass(self, mode: str) -> Problem:
        """The same shape under another pass (``fwd``: the forward problem, its id unchanged)."""
        return dataclasses.replace(self, mode=mode)

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
        if PASS_TAGS[self.mode]:
            parts.append(PASS_TAGS[self.mode])
        return "_".join(parts)

    def to_config(self) -> dict[str, Any]:
        """The report's ``config`` block: the legacy single-config report keys plus the new ones."""
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
    def from_config(cls, cfg: dict[str, Any]) -> Problem:
        """Inverse of :meth:`to_config`; also reads a legacy single-config report's config block."""
        try:
            return cls(
                batch=cfg["batch_size"], heads=cfg["num_heads"], seq_q=cfg["seq_len"],
                head_dim=cfg["head_dim"], seq_kv=cfg.get("seq_len_kv"),
                kv_heads=cfg.get("num_kv_heads"), causal=bool(cfg.get("causal", False)),
                dtype=cfg.get("dtype", "float16"), mode=cfg.get("mode", "fwd"))
        except KeyError as exc:
            raise InvalidShapeError(f"config is missing the key {exc.args[0]!r}") from None

    @classmethod
    def from_id(cls, problem_id: str) -> Problem:
        """Parse an id made by :attr:`id` (used to read history keys back)."""
        fields = {"b": "batch", "h": "heads", "kv": "kv_heads", "sq": "seq_q",
                  "sk": "seq_kv", "d": "head_dim"}
        kw: dict[str, Any] = {}
        tags = {tag: name for name, (_, tag) in DTYPES.items()}
        pass_tags = {tag: mode for mode, tag in PASS_TAGS.items() if tag}
        for part in problem_id.split("_"):
            if part in tags:
                kw["dtype"] = tags[part]
            elif part == "causal":
                kw["causal"] = True
            elif part in pass_tags:
                kw["mode"] = pass_tags[part]
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
