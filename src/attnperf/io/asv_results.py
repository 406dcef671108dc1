"""Read asv's result files robustly, for the PR comment and the site.

asv's own loader (``asv.results.Results.load``) stops at the first missing key
and needs asv importable.  The PR comment and the site must instead build from
whatever is there and *say* what is missing, so this module reads asv's
on-disk formats directly and turns every problem into a note.

Formats read (asv 0.6; see asv/results.py and asv/util.py ``write_json``):

* ``results/<machine>/<commit8>-<env>.json`` -- ``"version": 2``.  Keys
  ``commit_hash``, ``env_name``, ``date`` (commit date, ms since the epoch),
  ``params`` (the machine description plus ``python``), ``result_columns`` and
  ``results``: ``{benchmark: row}``, one row value per column.  Column
  ``result`` is a list in ``itertools.product`` order of column ``params``
  (each parameter value is its ``repr``: ``"'tiled'"``), or null when every
  combination failed.  Trailing null columns are dropped by asv.
* ``results/<machine>/machine.json`` -- ``"version": 1``, asv's machine fields
  plus what ``attnperf asv machine`` adds (gpu, driver, cuda, cudnn, torch).
* ``results/benchmarks.json`` -- ``"version": 2``: per benchmark its unit,
  type, ``param_names`` and ``params``.
* ``results/<machine>/attnperf-ceilings.json`` -- attnperf's measured
  ceilings (:mod:`attnperf.io.ceilings`), written by ``attnperf asv machine``.

Status of one parameter combination (asv's encoding):

* a number -> ``ok`` (in attnperf's suite the setup checks correctness before
  anything is timed, so a value implies a correct result);
* null -> ``failed`` (the benchmark or its setup raised: a wrong result, or an
  error);
* NaN -> ``skipped`` (n/a: unavailable kernel, problem too large, not selected);
* absent from the file -> ``missing``.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ReportError
from . import ceilings as ceilings_file
from .files import MAX_DEPTH, depth_of, read_text
from .jsonfile import finite_number, load_json
from .thresholds import FILE_NAME as THRESHOLDS_FILE

KNOWN_RESULT_VERSIONS = (2,)
KNOWN_MACHINE_VERSIONS = (1,)
KNOWN_BENCHMARKS_VERSIONS = (2,)

# asv 0.6's column order; used (with a note) when a file lacks result_columns.
ASV_RESULT_COLUMNS = ["result", "params", "version", "started_at", "duration",
                      "stats_ci_99_a", "stats_ci_99_b", "stats_q_25", "stats_q_75",
                      "stats_number", "stats_repeat", "samples", "profile"]

OK, FAILED, SKIPPED, MISSING = "ok", "failed", "skipped", "missing"
# asv's commit dates are ms since the epoch; outside 1970..2200 a date is damage.
MIN_DATE_MS, MAX_DATE_MS = 0, 7258118400000
_RESULT_NAME = re.compile(r"^[0-9a-f]{8}-.+\.json$")


def unquote(raw: str) -> str:
    """asv stores parameter values as ``repr``: ``"'tiled'"`` -> ``tiled``."""
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return str(raw)
    return value if isinstance(value, str) else str(raw)


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _finite_floats(values: object) -> list[float] | None:
    if not isinstance(values, list):
        return None
    out = [f for f in map(finite_number, values) if f is not None]
    return out or None


@dataclasses.dataclass(frozen=True)
class Point:
    """One parameter combination of one benchmark in one run."""

    status: str
    value: float | None = None
    samples: tuple[float, ...] | None = None
    stats: dict[str, float] | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


MISSING_POINT = Point(MISSING)


@dataclasses.dataclass
class BenchmarkResult:
    """All combinations of one benchmark in one run."""

    name: str
    params: list[list[str]]  # raw asv values (repr strings), as asv stores them
    version: str | None
    points: dict[tuple[str, ...], Point]  # keyed by unquoted values

    def get(self, *values: str) -> Point:
        return self.points.get(tuple(values), MISSING_POINT)


@dataclasses.dataclass
class Run:
    """One results file: one machine, one commit, one environment."""

    machine: str
    commit: str
    env_name: str
    date: int | None
    params: dict[str, str]  # asv's machine and environment fields, as text
    path: str
    benchmarks: dict[str, BenchmarkResult]
    notes: list[str]

    @property
    def short(self) -> str:
        return self.commit[:8]

    def point(self, benchmark: str, *values: str) -> Point:
        b = self.benchmarks.get(benchmark)
        return b.get(*values) if b is not None else MISSING_POINT


@dataclasses.dataclass
class Machine:
    name: str
    info: dict[str, str]
    ceilings: dict[str, Any] | None
    runs: list[Run]  # oldest first (commit date)
    notes: list[str]

    def latest(self) -> Run | None:
        return self.runs[-1] if self.runs else None

    def runs_for(self, commit: str) -> list[Run]:
        return [r for r in self.runs if commit and r.commit.startswith(commit)]


@dataclasses.dataclass
class ResultsDB:
    root: str
    machines: dict[str, Machine]
    benchmarks: dict[str, dict[str, Any]]  # benchmarks.json, {} when absent
    notes: list[str]

    def param_names(self, benchmark: str, count: int) -> list[str]:
        names = (self.benchmarks.get(benchmark) or {}).get("param_names")
        if (
            isinstance(names, list)
            and len(names) == count
            and all(isinstance(n, str) for n in names)
        ):
            return names
        if count == 2 and benchmark.startswith("bench_attention."):
            return ["kernel", "problem"]  # attnperf's suite, when benchmarks.json is missing
        return [f"param{i + 1}" for i in range(count)]

    def unit(self, benchmark: str) -> str | None:
        unit = (self.benchmarks.get(benchmark) or {}).get("unit")
        return unit if isinstance(unit, str) else None

    def all_notes(self) -> list[str]:
        notes = list(self.notes)
        for m in self.machines.values():
            notes += m.notes
            for r in m.runs:
                notes += r.notes
        return notes


# ------------------------------------------------------------- reading ------
# asv's own files are small (a result file of a large grid with raw samples: ~1 MiB);
# larger is damage, refused with a note before it is parsed.
MAX_ASV_FILE_BYTES = 16 << 20


def _load(path: Path, notes: list[str], what: str) -> dict[str, Any] | None:
    """JSON object of ``path`` or None (with a note)."""
    try:
        return load_json(str(path), what, MAX_ASV_FILE_BYTES)
    except ReportError as exc:
        notes.append(str(exc))
        return None


def _version_ok(data: dict[str, Any], path: Path, known: Sequence[int], what: str,
                notes: list[str]) -> bool:
    version = data.get("version")
    if version in known:
        return True
    notes.append(f"{path}: {what} format version {version!r} is not one this attnperf reads "
                 f"({', '.join(map(str, known))}); file ignored")
    return False


def _text_fields(data: dict[str, Any], path: Path, what: str, notes: list[str]) -> dict[str, str]:
    """A machine description as asv writes it: text values.  Numbers become text;
    anything else (null, lists, objects) is dropped with one note."""
    out: dict[str, str] = {}
    dropped = []
    for k, v in data.items():
        if isinstance(v, str):
            out[str(k)] = v
        elif finite_number(v) is not None:
            out[str(k)] = str(v)
        else:
            dropped.append(str(k)[:40])
    if dropped:
        notes.append(
            f"{path}: {what} fields that are not text were ignored: {', '.join(dropped[:8])}"
        )
    return out


def _date(value: object, path: Path, notes: list[str]) -> int | None:
    """asv's commit date (ms since the epoch), or None (with a note) when damaged."""
    if value is None:
        return None
    ms = finite_number(value)
    if ms is not None and MIN_DATE_MS <= ms <= MAX_DATE_MS:
        return int(ms)
    notes.append(f"{path}: date {str(value)[:40]!r} is not a commit date (ms since 1970); "
                 "ordered last")
    return None


