"""The ``attnperf`` command: bad input -> one ``error:`` line and exit 2 (no
traceback, no file); failures recorded, not raised; exit codes of run/compare."""

import json
import os
import subprocess
import sys

import pytest
import torch

from attnperf.measure import memory as measure_module
from attnperf.measure.device import fingerprint
from support.unprivileged import call_unprivileged, protected_tree

HAS_CUDA = torch.cuda.is_available()
SEED_ID = "b8_h4_sq64_d64_fp16"


def assert_one_error_line(res, *needles):
    assert res.code == 2, (res.code, res.err)
    assert len(res.err_lines) == 1, res.err
    line = res.err_lines[0]
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    assert "Traceback" not in res.err


def run_subprocess(*argv, timeout=120):
    return subprocess.run([sys.executable, "-m", "attnperf", *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout)


def load(path):
    return json.loads(path.read_text())


# ------------------------------------------------------- run: bad input -----
BAD_RUN_INPUT = [
    (["--batch", "0"], ["--batch", "positive integer", "got 0"]),
    (["--heads", "-3"], ["--heads", "got -3"]),
    (["--seq", "2.5"], ["--seq", "'2.5'"]),
    (["--dim", "abc"], ["--dim", "'abc'"]),
    (["--kv-heads", "0"], ["--kv-heads", "got 0"]),
    (["--seq-kv", "-1"], ["--seq-kv", "got -1"]),
    (["--heads", "6", "--kv-heads", "4"], ["heads=6", "kv_heads=4", "divide"]),
    (["--dtype", "int8"], ["'int8'", "allowed:", "float16", "bfloat16", "float32"]),
    (["--kernel", "flash3"], ["'flash3'", "allowed:", "naive", "sdpa", "tiled"]),
    (["--kernel", "sdpa,flash3"], ["'flash3'", "allowed:"]),
    (["--sweep", "nope"], ["'nope'", "allowed:", "cpu-small"]),
    (["--sweep", "cpu-small", "--batch", "2"], ["--sweep", "--batch"]),
    (["--sweep", "cpu-small", "--causal"], ["--sweep", "--causal"]),
    (["--device", "tpu"], ["'tpu'", "auto, cpu, cuda"]),
    (["--budget-ms", "0"], ["--budget-ms", "positive"]),
    (["--budget-ms", "fast"], ["--budget-ms", "'fast'"]),
    (["--budget-ms", "nan"], ["--budget-ms", "finite", "'nan'"]),
    (["--kernel", ","], ["--kernel", "names no kernel", "allowed:"]),
    (["--frobnicate"], ["--frobnicate"]),
]


@pytest.mark.parametrize("bad,needles", BAD_RUN_INPUT, ids=[" ".join(b) for b, _ in BAD_RUN_INPUT])
def test_run_bad_input(cli, tmp_path, bad, needles):
    out = tmp_path / "report.json"
    res = cli("run", "--output", out, *bad)
    assert_one_error_line(res, *needles)
    assert res.out == ""
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA GPU")
def test_run_device_cuda_without_gpu(cli, tmp_path, tiny_run_args):
    res = cli("run", *tiny_run_args, "--device", "cuda", "--output", tmp_path / "r.json")
    assert_one_error_line(res, "--device cuda", "no CUDA GPU", "--device cpu")
    assert os.listdir(tmp_path) == []


def test_run_output_in_missing_directory(cli, tmp_path, tiny_run_args):
    target = tmp_path / "missing" / "report.json"
    res = cli("run", *tiny_run_args, "--output", target)
    assert_one_error_line(res, str(target), "does not exist")
    assert os.listdir(tmp_path) == []


def test_run_output_under_a_file(cli, tmp_path, tiny_run_args):
    # The portable stand-in for a read-only path (tests may run as root).
    (tmp_path / "plain-file").write_text("x")
    target = tmp_path / "plain-file" / "report.json"
    res = cli("run", *tiny_run_args, "--output", target)
    assert_one_error_line(res, str(target))
    assert (tmp_path / "plain-file").read_text() == "x"


def test_run_output_is_a_directory(cli, tmp_path, tiny_run_args):
    res = cli("run", *tiny_run_args, "--output", tmp_path)
    assert_one_error_line(res, str(tmp_path), "is a directory")


@pytest.mark.parametrize("where", ["ro/report.json", "rw/locked.json"])
def test_run_output_permission_denied(tiny_run_args, where):
    """An unwritable --output: one error line before anything is measured, nothing written.
    Under root (CI) the command runs as ``nobody`` (root writes through mode bits)."""
    with protected_tree() as root:
        target = root / where
        before = sorted(p.name for p in target.parent.iterdir())
        from attnperf.cli import main
        code, out, err = call_unprivileged(main, ["run", *tiny_run_args, "--output", str(target)])
        assert code == 2, err
        assert err.strip().splitlines() == [
            f"error: cannot write {str(target)!r}: permission denied"
        ]
        assert out == ""
        assert sorted(p.name for p in target.parent.iterdir()) == before


def test_bad_input_in_a_real_process_prints_no_traceback():
    res = run_subprocess("run", "--batch", "0")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "error: argument --batch: --batch must be a positive integer, got 0"]
    assert res.stdout == ""


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA GPU")
def test_device_cuda_in_a_real_process():
    res = run_subprocess("run", "--device", "cuda")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --device cuda")


