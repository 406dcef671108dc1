"""Baseline comparison: data in, data out (the contract of the legacy compare_baseline.py).

Per config matched by id (``kernel/config``):

* ``speedup`` = baseline_time / current_time
* ``improvement_pct`` = (baseline_time - current_time) / baseline_time * 100
* ``is_regression`` = improvement_pct < threshold   (threshold is negative: -3.0
  means "more than 3 % slower is a regression")

Verdict words follow the threshold symmetrically: REGRESSION below it,
IMPROVEMENT above its mirror (-threshold: more than 3 % faster at -3.0), NO
SIGNIFICANT CHANGE between.  (The legacy tool also said SLIGHT IMPROVEMENT for any
gain under 10 %: +0.05 % was an improvement while -2.98 % was no change.)

Times are medians when both sides have one (attnperf reports), else means (the
legacy single-config reports carry only ``mean_time_ms``).  A config that passed correctness in
the baseline and fails now, or was measured and now is skipped/unavailable, is a
regression too.  Reports timed on different kinds of device (GPU device time vs
CPU wall time) are refused.

Configs the baseline has and the current report lacks are lost coverage
(``missing``): they fail the comparison unless ``allow_missing`` says they may
be left out (a filtered run against a full baseline).
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ReportError
from ..io.jsonfile import finite_number
from ..model.records import BROKEN_STATUSES

DEFAULT_THRESHOLD = -3.0


def _time(perf: object, key: str) -> float | None:
    if not isinstance(perf, dict):
        return None
    v = finite_number(perf.get(key))
    return v if v is not None and v > 0 else None


def _pick_times(base: dict[str, Any],
                cur: dict[str, Any]) -> tuple[float | None, float | None, str]:
    for key in ("median_time_ms", "mean_time_ms"):
        b, c = _time(base.get("performance"), key), _time(cur.get("performance"), key)
        if b is not None and c is not None:
            return b, c, key
    return None, None, ""


def compare_one(base: dict[str, Any], cur: dict[str, Any],
                threshold: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": cur["id"],
        "kernel_name": cur.get("kernel_name"),
        "config_id": cur.get("config_id"),
        "baseline_status": base.get("status", "ok"),
        "current_status": cur.get("status", "ok"),
        "threshold": threshold,
    }
    b, c, key = _pick_times(base, cur)
    both_ok = row["baseline_status"] == "ok" and row["current_status"] == "ok"
    if b is None and both_ok:
        raise ReportError(f"{cur['id']}: measured on both sides but without a positive numeric "
                          "performance.median_time_ms or mean_time_ms; cannot compare")
    basis = [(x.get("performance") or {}).get("time_basis") for x in (base, cur)]
    if None not in basis and basis[0] != basis[1]:
        raise ReportError(f"{cur['id']}: baseline time is {basis[0]}, current is {basis[1]}; "
                          "compare reports timed the same way (same kind of device; on a CPU, "
                          "re-run the baseline with this attnperf)")
    if b is None or c is None:  # both or neither (_pick_times)
        row.update({"speedup": None, "improvement_pct": None, "baseline_time_ms": None,
                    "current_time_ms": None, "statistic": None, "is_regression": False,
                    "correctness_regression": False})
    else:
        improvement = (b - c) / b * 100.0
        row.update({"speedup": b / c, "improvement_pct": improvement, "baseline_time_ms": b,
                    "current_time_ms": c, "statistic": key,
                    "is_regression": improvement < threshold})
    broke = row["baseline_status"] == "ok" and row["current_status"] in BROKEN_STATUSES
    lost = row["baseline_status"] == "ok" and row["current_status"] in ("skipped", "unavailable")
    row["correctness_regression"] = broke
    row["coverage_regression"] = lost  # measured before, cannot run now
    row["is_regression"] = bool(row["is_regression"] or broke or lost)
    return row


def compare_results(baseline: list[dict[str, Any]], current: list[dict[str, Any]],
                    threshold: float = DEFAULT_THRESHOLD,
                    allow_missing: bool = False) -> dict[str, Any]:
    """Compare normalised result lists (see report.read_results).

    ``is_regression`` (the legacy key) is true for a slowdown past the
    threshold, a correctness or coverage loss, and -- unless ``allow_missing``
    -- for configs of the baseline absent from the current report.
    """
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold)):
        raise ReportError(f"threshold must be a finite number, got {threshold!r}")
    base_by_id = {r["id"]: r for r in baseline}
    cur_by_id = {r["id"]: r for r in current}
    common = [i for i in cur_by_id if i in base_by_id]
    if not common:
        raise ReportError(
            "baseline and current have no config in common "
            f"(baseline: {', '.join(sorted(base_by_id)) or 'none'}; "
            f"current: {', '.join(sorted(cur_by_id)) or 'none'})")
    rows = [compare_one(base_by_id[i], cur_by_id[i], threshold) for i in common]
    timed = [r for r in rows if r["improvement_pct"] is not None]
    worst = min(timed, key=lambda r: r["improvement_pct"]) if timed else rows[0]
    missing = sorted(set(base_by_id) - set(cur_by_id))
    coverage_lost = bool(missing) and not allow_missing
    out: dict[str, Any] = {
        "schema_version": 1,
        # The legacy keys, for the worst (most slowed-down) matched config.
        "speedup": worst["speedup"],
        "improvement_pct": worst["improvement_pct"],
        "is_regression": any(r["is_regression"] for r in rows) or coverage_lost,
        "baseline_time_ms": worst["baseline_time_ms"],
        "current_time_ms": worst["current_time_ms"],
        "threshold": threshold,
        "worst_id": worst["id"],
        "regressions": [r["id"] for r in rows if r["is_regression"]],
        "comparisons": rows,
        "unmatched": {"baseline_only": missing,
                      "current_only": sorted(set(cur_by_id) - set(base_by_id))},
        # In the baseline, not in the current report: lost coverage.
        "missing": missing,
        "allow_missing": allow_missing,
        "coverage_lost": coverage_lost,
    }
    return out


def verdict(improvement_pct: float | None, is_regression: bool,
            threshold: float = DEFAULT_THRESHOLD) -> str:
    """The legacy verdict words, symmetric about zero: REGRESSION past the threshold
    (or flagged by status), IMPROVEMENT past its mirror, else NO SIGNIFICANT CHANGE."""
    if is_regression:
        return "REGRESSION"
    if improvement_pct is None:
        return "NOT TIMED"
    if improvement_pct > abs(threshold):
        return "IMPROVEMENT"
    return "NO SIGNIFICANT CHANGE"


def verdict_of(r: dict[str, Any]) -> str:
    if r["correctness_regression"]:
        return f"CORRECTNESS REGRESSION ({r['current_status']})"
    if r.get("coverage_regression"):
        return f"NO LONGER MEASURED ({r['current_status']})"
    return verdict(r["improvement_pct"], r["is_regression"], r.get("threshold", DEFAULT_THRESHOLD))
