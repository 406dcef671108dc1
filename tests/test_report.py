"""attnperf.report: the schema-v1 JSON of a real CPU run, atomic writes, NaN
handling, reading reports (ours and legacy single-config ones) with clear errors, and reading
reports back into records that write the same file."""

import dataclasses
import json
import math
import os

import pytest

from attnperf.errors import OutputPathError, ReportError, SchemaVersionError
from attnperf.io.jsonfile import check_writable, write_json
from attnperf.io.report import SCHEMA_FILE, build_report, read_results
from attnperf.measure.device import fingerprint
from attnperf.model.problem import Problem
from attnperf.model.records import Correctness, Measurement
from support.unprivileged import call_unprivileged, protected_tree

SENTINEL = "sentinel-value-9c4e2a"
SEED_TOP_LEVEL = ["correctness", "performance", "roofline", "config", "kernel_name", "timestamp"]


def strict_loads(text: str):
    """json.loads that refuses NaN / Infinity (which are not JSON)."""
    def refuse(name):
        raise ValueError(f"non-JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def validate(data: dict) -> None:
    import jsonschema  # the [test] extra

    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(data)


@pytest.fixture
def cpu_report(cli, tiny_run_args, tmp_path, monkeypatch, isolated_cache):
    """A real `attnperf run` on a tiny CPU problem, with a sentinel in the environment."""
    monkeypatch.setenv("ATTNPERF_SECRET_SENTINEL", SENTINEL)
    out = tmp_path / "report.json"
    res = cli("run", *tiny_run_args, "--kernel", "sdpa,naive,sdpa_efficient", "--output", out)
    assert res.code == 0, res.err
    text = out.read_text()
    return text, strict_loads(text)


# --------------------------------------------------------- a real run -------
def test_real_run_validates_against_the_shipped_schema(cpu_report):
    _, data = cpu_report
    validate(data)
    assert data["schema_version"] == 2 and data["tool"] == "attnperf"


def test_real_run_carries_the_seed_keys(cpu_report):
    _, data = cpu_report
    for key in SEED_TOP_LEVEL:
        assert key in data, key
    assert data["kernel_name"] == "sdpa"  # the first result that measured ok
    assert {"batch_size", "num_heads", "seq_len", "head_dim", "dtype"} <= set(data["config"])
    assert {"mean_time_ms", "std_dev_ms", "throughput_gflops", "bandwidth_gb_s"} <= \
        set(data["performance"])
    assert {"arithmetic_intensity", "bottleneck", "efficiency_pct", "recommendations"} <= \
        set(data["roofline"])
    assert data["correctness"]["passed"] is True


def test_real_run_results_summary_and_roofline(cpu_report):
    _, data = cpu_report
    assert data["summary"] == {"ok": 2, "failed": 0, "error": 0, "crashed": 0, "timed_out": 0,
                               "skipped": 0, "unavailable": 1, "total": 3}
    assert data["interrupted"] is False and data["not_run"] == []
    by_kernel = {r["kernel_name"]: r for r in data["results"]}
    assert by_kernel["sdpa_efficient"]["status"] == "unavailable"
    assert "only on CUDA" in by_kernel["sdpa_efficient"]["reason"]
    sdpa = by_kernel["sdpa"]
    assert sdpa["id"] == "sdpa/b1_h2_sq16_d8_fp32"
    perf = sdpa["performance"]
    assert perf["time_basis"] == "cpu_thread_time"  # one thread: the thread's CPU time
    dt = perf["device_time"]
    assert dt["cpu_clock"] == "thread" and len(dt["wall_samples_ms"]) == dt["n"]  # wall kept
    assert len(dt["samples_ms"]) == dt["n"] >= 10  # raw samples kept (Budget() min_samples)
    assert perf["median_time_ms"] == dt["median_ms"] and perf["mean_time_ms"] == dt["mean_ms"]
    rf = sdpa["roofline"]
    # b1 h2 sq16 d8 fp32: 4*1*2*16*16*8 = 16,384 FLOPs; 4*8*(2*2*16 + 2*2*16) = 4,096 bytes
    assert (rf["flops"], rf["bytes"], rf["arithmetic_intensity"]) == (16384, 4096, 4.0)
    # conftest's canned CPU ceilings: 0.25 TFLOP/s / 50 GB/s = 5 FLOP/byte
    assert rf["ridge_point"] == pytest.approx(5.0)
    assert rf["ceiling_source"] == "measured"
    assert rf["regime"] == "latency-bound"  # 82 ns of ideal work, under the CPU's 20 us floor


def test_real_run_holds_no_environment(cpu_report, isolated_cache):
    text, data = cpu_report
    assert SENTINEL not in text
    assert str(isolated_cache) not in text  # $XDG_CACHE_HOME is an environment variable too
    assert set(data["environment"]) == set(fingerprint("cpu"))


# ------------------------------------------------------------ building ------
def _failed_nan_measurement() -> Measurement:
    p = Problem(batch=1, heads=1, seq_q=4, head_dim=8, dtype="fp32")
    corr = Correctness(passed=False, max_abs_error=float("nan"), mean_abs_error=float("nan"),
                       rel_error=float("nan"), correlation=0.5, nonfinite=3, tolerance=1e-4,
                       tolerance_key="float32")
    return Measurement("naive", p, "cpu", status="failed", reason="wrong result: nan",
                       correctness=corr, timestamp="2026-01-01T00:00:00Z")


def test_nan_metrics_become_null_and_still_validate():
    data = build_report([_failed_nan_measurement()], fingerprint("cpu"), None, {})
    corr = data["results"][0]["correctness"]
    assert corr["rel_error"] is None and corr["nonfinite"] == 3
    assert data["summary"]["failed"] == 1
    # No ok result: the legacy top-level keys mirror the first result anyway.
    assert data["kernel_name"] == "naive" and data["performance"] is None
    validate(data)


def test_report_of_nothing_still_validates():
    data = build_report([], fingerprint("cpu"), None, {})
    assert data["summary"]["total"] == 0 and data["results"] == []
    validate(data)


def test_nan_written_as_null(tmp_path):
    path = tmp_path / "nan.json"
    write_json(str(path), {"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": -math.inf}})
    assert strict_loads(path.read_text()) == {"a": None, "b": [None, 1.5], "c": {"d": None}}