# ------------------------------------------------ run: recorded failures ----
def test_run_writes_a_report_and_exits_0(cli, tmp_path, tiny_run_args, tiny_problem):
    out = tmp_path / "r.json"
    res = cli("run", *tiny_run_args, "--kernel", "pytorch_sdpa", "--output", out)
    assert res.code == 0, res.err
    data = load(out)
    assert [r["id"] for r in data["results"]] == [f"sdpa/{tiny_problem.id}"]
    assert data["results"][0]["status"] == "ok"
    assert ["sdpa", tiny_problem.id, "ok"] in [ln.split()[:3] for ln in res.out.splitlines()]
    assert "1 ok, 0 failed, 0 errors, 0 skipped, 0 unavailable" in res.err
    assert os.listdir(tmp_path) == ["r.json"]


def test_forced_backend_that_cannot_run_is_unavailable_not_a_crash(cli, tmp_path, tiny_run_args):
    out = tmp_path / "r.json"
    res = cli("run", *tiny_run_args, "--kernel", "sdpa_efficient,sdpa_cudnn,sdpa", "--output", out)
    assert res.code == 0, res.err
    results = load(out)["results"]
    assert [r["status"] for r in results] == ["unavailable", "unavailable", "ok"]
    assert all("only on CUDA" in r["reason"] for r in results[:2])
    assert "  sdpa_efficient (b1_h2_sq16_d8_fp32): unavailable: " in res.out


def test_nothing_measured_exits_1_with_the_reasons_recorded(cli, tmp_path, tiny_run_args):
    out = tmp_path / "r.json"
    res = cli("run", *tiny_run_args, "--kernel", "sdpa_efficient,sdpa_cudnn", "--output", out)
    assert res.code == 1
    assert "nothing could be measured" in res.err
    assert [r["status"] for r in load(out)["results"]] == ["unavailable", "unavailable"]


def test_wrong_kernel_exits_1(cli, tmp_path, tiny_run_args, wrong_kernel):
    out = tmp_path / "r.json"
    res = cli("run", *tiny_run_args, "--kernel", f"{wrong_kernel},sdpa", "--output", out)
    assert res.code == 1
    results = load(out)["results"]
    assert [r["status"] for r in results] == ["failed", "ok"]
    assert results[0]["correctness"]["passed"] is False
    assert results[0]["performance"] is None  # never timed
    assert "1 ok, 1 failed" in res.err


# Kernels defined at module level: an isolated run's worker process unpickles them.
def crash(q, k, v, p):
    raise RuntimeError("illegal memory access (simulated)")


def bad_index(q, k, v, p):
    return q[:, :, :, p.head_dim + 5]  # IndexError, not a RuntimeError


def oom(q, k, v, p):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")


