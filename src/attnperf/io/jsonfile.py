"""THE JSON file reader and writer: atomic writes, one-line errors, no NaN.

Every file format attnperf writes (report, comparison, ceilings) goes through
:func:`write_json`; every JSON file a user hands over goes through
:func:`load_json`.  Both stand on the file door (:mod:`attnperf.io.files`):
regular files only, a size cap, atomic replace, one writer at a time.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import AttnperfError, ReportError
from .files import (
    MAX_DEPTH,
    MAX_READ_BYTES,
    StrPath,
    check_writable,
    depth_of,
    read_text,
    write_text,
)

__all__ = ["check_writable", "finite", "finite_number", "first_bad_number", "json_path",
           "load_json", "parse_json", "write_json", "write_text"]


def finite(x: Any) -> Any:
    """JSON has no NaN/Inf: write them as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def write_json(path: StrPath, data: dict[str, Any], inputs: Sequence[StrPath] = ()) -> None:
    """Atomic write of ``data`` as JSON (NaN/Inf as null), through the file door
    (:func:`attnperf.io.files.write_text`: no link, device or input replaced, one
    writer at a time)."""
    write_text(path, json.dumps(finite(data), indent=2, allow_nan=False) + "\n", inputs)


# A JSON integer longer than this is no measurement (and int() of a 100,000-digit
# number takes seconds): refused while parsing.
_MAX_INT_DIGITS = 4300  # Python's own default limit, whatever PYTHONINTMAXSTRDIGITS says


def _parse_int(text: str) -> int:
    if len(text) > _MAX_INT_DIGITS:
        raise ValueError(f"Exceeds the limit ({_MAX_INT_DIGITS} digits) for an integer: it has "
                         f"{len(text)} digits")
    return int(text)


def parse_json(text: str, path: StrPath, what: str = "report",
               error: type[AttnperfError] = ReportError) -> Any:
    """``text`` parsed as JSON (NaN/Infinity literals accepted: asv writes NaN), bounded:
    at most :data:`~attnperf.io.files.MAX_DEPTH` levels, integers of at most 4300
    digits; every failure is one ``error`` naming the file and what is wrong."""
    if not text.strip():
        raise error(f"{what} {os.fspath(path)!r} is empty; expected a JSON object")
    try:
        data = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise error(f"{what} {os.fspath(path)!r} is not valid JSON ({exc.msg} at line "
                    f"{exc.lineno}); truncated or not a JSON file of this kind") from None
    except RecursionError:
        raise error(f"{what} {os.fspath(path)!r} cannot be parsed as JSON: nested too deeply "
                    "to be a file of this kind") from None
    except MemoryError:
        raise error(f"{what} {os.fspath(path)!r} cannot be parsed as JSON: out of memory") from None
    except ValueError as exc:  # e.g. an integer of more digits than a measurement has
        raise error(f"{what} {os.fspath(path)!r} cannot be parsed as JSON "
                    f"({str(exc)[:100]})") from None
    if depth_of(data) > MAX_DEPTH:
        raise error(f"{what} {os.fspath(path)!r} cannot be parsed as JSON: nested too deeply "
                    f"(more than {MAX_DEPTH} levels) to be a file of this kind")
    return data


def load_json(path: StrPath, what: str = "report",
              limit: int = MAX_READ_BYTES) -> dict[str, Any]:
    """The JSON object in ``path``, read through the file door (a regular file of at most
    ``limit`` bytes; see :func:`parse_json`); every failure is a :class:`ReportError`
    naming the file and what is wrong."""
    data = parse_json(read_text(path, what, limit), path, what)
    if not isinstance(data, dict):
        raise ReportError(f"{what} {os.fspath(path)!r} holds a JSON {type(data).__name__}, "
                          "expected an object")
    return data


# Numbers beyond this cannot be a time, a rate or a count; a crafted integer of
# thousands of digits would otherwise overflow the first float() that reads it.
_MAX_MAGNITUDE = 1e300


def finite_number(x: object) -> float | None:
    """``x`` as a float when it is a JSON number that can be a measurement: not a
    bool, finite, and not absurdly large (a 400-digit integer overflows float())."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not abs(x) <= _MAX_MAGNITUDE:
        return None
    return float(x)


def json_path(parts: Iterable[str | int]) -> str:
    """``["results", 3, "performance"]`` -> ``results[3].performance`` (error messages)."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def first_bad_number(data: object) -> tuple[str, str] | None:
    """(path, why) of the first NaN, Infinity or absurdly large number in ``data``.

    Iterative, so a deeply nested (but parseable) file cannot exhaust the stack.
    """
    stack: list[tuple[tuple[str | int, ...], object]] = [((), data)]
    while stack:
        path, x = stack.pop()
        if isinstance(x, bool):
            continue
        if isinstance(x, float) and not math.isfinite(x):
            return json_path(path), f"is {x!r} (a report holds finite numbers only)"
        if isinstance(x, (int, float)) and abs(x) > _MAX_MAGNITUDE:
            return json_path(path), "is a number too large to be a measurement"
        if isinstance(x, dict):
            stack.extend(((*path, k), v) for k, v in reversed(list(x.items())))
        elif isinstance(x, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(x))))
    return None
