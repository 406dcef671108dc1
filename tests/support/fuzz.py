"""Damaged files for the fuzz tests of the readers (tests/test_fuzz_readers.py,
tests/test_doors_fuzz.py): hypothesis strategies that damage a valid JSON document
(:func:`damaged`: a value swapped for random JSON, NaN/Infinity, a huge or 5000-digit number, a
deeply nested array, a deleted key, a truncated text), a systematic sweep (:func:`swept`), the
valid documents they start from, and the check of a ceilings file.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

from hypothesis import strategies as st

from attnperf.io import ceilings as ceilings_file
from attnperf.model import roofline
from attnperf.model.problem import Problem
from support import asvdata as d

DEEP = "\x00deep\x00"      # placeholders replaced in the serialised text
HUGE = "\x00huge\x00"

# ----------------------------------------------------------- strategies -----
# Values that broke readers before: non-finite, huge, wrong type, deep.
SPECIALS = [math.inf, -math.inf, math.nan, 10 ** 400, 1e308, -1, 0, None, True, "x", [], {},
            [[1]], DEEP, HUGE]
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10 ** 6, max_value=10 ** 6),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from([-0.0, 2 ** 63, "", "nan", "'sdpa'", "Infinity", "aaaaaaaa", "a" * 40,
                     "b8_h4_sq64_d64_fp16", "<!--"]))
json_values = st.one_of(
    st.sampled_from(SPECIALS),
    st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                 | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8))


def _paths(x, prefix=()):
    """Every path (tuple of keys/indexes) into ``x``, the root included."""
    out = [prefix]
    if isinstance(x, dict):
        for k, v in x.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            out += _paths(v, prefix + (i,))
    return out


def _set(doc, path, value, delete=False):
    if not path:
        return value
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    elif delete:
        parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return doc


@st.composite
def damaged(draw, template):
    """``template`` (a JSON value) with 1-3 generated changes, serialised, maybe truncated."""
    doc = copy.deepcopy(template)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        delete = bool(path) and draw(st.booleans()) and draw(st.booleans())
        # deepcopy: SPECIALS holds lists a later change could otherwise edit in place
        doc = _set(doc, path, None if delete else copy.deepcopy(draw(json_values)), delete=delete)
    text = _serialise(
        doc,
        draw(st.sampled_from([3, 500, 5000, 100000])),
        draw(st.sampled_from(["9" * 5000, "9" * 5000 + ".5", "1e999", "-" + "1" * 4000])),
    )
    if draw(st.integers(0, 9)) == 0:
        text = text[:draw(st.integers(0, len(text)))]
    return text


def _serialise(doc, depth: int = 5000, huge: str = "9" * 5000) -> str:
    text = json.dumps(doc)  # NaN/Infinity literals, as asv and Python write them
    text = text.replace(json.dumps(DEEP), "[" * depth + "]" * depth)
    return text.replace(json.dumps(HUGE), huge)


SWEPT = [math.inf, math.nan, 10 ** 400, None, "x", [[1]], DEEP]  # one of each kind of damage


def swept(template):
    """Every path of ``template`` (the root too) set to every value of SWEPT, in turn."""
    for path in _paths(template):
        for value in SWEPT:
            yield _serialise(_set(copy.deepcopy(template), path, value))


# ------------------------------------------------------------ templates -----
def _report_template():
    perf = {"mean_time_ms": 0.5, "std_dev_ms": 0.01, "throughput_gflops": 1.0,
            "bandwidth_gb_s": 2.0, "median_time_ms": 0.5, "iqr_ms": 0.01, "min_time_ms": 0.49,
            "time_basis": "cpu_wall_time", "unstable": False, "device_time": None, "latency": None}
    config = {"id": "b1_h2_sq16_d8_fp32", "batch_size": 1, "num_heads": 2, "num_kv_heads": 2,
              "seq_len": 16, "seq_len_kv": 16, "head_dim": 8, "causal": False, "dtype": "float32",
              "mode": "fwd"}
    results = [{"id": f"{k}/b1_h2_sq16_d8_fp32", "kernel_name": k, "config_id": config["id"],
                "config": config, "device": "cpu", "status": "ok", "reason": "",
                "correctness": None, "performance": dict(perf), "roofline": None}
               for k in ("sdpa", "naive")]
    return {"schema_version": 1, "tool": "attnperf", "timestamp": "2026-01-01 00:00:00",
            "environment": {"attnperf_version": "0.1.0", "python": "3.11", "torch": "2.13",
                            "device": "cpu", "cpu_model": "x"},
            "settings": {}, "summary": {"ok": 2, "failed": 0, "error": 0, "skipped": 0,
                                        "unavailable": 0, "total": 2},
            "results": results}


SEED_TEMPLATE = {"kernel_name": "pytorch_sdpa", "timestamp": "2025-10-13 05:37:26",
                 "config": {"batch_size": 8, "num_heads": 4, "seq_len": 64, "head_dim": 64,
                            "dtype": "float16"},
                 "correctness": {"passed": True}, "performance": {"mean_time_ms": 0.0524}}

REPORT_TEMPLATES = [_report_template(), SEED_TEMPLATE]


# ---------------------------------------------------- asv result templates ----
_PARAMS = d.grid_params(["sdpa", "tiled"], ["seed", "train"])
ASV_TEMPLATES = {
    "run": d.result_doc("a" * 40, d.CPU_INFO, 1795000000000, {
        d.TIME: d.row(_PARAMS, [d.samples(1e-3, n=7), math.nan, None, 2e-3]),
        d.XFLOOR: d.row(_PARAMS, [3.0, 4.0, math.nan, 5.0], with_samples=False)}),
    "machine": dict(d.CPU_INFO, version=1),
    "benchmarks": {"version": 2, d.TIME: {"name": d.TIME, "param_names": ["kernel", "problem"],
                                          "params": _PARAMS, "type": "track", "unit": "seconds"}},
    "ceilings": dict(d.CPU_CEILINGS),
}


# -------------------------------------------------------------- ceilings ----
PROBLEMS = [Problem(batch=1, heads=2, seq_q=16, head_dim=8, dtype=dt)
            for dt in ("float16", "bfloat16", "float32")]


def check_ceilings_file(path: Path) -> None:
    """What the roofline does with a ceilings file: a usable record (finite figures for every
    dtype it covers) or None with one-line notes, never a traceback."""
    notes = []
    data = ceilings_file.read(path, notes)
    if data is None:
        assert notes and all("\n" not in n for n in notes)
        return
    assert ceilings_file.problem_with(data) is None
    for p in PROBLEMS:
        ceiling = roofline.ceiling_for(p, data, None)
        if ceiling is not None:
            r = roofline.analyze(p, 1e-3, ceiling, "cpu")
            assert math.isfinite(r.efficiency_pct) and math.isfinite(r.x_over_floor)