def test_crashing_kernel_is_an_error_and_exits_1(cli, tmp_path, tiny_run_args, temp_kernel):
    temp_kernel("test_crash", crash)
    res = cli("run", *tiny_run_args, "--kernel", "test_crash,sdpa", "--output", tmp_path / "r.json")
    assert res.code == 1
    (crashed, ok) = load(tmp_path / "r.json")["results"]
    assert crashed["status"] == "error" and "illegal memory access" in crashed["reason"]
    assert ok["status"] == "ok"


def test_any_kernel_exception_is_recorded_and_the_sweep_goes_on(cli, tmp_path, tiny_run_args,
                                                                temp_kernel):
    temp_kernel("test_index", bad_index)
    res = cli("run", *tiny_run_args, "--kernel", "test_index,sdpa", "--output", tmp_path / "r.json")
    assert res.code == 1
    (crashed, ok) = load(tmp_path / "r.json")["results"]
    assert crashed["status"] == "error" and crashed["reason"].startswith("IndexError")
    assert ok["status"] == "ok"


def test_report_is_readable_by_others(cli, tmp_path, tiny_run_args):
    old = os.umask(0o022)
    try:
        assert (
            cli("run", *tiny_run_args, "--kernel", "sdpa", "--output", tmp_path / "r.json").code
            == 0
        )
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644


def test_cuda_oom_is_skipped_and_the_sweep_goes_on(cli, tmp_path, tiny_run_args, temp_kernel):
    temp_kernel("test_oom", oom)
    res = cli("run", *tiny_run_args, "--kernel", "test_oom,sdpa", "--output", tmp_path / "r.json")
    assert res.code == 0, res.err
    (skipped, ok) = load(tmp_path / "r.json")["results"]
    assert skipped["status"] == "skipped" and "out of memory" in skipped["reason"]
    assert ok["status"] == "ok"


def test_memory_estimate_skips_before_allocating(cli, tmp_path, tiny_run_args, temp_kernel,
                                                 monkeypatch):
    # b1 h2 sq16 d8 fp32 needs 21,504 B with sdpa and 29,696 B with naive
    # (see test_kernels.test_memory_needed_literals).  With 26,624 B free and
    # 85 % headroom (22,630 B) naive does not fit, sdpa does.  In-process: the
    # patched estimate is this process's.
    monkeypatch.setattr(measure_module, "available_memory", lambda device: 26_624)
    calls = []
    temp_kernel("test_huge_workspace", lambda q, k, v, p: calls.append(1),
                workspace_bytes=lambda p: 1 << 40)
    out = tmp_path / "r.json"
    res = cli("run", *tiny_run_args, "--kernel", "test_huge_workspace,naive,sdpa", "--output", out,
              "--in-process")
    assert res.code == 0, res.err
    results = load(out)["results"]
    assert [r["status"] for r in results] == ["skipped", "skipped", "ok"]
    assert "GiB on cpu" in results[0]["reason"] and "free" in results[0]["reason"]
    assert calls == []  # estimated, never called
    assert "1 ok, 0 failed, 0 errors, 2 skipped" in res.err


# --------------------------------------------------------------- compare ----
@pytest.fixture
def seed_pair(json_file, seed_report):
    """A legacy baseline report (0.0524 ms) and a current file of ``ms``."""
    def make(ms, key="performance"):
        return (json_file("baseline.json", seed_report(0.0524)),
                json_file("current.json", seed_report(ms, key=key)))
    return make


def test_compare_no_regression_exits_0(cli, seed_pair):
    base, cur = seed_pair(0.05174)
    res = cli("compare", cur, "--baseline", base)
    assert res.code == 0, res.err
    assert "Speedup:    1.0128x" in res.out and "NO SIGNIFICANT CHANGE" in res.out


def test_compare_regression_exits_1(cli, seed_pair):
    base, cur = seed_pair(0.0524 * 1.05, key="metrics")  # 5 % slower
    res = cli("compare", cur, "--baseline", base, "--threshold", "-3.0")
    assert res.code == 1
    assert "REGRESSION" in res.out
    assert cli("compare", cur, "--baseline", base, "--threshold", "-10").code == 0


