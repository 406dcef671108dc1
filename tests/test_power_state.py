"""Where the power protocol, the clocks and the unsteady mark end up: the
report's device_time dict, the asv cache entry, the suite's views and the
`attnperf run` table."""

import importlib.util
from pathlib import Path

import pytest

from attnperf.asv import suite
from attnperf.cli.run import render_table
from attnperf.io.report import build_report
from attnperf.model.catalog import PRESETS
from attnperf.model.records import ClockReading, Measurement, PowerState, Samples, ThreadTime

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_attention.py"
CAP = ClockReading(1605, 0x4)


def gpu_samples(unsteady=False, nvml=True):
    clocks = [ClockReading(1980, 0), ClockReading(1965, 0x1), None]
    if unsteady:
        clocks = [CAP, CAP, ClockReading(1980, 0)]
    sustained = Samples([2.4e-4] * 3, "cuda-graph", 9, 0,
                        power=PowerState("back-to-back", "nvml", [CAP] * 3))
    state = PowerState("gap-warm", "nvml" if nvml else "unavailable",
                       clocks if nvml else [None] * 3, gap_s=5.25e-3, warm_replays=1,
                       replays_per_sample=1,
                       rejected_s=[] if unsteady else [2.6e-4],
                       rejected_clocks=[] if unsteady else [ClockReading(1500, 0x4 | 0x40)],
                       retaken=3 if unsteady else 1,
                       unsteady_reason=("sw_power_cap in 2 of 3 samples; 1 steady of 15 samples "
                                        "needed after 2 retakes") if unsteady else None,
                       sustained=sustained)
    return Samples([2e-4, 2.1e-4, 2.2e-4], "cuda-graph", 9, 12, power=state)


def test_the_flat_keywords_of_the_earlier_record_fold_into_the_groups():
    for unsteady in (False, True):
        grouped = gpu_samples(unsteady=unsteady)
        p = grouped.power
        flat = Samples([2e-4, 2.1e-4, 2.2e-4], "cuda-graph", 9, 12, protocol="gap-warm",
                       gap_s=p.gap_s, warm_replays=1, replays_per_sample=1, clock_source="nvml",
                       clocks=p.clocks, rejected_s=p.rejected_s, rejected_clocks=p.rejected_clocks,
                       retaken=p.retaken, unsteady_reason=p.unsteady_reason or "",
                       sustained=p.sustained)
        assert flat == grouped and flat.to_dict() == grouped.to_dict()
        assert (flat.gap_s, flat.clock_source, flat.unsteady) == (5.25e-3, "nvml", unsteady)
    cpu = Samples([1e-3], "cpu-thread_time", 1, 2, cpu_clock="thread", wall_s=[2e-3],
                  reference_s=[1e-3, 1e-3], normalised_s=[1e-3])
    assert cpu.thread == ThreadTime([2e-3], [1e-3, 1e-3], [1e-3]) and cpu.power is None
    # "" meant "none" in the flat record: no group
    assert Samples([1e-3], "m", 1, 0, cpu_clock="", clock_source="").thread is None
    with pytest.raises(TypeError, match="unexpected keyword argument.*: gap_ms"):
        Samples([1e-3], "m", 1, 0, gap_ms=5.0)


def gpu_measurement(kernel="sdpa", **kw):
    return Measurement(kernel, PRESETS["train"], "cuda", device_time=gpu_samples(**kw))


def test_report_device_time_records_gap_protocol_and_clocks():
    d = gpu_samples().to_dict()
    assert (d["protocol"], d["gap_ms"], d["warm_replays"], d["replays_per_sample"]) == \
        ("gap-warm", pytest.approx(5.25), 1, 1)
    assert d["sm_clock_mhz"] == [1980, 1965, None] and d["sm_clock_median_mhz"] == 1972.5
    assert d["clock_events"] == [[], ["gpu_idle"], None]
    assert (d["slowdown_samples"], d["slowdown_reasons"], d["slowdown_bits"]) == (0, [], 0)
    assert d["retaken"] == 1 and d["rejected_samples_ms"] == [pytest.approx(0.26)]
    assert d["rejected_clock_events"] == [["sw_power_cap", "hw_thermal"]]
    assert d["unsteady"] is False and d["unsteady_reason"] == ""
    assert d["sustained"]["protocol"] == "back-to-back"
    assert d["sustained"]["slowdown_reasons"] == ["sw_power_cap"]
    assert d["samples_ms"] == pytest.approx([0.2, 0.21, 0.22])


def test_cpu_samples_keep_their_old_keys():
    d = Samples([1e-3, 2e-3], "cpu-perf_counter", 4, 2).to_dict()
    assert "protocol" not in d and "sm_clock_mhz" not in d and "sustained" not in d


def test_report_carries_unsteady_and_stays_valid():
    m = gpu_measurement(unsteady=True)
    report = build_report([m], {"device": "cuda"}, None, {})
    dt = report["results"][0]["performance"]["device_time"]
    assert dt["unsteady"] is True and dt["unsteady_reason"].startswith("sw_power_cap in 2 of 3")
    assert dt["slowdown_samples"] == 2 and dt["slowdown_bits"] == 4


