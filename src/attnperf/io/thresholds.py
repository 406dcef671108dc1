"""THE per-benchmark thresholds file: what ``attnperf calibrate`` measured for one machine.

Lives beside the machine's asv results as
``results/<machine>/attnperf-thresholds.json``; ``attnperf ci bench`` (and the
PR comment) read it to judge each benchmark against its own factor instead of
the suite's single ``--factor`` (:mod:`attnperf.analysis.noise` says how a
threshold is derived).

Format history (``schema_version``):

* 1 -- ``machine``, ``created`` (UTC ISO time), ``commit`` (what was measured
  A/A), ``runs`` (result sets), ``rounds`` (asv rounds per set: the gate must
  run asv with the same number), ``factor`` (the suite factor the report was
  made for), ``floor`` and ``headroom`` (the rule's constants), and
  ``benchmarks``: a list of ``{"benchmark", "params", "medians", "spread",
  "threshold", "detectable"}`` (``params`` as attnperf reads them: unquoted
  strings; ``medians`` in the benchmark's unit, one per run; ``spread`` = max/min
  of the medians; ``detectable`` = the smallest slowdown the threshold flags
  despite that spread).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ReportError
from .files import StrPath
from .jsonfile import finite_number, load_json, write_json

SCHEMA_VERSION = 1
KNOWN_VERSIONS = (1,)
FILE_NAME = "attnperf-thresholds.json"


@dataclasses.dataclass(frozen=True)
class Entry:
    benchmark: str
    params: tuple[str, ...]
    medians: tuple[float, ...]
    spread: float
    threshold: float
    detectable: float

    def to_dict(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "params": list(self.params),
                "medians": list(self.medians), "spread": self.spread,
                "threshold": self.threshold, "detectable": self.detectable}


@dataclasses.dataclass
class Thresholds:
    machine: str
    created: str
    commit: str
    runs: int
    rounds: int
    factor: float
    floor: float
    headroom: float
    entries: list[Entry]

    def lookup(self) -> dict[tuple[str, tuple[str, ...]], float]:
        """``{(benchmark, params): threshold}``: what :func:`attnperf.analysis.ab.compare`
        takes."""
        return {(e.benchmark, e.params): e.threshold for e in self.entries}

    def smallest(self) -> float | None:
        return min((e.threshold for e in self.entries), default=None)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "machine": self.machine, "created": self.created,
                "commit": self.commit, "runs": self.runs, "rounds": self.rounds,
                "factor": self.factor, "floor": self.floor, "headroom": self.headroom,
                "benchmarks": [e.to_dict() for e in self.entries]}


def path_for(results_dir: str, machine: str) -> Path:
    return Path(results_dir) / machine / FILE_NAME


def _number(x: object) -> bool:
    return finite_number(x) is not None  # (a 400-digit integer is no number here either)


def _positive_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x > 0


def _shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error line stays one readable line
    whatever a crafted file holds."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _entry(i: int, raw: object, path: str) -> Entry:
    where = f"{path}: benchmarks[{i}]"
    if not isinstance(raw, dict):
        raise ReportError(f"{where} is a {type(raw).__name__}, expected an object")
    name, params = raw.get("benchmark"), raw.get("params")
    if not isinstance(name, str) or not name:
        raise ReportError(f"{where}: 'benchmark' must be a non-empty string, got {_shown(name)}")
    if not (isinstance(params, list) and all(isinstance(p, str) for p in params)):
        raise ReportError(f"{where}: 'params' must be a list of strings, got {_shown(params)}")
    medians = raw.get("medians", [])
    if not (isinstance(medians, list) and all(_number(m) for m in medians)):
        raise ReportError(f"{where}: 'medians' must be a list of numbers")
    for key in ("spread", "threshold", "detectable"):
        if not _number(raw.get(key)) or raw[key] < 1.0:
            raise ReportError(f"{where}: {key!r} must be a number >= 1.0, "
                              f"got {_shown(raw.get(key))}")
    return Entry(name, tuple(params), tuple(float(m) for m in medians), float(raw["spread"]),
                 float(raw["threshold"]), float(raw["detectable"]))


def parse(data: dict[str, Any], path: str) -> Thresholds:
    version = data.get("schema_version")
    if isinstance(version, bool) or version not in KNOWN_VERSIONS:
        raise ReportError(f"{path}: thresholds schema_version {_shown(version)} is not one "
                          f"this attnperf reads ({', '.join(map(str, KNOWN_VERSIONS))})")
    for key in ("runs", "rounds"):
        if not _positive_int(data.get(key)):
            raise ReportError(f"{path}: {key!r} must be a positive integer, "
                              f"got {_shown(data.get(key))}")
    for key in ("factor", "floor", "headroom"):
        if not _number(data.get(key)) or data[key] < 1.0:
            raise ReportError(f"{path}: {key!r} must be a number >= 1.0, "
                              f"got {_shown(data.get(key))}")
    for key in ("machine", "created", "commit"):
        if not isinstance(data.get(key), str):
            raise ReportError(f"{path}: {key!r} must be a string, got {_shown(data.get(key))}")
    entries = data.get("benchmarks")
    if not isinstance(entries, list):
        raise ReportError(f"{path}: 'benchmarks' must be a list")
    return Thresholds(data["machine"], data["created"], data["commit"], data["runs"],
                      data["rounds"], float(data["factor"]), float(data["floor"]),
                      float(data["headroom"]), [_entry(i, e, path) for i, e in enumerate(entries)])


def read(path: Path) -> Thresholds | None:
    """The thresholds in ``path``; None when there is no such file.

    A file that exists but is unreadable or invalid raises :class:`ReportError`:
    a gate must not silently fall back to other factors than the ones calibrated.
    """
    if not Path(path).exists():
        return None
    return parse(load_json(str(path), "thresholds"), str(path))


def write(path: Path, thresholds: Thresholds, inputs: Sequence[StrPath] = ()) -> None:
    """Write ``thresholds`` (never over one of ``inputs``: the files the command read)."""
    write_json(str(path), thresholds.to_dict(), inputs)


def entries_from(rows: Sequence[dict[str, Any]]) -> list[Entry]:
    """Entries from plain dicts (the shape :meth:`Entry.to_dict` writes)."""
    return [_entry(i, r, "<data>") for i, r in enumerate(rows)]