def test_compare_output_has_the_seed_keys(cli, seed_pair, tmp_path):
    base, cur = seed_pair(0.05174)
    out = tmp_path / "comparison.json"
    res = cli("compare", cur, "--baseline", base, "--output", out)
    assert res.code == 0, res.err
    data = load(out)
    for key in ["speedup", "improvement_pct", "is_regression", "baseline_time_ms",
                "current_time_ms", "threshold"]:
        assert key in data, key
    assert round(data["speedup"], 4) == 1.0128 and round(data["improvement_pct"], 2) == 1.26
    assert (data["is_regression"], data["threshold"]) == (False, -3.0)
    assert (data["baseline_time_ms"], data["current_time_ms"]) == (0.0524, 0.05174)


def test_compare_formats(cli, seed_pair):
    base, cur = seed_pair(0.05174)
    md = cli("compare", cur, "--baseline", base, "--format", "markdown")
    assert md.code == 0 and md.out.startswith("**attnperf compare**")
    assert "| `sdpa/b8_h4_sq64_d64_fp16` |" in md.out
    js = cli("compare", cur, "--baseline", base, "--format", "json")
    assert js.code == 0
    data = json.loads(js.out)
    assert data["comparisons"][0]["id"] == "sdpa/b8_h4_sq64_d64_fp16"
    assert round(data["speedup"], 4) == 1.0128


def test_compare_a_real_run_with_itself(cli, tmp_path, tiny_run_args):
    out = tmp_path / "r.json"
    assert cli("run", *tiny_run_args, "--kernel", "sdpa", "--output", out).code == 0
    res = cli("compare", out, "--baseline", out, "--format", "json")
    assert res.code == 0
    assert json.loads(res.out)["improvement_pct"] == 0.0


def test_compare_regression_in_a_real_process(seed_pair):
    base, cur = seed_pair(0.0524 * 1.05)
    res = run_subprocess("compare", cur, "--baseline", base)
    assert res.returncode == 1, res.stderr
    assert "REGRESSION" in res.stdout and res.stderr == ""


BAD_COMPARE_INPUT = [
    ("missing", None, ["baseline", "does not exist"]),
    ("empty", "", ["baseline", "is empty"]),
    ("truncated", '{"correctness": {"passed": true}, "performance": {"mean_ti', ["not valid JSON"]),
    ("not-json", "<html>502 Bad Gateway</html>", ["not valid JSON"]),
    ("future-schema", json.dumps({"schema_version": 7, "results": []}), ["schema_version 7"]),
    ("array", "[]", ["JSON list"]),
    ("no-ids", json.dumps({"schema_version": 1, "results": [{"kernel_name": "sdpa"}]}),
     ["required property", "report-v1.schema.json"]),
]


@pytest.mark.parametrize("name,content,needles", BAD_COMPARE_INPUT,
                         ids=[b[0] for b in BAD_COMPARE_INPUT])
def test_compare_bad_baseline(cli, tmp_path, seed_pair, name, content, needles):
    _, cur = seed_pair(0.05)
    baseline = tmp_path / f"{name}.json"
    if content is not None:
        baseline.write_text(content)
    out = tmp_path / "comparison.json"
    res = cli("compare", cur, "--baseline", baseline, "--output", out)
    assert_one_error_line(res, str(baseline), *needles)
    assert not out.exists()


def test_compare_bad_current(cli, tmp_path, seed_pair):
    base, _ = seed_pair(0.05)
    res = cli("compare", tmp_path / "nope.json", "--baseline", base)
    assert_one_error_line(res, "current report", "nope.json", "does not exist")


def test_compare_no_config_in_common(cli, json_file, seed_pair, result_entry, v1_report, tmp_path):
    base, _ = seed_pair(0.05)
    other = v1_report([result_entry("tiled", "b1_h1_sq8_d8_fp32", mean_ms=1)])
    cur = json_file("other.json", other)
    out = tmp_path / "comparison.json"
    res = cli("compare", cur, "--baseline", base, "--output", out)
    assert_one_error_line(res, "no config in common", f"sdpa/{SEED_ID}", "tiled/b1_h1_sq8_d8_fp32")
    assert not out.exists()