def _column_list(value: object, n: int) -> list[Any]:
    """A per-combination column: a list of length n (padded), whatever asv wrote."""
    if not isinstance(value, list):
        return [None] * n
    return (list(value) + [None] * n)[:n]


def _parse_row(name: str, row: object, columns: list[str], path: Path, notes: list[str]
               ) -> BenchmarkResult | None:
    if not isinstance(row, list):
        notes.append(f"{path}: {name}: row is a {type(row).__name__}, expected a list; ignored")
        return None
    cols = dict(zip(columns, row + [None] * (len(columns) - len(row)), strict=False))
    params = cols.get("params") or []
    if not (isinstance(params, list) and all(isinstance(p, list) for p in params)):
        notes.append(f"{path}: {name}: malformed params {params!r}; ignored")
        return None
    params = [[str(v) for v in p] for p in params]
    combos = list(itertools.product(*params)) if params else [()]
    n = len(combos)
    result = cols.get("result")
    if result is not None and not isinstance(result, list):
        result = [result]  # a scalar: pre-0.5 style
    if isinstance(result, list) and len(result) != n:
        notes.append(f"{path}: {name}: {len(result)} results for {n} parameter combinations; "
                     "the extra or missing ones are shown as missing")
    values = _column_list(result, n) if result is not None else [None] * n
    missing_tail = len(result) if isinstance(result, list) else n
    samples = _column_list(cols.get("samples"), n)
    stat_cols = {k[6:]: _column_list(v, n) for k, v in cols.items() if k.startswith("stats_")}
    points: dict[tuple[str, ...], Point] = {}
    for i, combo in enumerate(combos):
        key = tuple(unquote(v) for v in combo)
        v = values[i]
        if i >= missing_tail:
            points[key] = MISSING_POINT
        elif v is None:
            points[key] = Point(FAILED)
        elif isinstance(v, float) and not math.isfinite(v):
            points[key] = Point(SKIPPED)  # asv writes NaN for n/a
        elif finite_number(v) is None:
            notes.append(f"{path}: {name}{list(key)}: value {str(v)[:40]!r} is not a usable "
                         "number; shown as failed")
            points[key] = Point(FAILED)
        else:
            st = {k: f for k, f in ((k, finite_number(c[i])) for k, c in stat_cols.items())
                  if f is not None}
            s = _finite_floats(samples[i])
            points[key] = Point(OK, float(v), tuple(s) if s else None, st or None)
    version = cols.get("version")
    return BenchmarkResult(name, params, version if isinstance(version, str) else None, points)


