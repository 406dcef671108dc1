"""The versioned JSON report: build, write atomically, read (also legacy single-config reports).

Writing goes from records (:func:`result_entry` of a
:class:`~attnperf.model.records.Measurement`, :func:`build_report` /
:func:`report_dict` of a run) and reading comes back to them
(:func:`measurement_from_entry`, :func:`read_report`): a report read into
records writes the same JSON again.  :func:`read_results` gives the
normalised result entries as dicts, which is also how legacy single-config reports are read.

Format history (``schema_version``):

* 1 -- first attnperf format.  ``results`` holds one entry per (kernel, config);
  the top level also carries the single-config keys of legacy single-config reports
  (``correctness``, ``performance``, ``roofline``, ``config``, ``kernel_name``,
  ``timestamp``), mirroring the first successfully measured result, so tools
  written for legacy single-config reports keep working.
  JSON Schema: ``attnperf/io/schemas/report-v1.schema.json``.
  Later additions, compatible (a reader of 1 may ignore them; older files lack
  them): statuses ``crashed`` (the worker process died; signal or exit code in
  ``reason``) and ``timed_out`` (the per-config limit in ``reason``), with
  their ``summary`` counts; ``interrupted`` (the run did not finish: stopped by
  a signal, or still running when the file was written) and ``not_run`` (ids
  of the configs it did not reach); ``correctness.modified_inputs``.

* 2 -- training passes.  ``config.mode`` may be ``bwd`` or ``fwd+bwd`` (ids
  end in ``_bwd`` / ``_fwdbwd``); each result has ``gradients`` (``dq``,
  ``dk``, ``dv``: the correctness figures of each gradient against float64
  autograd; null for ``fwd``); ``correctness.modified_inputs`` may name
  ``dout``; ``settings.passes``; ``performance.time_basis`` may be
  ``cpu_thread_time`` (a CPU at one thread: the measuring thread's CPU time;
  ``device_time`` then adds ``cpu_clock``, ``wall_samples_ms``,
  ``normalised_samples_ms`` and ``cpu_reference_ms``);
  ``results[].peak_memory`` (``peak_bytes``:
  device memory one warm call allocated at its peak beyond what was allocated
  before it, null where unavailable, e.g. on a CPU; ``method``, ``note``,
  ``baseline_bytes``).  JSON Schema: ``report-v2.schema.json``.
  Version-1 files are still read (validated against the v1 schema).

Files without ``schema_version`` are read as legacy single-config reports: the single-config
format of the benchmark script attnperf grew from (``performance`` or, older,
``metrics``; the keys attnperf reads are described by
``attnperf/io/schemas/seed-report.schema.json``).  They hold no samples, so
they read as result entries only, never as records.

Reading validates: a report must match its JSON Schema and hold finite numbers
only; the first bad field is named in a one-line :class:`ReportError`.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, overload

import jsonschema

from ..errors import InvalidShapeError, ReportError, SchemaVersionError
from ..kernels.registry import canonical_name
from ..model.names import home_to_tilde_in
from ..model.problem import Problem
from ..model.records import (
    STATUSES,
    Correctness,
    Measurement,
    PeakMemory,
    Report,
    roofline_from_dict,
)
from ..model.samples import Samples
from .jsonfile import finite, first_bad_number, json_path, load_json

SCHEMA_VERSION = 2
KNOWN_SCHEMA_VERSIONS = (1, 2)
SCHEMA_FILES = {v: Path(__file__).with_name("schemas") / f"report-v{v}.schema.json"
                for v in KNOWN_SCHEMA_VERSIONS}
SCHEMA_FILE = SCHEMA_FILES[SCHEMA_VERSION]
SEED_SCHEMA_FILE = Path(__file__).with_name("schemas") / "seed-report.schema.json"


def result_entry(m: Measurement) -> dict[str, Any]:
    p = m.problem
    entry = {
        "id": f"{m.kernel}/{p.id}",
        "kernel_name": m.kernel,
        "config_id": p.id,
        "config": p.to_config(),
        "device": m.device,
        "status": m.status,
        "reason": m.reason,
        "timestamp": m.timestamp,
        "dispatch": {"backend": m.dispatch} if m.dispatch else None,
        "correctness": m.correctness.to_dict() if m.correctness else None,
        "performance": None,
        "roofline": m.roofline.to_dict() if m.roofline else None,
        "peak_memory": m.peak_memory.to_dict() if m.peak_memory else None,
        "clock": {"before": m.clock_before, "after": m.clock_after} if m.clock_before else None,
        "warnings": list(m.warnings),
        "gradients": ({name: c.to_dict() for name, c in m.gradients.items()}
                      if m.gradients else None),
    }
    if m.device_time is not None:
        st = m.device_time.stats()
        perf = {
            # Seed-report keys.  The time basis is device time on a GPU; on a CPU the measuring
            # thread's CPU time at 1 PyTorch thread, else wall time.
            "mean_time_ms": st["mean_ms"],
            "std_dev_ms": st["std_ms"],
            "throughput_gflops": m.roofline.achieved_tflops * 1e3 if m.roofline else None,
            "bandwidth_gb_s": m.roofline.achieved_gb_s if m.roofline else None,
            "median_time_ms": st["median_ms"],
            "iqr_ms": st["iqr_ms"],
            "min_time_ms": st["min_ms"],
            "time_basis": time_basis(m),
            "unstable": st["unstable"],
            "device_time": m.device_time.to_dict(),
            "latency": m.latency.to_dict() if m.latency else None,
        }
        entry["performance"] = perf
    return entry


def time_basis(m: Measurement) -> str:
    """``device_time`` (GPU), ``cpu_thread_time`` (CPU, one thread) or ``cpu_wall_time``."""
    if m.device == "cuda":
        return "device_time"
    return "cpu_thread_time" if m.device_time and m.device_time.cpu_clock == "thread" \
        else "cpu_wall_time"


def measurement_from_entry(e: dict[str, Any]) -> Measurement:
    """Inverse of :func:`result_entry`: the record of one result entry (schema v1
    or v2; what an older entry lacks reads as absent).  The ``performance``
    figures are derived from the samples and the roofline, so they are not read."""
    perf = e.get("performance") or {}
    clock = e.get("clock") or {}
    gradients = e.get("gradients")
    return Measurement(
        e["kernel_name"], Problem.from_config(e["config"]), e["device"], status=e["status"],
        reason=e.get("reason", ""),
        correctness=Correctness.from_dict(e["correctness"]) if e.get("correctness") else None,
        device_time=Samples.from_dict(perf["device_time"]) if perf.get("device_time") else None,
        latency=Samples.from_dict(perf["latency"]) if perf.get("latency") else None,
        roofline=roofline_from_dict(e["roofline"]) if e.get("roofline") else None,
        peak_memory=PeakMemory.from_dict(e["peak_memory"]) if e.get("peak_memory") else None,
        dispatch=(e.get("dispatch") or {}).get("backend"),
        clock_before=clock.get("before"), clock_after=clock.get("after"),
        timestamp=e.get("timestamp", ""), warnings=list(e.get("warnings", [])),
        gradients=({name: Correctness.from_dict(c) for name, c in gradients.items()}
                   if gradients else None))


def build_report(measurements: list[Measurement], environment: dict[str, Any],
                 ceilings: dict[str, Any] | None, settings: dict[str, Any],
                 interrupted: bool = False, not_run: Sequence[str] = (),
                 timestamp: str | None = None) -> dict[str, Any]:
    """The report of a run; ``interrupted`` with the ids of the configs ``not_run``
    for one that did not finish (a partial report is still a valid report).
    ``timestamp``: when it was written (default: now)."""
    results = [result_entry(m) for m in measurements]
    report = {
        "schema_version": SCHEMA_VERSION,
        "tool": "attnperf",
        "timestamp": timestamp or time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "environment": environment,
        # The cache path holds $HOME or $XDG_CACHE_HOME: no environment in reports.
        "ceilings": ({k: v for k, v in ceilings.items() if k != "cache_path"}
                     if ceilings else ceilings),
        "settings": settings,
        "summary": summarize(results),
        "interrupted": bool(interrupted),
        "not_run": list(not_run),
        "results": results,
    }
    primary = next((r for r in results if r["status"] == "ok"), results[0] if results else None)
    if primary is not None:
        report.update({
            "kernel_name": primary["kernel_name"],
            "config": primary["config"],
            "correctness": primary["correctness"],
            "performance": primary["performance"],
            "roofline": primary["roofline"],
        })
    # Exception texts (reasons, warnings) name files under the home directory: as ~/...
    out: dict[str, Any] = finite(home_to_tilde_in(report))
    return out


def report_dict(report: Report) -> dict[str, Any]:
    """The JSON report of a :class:`~attnperf.model.records.Report` record."""
    return build_report(report.measurements, report.environment, report.ceilings,
                        report.settings, interrupted=report.interrupted,
                        not_run=report.not_run, timestamp=report.timestamp)


def report_from_dict(data: dict[str, Any], path: str = "", what: str = "report") -> Report:
    """Inverse of :func:`report_dict` for a validated report (schema v1 or v2): the
    summary and the single-config top-level keys are derived, so they are not read."""
    measurements = []
    for i, e in enumerate(data["results"]):
        try:
            measurements.append(measurement_from_entry(e))
        except (InvalidShapeError, KeyError, TypeError, ValueError) as exc:
            # The schemas leave some fields of older files optional; a record needs them.
            why = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
            raise ReportError(f"{what} {path!r}: results[{i}] cannot be read as a measurement: "
                              f"{why}") from None
    return Report(measurements, data["environment"], data.get("ceilings"),
                  data.get("settings", {}), interrupted=bool(data.get("interrupted", False)),
                  not_run=list(data.get("not_run", [])), timestamp=data.get("timestamp"))


def summarize(results: list[dict[str, Any]]) -> dict[str, int]:
    counts = {s: 0 for s in STATUSES}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    counts["total"] = len(results)
    return counts


@functools.cache
def _validator(schema_file: Path) -> Any:  # a jsonschema validator (untyped)
    schema = json.loads(schema_file.read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def validate(data: dict[str, Any], schema_file: Path, path: str, what: str) -> None:
    """Raise a one-line :class:`ReportError` naming the first field of ``data``
    that breaks ``schema_file`` or holds a non-finite or absurd number."""
    bad = first_bad_number(data)
    if bad is not None:
        raise ReportError(f"{what} {path!r}: {bad[0]} {bad[1]}")
    try:
        error = jsonschema.exceptions.best_match(_validator(schema_file).iter_errors(data))
    except RecursionError:
        raise ReportError(f"{what} {path!r} is nested too deeply to be a report") from None
    if error is not None:
        message = error.message if len(error.message) <= 120 else error.message[:117] + "..."
        raise ReportError(f"{what} {path!r}: {json_path(error.absolute_path)}: {message} "
                          f"(schema: {schema_file.name})")


def _checked(data: dict[str, Any], path: str, what: str) -> dict[str, Any]:
    """``data``, an attnperf report (``schema_version``), checked: a version this
    attnperf reads, its schema, no result id twice."""
    version = data["schema_version"]
    if isinstance(version, bool) or version not in KNOWN_SCHEMA_VERSIONS:
        version_text = repr(version) if len(repr(version)) <= 40 else repr(version)[:37] + "..."
        raise SchemaVersionError(
            f"{what} {path!r} has schema_version {version_text}; this attnperf reads "
            f"{', '.join(map(str, KNOWN_SCHEMA_VERSIONS))}")
    validate(data, SCHEMA_FILES[version], path, what)
    seen: set[str] = set()
    for i, r in enumerate(data["results"]):
        if r["id"] in seen:
            raise ReportError(f"{what} {path!r}: results[{i}].id {r['id']!r} appears twice")
        seen.add(r["id"])
    return data


@overload
def read_results(path: str, what: str = ...,
                 records: Literal[False] = ...) -> list[dict[str, Any]]: ...
@overload
def read_results(path: str, what: str = ..., *, records: Literal[True]) -> list[Measurement]: ...
@overload
def read_results(path: str, what: str = ...,
                 records: bool = ...) -> list[dict[str, Any]] | list[Measurement]: ...
def read_results(path: str, what: str = "report",
                 records: bool = False) -> list[dict[str, Any]] | list[Measurement]:
    """Normalised result entries of an attnperf report or a legacy single-config JSON file.

    Each entry has ``id`` (kernel/config id), ``kernel_name``, ``config_id``,
    ``status``, ``correctness`` and ``performance`` with ``mean_time_ms`` and,
    where present, ``median_time_ms``.  A file that breaks its schema raises
    :class:`ReportError` naming the first bad field.  ``records=True``: the
    results of an attnperf report as :class:`~attnperf.model.records.Measurement`
    records instead (:func:`read_report`; a legacy file has none).
    """
    if records:
        return read_report(path, what).measurements
    data = load_json(path, what)
    if "schema_version" in data:
        results: list[dict[str, Any]] = _checked(data, path, what)["results"]
        return results
    if "performance" not in data and "metrics" not in data:
        raise ReportError(
            f"{what} {path!r} is neither an attnperf report (no schema_version) nor a "
            "legacy single-config report (no performance.mean_time_ms or metrics.mean_time_ms)"
        )
    validate(data, SEED_SCHEMA_FILE, path, what)
    return [_seed_entry(data)]


def read_report(path: str, what: str = "report") -> Report:
    """An attnperf report (schema v1 or v2) as a :class:`~attnperf.model.records.Report`
    record; :func:`report_dict` writes it again as it was read (a v1 file as v2)."""
    data = load_json(path, what)
    if "schema_version" not in data:
        raise ReportError(f"{what} {path!r} is not an attnperf report (no schema_version): "
                          "a legacy single-config report has results but no records")
    return report_from_dict(_checked(data, path, what), path, what)


def _seed_entry(data: dict[str, Any]) -> dict[str, Any]:
    perf = data.get("performance") or data.get("metrics")
    cfg = data.get("config") or {}
    try:
        config_id = Problem.from_config(cfg).id if cfg else "default"
    except InvalidShapeError:
        config_id = "default"
    kernel = canonical_name(data.get("kernel_name", "unknown"))
    corr = data.get("correctness")
    return {
        "id": f"{kernel}/{config_id}", "kernel_name": kernel, "config_id": config_id,
        "config": cfg, "status": "ok" if (corr or {}).get("passed", True) else "failed",
        "correctness": corr, "performance": perf, "roofline": data.get("roofline"),
    }