@pytest.mark.parametrize("extra,needles", [
    (["--format", "html"], ["--format", "'html'", "markdown"]),
    (["--threshold", "minus3"], ["--threshold", "'minus3'"]),
    (["--threshold", "nan"], ["--threshold", "finite", "'nan'"]),
])
def test_compare_bad_flags(cli, seed_pair, extra, needles):
    base, cur = seed_pair(0.05)
    assert_one_error_line(cli("compare", cur, "--baseline", base, *extra), *needles)


def test_compare_output_in_missing_directory(cli, seed_pair, tmp_path):
    base, cur = seed_pair(0.05)
    res = cli("compare", cur, "--baseline", base, "--output", tmp_path / "missing" / "c.json")
    assert_one_error_line(res, "does not exist")
    assert res.out == ""


# ---------------------------------------------------- kernels, env, misc ----
def test_kernels_lists_availability_on_cpu(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no [tool.attnperf] here: the default CPU problems
    res = cli("kernels", "--device", "cpu", "--sweeps")
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert lines[0] == "kernels on cpu (checked for cpu_seed, cpu_decode, cpu_causal, cpu_gqa):"
    kernel_lines = lines[1:lines.index("problems:")]
    avail = {ln.split()[0]: ln.split()[1] for ln in kernel_lines}
    assert avail["sdpa"] == avail["naive"] == avail["tiled"] == "available:"
    assert avail["sdpa_efficient"] == avail["sdpa_cudnn"] == "unavailable:"
    assert "cpu-small" in res.out and SEED_ID in res.out


@pytest.fixture
def fp32_kernel(monkeypatch):
    """A user's plain-PyTorch float32 kernel, registered for one test."""
    from attnperf.kernels.registry import REGISTRY
    from attnperf.kernels.spec import KernelSpec

    REGISTRY.names()
    monkeypatch.setattr(REGISTRY, "_kernels", dict(REGISTRY._kernels))
    REGISTRY.register(KernelSpec(name="user_fp32", fn=_fp32_attention, dtypes=["float32"],
                                 description="a user's float32 kernel"))
    return "user_fp32"


def _fp32_attention(q, k, v, *, causal, scale):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale,
                                                            enable_gqa=k.shape[1] != q.shape[1])


def _kernel_line(out, name):
    return next(ln.split(None, 1)[1] for ln in out.splitlines() if ln.split()[:1] == [name])


def test_kernels_judges_a_cpu_kernel_on_the_cpus_problems(cli, fp32_kernel, tmp_path, monkeypatch):
    # Before: "unavailable: ... (problem is float16)", judged on the GPU's seed problem,
    # while `attnperf run` on the CPU runs the kernel fine.
    monkeypatch.chdir(tmp_path)
    res = cli("kernels", "--device", "cpu")
    assert (
        res.code == 0 and _kernel_line(res.out, fp32_kernel) == "available: a user's float32 kernel"
    )
    run = cli("run", "--device", "cpu", "--kernel", fp32_kernel, "--sweep", "cpu-small",
              "--budget-ms", "5", "--in-process")
    assert run.code == 0, run.err  # what `kernels` says, `run` does
    # Asked about a problem of another dtype: unavailable, with the reason.
    res = cli("kernels", "--device", "cpu", "--dtype", "fp16")
    assert res.out.splitlines()[0] == (
        "kernels on cpu (checked for seed, "
        "b4_h8_kv2_sq1_sk1024_d64_fp16, b1_h8_sq512_d64_fp16_causal, "
        "b1_h8_kv2_sq256_d64_fp16):"
    )
    assert _kernel_line(res.out, fp32_kernel) == (
        "unavailable: user_fp32 supports float32 only (problem is float16)")
    res = cli("kernels", "--device", "cpu", "--problem", "seed,cpu_gqa")
    assert res.out.splitlines()[0] == "kernels on cpu (checked for seed, cpu_gqa):"
    assert _kernel_line(res.out, fp32_kernel) == (
        "available for 1 of 2: a user's float32 kernel (not the others: user_fp32 supports "
        "float32 only (problem is float16))")