def test_asv_cache_entry_adds_power_and_clock_keys():
    e = suite.entry(gpu_measurement(unsteady=True))
    # The old keys, unchanged.
    assert e["device_time_s"] == [2e-4, 2.1e-4, 2.2e-4] and e["device_time_method"] == "cuda-graph"
    assert (e["protocol"], e["gap_s"], e["warm_replays"], e["replays_per_sample"],
            e["calls_per_sample"]) == ("gap-warm", 5.25e-3, 1, 1, 9)
    assert e["unsteady"] is True and "sw_power_cap in 2 of 3" in e["unsteady_reason"]
    assert (e["slowdown_bits"], e["slowdown_samples"], e["retaken"]) == (4, 2, 3)
    assert e["sm_clock_mhz"] == [1605, 1605, 1980]
    assert e["sustained_time_s"] == [2.4e-4] * 3
    e = suite.entry(gpu_measurement(nvml=False))
    assert e["clock_source"] == "unavailable"
    assert e["sm_clock_mhz"] == e["slowdown_bits"] == e["clock_events"] == "unavailable"
    cpu = suite.entry(Measurement("tiled", PRESETS["cpu_seed"], "cpu",
                                  device_time=Samples([1e-3], "cpu-perf_counter", 1, 2)))
    assert "protocol" not in cpu and "unsteady" not in cpu


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.setenv("ATTNPERF_ASV_VIEWS", "1")
    spec = importlib.util.spec_from_file_location("bench_attention", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cache(*measurements):
    return {suite.key(m.kernel, m.problem.id): {**suite.entry(m), "status": "ok"}
            for m in measurements}


def test_views_expose_sustained_time_and_the_unsteady_mark(bench):
    pid = PRESETS["train"].id
    cache = _cache(gpu_measurement("sdpa", unsteady=True), gpu_measurement("sdpa_cudnn"))
    sus = bench.SustainedViews()
    sus.setup(cache, "sdpa", pid)
    assert sus.track_sustained_time(cache, "sdpa", pid) == {"samples": [2.4e-4] * 3, "number": 1}
    clocks = bench.ClockViews()
    clocks.setup(cache, "sdpa", pid)
    assert clocks.track_unsteady(cache, "sdpa", pid) == 4.0  # sw_power_cap
    assert clocks.track_slowdown_samples(cache, "sdpa", pid) == 2.0
    assert clocks.track_sm_clock_mhz(cache, "sdpa", pid) == 1605.0
    clocks.setup(cache, "sdpa_cudnn", pid)
    assert clocks.track_unsteady(cache, "sdpa_cudnn", pid) == 0.0
    # The gated metric stays the power-controlled device time.
    gated = bench.TimeAttention()
    gated.setup(cache, "sdpa", pid)
    assert gated.track_device_time(cache, "sdpa", pid)["samples"] == [2e-4, 2.1e-4, 2.2e-4]


def test_views_are_na_without_nvml_or_on_old_entries(bench):
    pid = PRESETS["train"].id
    cache = _cache(gpu_measurement("sdpa", nvml=False))
    with pytest.raises(NotImplementedError, match="clocks unavailable"):
        bench.ClockViews().setup(cache, "sdpa", pid)
    old = {suite.key("sdpa", pid): {"status": "ok", "device_time_s": [1e-4], "reason": ""}}
    with pytest.raises(NotImplementedError, match="sustained"):
        bench.SustainedViews().setup(old, "sdpa", pid)
    with pytest.raises(NotImplementedError, match="clocks unavailable"):
        bench.ClockViews().setup(old, "sdpa", pid)
    views = bench.ClockViews()
    no_clock = _cache(Measurement("sdpa", PRESETS["train"], "cuda", device_time=Samples(
        [1e-4], "cuda-graph", 1, 1, power=PowerState("gap-warm", "nvml", [None]))))
    views.setup(no_clock, "sdpa", pid)
    with pytest.raises(NotImplementedError, match="no SM clock"):
        views.track_sm_clock_mhz(no_clock, "sdpa", pid)


def test_views_are_views(bench):
    from attnperf.analysis.gate import is_view
    for cls in ("SustainedViews", "ClockViews"):
        for name in dir(getattr(bench, cls)):
            if name.startswith("track_"):
                assert is_view(f"bench_attention.{cls}.{name}")


def test_run_table_names_unsteady_configs_and_the_clocks():
    table = render_table([gpu_measurement("sdpa", unsteady=True), gpu_measurement("sdpa_cudnn")])
    assert "unsteady: 1 config(s) kept running under power or thermal slowdown" in table
    assert (f"  sdpa/{PRESETS['train'].id}: sw_power_cap in 2 of 3 samples; 1 steady of 15 "
            "samples needed after 2 retakes") in table
    assert "clocks: SM 1605-1980 MHz during the samples (NVML); 4 sample(s) retaken" in table
    table = render_table([gpu_measurement(nvml=False)])
    assert "unsteady" not in table
    assert "clocks: unavailable (NVML not readable; pip install nvidia-ml-py)" in table


@pytest.mark.gpu
def test_gpu_device_time_is_power_controlled_and_clock_aware():
    import torch

    from attnperf.measure.timing import Budget, time_cuda_device

    a = torch.randn(2048, 2048, device="cuda", dtype=torch.bfloat16)
    s = time_cuda_device(lambda: a @ a, Budget(min_samples=5, max_samples=8, budget_s=0.2,
                                                 warmup_s=0.02))
    assert s.protocol == "gap-warm" and s.gap_s >= 1e-3 and s.warm_replays >= 1
    assert s.clock_source in ("nvml", "unavailable")
    if s.clock_source == "nvml":
        assert all(c is None or c.sm_clock_mhz > 0 for c in s.clocks)
    assert s.sustained is not None and s.sustained.protocol == "back-to-back"
