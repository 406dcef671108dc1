"""A tracked repository's attnperf configuration: ``[tool.attnperf]`` in its pyproject.toml.

Pure parsing and validation of the TOML table (reading the file is
:mod:`attnperf.io.project_config`'s job).  Every key is optional; without the
table, attnperf's defaults apply::

    [tool.attnperf]
    kernels = ["my_attn"]                 # tracked: the gated asv benchmarks
    baselines = ["sdpa"]                  # measured and shown beside them
    kernel-modules = ["mypkg.extra:KERNELS"]  # module:attribute references
    problems = [                          # the asv grid and `attnperf run`'s default
        "cpu_seed",                       # a preset name (`attnperf kernels --sweeps`)
        "b1_h8_sq512_d64_fp32_causal",    # or a problem id
        # or a table; list values expand to every combination
        {batch = 1, heads = 16, kv_heads = [4, 16], seq_q = 1024, head_dim = 128,
         dtype = ["float16", "bfloat16"], causal = [false, true]},
    ]
    sweeps = {long = [{batch = 1, heads = 8, seq_q = 8192, head_dim = 128, dtype = "bf16"}]}
    tolerances = {bfloat16 = 3e-2}        # relative error allowed, per precision
    passes = ["fwd", "bwd", "fwd+bwd"]    # the asv suite's passes (default: fwd only)
    regression-factor = {cpu = 1.5, cuda = 1.05}   # or one number for both

The schema is checked with jsonschema; every error is one line naming the key
and what is allowed (:class:`~attnperf.errors.ConfigError`).  Numbers are finite
(``nan``/``inf`` are refused, whatever the key), factors at most 1000, and a grid
(``problems``, or one sweep) expands to at most :data:`MAX_GRID` problems.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable
from typing import Any

from ..errors import ConfigError, InvalidShapeError, UnknownNameError
from .catalog import resolve
from .problem import DTYPE_ALIASES, PASSES, TOLERANCES, Problem

TABLE = "tool.attnperf"
# The regression factor of every verdict (`ci bench`, `bisect`, `calibrate`, `pr-comment`, the
# site's regressions) where neither --factor, [tool.attnperf] regression-factor nor a calibrated
# threshold gives one: on a CPU past the spread between processes of identical code, on a GPU 5 %
# (docs/evidence.md).  Read through default_factor / ProjectConfig.factor, never as a literal.
DEFAULT_FACTORS = {"cpu": 1.5, "cuda": 1.05}

PROBLEM_KEYS = ("batch", "heads", "kv_heads", "seq_q", "seq_kv", "head_dim", "dtype", "causal")
_NAME = {"type": "string", "minLength": 1, "pattern": r"^[^|\s]+$"}
_NAMES = {"type": "array", "items": _NAME, "uniqueItems": True}
_POSINT = {"type": "integer", "minimum": 1}
_DTYPE = {"type": "string", "enum": sorted(DTYPE_ALIASES)}


def _one_or_list(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "array", "items": schema, "minItems": 1}]}


_TABLE_ENTRY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["batch", "heads", "seq_q", "head_dim"],
    "properties": {
        **{k: _one_or_list(_POSINT) for k in ("batch", "heads", "kv_heads", "seq_q", "seq_kv",
                                              "head_dim")},
        "dtype": _one_or_list(_DTYPE),
        "causal": _one_or_list({"type": "boolean"}),
    },
}
_ENTRY = {"anyOf": [{"type": "string", "minLength": 1}, _TABLE_ENTRY]}
_ENTRIES = {"type": "array", "items": _ENTRY, "minItems": 1}
_FACTOR = {"type": "number", "minimum": 1, "maximum": 1000}
# The most problems one grid (`problems`, or one sweep) may expand to: each is measured for
# every kernel and pass on every commit, so a grid this large already takes hours.
MAX_GRID = 4096

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "kernels": _NAMES,
        "baselines": _NAMES,
        "kernel-modules": {"type": "array", "uniqueItems": True, "items": {
            "type": "string", "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"}},
        "problems": _ENTRIES,
        "sweeps": {"type": "object", "propertyNames": {"pattern": r"^[A-Za-z0-9_.-]+$"},
                   "additionalProperties": _ENTRIES},
        "tolerances": {"type": "object", "additionalProperties": False,
                       "properties": {k: {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
                                      for k in TOLERANCES}},
        "regression-factor": {"anyOf": [_FACTOR, {
            "type": "object", "additionalProperties": False,
            "properties": {"cpu": _FACTOR, "cuda": _FACTOR}}]},
        "passes": {"type": "array", "items": {"enum": list(PASSES)}, "uniqueItems": True},
    },
}

# What each key allows, for the one-line error (jsonschema's own text lists whole schemas).
ALLOWED = {
    "kernels": "a list of kernel names (`attnperf kernels`)",
    "baselines": "a list of kernel names (`attnperf kernels`)",
    "kernel-modules": "a list of 'package.module:ATTRIBUTE' references",
    "problems": ("a non-empty list of preset names, problem ids, or tables with "
                 f"{', '.join(PROBLEM_KEYS)} (batch, heads, seq_q, head_dim required)"),
    "sweeps": "a table of sweep name = list of problems (like `problems`)",
    "tolerances": f"a table of {', '.join(TOLERANCES)} = a number in (0, 1]",
    "regression-factor": ("a number in [1, 1000], or a table {cpu = N, cuda = N} of numbers "
                          "in [1, 1000]"),
    "passes": f"a list of passes: {', '.join(PASSES)}",
}


@dataclasses.dataclass(frozen=True)
class ProjectConfig:
    """``[tool.attnperf]`` of one repository (``source``: where it was read)."""

    source: str = ""
    kernels: tuple[str, ...] = ()
    baselines: tuple[str, ...] = ()
    kernel_modules: tuple[str, ...] = ()
    problems: tuple[Problem, ...] | None = None  # None: attnperf's default grid
    sweeps: dict[str, tuple[Problem, ...]] = dataclasses.field(default_factory=dict)
    tolerances: dict[str, float] = dataclasses.field(default_factory=dict)
    factors: dict[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_FACTORS))
    passes: tuple[str, ...] = ("fwd",)  # the asv suite's training grid is opt-in

    @property
    def tracked(self) -> list[str]:
        """Kernels then baselines (each once): what the suite and `attnperf run` measure."""
        return list(dict.fromkeys(self.kernels + self.baselines))

    def factor(self, device: str) -> float:
        """The regression factor on ``device`` ("cuda", else the CPU's)."""
        return self.factors[factor_key(device)]


def factor_key(device: str) -> str:
    """The key of ``device`` in :data:`DEFAULT_FACTORS` and ``regression-factor``: "cuda", or
    "cpu" for every other device."""
    return "cuda" if device == "cuda" else "cpu"


def default_factor(device: str) -> float:
    """attnperf's regression factor on ``device`` without a ``[tool.attnperf]`` table."""
    return DEFAULT_FACTORS[factor_key(device)]


def default_factors_text() -> str:
    """The defaults as help texts and documentation name them: 'cpu 1.5, cuda 1.05'."""
    return ", ".join(f"{device} {factor:g}" for device, factor in DEFAULT_FACTORS.items())


def _where(path: Iterable[str | int]) -> str:
    out = TABLE
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _message(error: Any, source: str) -> str:  # a jsonschema.ValidationError (untyped)
    import jsonschema  # noqa: F401 - the error object comes from it

    # The deepest error under an anyOf names the actual bad value best.
    while error.context:  # the branch of an anyOf that matched the value's type
        fits = [e for e in error.context if e.validator != "type"] or error.context
        error = max(fits, key=lambda e: len(e.absolute_path))
    path = list(error.absolute_path)
    prefix = f"{source}: " if source else ""
    if error.validator == "additionalProperties" and not path:
        extra = sorted(set(error.instance) - set(SCHEMA["properties"]))
        return (f"{prefix}unknown key {TABLE}.{extra[0]}; allowed: "
                f"{', '.join(SCHEMA['properties'])}")
    if error.validator == "additionalProperties":
        names = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(names))
        return f"{prefix}unknown key {_where(path + [extra[0]])}; allowed: {', '.join(names)}"
    if error.validator == "enum":
        return (f"{prefix}{_where(path)} = {error.instance!r} is not allowed; allowed: "
                f"{', '.join(map(str, error.validator_value))}")
    if error.validator == "required":
        return f"{prefix}{_where(path)}: {error.message}"
    top = next((p for p in path if isinstance(p, str)), None)
    allowed = ALLOWED.get(top, "") if top is not None else ""
    if top in ("problems", "sweeps") and isinstance(error.instance, (int, bool, float)):
        allowed = "a positive integer (or a list of them); causal: true/false"
    return (f"{prefix}{_where(path)} = {error.instance!r} is invalid ({error.message}); "
            f"allowed: {allowed}" if allowed else f"{prefix}{_where(path)}: {error.message}")


