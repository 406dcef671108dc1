"""What the verdicts depend on, pinned at their boundaries.

Every gate here is tested just inside and just outside its edge, so a changed
constant, a flipped comparison or an inverted metric makes a test fail:

* the per-dtype correctness tolerances (docs/methodology.md: "within 1e-4 (fp32), 3e-3 (TF32),
  5e-3 (fp16), 2e-2 (bf16)") and the max-element rule;
* ``attnperf compare``'s threshold (docs/measuring.md: ``is_regression = improvement_pct <
  threshold``);
* asv's significance level (p < 0.002) and the sample counts it needs;
* the direction of every gated asv metric (a slower kernel raises each one);
* FLOP and byte counts for causal (square and Sq != Sk), GQA and decode shapes;
* the copy-bandwidth and matmul-rate formulas of the ceiling measurement,
  driven by an injected timer.

Expected numbers are worked out by hand in the comments, never by calling the
code under test.
"""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import pytest
import torch
from asv_runner.statistics import compute_stats

from attnperf.analysis import ab
from attnperf.analysis import compare as cmp
from attnperf.analysis.gate import is_view, metric_factor
from attnperf.asv import suite
from attnperf.io.asv_results import FAILED, OK, Point, read_results, read_run
from attnperf.measure import correctness
from attnperf.model import roofline
from attnperf.model.problem import MAX_ABS_FACTOR, TOLERANCES, Problem
from attnperf.model.records import Correctness, Measurement, PeakMemory, Samples
from support import asvdata as d

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks" / "bench_attention.py"
TIME_BENCH = "bench_attention.TimeAttention.track_device_time"


# ----------------------------------------------------------- tolerances -----
def _readme_tolerances() -> dict:
    """The tolerances the docs promise, read from their text (docs/methodology.md)."""
    text = (REPO / "docs" / "methodology.md").read_text()
    m = re.search(r"within\s+([0-9.e-]+)\s+\(fp32\),\s+([0-9.e-]+)\s+\(TF32\),\s+([0-9.e-]+)\s+"
                  r"\(fp16\),\s+([0-9.e-]+)\s+\(bf16\)", text)
    assert m, "docs/methodology.md no longer states the per-dtype tolerances"
    return dict(
        zip(("float32", "tf32", "float16", "bfloat16"), map(float, m.groups()), strict=False)
    )


# Each tolerance key and the (dtype, tf32) that selects it.  float64 is not a
# Problem dtype: its key is reached by patching precision_key (below).
KEY_SELECTORS = {"float32": ("float32", False), "tf32": ("float32", True),
                 "float16": ("float16", False), "bfloat16": ("bfloat16", False),
                 "float64": None}
EXPECTED_TOLERANCES = {**_readme_tolerances(), "float64": 1e-10}


def test_every_tolerance_key_is_pinned():
    assert set(TOLERANCES) == set(KEY_SELECTORS) == set(EXPECTED_TOLERANCES)


def _reference(seed: int = 0, heads: int = 2, seq: int = 64):
    p = Problem(batch=1, heads=heads, seq_q=seq, head_dim=16, dtype="float32")
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, heads, seq, 16, generator=g, dtype=torch.float64) for _ in range(3))
    return correctness.reference(q, k, v, p)


def _judge(monkeypatch, key, out, ref):
    sel = KEY_SELECTORS[key]
    if sel is None:
        monkeypatch.setattr(correctness, "precision_key", lambda dtype, tf32=False: key)
        sel = ("float32", False)
    dtype, tf32 = sel
    b, h, sq, d = ref.shape
    p = Problem(batch=b, heads=h, seq_q=sq, head_dim=d, dtype=dtype)
    return correctness.compare(out, ref, p, tf32=tf32)


@pytest.mark.parametrize("key", sorted(KEY_SELECTORS))
@pytest.mark.parametrize("side,factor", [("inside", 1 - 1e-3), ("outside", 1 + 1e-3)])
def test_relative_error_tolerance_edge(monkeypatch, key, side, factor):
    # out = ref * (1 + c): relative error exactly c (to ~1e-15), every element
    # off by c * |ref| <= c * max|ref|, far inside the max-element rule.
    tol = EXPECTED_TOLERANCES[key]
    ref = _reference()
    c = tol * factor
    res = _judge(monkeypatch, key, ref * (1 + c), ref)
    assert res.tolerance == tol and res.tolerance_key == key
    assert res.rel_error == pytest.approx(c, rel=1e-6)
    assert res.passed is (side == "inside")


@pytest.mark.parametrize("key", sorted(KEY_SELECTORS))
@pytest.mark.parametrize("side,factor", [("inside", 1 - 1e-3), ("outside", 1 + 1e-3)])
def test_single_element_edge(monkeypatch, key, side, factor):
    # One element off by MAX_ABS_FACTOR (10) * tol * max|ref|: its share of the
    # norm is 10 * max|ref| / ||ref|| (< 0.5 here), so only the element rule decides.
    assert MAX_ABS_FACTOR == 10.0
    tol = EXPECTED_TOLERANCES[key]
    ref = _reference(seed=1, heads=8, seq=128)
    ref_max = float(ref.abs().max())
    assert 10 * ref_max < 0.5 * float(torch.linalg.vector_norm(ref))
    out = ref.clone()
    out.view(-1)[7] += 10 * tol * ref_max * factor
    res = _judge(monkeypatch, key, out, ref)
    assert res.rel_error < tol
    assert res.max_abs_error == pytest.approx(10 * tol * ref_max * factor, rel=1e-6)
    assert res.passed is (side == "inside")


def test_a_nonfinite_element_fails_whatever_the_error():
    ref = _reference()
    out = ref.clone()
    out.view(-1)[0] = float("nan")
    res = _judge(None, "bfloat16", out, ref)
    assert res.passed is False and res.nonfinite == 1