def test_kernels_checks_the_repositorys_problems_that_the_device_runs(cli, fp32_kernel, tmp_path,
                                                                       monkeypatch):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.attnperf]\nkernels = ["user_fp32"]\nproblems = ["seed", "cpu_gqa", "train"]\n')
    monkeypatch.chdir(tmp_path)
    res = cli("kernels", "--device", "cpu")
    assert res.out.splitlines()[0] == "kernels on cpu (checked for cpu_gqa):"
    assert _kernel_line(res.out, fp32_kernel).startswith("available:")


@pytest.mark.parametrize("argv, needles", [
    (["--problem", "nope"], ["unknown problem 'nope'", "cpu_gqa"]),
    (["--problem", ","], ["--problem ',' names no problem"]),
    (["--dtype", "int8"], ["unknown dtype 'int8'; allowed:", "fp32"]),
])
def test_kernels_bad_problem_or_dtype(cli, argv, needles):
    assert_one_error_line(cli("kernels", "--device", "cpu", *argv), *needles)


def test_env_prints_allowlisted_json(cli, monkeypatch):
    monkeypatch.setenv("ATTNPERF_SECRET_SENTINEL", "sentinel-value-31d7")
    res = cli("env", "--device", "cpu")
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert set(data) == set(fingerprint("cpu"))
    assert data["device"] == "cpu"
    assert "sentinel-value-31d7" not in res.out


def test_unknown_command_and_no_command(cli):
    assert_one_error_line(cli("bench"), "'bench'")
    res = cli()
    assert res.code == 2 and "usage: attnperf" in res.out


# ------------------------------------------------------------------- GPU ----
@pytest.mark.gpu
def test_gpu_run_on_the_seed_shape(cli, tmp_path):
    out = tmp_path / "gpu.json"
    res = cli("run", "--device", "cuda", "--kernel", "sdpa", "--batch", "8", "--heads", "4",
              "--seq", "64", "--dim", "64", "--dtype", "fp16", "--budget-ms", "100",
              "--output", out)
    assert res.code == 0, res.err
    data = load(out)
    (r,) = data["results"]
    assert r["status"] == "ok", r["reason"]
    perf = r["performance"]
    assert perf["time_basis"] == "device_time"
    assert perf["device_time"]["method"] == "cuda-graph"
    assert perf["latency"]["method"] == "cuda-events-per-call"
    # Device time (graph replays, launch gaps hidden) is below one isolated call.
    assert perf["device_time"]["median_ms"] < perf["latency"]["median_ms"]
    assert r["roofline"]["regime"] == "latency-bound"
    assert data["environment"]["gpu_name"]


@pytest.mark.gpu
def test_gpu_shape_too_large_is_skipped_by_the_estimate(cli, tmp_path):
    # naive materialises 64*32*8192*8192 scores: ~1.6 TB, more than any GPU has.
    out = tmp_path / "gpu.json"
    res = cli("run", "--device", "cuda", "--kernel", "naive,sdpa", "--batch", "64", "--heads", "32",
              "--seq", "8192", "--dim", "128", "--dtype", "bf16", "--budget-ms", "20",
              "--no-latency", "--output", out)
    # naive is refused by the memory estimate before anything is allocated; sdpa's float64
    # reference does not fit either (out of memory, recorded): nothing measured -> exit 1.
    assert res.code == 1, res.err
    results = load(out)["results"]
    assert [r["status"] for r in results] == ["skipped", "skipped"]
    assert "GiB" in results[0]["reason"] and "free" in results[0]["reason"]