def _expand(entry: str | dict[str, Any], where: str, source: str) -> list[Problem]:
    prefix = f"{source}: " if source else ""
    if isinstance(entry, str):
        try:
            return [resolve(entry)]
        except UnknownNameError as exc:
            raise ConfigError(f"{prefix}{where}: {exc}") from None
    keys = [k for k in PROBLEM_KEYS if k in entry]
    values = [entry[k] if isinstance(entry[k], list) else [entry[k]] for k in keys]
    out = []
    for combo in itertools.product(*values):
        kw = dict(zip(keys, combo, strict=True))
        try:
            out.append(Problem(**kw))
        except InvalidShapeError as exc:
            raise ConfigError(f"{prefix}{where} {kw}: {exc}") from None
    return out


def _grid_size(entries: list[Any]) -> int:
    """How many problems ``entries`` expand to (before any is built)."""
    total = 0
    for entry in entries:
        n = 1
        if isinstance(entry, dict):
            for k in PROBLEM_KEYS:
                if isinstance(entry.get(k), list):
                    n *= len(entry[k])
        total += n
    return total


def _problems(entries: list[Any], where: str, source: str) -> tuple[Problem, ...]:
    size = _grid_size(entries)
    if size > MAX_GRID:
        prefix = f"{source}: " if source else ""
        raise ConfigError(f"{prefix}{where} expands to {size} problems; allowed: at most "
                          f"{MAX_GRID} per grid (each is measured for every kernel and pass on "
                          "every commit)")
    out: list[Problem] = []
    for i, entry in enumerate(entries):
        out += _expand(entry, f"{where}[{i}]", source)
    return tuple(dict.fromkeys(out))  # each problem once, in order