# --------------------------------------------------------- atomic write -----
def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "out.json"
    write_json(str(path), {"v": 1})

    from attnperf.io import files

    def disk_full(fd, data):
        os.write(fd, b'{"v": 2, "partial')
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(files, "_write_all", disk_full)
    with pytest.raises(OutputPathError, match="No space left"):
        write_json(str(path), {"v": 2})
    assert strict_loads(path.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["out.json"]


def test_unencodable_value_leaves_no_file_at_all(tmp_path):
    with pytest.raises(TypeError):
        write_json(str(tmp_path / "out.json"), {"v": object()})
    assert os.listdir(tmp_path) == []


def test_output_path_errors_name_the_path(tmp_path):
    missing = tmp_path / "no-such-dir" / "out.json"
    with pytest.raises(OutputPathError, match="does not exist") as info:
        check_writable(str(missing))
    assert str(missing) in str(info.value)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(OutputPathError):
        write_json(str(a_file / "out.json"), {})
    with pytest.raises(OutputPathError, match="is a directory"):
        check_writable(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["file.txt"]


def _write_or_say_why(path: str) -> int:
    try:
        write_json(path, {"a": 1})
    except OutputPathError as exc:
        print(exc)
        return 3
    return 0


@pytest.mark.parametrize("where", ["ro/out.json", "rw/locked.json"])
def test_permission_denied_names_the_path(where):
    """A directory the user may not write in, and an existing file they may not write:
    permission denied, nothing written.  Under root (CI) it runs as ``nobody``."""
    with protected_tree() as root:
        target = root / where
        before = sorted(p.name for p in target.parent.iterdir())
        code, out, err = call_unprivileged(_write_or_say_why, str(target))
        assert code == 3, (out, err)
        assert out.strip() == f"cannot write {str(target)!r}: permission denied"
        assert sorted(p.name for p in target.parent.iterdir()) == before
        if target.exists():
            assert target.read_text() == "{}\n"
        # The same path is writable by the user who owns it (the check is not a blanket refusal).
        if os.geteuid() == 0:
            write_json(str(target), {"ok": True})
            assert json.loads(target.read_text()) == {"ok": True}


# ------------------------------------------------------------- reading ------
def test_unknown_schema_version_is_refused_naming_it(json_file, v1_report):
    path = json_file("future.json", v1_report([], schema_version=3))
    with pytest.raises(SchemaVersionError) as info:
        read_results(str(path), "baseline")
    msg = str(info.value)
    assert "schema_version 3" in msg and "baseline" in msg and str(path) in msg
    assert "this attnperf reads 1, 2" in msg


def test_boolean_schema_version_is_refused(json_file, v1_report):
    path = json_file("bool.json", v1_report([], schema_version=True))
    with pytest.raises(SchemaVersionError, match="schema_version True"):
        read_results(str(path), "baseline")


@pytest.mark.parametrize("content,expected", [
    ("", "is empty"),
    ("  \n", "is empty"),
    ('{"schema_version": 1, "results": [', "not valid JSON"),
    ("kernel,time\nsdpa,0.05\n", "not valid JSON"),
    ("[1, 2]", "JSON list"),
    ('{"schema_version": 1}', r"\(top level\): 'tool' is a required property"),
    ('{"kernel_name": "x"}', "neither an attnperf report"),
])
def test_unreadable_reports(tmp_path, content, expected):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(ReportError, match=expected):
        read_results(str(path))


def _entry(result_entry):
    return result_entry("sdpa", "b1_h2_sq16_d8_fp32", mean_ms=1.0)


# Each: a change to an otherwise valid report -> the field the one-line error names.
BROKEN_REPORTS = [
    ("no id", lambda r: r["results"][0].pop("id"), r"results\[0\]: 'id' is a required property"),
    (
        "entry not an object",
        lambda r: r["results"].__setitem__(0, 3),
        r"results\[0\]: 3 is not of type 'object'",
    ),
    (
        "config a string",
        lambda r: r["results"][0].__setitem__("config", "b8_h4"),
        r"results\[0\]\.config: 'b8_h4' is not of type 'object'",
    ),
    (
        "kernel_name a list",
        lambda r: r["results"][0].__setitem__("kernel_name", ["sdpa"]),
        r"results\[0\]\.kernel_name: \['sdpa'\] is not of type 'string'",
    ),
    (
        "time a string",
        lambda r: r["results"][0]["performance"].__setitem__("median_time_ms", "0.1"),
        r"results\[0\]\.performance\.median_time_ms: '0.1' is not of type 'number'",
    ),
    (
        "negative time",
        lambda r: r["results"][0]["performance"].__setitem__("mean_time_ms", -1),
        r"results\[0\]\.performance\.mean_time_ms: -1 is less than or equal to",
    ),
    (
        "unknown status",
        lambda r: r["results"][0].__setitem__("status", "great"),
        r"results\[0\]\.status: 'great' is not one of",
    ),
    (
        "Infinity baseline",
        lambda r: r["results"][0]["performance"].__setitem__("mean_time_ms", math.inf),
        r"results\[0\]\.performance\.mean_time_ms is inf \(a report holds finite numbers only\)",
    ),
    (
        "NaN",
        lambda r: r["results"][0]["performance"].__setitem__("median_time_ms", math.nan),
        r"results\[0\]\.performance\.median_time_ms is nan",
    ),
    (
        "huge integer",
        lambda r: r["settings"].__setitem__("budget", 10**4000),
        r"settings\.budget is a number too large to be a measurement",
    ),
    (
        "duplicate id",
        lambda r: r["results"].append(dict(r["results"][0])),
        r"results\[1\]\.id 'sdpa/b1_h2_sq16_d8_fp32' appears twice",
    ),
]


@pytest.mark.parametrize("change,expected", [b[1:] for b in BROKEN_REPORTS],
                         ids=[b[0] for b in BROKEN_REPORTS])
def test_broken_reports_name_the_first_bad_field(
    tmp_path, v1_report, result_entry, change, expected
):
    report = v1_report([_entry(result_entry)])
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    read_results(str(path))  # valid before the change
    change(report)
    path.write_text(json.dumps(report))  # Python writes inf/nan as Infinity/NaN literals
    with pytest.raises(ReportError, match=expected) as info:
        read_results(str(path), "baseline")
    assert "\n" not in str(info.value) and len(str(info.value)) < 400
    assert str(info.value).startswith(f"baseline {str(path)!r}: ")


@pytest.mark.parametrize(
    "change,expected",
    [
        (
            lambda r: r.__setitem__("config", "b8_h4_sq64_d64"),
            r"config: 'b8_h4_sq64_d64' is not of type 'object'",
        ),
        (
            lambda r: r.__setitem__("kernel_name", ["sdpa"]),
            r"kernel_name: \['sdpa'\] is not of type 'string'",
        ),
        (
            lambda r: r["performance"].__setitem__("mean_time_ms", math.inf),
            r"performance\.mean_time_ms is inf",
        ),
        (lambda r: r["performance"].__setitem__("mean_time_ms", "fast"), r"mean_time_ms"),
        (
            lambda r: r["config"].__setitem__("batch_size", 2.5),
            r"config\.batch_size: 2.5 is not of type 'integer'",
        ),
        (
            lambda r: r.__setitem__("correctness", "yes"),
            r"correctness: 'yes' is not of type 'object', 'null'",
        ),
    ],
    ids=[
        "config-string",
        "kernel-list",
        "inf-time",
        "string-time",
        "float-batch",
        "correctness-string",
    ],
)
def test_broken_seed_reports_name_the_bad_field(json_file, seed_report, change, expected):
    report = seed_report()
    change(report)
    path = json_file("seed.json", report)
    with pytest.raises(ReportError, match=expected):
        read_results(str(path))


def test_deeply_nested_and_huge_number_files_are_one_error(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"schema_version": 1, "settings": ' + "[" * 100000 + "]" * 100000 + "}")
    with pytest.raises(ReportError, match="cannot be parsed as JSON: nested too deeply"):
        read_results(str(deep))
    big = tmp_path / "big.json"
    big.write_text('{"performance": {"mean_time_ms": ' + "9" * 5000 + "}}")
    with pytest.raises(
        ReportError, match=r"cannot be parsed as JSON \(Exceeds the limit \(4300 digits\)"
    ):
        read_results(str(big))
    big_float = tmp_path / "big-float.json"
    big_float.write_text('{"performance": {"mean_time_ms": ' + "9" * 5000 + ".5}}")
    with pytest.raises(ReportError, match=r"performance\.mean_time_ms is inf"):
        read_results(str(big_float))


def test_missing_report_and_directory(tmp_path):
    with pytest.raises(ReportError, match="does not exist"):
        read_results(str(tmp_path / "nope.json"), "baseline")
    with pytest.raises(ReportError, match="is a directory"):
        read_results(str(tmp_path))


@pytest.mark.parametrize("key", ["performance", "metrics"])
def test_seed_reports_are_read(json_file, seed_report, key):
    path = json_file("seed.json", seed_report(key=key))
    (entry,) = read_results(str(path))
    assert entry["id"] == "sdpa/b8_h4_sq64_d64_fp16"  # pytorch_sdpa is the sdpa kernel
    assert entry["kernel_name"] == "sdpa" and entry["status"] == "ok"
    assert entry["performance"]["mean_time_ms"] == 0.0524


def test_seed_report_that_failed_correctness(json_file, seed_report):
    path = json_file("seed.json", seed_report(passed=False))
    assert read_results(str(path))[0]["status"] == "failed"


def test_own_report_reads_back(cpu_report, tmp_path):
    text, _ = cpu_report
    path = tmp_path / "again.json"
    path.write_text(text)
    ids = [r["id"] for r in read_results(str(path))]
    assert ids == ["sdpa/b1_h2_sq16_d8_fp32", "naive/b1_h2_sq16_d8_fp32",
                   "sdpa_efficient/b1_h2_sq16_d8_fp32"]


# ------------------------------------------------- the result entry, key by key ---
# Schema v1 is a contract: these keys are what readers (compare, tools of the legacy format)
# find.  Every value below is set by hand, never read back from the code under test.
def _gpu_measurement() -> Measurement:
    from attnperf.model import roofline
    from attnperf.model.records import Samples

    p = Problem(batch=1, heads=1, seq_q=8, head_dim=8, dtype="bf16")
    corr = Correctness(passed=True, max_abs_error=1e-3, mean_abs_error=1e-4, rel_error=2e-3,
                       correlation=0.9999, nonfinite=0, tolerance=2e-2, tolerance_key="bfloat16")
    m = Measurement("sdpa", p, "cuda", correctness=corr, dispatch="cudnn",
                    device_time=Samples([2e-6, 4e-6, 6e-6], "cuda-graph", 50, 20),
                    latency=Samples([1e-5, 3e-5], "cuda-events-per-call", 1, 20, l2_flush=True),
                    clock_before={"sm_mhz": 1980}, clock_after={"sm_mhz": 1755},
                    timestamp="2026-11-24T00:00:00Z")
    # b1 h1 s8 d8: 2048 FLOP, 512 B (bf16); at 4 us: 0.000512 TFLOP/s, 0.128 GB/s.
    m.roofline = roofline.analyze(p, 4e-6, roofline.Ceiling(1.0, 100.0, "test"), "cuda")
    return m


def test_result_entry_of_a_gpu_measurement():
    from attnperf.io.report import result_entry

    e = result_entry(_gpu_measurement())
    # Keys may be added (schema v1 readers ignore extras), never renamed or dropped.
    assert set(e) >= {"id", "kernel_name", "config_id", "config", "device", "status", "reason",
                      "timestamp", "dispatch", "correctness", "performance", "roofline", "clock"}
    assert (e["id"], e["kernel_name"], e["config_id"]) == (
        "sdpa/b1_h1_sq8_d8_bf16", "sdpa", "b1_h1_sq8_d8_bf16")
    assert (e["device"], e["status"], e["reason"]) == ("cuda", "ok", "")
    assert e["timestamp"] == "2026-11-24T00:00:00Z"
    assert e["dispatch"] == {"backend": "cudnn"}
    assert e["clock"] == {"before": {"sm_mhz": 1980}, "after": {"sm_mhz": 1755}}
    assert e["correctness"]["rel_error"] == 2e-3 and e["correctness"]["passed"] is True
    assert e["roofline"]["flops"] == 2048 and e["roofline"]["floor_ms"] > 0
    perf = e["performance"]
    assert set(perf) >= {"mean_time_ms", "std_dev_ms", "throughput_gflops", "bandwidth_gb_s",
                         "median_time_ms", "iqr_ms", "min_time_ms", "time_basis", "unstable",
                         "device_time", "latency"}
    # samples 2, 4, 6 us: mean = median = 0.004 ms, std 0.002 ms, IQR 3..5 us = 0.002 ms
    assert perf["mean_time_ms"] == pytest.approx(0.004)
    assert perf["median_time_ms"] == pytest.approx(0.004)
    assert perf["std_dev_ms"] == pytest.approx(0.002)
    assert perf["iqr_ms"] == pytest.approx(0.002)
    assert perf["min_time_ms"] == pytest.approx(0.002)
    assert perf["unstable"] is True  # IQR/median = 50 %
    assert perf["throughput_gflops"] == pytest.approx(0.512, rel=1e-12)   # 2048 FLOP / 4 us
    assert perf["bandwidth_gb_s"] == pytest.approx(0.128, rel=1e-12)      # 512 B / 4 us
    assert perf["time_basis"] == "device_time"
    assert perf["device_time"]["method"] == "cuda-graph"
    assert perf["device_time"]["samples_ms"] == pytest.approx([0.002, 0.004, 0.006])
    assert perf["latency"]["method"] == "cuda-events-per-call"
    assert perf["latency"]["samples_ms"] == pytest.approx([0.01, 0.03])


def test_result_entry_of_a_bare_cpu_measurement():
    from attnperf.io.report import result_entry
    from attnperf.model.records import Samples

    p = Problem(batch=1, heads=1, seq_q=8, head_dim=8, dtype="fp32")
    e = result_entry(Measurement("tiled", p, "cpu",
                                 device_time=Samples([1e-3, 1e-3, 1e-3], "cpu-perf_counter", 3, 2)))
    assert e["dispatch"] is None and e["clock"] is None and e["roofline"] is None
    assert e["correctness"] is None
    perf = e["performance"]
    assert perf["time_basis"] == "cpu_wall_time"
    assert perf["throughput_gflops"] is None and perf["bandwidth_gb_s"] is None
    assert perf["latency"] is None and perf["unstable"] is False
    assert result_entry(Measurement("tiled", p, "cpu", status="skipped"))["performance"] is None


def test_peak_memory_in_the_result_entry_validates_and_older_entries_lack_it(tmp_path):
    from attnperf.io.report import result_entry
    from attnperf.model.records import PeakMemory

    m = _gpu_measurement()
    m.peak_memory = PeakMemory(3 << 20, "torch.cuda.max_memory_allocated", "one warm call",
                               baseline_bytes=1 << 20)
    assert result_entry(m)["peak_memory"] == {
        "peak_bytes": 3 << 20, "method": "torch.cuda.max_memory_allocated",
        "note": "one warm call", "baseline_bytes": 1 << 20}
    cpu = _gpu_measurement()
    cpu.kernel = "tiled"
    cpu.peak_memory = PeakMemory(None, "unavailable", "unavailable on a CPU: why")
    data = build_report([m, cpu], fingerprint("cpu"), None, {})
    validate(data)
    assert [r["peak_memory"]["peak_bytes"] for r in data["results"]] == [3 << 20, None]
    # a report written before the field (no peak_memory key) still reads
    for r in data["results"]:
        del r["peak_memory"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    assert len(read_results(str(path))) == 2
    # a negative peak breaks the schema
    data["results"][0]["peak_memory"] = {"peak_bytes": -1, "method": "x"}
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match="peak_bytes"):
        read_results(str(path))


def test_summary_counts_every_status():
    from attnperf.io.report import summarize

    rows = [{"status": s} for s in ("ok", "ok", "failed", "error", "skipped", "unavailable",
                                    "unavailable", "unheard-of")]
    assert summarize(rows) == {"ok": 2, "failed": 1, "error": 1, "crashed": 0, "timed_out": 0,
                               "skipped": 1, "unavailable": 2, "unheard-of": 1, "total": 8}
    assert summarize([]) == {"ok": 0, "failed": 0, "error": 0, "crashed": 0, "timed_out": 0,
                             "skipped": 0, "unavailable": 0, "total": 0}


# ------------------------------------------ records: write -> read -> write ---
def _rich_gpu_measurement() -> Measurement:
    """Every group a GPU record can carry: power protocol, clocks (one unreadable, an
    unknown NVML bit), a retake, a sustained view, latency, peak memory, gradients,
    a NaN error figure, warnings and a dispatch."""
    from attnperf.model.records import ClockReading, PeakMemory, PowerState, Samples

    m = _gpu_measurement()
    m.problem = m.problem.with_pass("bwd")
    clocks = [ClockReading(1980, 0), ClockReading(1965, 0x1 | 0x4), None, ClockReading(None, 0x800)]
    sustained = Samples([2.4e-6, 2.5e-6], "cuda-graph", 50, 0,
                        power=PowerState("back-to-back", "nvml", [clocks[1]] * 2))
    m.device_time = Samples([2.1e-6, 4.3e-6, 6.7e-6, 3.3e-6], "cuda-graph", 100, 20,
                            note="captured at the second try (first: x)",
                            power=PowerState("gap-warm", "nvml", clocks, gap_s=5.25e-3,
                                             warm_replays=1, replays_per_sample=2,
                                             settle_cycles=6, captures=4, rejected_s=[9.1e-6],
                                             rejected_clocks=[ClockReading(None, 0x4 | 0x40)],
                                             retaken=1, sustained=sustained))
    m.latency = Samples([1.1e-5, 3.7e-5], "cuda-events-per-call", 1, 20, l2_flush=True,
                        power=PowerState("isolated", "unavailable", [None, None],
                                         unsteady_reason="sw_power_cap in 2 of 2 samples"))
    m.peak_memory = PeakMemory(3 << 20, "torch.cuda.max_memory_allocated", "one warm call", 1 << 20)
    m.gradients = {"dq": m.correctness, "dk": dataclasses.replace(m.correctness, passed=False,
                                                                  rel_error=float("nan")),
                   "dv": m.correctness}
    m.warnings = ["UserWarning: something"]
    return m


def _cpu_thread_measurement() -> Measurement:
    from attnperf.model.records import Samples, ThreadTime

    p = Problem(batch=1, heads=1, seq_q=8, head_dim=8, dtype="fp32")
    dt = Samples(
        [1.2e-3, 1.7e-3, 1.3e-3],
        "cpu-thread_time",
        4,
        2,
        note="malloc thresholds not fixed",
        thread=ThreadTime(
            [1.5e-3, 2.1e-3, 1.4e-3], [8e-4, 8.3e-4, 1.6e-3, 9e-4], [1.1e-3, 1.2e-3, 0.9e-3]
        ),
    )
    return Measurement("tiled", p, "cpu", device_time=dt, timestamp="2026-11-24T00:00:00Z")


def _write_read_write(tmp_path, data: dict):
    from attnperf.io.report import read_report, report_dict

    first = tmp_path / "first.json"
    write_json(str(first), data)
    report = read_report(str(first))
    again = tmp_path / "again.json"
    write_json(str(again), report_dict(report))
    return first.read_text(), again.read_text(), report


def test_records_read_back_write_the_same_report(tmp_path):
    from attnperf.model.records import Report

    measured = [_rich_gpu_measurement(), _cpu_thread_measurement(),
                _failed_nan_measurement(), Measurement("sdpa_cudnn", _gpu_measurement().problem,
                                                       "cpu", status="unavailable", reason="no")]
    data = build_report(measured, fingerprint("cpu"), {"bandwidth_gb_s": 50.0, "cache_path": "/x"},
                        {"budget_s": 0.5}, interrupted=True, not_run=["naive/b1"])
    validate(data)
    first, again, report = _write_read_write(tmp_path, data)
    assert again == first
    assert isinstance(report, Report) and report.interrupted and report.not_run == ["naive/b1"]
    assert report.ceilings == {"bandwidth_gb_s": 50.0}  # the cache path is never written
    gpu, cpu = report.measurements[:2]
    want = _rich_gpu_measurement()
    # the records themselves come back (floats exactly; a rejected sample's SM clock is not written)
    assert gpu.device_time.samples_s == want.device_time.samples_s
    assert gpu.device_time.power.clocks == want.device_time.power.clocks
    assert gpu.device_time.power.rejected_clocks[0].event_bits == 0x44
    assert gpu.device_time.sustained == want.device_time.sustained
    assert gpu.latency == want.latency and gpu.latency.unsteady
    assert (gpu.problem, gpu.peak_memory, gpu.roofline) == (
        want.problem,
        want.peak_memory,
        want.roofline,
    )
    assert gpu.gradients["dk"].passed is False and math.isnan(gpu.gradients["dk"].rel_error)
    assert (gpu.dispatch, gpu.clock_before, gpu.warnings) == (
        "cudnn",
        {"sm_mhz": 1980},
        want.warnings,
    )
    assert cpu == _cpu_thread_measurement()


def test_a_real_run_reads_back_into_records_and_writes_the_same_file(cpu_report, tmp_path):
    import attnperf

    text, _ = cpu_report
    path = tmp_path / "run.json"
    path.write_text(text)
    from attnperf.io.report import read_report, report_dict

    again = tmp_path / "again.json"
    write_json(str(again), report_dict(read_report(str(path))))
    assert again.read_text() == text
    records = attnperf.load_report(str(path), records=True)
    assert [(m.kernel, m.status) for m in records] == [
        ("sdpa", "ok"), ("naive", "ok"), ("sdpa_efficient", "unavailable")]
    assert records[0].device_time.cpu_clock == "thread" and records[0].device_time.power is None


def test_every_written_sample_reads_back_to_the_same_milliseconds():
    """A report writes seconds x 1e3.  Two doubles can round to the same milliseconds
    (then either one is read back: the same file again); the shorter one is taken."""
    import random

    from attnperf.model.records import Samples, seconds_of_ms

    rng = random.Random(5)
    xs = [rng.uniform(1, 2) * 2.0 ** rng.randint(-30, 2) for _ in range(20000)]
    assert all(seconds_of_ms(x * 1e3) * 1e3 == x * 1e3 for x in xs)
    assert sum(seconds_of_ms(x * 1e3) != x for x in xs) > 100  # ~2 %: not recoverable
    assert 2.1 / 1e3 != 0.0021 and seconds_of_ms(2.1) == 0.0021  # round figures stay round
    s = Samples(xs[:101], "cpu-perf_counter", 1, 2)
    assert Samples.from_dict(s.to_dict()).to_dict() == s.to_dict()


def test_a_v1_report_reads_into_records(tmp_path, v1_report, result_entry):
    from attnperf.io.report import read_report, report_dict

    path = tmp_path / "v1.json"
    path.write_text(
        json.dumps(v1_report([result_entry("sdpa", "b1_h2_sq16_d8_fp32", mean_ms=1.0)]))
    )
    report = read_report(str(path))
    (m,) = report.measurements
    assert (m.kernel, m.problem.id, m.status, m.device_time) == (
        "sdpa",
        "b1_h2_sq16_d8_fp32",
        "ok",
        None,
    )
    assert report_dict(report)["schema_version"] == 2  # written again, it is the current format


def test_records_of_a_seed_file_or_an_unreadable_entry_are_one_error(tmp_path, json_file,
                                                                    seed_report, v1_report,
                                                                    result_entry):
    from attnperf.io.report import read_report

    seed = json_file("seed.json", seed_report())
    with pytest.raises(ReportError, match="not an attnperf report .*no records"):
        read_report(str(seed), "baseline")
    assert len(read_results(str(seed))) == 1  # its results are still read as dicts
    report = v1_report([result_entry("sdpa", "b1_h2_sq16_d8_fp32", mean_ms=1.0)])
    report["results"][0]["config"]["num_kv_heads"] = 3  # 2 query heads: not a GQA group
    path = json_file("bad.json", report)
    with pytest.raises(ReportError, match=r"results\[0\] cannot be read as a measurement"):
        read_results(str(path), records=True)