def test_table_flags_unstable_timings():
    from attnperf.cli.run import render_table
    from attnperf.model.catalog import PRESETS
    from attnperf.model.records import Measurement, Samples
    steady = Measurement("sdpa", PRESETS["cpu_seed"], "cpu",
                         device_time=Samples([1.0e-3] * 9 + [1.01e-3], "cpu-perf_counter", 1, 2))
    noisy = Measurement(
        "tiled",
        PRESETS["cpu_seed"],
        "cpu",
        device_time=Samples([1e-3, 2e-3, 1e-3, 3e-3, 1e-3, 2e-3], "cpu-perf_counter", 1, 2),
    )
    table = render_table([steady, noisy])
    rows = {ln.split()[0]: ln for ln in table.splitlines() if ln.startswith(("sdpa ", "tiled "))}
    assert "unstable" not in rows["sdpa"] and rows["tiled"].rstrip().endswith("unstable")
    assert "unstable: IQR above 10 % of the median for 1 config(s)" in table


def test_threads_flag_sets_pytorch_threads(cli, tmp_path, tiny_run_args, monkeypatch):
    import torch

    from attnperf.measure import ceilings as ceilings_mod
    from support import FAKE_CPU_CEILINGS, TEST_THREADS

    # The ceilings cache is keyed by the thread count: no real measurement for 2 threads.
    monkeypatch.setattr(ceilings_mod, "measure_ceilings", lambda device, quick=False:
                        dict(FAKE_CPU_CEILINGS))
    before = torch.get_num_threads()
    assert before == TEST_THREADS != 2  # conftest's value; --threads 2 must change it
    try:
        assert cli("run", *tiny_run_args, "--kernel", "sdpa", "--threads", "2",
                   "--output", tmp_path / "r.json").code == 0
        assert torch.get_num_threads() == 2
        assert load(tmp_path / "r.json")["environment"]["torch_threads"] == 2
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------- one command shape --------
def _subparsers(parser):
    import argparse
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def _leaf_parsers(parser, prefix=()):
    """(command name, parser) of every command the parser runs."""
    subs = _subparsers(parser)
    if not subs:
        yield " ".join(prefix), parser
        return
    for name, sub in subs[0].choices.items():
        yield from _leaf_parsers(sub, prefix + (name,))


def test_every_command_is_a_command_in_the_one_parser():
    from attnperf.cli import COMMANDS, build_parser
    from attnperf.cli.command import COMMAND_KEY, Command

    leaves = dict(_leaf_parsers(build_parser()))
    assert sorted(leaves) == sorted(c.name for c in COMMANDS) == sorted([
        "run", "compare", "kernels", "ceilings", "env", "init", "site build", "pr-comment",
        "asv machine", "asv fetch-assets", "asv env-build", "asv env-install", "ci bench",
        "ci merge", "bisect", "calibrate"])
    for name, parser in leaves.items():
        command = parser.get_default(COMMAND_KEY)
        assert issubclass(command, Command) and command.name == name
        assert "run" in vars(command) or "run_from_args" in vars(command), name


def test_every_argument_has_help_and_no_builder_talk():
    """The docs' CLI reference is generated from build_parser(): every argument says what it is."""
    from attnperf.cli import build_parser

    top = build_parser()
    texts = [top.format_help()]
    for name, parser in _leaf_parsers(top):
        texts.append(parser.format_help())
        for action in parser._actions:
            assert action.help, (
                f"attnperf {name}: {action.option_strings or action.dest} has no help"
            )
    for text in texts:
        assert "integrated_test" not in text and "compare_baseline" not in text, text


def test_every_verdicts_factor_defaults_to_the_devices_and_its_help_names_them():
    """ci bench, bisect, calibrate and pr-comment judge without --factor at the device's
    default (one table: model.config.DEFAULT_FACTORS); each help says so, none a single
    number for every device."""
    from attnperf.cli import build_parser
    from attnperf.model.config import DEFAULT_FACTORS

    assert DEFAULT_FACTORS == {"cpu": 1.5, "cuda": 1.05}
    leaves = dict(_leaf_parsers(build_parser()))
    for name in ("ci bench", "bisect", "calibrate", "pr-comment"):
        factor = next(a for a in leaves[name]._actions if "--factor" in a.option_strings)
        assert factor.default is None, name  # resolved once the device is known
        text = " ".join(leaves[name].format_help().split())
        assert "the device's: cpu 1.5, cuda 1.05" in text, (name, text)
        assert "default 1.05" not in text and "else 1.05" not in text, (name, text)