def _non_finite(table: dict[str, Any]) -> tuple[list[str | int], Any] | None:
    """(path, value) of the first NaN or infinity in ``table`` (TOML has ``nan`` and ``inf``;
    no comparison of the schema refuses them), else None."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), table)]
    while stack:
        path, x = stack.pop()
        if isinstance(x, float) and not math.isfinite(x):
            return list(path), x
        if isinstance(x, dict):
            stack.extend(((*path, k), v) for k, v in reversed(list(x.items())))
        elif isinstance(x, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(x))))
    return None


def parse(table: dict[str, Any], source: str = "") -> ProjectConfig:
    """Validate ``[tool.attnperf]`` (a dict from TOML) into a :class:`ProjectConfig`."""
    import jsonschema

    if not isinstance(table, dict):
        raise ConfigError(f"{source + ': ' if source else ''}[{TABLE}] must be a table")
    bad = _non_finite(table)
    if bad is not None:
        raise ConfigError(f"{source + ': ' if source else ''}{_where(bad[0])} = {bad[1]!r} is not "
                          "a finite number; allowed: " + (ALLOWED.get(str(bad[0][0]), "a number")
                                                          if bad[0] else "a number"))
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(table), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError(_message(errors[0], source))
    factor = table.get("regression-factor", {})
    factors = dict(DEFAULT_FACTORS)
    factors.update({"cpu": factor, "cuda": factor} if isinstance(factor, (int, float)) else factor)
    return ProjectConfig(
        source=source,
        kernels=tuple(table.get("kernels", ())),
        baselines=tuple(table.get("baselines", ())),
        kernel_modules=tuple(table.get("kernel-modules", ())),
        problems=(_problems(table["problems"], f"{TABLE}.problems", source)
                  if "problems" in table else None),
        sweeps={name: _problems(entries, f"{TABLE}.sweeps.{name}", source)
                for name, entries in table.get("sweeps", {}).items()},
        tolerances={k: float(v) for k, v in table.get("tolerances", {}).items()},
        factors={k: float(v) for k, v in factors.items()},
        passes=tuple(table.get("passes", ("fwd",))),
    )