def read_run(path: Path, machine: str, notes: list[str]) -> Run | None:
    """One asv results file, or None (with a note saying why)."""
    data = _load(path, notes, "asv results")
    if data is None:
        return None
    if not isinstance(data, dict):
        notes.append(f"{path}: holds a JSON {type(data).__name__}, expected an asv results object")
        return None
    if not _version_ok(data, path, KNOWN_RESULT_VERSIONS, "asv results", notes):
        return None
    run_notes: list[str] = []
    commit = data.get("commit_hash")
    if not isinstance(commit, str) or not re.fullmatch(r"[0-9a-f]{7,40}", commit):
        notes.append(f"{path}: no valid commit_hash ({commit!r}); file ignored")
        return None
    columns = data.get("result_columns")
    if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
        run_notes.append(f"{path}: no result_columns; assuming asv 0.6's column order")
        columns = ASV_RESULT_COLUMNS
    results = data.get("results")
    if not isinstance(results, dict):
        run_notes.append(f"{path}: no 'results' object; the run has no benchmark results")
        results = {}
    params = _text_fields(data["params"], path, "params", run_notes) \
        if isinstance(data.get("params"), dict) else {}
    if params.get("machine") not in (None, machine):
        run_notes.append(f"{path}: records machine {params.get('machine')!r} but lies in "
                         f"results/{machine}/; shown under {machine!r}")
    date = _date(data.get("date"), path, run_notes)
    benchmarks = {}
    for name, row in results.items():
        b = _parse_row(str(name), row, columns, path, run_notes)
        if b is not None:
            benchmarks[str(name)] = b
    env_name = data.get("env_name")
    if not isinstance(env_name, str):
        env_name = "unknown-env"
    return Run(machine=machine, commit=commit, env_name=env_name,
               date=date,
               params=params, path=str(path), benchmarks=benchmarks, notes=run_notes)


