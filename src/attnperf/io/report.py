"""The versioned JSON report: build, write atomically, read (also the seed's files).

Format history (``schema_version``):

* 1 -- first attnperf format.  ``results`` holds one entry per (kernel, config);
  the top level also carries the seed's keys (``correctness``, ``performance``,
  ``roofline``, ``config``, ``kernel_name``, ``timestamp``), mirroring the first
  successfully measured result, so tools written for the seed keep working.
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

Files without ``schema_version`` are read as the seed's single-config format
(``performance`` or, older, ``metrics``; the keys attnperf reads are described
by ``attnperf/io/schemas/seed-report.schema.json``).

Reading validates: a report must match its JSON Schema and hold finite numbers
only; the first bad field is named in a one-line :class:`ReportError`.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import List, Optional, Sequence

import jsonschema

from ..errors import InvalidShapeError, ReportError, SchemaVersionError
from ..kernels.registry import canonical_name
from ..model.names import home_to_tilde_in
from ..model.problem import Problem
from ..model.records import STATUSES, Measurement
from .jsonfile import finite, first_bad_number, json_path, load_json

SCHEMA_VERSION = 2
KNOWN_SCHEMA_VERSIONS = (1, 2)
SCHEMA_FILES = {v: Path(__file__).with_name("schemas") / f"report-v{v}.schema.json"
                for v in KNOWN_SCHEMA_VERSIONS}
SCHEMA_FILE = SCHEMA_FILES[SCHEMA_VERSION]
SEED_SCHEMA_FILE = Path(__file__).with_name("schemas") / "seed-report.schema.json"


def result_entry(m: Measurement) -> dict:
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
            # Seed keys.  The time basis is device time on a GPU; on a CPU the measuring
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


def build_report(measurements: List[Measurement], environment: dict,
                 ceilings: Optional[dict], settings: dict, interrupted: bool = False,
                 not_run: Sequence[str] = ()) -> dict:
    """The report of a run; ``interrupted`` with the ids of the configs ``not_run``
    for one that did not finish (a partial report is still a valid report)."""
    results = [result_entry(m) for m in measurements]
    report = {
        "schema_version": SCHEMA_VERSION,
        "tool": "attnperf",
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
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
    return finite(home_to_tilde_in(report))


def summarize(results: List[dict]) -> dict:
    counts = {s: 0 for s in STATUSES}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    counts["total"] = len(results)
    return counts


@functools.lru_cache(maxsize=None)
def _validator(schema_file: Path):
    schema = json.loads(schema_file.read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def validate(data: dict, schema_file: Path, path: str, what: str) -> None:
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


def read_results(path: str, what: str = "report") -> List[dict]:
    """Normalised result entries of an attnperf report or a seed JSON file.

    Each entry has ``id`` (kernel/config id), ``kernel_name``, ``config_id``,
    ``status``, ``correctness`` and ``performance`` with ``mean_time_ms`` and,
    where present, ``median_time_ms``.  A file that breaks its schema raises
    :class:`ReportError` naming the first bad field.
    """
    data = load_json(path, what)
    if "schema_version" in data:
        version = data["schema_version"]
        if isinstance(version, bool) or version not in KNOWN_SCHEMA_VERSIONS:
            version_text = repr(version) if len(repr(version)) <= 40 else repr(version)[:37] + "..."
            raise SchemaVersionError(
                f"{what} {path!r} has schema_version {version_text}; this attnperf reads "
                f"{', '.join(map(str, KNOWN_SCHEMA_VERSIONS))}")
        validate(data, SCHEMA_FILES[version], path, what)
        results = data["results"]
        seen = set()
        for i, r in enumerate(results):
            if r["id"] in seen:
                raise ReportError(f"{what} {path!r}: results[{i}].id {r['id']!r} appears twice")
            seen.add(r["id"])
        return results
    if "performance" not in data and "metrics" not in data:
        raise ReportError(f"{what} {path!r} is neither an attnperf report (no schema_version) nor a "
                          "seed report (no performance.mean_time_ms or metrics.mean_time_ms)")
    validate(data, SEED_SCHEMA_FILE, path, what)
    return [_seed_entry(data)]


def _seed_entry(data: dict) -> dict:
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
