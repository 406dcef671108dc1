"""THE number and time formatting of every rendered output (site, PR comment, compare, run).

One owner so that a time reads the same everywhere (``0.215 ms``), a missing
value is one mark (``—`` on pages and in markdown; callers of plain-text
tables pass their own ``none``), and NaN/Inf never leak as ``nan``.
"""

from __future__ import annotations

import math
import numbers

NONE = "—"
_TIME_SCALES = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))


def _missing(x: object) -> bool:
    return x is None or isinstance(x, bool) or not isinstance(x, numbers.Real) \
        or not math.isfinite(x)


def num(x: float | None, spec: str = ".3g", unit: str = "", none: str = NONE) -> str:
    """``x`` formatted with ``spec`` and followed by ``unit``; ``none`` when missing or not
    finite."""
    return none if _missing(x) else f"{format(x, spec)}{unit}"


def seconds(x: float | None, none: str = NONE) -> str:
    """A duration in seconds with the unit that keeps 3 significant digits: ``215 µs``."""
    if x is None or _missing(x):
        return none
    for scale, suffix in _TIME_SCALES:
        if abs(x) >= scale or suffix == "ns":
            return f"{x / scale:.3g} {suffix}"
    return none  # pragma: no cover - the loop always returns


def pct(x: float | None, none: str = NONE) -> str:
    return num(x, ".3g", "%", none)


def value(x: float | None, unit: str | None, none: str = NONE) -> str:
    """A value of an asv benchmark in its asv unit (``seconds``, ``x floor``, ...)."""
    if _missing(x):
        return none
    if unit == "seconds":
        return seconds(x, none)
    if unit == "x floor":
        return f"{x:.3g}× floor"
    return f"{x:.3g}" + (f" {unit}" if unit else "")