def test_exit_code_table_is_the_ci_verdicts_and_in_every_help():
    from attnperf.analysis import ab
    from attnperf.cli import ExitCode, build_parser

    assert [ExitCode(c) for c in (ab.EXIT_OK, ab.EXIT_REGRESSION, ab.EXIT_BROKEN, ab.EXIT_INFRA)] \
        == [ExitCode.OK, ExitCode.FAILURE, ExitCode.BROKEN, ExitCode.NO_VERDICT]
    # every outcome of a verdict flow has its own code
    assert (ExitCode.REGRESSION, ExitCode.HARNESS) == (ExitCode.FAILURE, ExitCode.NO_VERDICT)
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 130, 143]
    top = build_parser().format_help()
    for code in ExitCode:
        assert f"  {int(code):<5}{code.summary.split()[0]}" in top
    bench = dict(_leaf_parsers(build_parser()))["ci bench"].format_help()
    assert "verdict \"broken\"" in bench and "130" not in bench


@pytest.mark.parametrize("argv, message", [
    (["site"], "usage: attnperf site build"),
    (["asv"], "usage: attnperf asv {machine,fetch-assets,env-build,env-install} ..."),
    (["ci"], "usage: attnperf ci {bench,merge} ..."),
    (["asv", "nope"], "invalid choice: 'nope'"),
    (["asv", "env-install", "wheel.whl"], "--env"),
    (["asv", "env-build", "--env", "e", "only-one"], "wheel_dir"),
    (["ci", "bench", "--machine", "m"], "--base"),
])
def test_group_and_sub_command_usage_errors_exit_2(cli, argv, message):
    assert_one_error_line(cli(*argv), message)


def test_asv_machine_describes_this_machine(cli, tmp_path, monkeypatch):
    from attnperf.measure import ceilings as ceilings_mod
    from support import FAKE_CPU_CEILINGS

    monkeypatch.setattr(ceilings_mod, "measure_ceilings",
                        lambda device, quick=False: dict(FAKE_CPU_CEILINGS))
    monkeypatch.setenv("HOME", str(tmp_path))
    res = cli("asv", "machine", "box-1", "--device", "cpu", "--results-dir", tmp_path / "results")
    assert res.code == 0, res.err
    info = json.loads(res.out)
    assert info["machine"] == "box-1" and info["gpu"] == "none"
    assert load(tmp_path / ".asv-machine.json")["box-1"] == info
    assert load(tmp_path / "results" / "box-1" / "attnperf-ceilings.json")


def test_asv_fetch_assets_without_npm_is_one_error_exit_1(cli, tmp_path, monkeypatch):
    from attnperf.site import fetch_assets

    monkeypatch.setattr(fetch_assets.shutil, "which", lambda name: None)
    res = cli("asv", "fetch-assets", tmp_path / "www")
    assert res.code == 1 and res.err_lines == [
        "error: npm is not installed (apt-get install npm, or Node.js's npm)"]
    assert res.out == ""


def test_asv_fetch_assets_is_idempotent(cli, tmp_path):
    from attnperf.site.assets import ASSETS, MANIFEST

    (tmp_path / MANIFEST).write_text(json.dumps({"files": {a.url: a.local for a in ASSETS}}))
    for a in ASSETS:
        (tmp_path / a.local).write_text("x")
    res = cli("asv", "fetch-assets", tmp_path)
    assert res.code == 0 and res.out.strip() == f"asv web assets already in {tmp_path}", res.err


def test_asv_env_install_reports_a_failed_pip_step(cli, monkeypatch):
    from attnperf.asv import envinstall

    def fail(env_dir, wheel):
        assert (env_dir, wheel) == ("ENV", "x.whl")
        raise subprocess.CalledProcessError(3, ["python", "-m", "pip", "install", "x.whl"])

    monkeypatch.setattr(envinstall, "env_install", fail)
    res = cli("asv", "env-install", "--env", "ENV", "x.whl")
    assert res.code == 1 and res.err_lines == ["error: python -m pip install ... exited 3"]