# -------------------------------------------------- compare's threshold -----
def _compare(base_ms: float, cur_ms: float, threshold: float) -> dict:
    base = [{"id": "k/p", "status": "ok", "performance": {"median_time_ms": base_ms}}]
    cur = [{"id": "k/p", "status": "ok", "performance": {"median_time_ms": cur_ms}}]
    return cmp.compare_results(base, cur, threshold)


def test_identical_reports_at_threshold_zero_are_not_a_regression():
    out = _compare(0.25, 0.25, 0.0)
    assert out["improvement_pct"] == 0.0
    assert out["is_regression"] is False and out["regressions"] == []


@pytest.mark.parametrize("threshold", [-3.125, 3.125])
def test_improvement_exactly_at_the_threshold_is_not_a_regression(threshold):
    # Binary-exact times: 4 ms -> 4.125 ms is (4 - 4.125) / 4 * 100 = -3.125 %;
    # 4 ms -> 3.875 ms is +3.125 %.
    cur = 4.125 if threshold < 0 else 3.875
    out = _compare(4.0, cur, threshold)
    assert out["improvement_pct"] == threshold
    assert out["is_regression"] is False


@pytest.mark.parametrize("threshold", [-3.125, 3.125])
def test_improvement_just_below_the_threshold_is_a_regression(threshold):
    cur = (4.125 if threshold < 0 else 3.875) * (1 + 1e-9)
    out = _compare(4.0, cur, threshold)
    assert out["improvement_pct"] < threshold
    assert out["is_regression"] is True and out["regressions"] == ["k/p"]


# ------------------------------------------------- asv's significance -------
def _point(values) -> Point:
    median, stats = compute_stats(list(values), 1)  # what asv records for these samples
    return Point(OK, value=median, samples=tuple(values), stats=stats)


def _verdict(before, after, factor: float = 1.05) -> str:
    change, _, _ = ab._classify(_point(before), _point(after), "v", "v", factor)
    return change


def _spread(n: int):
    """n samples evenly from 1.00 to 1.08 (5: 1.00, 1.02, ... 1.08); the after side is the
    same list times 1.1 (10 % slower, 1.10 to 1.188): every after sample is slower than
    every before one, the strongest evidence n samples a side can give."""
    before = [1.0 + 0.08 * i / (n - 1) for i in range(n)]
    return before, [x * 1.1 for x in before]


def test_significance_level_is_asvs():
    assert ab.P_THRESHOLD == 0.002


def test_five_against_five_ten_percent_apart_is_same():
    # 5 vs 5: the smallest possible Mann-Whitney p is 1 / C(10, 5) = 1/252 = 0.004,
    # never < 0.002, so asv falls back to its 99 % CIs, which overlap here.
    # (At a 0.05 level the U test would run: p = 2/252 = 0.008 -> "worse".)
    assert _verdict(*_spread(5)) == ab.SAME
    sig = ab.significance(*map(_point, _spread(5)))
    assert sig.different is False and sig.p_value is None and sig.text == "99% CIs overlap"


def test_six_against_six_fully_separated_is_still_same():
    # 6 vs 6: p_min = 1/924 = 0.00108 < 0.002, so the U test runs; fully
    # separated two-sided p = 2/924 = 0.00216, not < 0.002.
    sig = ab.significance(*map(_point, _spread(6)))
    assert sig.p_value == pytest.approx(2 / 924, rel=1e-6)
    assert sig.different is False
    assert _verdict(*_spread(6)) == ab.SAME


@pytest.mark.parametrize("n", [7, 8, suite.ASV_BUDGET.min_samples])
def test_enough_samples_ten_percent_apart_is_worse(n):
    # 7 vs 7: p = 2 / C(14, 7) = 2/3432 = 0.00058 < 0.002.  The asv suite's
    # minimum sample count must reach this.
    before, after = _spread(n)
    sig = ab.significance(_point(before), _point(after))
    assert sig.p_value == pytest.approx(2 / math.comb(2 * n, n), rel=1e-6)
    assert sig.different is True and sig.text.startswith("p=")
    assert _verdict(before, after) == ab.WORSE
    assert _verdict(after, before) == ab.BETTER


def test_significant_but_under_the_factor_is_same():
    before, after = _spread(8)
    assert _verdict(before, after, factor=1.1 * 1.001) == ab.SAME
    assert _verdict(before, after, factor=1.1 * 0.999) == ab.WORSE