def read_machine(mdir: Path) -> Machine:
    notes: list[str] = []
    info: dict[str, str] = {}
    mfile = mdir / "machine.json"
    if mfile.exists():
        data = _load(mfile, notes, "machine description")
        if isinstance(data, dict) and _version_ok(data, mfile, KNOWN_MACHINE_VERSIONS,
                                                   "machine.json", notes):
            info = _text_fields({k: v for k, v in data.items() if k != "version"}, mfile,
                                "machine description", notes)
        elif data is not None and not isinstance(data, dict):
            notes.append(f"{mfile}: not a JSON object; machine description ignored")
    else:
        notes.append(f"{mdir}: no machine.json; machine details come from the result files")
    ceilings = ceilings_file.read(mdir / ceilings_file.FILE_NAME, notes)
    runs = []
    for path in sorted(mdir.glob("*.json")):
        if path.name in ("machine.json", ceilings_file.FILE_NAME, THRESHOLDS_FILE):
            continue
        if not _RESULT_NAME.match(path.name):
            notes.append(
                f"{path}: not named like an asv result file (<commit8>-<env>.json); ignored"
            )
            continue
        run = read_run(path, mdir.name, notes)
        if run is not None:
            runs.append(run)
    runs.sort(key=lambda r: (r.date is None, r.date or 0, r.commit))
    if not info and runs:
        info = {k: v for k, v in runs[-1].params.items()}
    return Machine(name=mdir.name, info=info, ceilings=ceilings, runs=runs, notes=notes)


def read_benchmarks(root: Path, notes: list[str]) -> dict[str, dict[str, Any]]:
    path = root / "benchmarks.json"
    if not path.exists():
        notes.append(f"{path}: missing; units and parameter names are guessed")
        return {}
    data = _load(path, notes, "benchmark list")
    if not isinstance(data, dict):
        return {}
    if not _version_ok(data, path, KNOWN_BENCHMARKS_VERSIONS, "benchmarks.json", notes):
        return {}
    return {k: v for k, v in data.items() if k != "version" and isinstance(v, dict)}


def read_results(root: str) -> ResultsDB:
    """Everything under an asv results directory; never raises for bad content."""
    base = Path(root)
    notes: list[str] = []
    if not base.is_dir():
        notes.append(f"{root}: no such results directory (no asv run has written results yet)")
        return ResultsDB(root=str(root), machines={}, benchmarks={}, notes=notes)
    benchmarks = read_benchmarks(base, notes)
    machines = {}
    for mdir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        machines[mdir.name] = read_machine(mdir)
    if not machines:
        notes.append(f"{root}: no machine directories (empty history)")
    return ResultsDB(root=str(root), machines=machines, benchmarks=benchmarks, notes=notes)


MAX_CONF_BYTES = 4 << 20  # an asv.conf.json larger than this is not one


def read_asv_conf(path: str) -> dict[str, Any]:
    """asv.conf.json (JSON with // comments, as asv reads it: json5 when available), read
    through the file door.  Raises :class:`ReportError` (unreadable, not a regular file,
    too large, too deep) or ``ValueError`` (not JSON, not an object)."""
    text = read_text(path, "asv config", MAX_CONF_BYTES)
    try:
        import json5
    except ImportError:
        json5 = None  # type: ignore[assignment]  # absent: JSON less its // comment lines
    try:
        if json5 is not None:
            data = json5.loads(text)
        else:
            data = json.loads("\n".join(line for line in text.splitlines()
                                        if not line.lstrip().startswith("//")))
    except RecursionError:
        raise ValueError("nested too deeply to be an asv config") from None
    if not isinstance(data, dict):
        raise ValueError(f"holds a JSON {type(data).__name__}, expected an object")
    if depth_of(data) > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
    return data


def raw_param(benchmark: BenchmarkResult | None, index: int, value: str) -> str:
    """The repr string asv uses for a parameter value (for asv URLs)."""
    if benchmark is not None and index < len(benchmark.params):
        for raw in benchmark.params[index]:
            if unquote(raw) == value:
                return raw
    return repr(value)