# ------------------------------------------------ gated metric direction ----
def _bench_module():
    # Named as its path (benchmarks/bench_attention.py) so mutation testing maps it.
    spec = importlib.util.spec_from_file_location("benchmarks.bench_attention", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _gated_metrics(bench):
    """Every (class, method) asv gates: track_/time_ methods outside the views."""
    out = []
    for cname in dir(bench):
        cls = getattr(bench, cname)
        if not (isinstance(cls, type) and hasattr(cls, "params") and hasattr(cls, "setup")):
            continue
        for mname in dir(cls):
            if mname.startswith(("track_", "time_")) and not is_view(
                f"bench_attention.{cname}.{mname}"
            ):
                out.append((cls, mname))
    return out


def _entry(problem: Problem, times_s, error: float = 1e-7, peak: int = 1 << 20) -> dict:
    ceiling = roofline.Ceiling(tflops=0.25, bandwidth_gb_s=50.0, source="test")
    m = Measurement("tiled", problem, "cpu",
                    device_time=Samples(list(times_s), "cpu-perf_counter", 1, 2))
    m.roofline = roofline.analyze(problem, m.device_time.median_s, ceiling, "cpu")
    m.correctness = Correctness(True, max_abs_error=10 * error, mean_abs_error=error,
                                rel_error=error, correlation=1.0, nonfinite=0, tolerance=1e-4,
                                tolerance_key="float32")
    m.peak_memory = PeakMemory(peak, "test")
    return suite.entry(m)


def _median(value) -> float:
    xs = sorted(value["samples"])
    assert value["number"] == 1
    return xs[len(xs) // 2]


def test_gated_metrics_are_the_documented_seven():
    names = {f"{cls.__name__}.{m}" for cls, m in _gated_metrics(_bench_module())}
    assert names == {"TimeAttention.track_device_time", "TimeAttention.track_x_over_floor",
                     "TrainingPass.track_device_time", "TrainingPass.track_x_over_floor",
                     "Accuracy.track_max_abs_error", "Accuracy.track_mean_abs_error",
                     "PeakMemory.track_peak_memory_bytes"}
    # Times at the suite's factor; the deterministic metrics at their own.
    assert {n: metric_factor("bench_attention." + n) for n in names} == {
        "TimeAttention.track_device_time": None, "TimeAttention.track_x_over_floor": None,
        "TrainingPass.track_device_time": None, "TrainingPass.track_x_over_floor": None,
        "Accuracy.track_max_abs_error": 1.25, "Accuracy.track_mean_abs_error": 1.25,
        "PeakMemory.track_peak_memory_bytes": 1.10}


def _metric_values(cache, p, name_filter):
    bench = _bench_module()
    out = {}
    for cls, name in _gated_metrics(bench):
        if not name_filter(f"{cls.__name__}.{name}"):
            continue
        for kernel in ("before", "after"):
            obj = cls()
            obj.setup(cache, kernel, p.id)
            out.setdefault(f"{cls.__name__}.{name}", {})[kernel] = getattr(obj, name)(
                cache, kernel, p.id
            )
    return out


@pytest.mark.parametrize("metric,change", [
    ("Accuracy.", dict(error=3e-7)), ("PeakMemory.", dict(peak=3 << 20))])
def test_a_worse_kernel_raises_its_deterministic_metrics(metric, change):
    p = Problem(batch=1, heads=8, seq_q=256, head_dim=64, dtype="float32")
    times = [1e-3] * 9
    cache = {"before|" + p.id: _entry(p, times), "after|" + p.id: _entry(p, times, **change)}
    values = _metric_values(cache, p, lambda n: n.startswith(metric))
    assert len(values) == (2 if metric == "Accuracy." else 1)
    for name, v in values.items():
        assert isinstance(v["before"], float) and v["after"] == pytest.approx(3 * v["before"]), name
    # and a slower kernel does not move them
    cache["after|" + p.id] = _entry(p, [2 * t for t in times])
    assert all(v["after"] == v["before"] for v in _metric_values(
        cache, p, lambda n: n.startswith(metric)).values())


def test_deterministic_metrics_are_na_where_an_entry_lacks_them():
    """An older commit's entry (no peak_memory_bytes; a CPU's None with its reason): n/a
    (NotImplementedError from setup, asv_runner's SkipNotImplemented from the method)."""
    from asv_runner.benchmarks.mark import SkipNotImplemented
    bench = _bench_module()
    p = Problem(batch=1, heads=8, seq_q=256, head_dim=64, dtype="float32")
    old = _entry(p, [1e-3] * 9)
    del old["peak_memory_bytes"], old["peak_memory_note"]
    cpu = dict(old, peak_memory_bytes=None, peak_memory_note="unavailable on a CPU: why")
    no_errors = dict(old, correctness={"passed": True})
    cache = {"old|" + p.id: old, "cpu|" + p.id: cpu, "noerr|" + p.id: no_errors}
    for kernel, why in (("old", "records no peak memory"), ("cpu", "unavailable on a CPU: why")):
        with pytest.raises(NotImplementedError, match=why):
            bench.PeakMemory().setup(cache, kernel, p.id)
    acc = bench.Accuracy()
    acc.setup(cache, "noerr", p.id)
    with pytest.raises(SkipNotImplemented, match="no max_abs_error"):
        acc.track_max_abs_error(cache, "noerr", p.id)
    # A wrong kernel fails, once: TimeAttention.track_device_time (the setup-time check's
    # one line); its other benchmarks read n/a rather than repeat it.
    cache["bad|" + p.id] = dict(old, status="failed")
    with pytest.raises(NotImplementedError, match="WRONG.*reported by track_device_time"):
        bench.Accuracy().setup(cache, "bad", p.id)
    timed = bench.TimeAttention()
    timed.setup(cache, "bad", p.id)
    with pytest.raises(AssertionError, match="WRONG"):
        timed.track_device_time(cache, "bad", p.id)


def test_a_slower_kernel_raises_every_gated_value():
    bench = _bench_module()
    p = Problem(batch=1, heads=8, seq_q=256, head_dim=64, dtype="float32")
    fast_times = [1e-3 * (1 + 0.01 * i) for i in range(9)]
    cache = {"fast|" + p.id: _entry(p, fast_times),
             "slow|" + p.id: _entry(p, [t * 1.1 for t in fast_times])}
    for kernel, scale in (("fast", 1.0), ("slow", 1.1)):  # the training grid's entries (bwd)
        cache[f"{kernel}|{p.id}_bwd"] = _entry(
            p.with_pass("bwd"), [t * 2 * scale for t in fast_times]
        )
    floor = cache["fast|" + p.id]["floor_s"]
    assert (
        floor == cache["slow|" + p.id]["floor_s"] > 0
    )  # the floor is the problem's, not the kernel's
    gated = [(cls, name) for cls, name in _gated_metrics(bench)
             if metric_factor(f"bench_attention.{cls.__name__}.{name}") is None]  # the times
    assert gated
    for cls, name in gated:
        values = {}
        args = (p.id, "bwd") if len(cls.params) == 3 else (p.id,)
        for kernel in ("fast", "slow"):
            obj = cls()
            obj.setup(cache, kernel, *args)
            values[kernel] = getattr(obj, name)(cache, kernel, *args)
        assert _median(values["slow"]) > _median(values["fast"]), name
        # (x_over_floor reaches asv rounded to 4 significant digits: within 1e-3)
        assert _median(values["slow"]) == pytest.approx(1.1 * _median(values["fast"]), rel=1e-3), (
            name
        )


def test_x_over_floor_is_time_over_floor():
    bench = _bench_module()
    p = Problem(batch=1, heads=8, seq_q=256, head_dim=64, dtype="float32")
    times = [2e-3, 3e-3, 4e-3]
    cache = {"tiled|" + p.id: _entry(p, times)}
    floor = cache["tiled|" + p.id]["floor_s"]
    obj = bench.TimeAttention()
    obj.setup(cache, "tiled", p.id)
    assert obj.track_x_over_floor(cache, "tiled", p.id) == {  # rounded for asv's tables
        "samples": [float(f"{t / floor:.4g}") for t in times], "number": 1}
    assert obj.track_device_time(cache, "tiled", p.id) == {"samples": times, "number": 1}
    # The report's x_over_floor (of the median) agrees: measured / floor, >= 1 here.
    assert cache["tiled|" + p.id]["x_over_floor"] == pytest.approx(3e-3 / floor)
    assert cache["tiled|" + p.id]["efficiency_pct"] == pytest.approx(100 * floor / 3e-3)


# ------------------------------------------------------ FLOPs and bytes -----
@pytest.mark.parametrize(
    "problem,flops,bytes_",
    [
        # causal, square: B1 H2 S4 D8 fp16.  pairs/head = 4*5/2 = 10 -> 4 * 8 * 2 * 10 = 640.
        # bytes: Q+O = 2 * 1*2*4*8 = 128 elements, K+V = 128 elements; 256 * 2 B = 512.
        (Problem(batch=1, heads=2, seq_q=4, head_dim=8, causal=True, dtype="fp16"), 640, 512),
        # causal, Sq 3 < Sk 5 (top-left): rows see 1, 2, 3 keys = 6 pairs; 4 * 2 * 6 = 48.
        # bytes fp32: Q+O = 2 * 3 * 2 = 12, K+V = 2 * 5 * 2 = 20 elements; 32 * 4 B = 128.
        (
            Problem(batch=1, heads=1, seq_q=3, seq_kv=5, head_dim=2, causal=True, dtype="fp32"),
            48,
            128,
        ),
        # causal, Sq 5 > Sk 3: 1 + 2 + 3 + 3 + 3 = 12 pairs; 4 * 2 * 12 = 96.
        # bytes fp32: Q+O = 2 * 5 * 2 = 20, K+V = 2 * 3 * 2 = 12; 32 * 4 = 128.
        (
            Problem(batch=1, heads=1, seq_q=5, seq_kv=3, head_dim=2, causal=True, dtype="fp32"),
            96,
            128,
        ),
        # GQA: B2 H8 KV2 S16 D4 bf16.  4 * 4 * 2*8 * 16*16 = 65,536.
        # bytes: Q+O = 2 * 2*8*16*4 = 2048, K+V = 2 * 2*2*16*4 = 512 (4x fewer heads); 2560 * 2 =
        # 5120.
        (Problem(batch=2, heads=8, kv_heads=2, seq_q=16, head_dim=4, dtype="bf16"), 65_536, 5_120),
        # GQA causal: B1 H4 KV1 S3 D2 fp32: pairs 6/head; 4 * 2 * 4 * 6 = 192.
        # bytes: Q+O = 2 * 4*3*2 = 48, K+V = 2 * 1*3*2 = 12; 60 * 4 = 240.
        (
            Problem(batch=1, heads=4, kv_heads=1, seq_q=3, head_dim=2, causal=True, dtype="fp32"),
            192,
            240,
        ),
        # decode: B8 H32 KV8 Sq1 Sk4096 D128 bf16: 4 * 128 * 8*32 * 4096 = 2^29 = 536,870,912.
        # bytes: Q+O = 2 * 8*32*128 = 65,536; K+V = 2 * 8*8*4096*128 = 67,108,864; x2 B =
        # 134,348,800.
        (
            Problem(
                batch=8, heads=32, kv_heads=8, seq_q=1, seq_kv=4096, head_dim=128, dtype="bf16"
            ),
            536_870_912,
            134_348_800,
        ),
        # decode, causal (top-left: the one query sees key 0 only): 4 * 64 * 4 * 1 = 1024.
        # bytes fp32: Q+O = 2 * 4*64 = 512; K+V = 2 * 2*1024*64 = 262,144; x4 = 1,050,624.
        (
            Problem(
                batch=1,
                heads=4,
                kv_heads=2,
                seq_q=1,
                seq_kv=1024,
                head_dim=64,
                causal=True,
                dtype="fp32",
            ),
            1024,
            1_050_624,
        ),
    ],
    ids=[
        "causal-square",
        "causal-sq<sk",
        "causal-sq>sk",
        "gqa",
        "gqa-causal",
        "decode",
        "decode-causal",
    ],
)
def test_flops_and_bytes_hand_computed(problem, flops, bytes_):
    assert roofline.flops(problem) == flops
    assert roofline.bytes_moved(problem) == bytes_
    assert roofline.arithmetic_intensity(problem) == pytest.approx(flops / bytes_)


def test_analyze_hand_computed():
    # decode above on 1 TF/s and 100 GB/s: compute floor 2^29 / 1e12 = 536.870912 us,
    # memory floor 134,348,800 / 1e11 = 1343.488 us -> memory-bound, floor 1343.488 us.
    # Tolerances of 1e-13: a unit constant off by one part in 1e12 must show.
    exact = {"rel": 1e-13, "abs": 0}
    p = Problem(batch=8, heads=32, kv_heads=8, seq_q=1, seq_kv=4096, head_dim=128, dtype="bf16")
    ceiling = roofline.Ceiling(1.0, 100.0, "test ceiling")
    assert roofline.floors(p, ceiling) == (pytest.approx(536.870912e-6, **exact),
                                           pytest.approx(1343.488e-6, **exact))
    r = roofline.analyze(p, 2686.976e-6, ceiling, "cuda")
    assert (r.flops, r.bytes) == (536_870_912, 134_348_800)
    assert r.compute_floor_s == pytest.approx(536.870912e-6, **exact)
    assert r.memory_floor_s == pytest.approx(1343.488e-6, **exact)
    assert r.floor_s == pytest.approx(1343.488e-6, **exact)
    assert r.to_dict()["floor_ms"] == pytest.approx(1.343488, **exact)
    assert r.time_s == 2686.976e-6
    assert (r.regime, r.bottleneck) == ("memory-bound", "Memory Bandwidth")
    assert r.x_over_floor == pytest.approx(2.0, **exact)
    assert r.efficiency_pct == pytest.approx(50.0, **exact)
    assert r.achieved_gb_s == pytest.approx(50.0, **exact)    # 134,348,800 B / 2686.976 us
    # 2^29 / 2686.976e-6 / 1e12 = 0.19980487804878048...
    assert r.achieved_tflops == pytest.approx(536_870_912 / 2686.976e-6 / 1e12, **exact)
    assert r.achieved_tflops == pytest.approx(0.199804878048780, rel=1e-12)
    assert r.arithmetic_intensity == pytest.approx(536_870_912 / 134_348_800, **exact)
    assert r.ridge_point == pytest.approx(10.0, **exact)      # 1e12 / 1e11
    assert (r.ceiling_tflops, r.ceiling_gb_s, r.ceiling_source) == (1.0, 100.0, "test ceiling")
    assert r.cache_resident is False


def test_pair_counts_are_integers():
    # FLOPs are exact integers (history values): no float division in the count.
    for sq, sk in [(4, 4), (5, 3), (3, 5), (1, 4096)]:
        assert type(roofline.causal_pairs(sq, sk)) is int
    p = Problem(batch=1, heads=2, seq_q=5, seq_kv=3, head_dim=8, causal=True, dtype="fp32")
    assert type(roofline.flops(p)) is int and type(roofline.bytes_moved(p)) is int


@pytest.mark.parametrize("compute,memory,device,regime", [
    (5e-6, 1e-6, "cuda", "compute-bound"),    # floor exactly at the GPU latency floor: not under it
    (1e-6, 5e-6, "cuda", "memory-bound"),
    (4.999e-6, 1e-6, "cuda", "latency-bound"),
    (10e-6, 1e-6, "cpu", "latency-bound"),    # the CPU's floor is 20 us
    (20e-6, 1e-6, "cpu", "compute-bound"),
    (10e-6, 1e-6, "tpu", "compute-bound"),    # an unknown device gets the GPU's 5 us
    (4e-6, 1e-6, "tpu", "latency-bound"),
    (7e-6, 7e-6, "cuda", "compute-bound"),    # a tie goes to compute
])
def test_classify_edges(compute, memory, device, regime):
    assert roofline.classify(compute, memory, device) == regime


def test_analyze_uses_the_device_latency_floor_and_the_cache_edge():
    # b1 h1 s8 d8 fp32: 4*8*64 = 2048 FLOP, bytes 4 * (2*64 + 2*64) = 1024 B.
    p = Problem(batch=1, heads=1, seq_q=8, head_dim=8, dtype="fp32")
    # 1024 B at 0.1 GB/s: 10.24 us memory floor: under the CPU's 20 us, over the GPU's 5 us.
    ceiling = roofline.Ceiling(1.0, 0.1, "test")
    assert roofline.analyze(p, 1e-3, ceiling, "cpu").regime == "latency-bound"
    assert roofline.analyze(p, 1e-3, ceiling, "cuda").regime == "memory-bound"
    # Cache-resident when the bytes fit exactly; not with one byte less of cache.
    assert roofline.analyze(p, 1e-3, ceiling, "cuda", cache_bytes=1024).cache_resident is True
    assert roofline.analyze(p, 1e-3, ceiling, "cuda", cache_bytes=1023).cache_resident is False
    assert roofline.analyze(p, 1e-3, ceiling, "cuda", cache_bytes=None).cache_resident is False


# ------------------------------------------------------- ceiling formulas ---
class FakeTimer:
    """Stands in for the timing loop: runs the timed call once (so its shape and
    dtype are known) and returns chosen per-call times, never a clock reading."""

    COPY_S = (0.008, 0.004)  # copy_ then the elementwise copy: the faster one wins
    MATMUL_S = {torch.float16: 0.5, torch.bfloat16: 0.25, torch.float32: 0.125}

    def __init__(self):
        self.copies = 0
        self.matmuls = {}

    def __call__(self, fn, budget):
        out = fn()
        if out.dim() == 1:
            t = self.COPY_S[self.copies]
            self.copies += 1
        else:
            assert out.shape[0] == out.shape[1]
            self.matmuls[out.dtype] = out.shape[0]
            t = self.MATMUL_S[out.dtype]
        # The loop's contract: per-call seconds; ceilings use the fastest sample.
        return Samples([3 * t, t, 2 * t], "fake", 1, 0)



def test_x_over_floor_without_a_ceiling_is_skipped_with_the_reason():
    bench = _bench_module()
    p = Problem(batch=1, heads=8, seq_q=256, head_dim=64, dtype="float32")
    e = _entry(p, [1e-3, 2e-3])
    for k in ("floor_s", "tflops", "gb_s", "efficiency_pct", "x_over_floor", "regime"):
        del e[k]
    cache = {"tiled|" + p.id: e}
    obj = bench.TimeAttention()
    obj.setup(cache, "tiled", p.id)
    assert obj.track_device_time(cache, "tiled", p.id) == {"samples": [1e-3, 2e-3], "number": 1}
    with pytest.raises(NotImplementedError, match="^no roofline ceiling for this device$"):
        obj.track_x_over_floor(cache, "tiled", p.id)


# ------------------------------------------------- asv's test, branch by branch --
def _bare(value, samples=None, stats=None, status=OK) -> Point:
    return Point(status, value=value, samples=tuple(samples) if samples else None, stats=stats)


def _ci(lo, hi, repeat=5) -> dict:
    return {"ci_99_a": lo, "ci_99_b": hi, "q_25": lo, "q_75": hi, "repeat": repeat, "number": 1}


def test_no_statistics_means_the_factor_alone_decides():
    for before, after in [
        (_bare(1.0), _bare(1.5)),  # no stats
        (_bare(1.0, stats=_ci(0.9, 1.1, repeat=1)), _bare(1.5, stats=_ci(1.4, 1.6))),
        (_bare(1.0, stats=_ci(0.9, 1.1)), _bare(1.5, stats=_ci(1.4, 1.6, repeat=1))),
    ]:
        sig = ab.significance(before, after)
        assert (sig.different, sig.p_value) == (None, None)
        assert sig.text == "no statistics (factor only)"
        assert ab._classify(before, after, "v", "v", 1.2) == (ab.WORSE, 1.5, sig)
        assert ab._classify(after, before, "v", "v", 1.2)[0] == ab.BETTER
        assert ab._classify(before, after, "v", "v", 1.6)[0] == ab.SAME


def test_stats_without_a_repeat_count_still_use_the_cis():
    # asv omits "repeat" in some files: that is not "a single sample".
    st_a = {"ci_99_a": 0.9, "ci_99_b": 1.1}
    st_b = {"ci_99_a": 1.4, "ci_99_b": 1.6}
    sig = ab.significance(_bare(1.0, stats=st_a), _bare(1.5, stats=st_b))
    assert sig.different is True and sig.text == "99% CIs disjoint"
    sig = ab.significance(_bare(1.0, stats=_ci(0.9, 1.1, repeat=2)),
                          _bare(1.5, stats=_ci(1.4, 1.6, repeat=2)))
    assert sig.different is True and sig.text == "99% CIs disjoint"


def test_samples_without_cis_use_mann_whitney_or_nothing():
    before, after = _spread(8)
    rep = {"repeat": 8, "number": 1}
    sig = ab.significance(_bare(1.04, before, rep), _bare(1.144, after, rep))
    assert sig.different is True and sig.p_value == pytest.approx(2 / math.comb(16, 8))
    assert sig.text == f"p={sig.p_value:.1e} (Mann–Whitney U, n=8/8)"
    # too few samples for the test and no CI to fall back on: factor only
    b5, a5 = _spread(5)
    sig = ab.significance(_bare(1.04, b5, rep), _bare(1.144, a5, rep))
    assert (sig.different, sig.p_value) == (None, None)
    assert sig.text == "too few samples (n=5/5); factor only"
    # samples on one side only, no CI: no statistics
    sig = ab.significance(_bare(1.04, before, rep), _bare(1.144, None, rep))
    assert (sig.different, sig.text) == (None, "no statistics (factor only)")


def test_ratio_exactly_at_the_factor_is_same():
    # 1.0 -> 1.5 at factor 1.5: "worse" needs after > before * factor (asv's rule).
    assert ab._classify(_bare(1.0), _bare(1.5), "v", "v", 1.5)[0] == ab.SAME
    assert ab._classify(_bare(1.5), _bare(1.0), "v", "v", 1.5)[0] == ab.SAME
    assert ab._classify(_bare(1.0), _bare(1.5), "v", "v", 1.499)[0] == ab.WORSE


def test_statuses_and_versions():
    from attnperf.io.asv_results import FAILED, MISSING, SKIPPED

    none = ab.Significance(None, "")
    assert ab._classify(_bare(None, status=SKIPPED), _bare(None, status=MISSING), "v1", "v2", 1.1) \
        == (ab.NA, None, none)
    assert ab._classify(_bare(1.0), _bare(1.0), "v1", "v2", 1.1) == (
        ab.INCOMPARABLE, None, ab.Significance(None, "benchmark version changed"))
    assert ab._classify(_bare(1.0), _bare(None, status=FAILED), "v", "v", 1.1) == (
        ab.BROKE,
        None,
        none,
    )
    assert ab._classify(_bare(None, status=FAILED), _bare(1.0), "v", "v", 1.1) == (
        ab.FIXED,
        None,
        none,
    )
    assert ab._classify(_bare(1.0), _bare(None, status=SKIPPED), "v", "v", 1.1) == (
        ab.NA,
        None,
        none,
    )
    assert ab._classify(_bare(0.0), _bare(1.0), "v", "v", 1.1) == (ab.NA, None, none)


def test_a_ratio_needs_two_ok_points_whatever_values_they_carry():
    """The status decides what is compared: a skipped or missing point is n/a against an ok
    one even when it carries a value, which would otherwise read as 2x better or worse."""
    from attnperf.io.asv_results import MISSING, SKIPPED

    none = ab.Significance(None, "")
    for status in (SKIPPED, MISSING):
        for before, after in [(_bare(2.0, status=status), _bare(1.0)),
                              (_bare(1.0), _bare(2.0, status=status))]:
            assert ab._classify(before, after, "v", "v", 1.1) == (ab.NA, None, none)
        assert ab._classify(_bare(1.0), _bare(2.0), "v", "v", 1.1)[0] == ab.WORSE  # both ok


FAILED_AT_HEAD = "failed at head"  # a row n/a at both ends whose head result failed


class _Cmp:
    base = head = object()
    factor = 1.05
    per_benchmark = own_factors = paired = False

    def __init__(self, **counts):
        self.counts = counts
        self.rows = [ab.Row(TIME_BENCH, ("k", "p"), Point(OK, 1.0),
                            Point(FAILED) if change in (ab.BROKE, FAILED_AT_HEAD)
                            else Point(OK, 1.0), 1.0,
                            ab.NA if change == FAILED_AT_HEAD else change,
                            ab.Significance(None, ""), "seconds", 1.05)
                     for change, n in counts.items() for _ in range(n)]

    def count(self, change):
        return self.counts.get(change, 0)


@pytest.mark.parametrize("asv_exit,counts,code,why", [
    (1, {ab.WORSE: 2}, ab.EXIT_REGRESSION, "2 benchmark(s) slower than x1.05 with significance"),
    (1, {ab.BROKE: 1}, ab.EXIT_BROKEN, "1 benchmark(s) fail at head that passed at base"),
    (1, {ab.WORSE: 1, ab.BROKE: 1}, ab.EXIT_BROKEN, "1 benchmark(s) fail at head"),
    (1, {ab.BETTER: 3}, ab.EXIT_INFRA, "asv exited 1 but the results show no regression"),
    (2, {ab.BROKE: 1}, ab.EXIT_BROKEN, "1 benchmark(s) fail at head"),
    (2, {FAILED_AT_HEAD: 1}, ab.EXIT_BROKEN, "a benchmark failed (asv continuous exit 2)"),
    (2, {ab.WORSE: 1}, ab.EXIT_INFRA, "asv continuous exited 2 but no benchmark failed"),
    # asv's exit 0 cannot outvote a slower row: the verdict follows the rows
    (0, {ab.WORSE: 1}, ab.EXIT_REGRESSION, "1 benchmark(s) slower than x1.05"),
    (0, {ab.SAME: 2}, ab.EXIT_OK, "no significant regression"),
    (None, {ab.WORSE: 1}, ab.EXIT_REGRESSION, "1 benchmark(s) slower than x1.05"),
    (None, {ab.BROKE: 1}, ab.EXIT_BROKEN, "1 benchmark(s) fail at head"),
    (7, {}, ab.EXIT_INFRA, "asv continuous exited 7"),
])
def test_exit_policy(asv_exit, counts, code, why):
    got, line = ab.decide(asv_exit, _Cmp(**counts))
    assert got == code and line.startswith(why)
    assert ab.decide(1, None)[0] == ab.EXIT_INFRA
    # asv reached its comparison: the same verdict
    assert ab.decide(asv_exit, _Cmp(**counts), asv_finished=True) == (got, line)


@pytest.mark.parametrize("asv_exit,counts", [
    (1, {ab.WORSE: 2}), (1, {ab.SAME: 2}), (1, {ab.BROKE: 1}), (7, {ab.WORSE: 1})])
def test_an_asv_that_ended_without_its_comparison_is_a_harness_failure(asv_exit, counts):
    """asv exits 1 for a crash (a fork that failed) as for a regression: when it did not
    print its comparison, the rows on disk (stale or partial) never make it a verdict."""
    got, line = ab.decide(asv_exit, _Cmp(**counts), asv_finished=False)
    assert got == ab.EXIT_INFRA
    assert line.startswith(f"asv continuous exited {asv_exit}")


def test_exit_0_or_2_are_judged_by_the_rows_even_without_a_comparison_line():
    """asv prints no table after exit 2; exit 0 is never a crash."""
    assert ab.decide(0, _Cmp(**{ab.WORSE: 1}), asv_finished=False)[0] == ab.EXIT_REGRESSION
    assert ab.decide(2, _Cmp(**{ab.BROKE: 1}), asv_finished=False)[0] == ab.EXIT_BROKEN


class _CalCmp(_Cmp):
    per_benchmark = own_factors = True


def test_exit_policy_names_the_calibrated_thresholds():
    """With per-benchmark thresholds the verdict says so, in a regression and when the
    thresholds overrule what asv flagged at its own (smallest) factor."""
    code, why = ab.decide(1, _CalCmp(**{ab.WORSE: 1}))
    assert (code, why) == (
        ab.EXIT_REGRESSION,
        "1 benchmark(s) slower than their calibrated thresholds with significance",
    )
    code, why = ab.decide(1, _CalCmp(**{ab.SAME: 2}), _Cmp(**{ab.WORSE: 3}))
    assert (code, why) == (ab.EXIT_OK, "no significant regression past the calibrated thresholds "
                                       "(asv flagged 3 at its factor x1.05)")
    # nothing asv flagged explains its exit 1: an asv error, thresholds or not
    assert ab.decide(1, _CalCmp(**{ab.SAME: 2}), _Cmp(**{ab.SAME: 2}))[0] == ab.EXIT_INFRA


def test_stats_on_one_side_only_means_no_statistics():
    sig = ab.significance(_bare(1.0, stats=_ci(0.9, 1.1)), _bare(1.5))
    assert (sig.different, sig.text) == (None, "no statistics (factor only)")
    sig = ab.significance(_bare(1.0), _bare(1.5, stats=_ci(1.4, 1.6)))
    assert (sig.different, sig.text) == (None, "no statistics (factor only)")


def test_samples_on_one_side_with_cis_use_the_cis():
    before, _ = _spread(8)
    sig = ab.significance(_bare(1.04, before, _ci(0.9, 1.1)), _bare(1.5, None, _ci(1.4, 1.6)))
    assert (sig.different, sig.p_value, sig.text) == (True, None, "99% CIs disjoint")


def test_smallest_p_exactly_at_the_level_does_not_run_the_test():
    # 1 sample against 499: the smallest possible p is 1 / C(500, 1) = 1/500 = 0.002, not
    # under the level: asv does not run Mann-Whitney, and without CIs nothing is left.
    rep = {"repeat": 500, "number": 1}
    sig = ab.significance(
        _bare(1.0, [1.0], rep), _bare(2.0, [2.0 + i * 1e-3 for i in range(499)], rep)
    )
    assert (sig.different, sig.p_value) == (None, None)
    assert sig.text == "too few samples (n=1/499); factor only"




# ------------------------------------- deterministic metrics in the verdict ---
def _metric_pair(tmp_path, after):
    """base/head runs of tiled x seed: times equal, the metrics' values ``after`` at head."""
    results = tmp_path / "results"
    names = (d.TIME, d.MAX_ERR, d.MEAN_ERR, d.PEAK)
    d.write_benchmarks(results, ["tiled"], ["seed"], names)
    params = d.grid_params(["tiled"], ["seed"])
    before = {d.MAX_ERR: 1e-6, d.MEAN_ERR: 1e-7, d.PEAK: float(1 << 20)}
    runs = []
    for commit, values in (("b" * 40, before), ("c" * 40, dict(before, **after))):
        rows = {d.TIME: d.row(params, [d.samples(1e-3, seed=1)])}
        rows.update({name: d.row(params, [value]) for name, value in values.items()})
        runs.append(read_run(d.write_run(results, d.CPU_INFO, commit, 1000, rows), "cpu-ci", []))
    return read_results(str(results)), runs


def test_metrics_are_judged_at_their_own_factor_not_the_timing_one(tmp_path):
    db, (base, head) = _metric_pair(tmp_path, {d.MAX_ERR: 1.2e-6, d.MEAN_ERR: 1.3e-7,
                                               d.PEAK: float(1.2 * (1 << 20))})
    for factor in (1.05, 2.5):  # the suite's factor does not matter to them
        rows = {r.benchmark: r for r in ab.compare(db, "cpu-ci", base, head, factor).rows}
        assert (rows[d.MAX_ERR].change, rows[d.MAX_ERR].factor) == (ab.SAME, 1.25)
        assert (rows[d.MEAN_ERR].change, rows[d.MEAN_ERR].factor) == (ab.WORSE, 1.25)
        assert (rows[d.PEAK].change, rows[d.PEAK].factor) == (ab.WORSE, 1.10)
        assert rows[d.TIME].factor == factor and rows[d.MEAN_ERR].significance.different is None
    # a larger calibrated threshold wins; a smaller one does not lower the metric's factor
    cal = {(d.MEAN_ERR, ("tiled", "seed")): 1.5, (d.PEAK, ("tiled", "seed")): 1.01}
    rows = {r.benchmark: r for r in ab.compare(db, "cpu-ci", base, head, 1.05, cal).rows}
    assert (rows[d.MEAN_ERR].change, rows[d.MEAN_ERR].factor) == (ab.SAME, 1.5)
    assert (rows[d.PEAK].change, rows[d.PEAK].factor) == (ab.WORSE, 1.10)
    # what asv itself judged: every row at its --factor
    asv_rows = {r.benchmark: r for r in ab.compare(db, "cpu-ci", base, head, 1.05,
                                                   metric_rules=False).rows}
    assert asv_rows[d.MAX_ERR].change == ab.WORSE and asv_rows[d.MAX_ERR].factor == 1.05


def test_decide_names_lost_accuracy_and_memory(tmp_path):
    db, (base, head) = _metric_pair(tmp_path, {d.MEAN_ERR: 1e-3, d.PEAK: float(2 << 20)})
    cmp = ab.compare(db, "cpu-ci", base, head, 2.5)
    # asv at x2.5 flags the error (x10^4) and not the doubled memory: the rows decide.
    for asv_exit in (0, 1):
        code, why = ab.decide(asv_exit, cmp, ab.compare(db, "cpu-ci", base, head, 2.5,
                                                        metric_rules=False))
        assert code == ab.EXIT_REGRESSION, why
        assert why == "1 less accurate (past x1.25); 1 more memory (past x1.1)"


def test_decide_an_asv_flag_the_metric_factor_overrules_is_ok(tmp_path):
    db, (base, head) = _metric_pair(tmp_path, {d.MAX_ERR: 1.1e-6})  # asv at x1.05 flags it
    asv_view = ab.compare(db, "cpu-ci", base, head, 1.05, metric_rules=False)
    assert asv_view.count(ab.WORSE) == 1
    code, why = ab.decide(1, ab.compare(db, "cpu-ci", base, head, 1.05), asv_view)
    assert code == ab.EXIT_OK and "each metric's factor" in why and "flagged 1" in why


def test_regressions_page_judges_metrics_at_their_factor():
    from attnperf.site.publisher import keep
    jump = [[1, 2, 1.0, 1.2]]  # (rev before, rev after, value before, value after)
    for name, kept in ((d.MAX_ERR, False), (d.PEAK, True), (d.TIME, True)):
        reg = [name, "graphs/machine-cpu-ci/x.json", None, 0, 1.2, 1.0, jump]
        assert (keep(reg, {"cpu-ci": 1.05}, 1.05) is not None) == kept, name


def test_measure_grid_reads_the_project_config_once(tmp_path, monkeypatch):
    """[tool.attnperf] is parsed once per measure_grid call; grid, selection and training
    passes all follow that one reading."""
    from attnperf.io import project_config

    (tmp_path / "pyproject.toml").write_text(
        '[tool.attnperf]\nkernels = ["tiled"]\nbaselines = []\nproblems = ["cpu_causal"]\n'
        'passes = ["fwd", "bwd"]\n')
    reads = []
    real_load = project_config.load
    monkeypatch.setattr(project_config, "load", lambda path: reads.append(path) or real_load(path))

    class Stop(Exception):
        pass

    seen = {}

    def stop(device, **kw):  # the measuring session: not needed to count the reads
        seen["device"] = device
        raise Stop

    monkeypatch.setattr(suite, "Session", stop)
    for var in ("ATTNPERF_ASV_KERNELS", "ATTNPERF_ASV_PROBLEMS", "ATTNPERF_ASV_PASSES"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(Stop):
        suite.measure_grid(device_name="cpu", project_dir=tmp_path)
    assert reads == [tmp_path / "pyproject.toml"] and seen == {"device": "cpu"}
    assert suite.grid(tmp_path) == (["tiled"], [suite.PRESETS["cpu_causal"].id])
