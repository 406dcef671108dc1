"""attnperf.render.table (the run table) and what `attnperf run` prints around it:
rounded numbers, one line per kernel for what cannot run here, flags for unstable
rows and beaten ceilings, the thread count and CPU dtype."""

from __future__ import annotations

import json

import pytest

from attnperf.model import roofline
from attnperf.model.catalog import PRESETS
from attnperf.model.records import Correctness, Measurement, PeakMemory, Samples
from attnperf.render.table import render_table

P = PRESETS["cpu_seed"]
P2 = PRESETS["cpu_gqa"]


def _ok(kernel, problem=P, ms=1.4506745695121555, spread=0.0, ceiling=None, warnings=()):
    xs = [ms * 1e-3 * (1 + spread * i / 9) for i in range(10)]
    m = Measurement(kernel, problem, "cpu", device_time=Samples(xs, "cpu-perf_counter", 1, 2),
                    correctness=Correctness(True, 1e-7, 1e-8, 2.81234e-7, 1.0, 0, 1e-4, "float32"),
                    warnings=list(warnings))
    if ceiling is not None:
        m.roofline = roofline.analyze(problem, m.device_time.median_s, ceiling, "cpu")
    return m


def _rows(table):
    return {ln.split()[0]: ln for ln in table.splitlines() if ln.split() and ln.split()[1:2]
            and ln.split()[1] in (P.id, P2.id)}


def test_numbers_are_rounded():
    table = render_table([_ok("sdpa", ceiling=roofline.Ceiling(0.25, 50.0, "measured"))])
    row = _rows(table)["sdpa"]
    assert "1.451" in row and "1.4506745695121555" not in row  # 4 significant digits
    assert "2.8e-07" in row
    for cell in row.split():
        assert len(cell.split(".")[-1]) <= 4 or "e" in cell or "_" in cell, cell


def test_cpu_table_has_no_empty_gpu_columns():
    header = render_table([_ok("naive")]).splitlines()[0].split()
    assert "latency" not in header and "backend" not in header and "note" not in header
    assert header[:5] == ["kernel", "problem", "status", "time", "ms"]


def test_cpu_footer_names_the_clock():
    """One thread: the thread's CPU time; several threads (no cpu_clock): wall time."""
    wall = _ok("naive")
    assert "time = wall time per call on the CPU" in render_table([wall])
    thread = _ok("naive")
    thread.device_time.cpu_clock = "thread"
    text = render_table([thread])
    assert (
        "time = CPU time of the measuring thread per call" in text and "wall time per" not in text
    )


def test_peak_memory_column_where_measured_and_errors_with_verbose():
    cpu = _ok("naive")
    cpu.peak_memory = PeakMemory(None, "unavailable", "unavailable on a CPU")
    gpu = _ok("sdpa")
    gpu.peak_memory = PeakMemory(3 << 20, "torch.cuda.max_memory_allocated")
    assert "peak" not in render_table([cpu]).splitlines()[0]
    table = render_table([cpu, gpu])
    header = table.splitlines()[0]
    assert "peak MiB" in header and "max_abs" not in header
    rows = _rows(table)
    assert rows["sdpa"].split()[-1] == "3.0" and rows["naive"].split()[-1] == "-"
    verbose = render_table([cpu, gpu], verbose=True)
    header = verbose.splitlines()[0]
    assert (
        header.index("rel_err")
        < header.index("max_abs")
        < header.index("mean_abs")
        < header.index("peak MiB")
    )
    assert "1.0e-07" in _rows(verbose)["sdpa"] and "1.0e-08" in _rows(verbose)["sdpa"]


def test_unavailable_configs_are_one_line_per_kernel_not_table_rows():
    gone = [Measurement(k, p, "cpu", status="unavailable",
                        reason=f"sdpa backend {k[5:]} exists only on CUDA (device is cpu)")
            for p in (P, P2) for k in ("sdpa_efficient", "sdpa_cudnn")]
    table = render_table([_ok("sdpa"), *gone])
    assert set(_rows(table)) == {"sdpa"}  # no row of dashes for what cannot run here
    assert (
        "  sdpa_efficient (2 problems): unavailable: sdpa backend efficient exists only on CUDA "
        "(device is cpu)"
    ) in table.splitlines()
    assert sum("sdpa_cudnn" in ln for ln in table.splitlines()) == 1
    verbose = render_table([_ok("sdpa"), *gone], verbose=True)
    assert (
        f"  sdpa_cudnn/{P2.id}: unavailable: sdpa backend cudnn exists only on CUDA (device is cpu)"
        in verbose.splitlines()
    )


def test_unstable_and_beaten_rows_are_flagged():
    low = roofline.Ceiling(tflops=1e-6, bandwidth_gb_s=50.0, source="measured")  # far too low
    rows = [_ok("sdpa"), _ok("naive", spread=0.5), _ok("tiled", ceiling=low)]
    table = render_table(rows)
    got = _rows(table)
    assert got["sdpa"].rstrip().endswith("-") and "unstable" not in got["sdpa"]
    assert got["naive"].rstrip().endswith("unstable")
    assert got["tiled"].rstrip().endswith("ceiling beaten") and ">100" in got["tiled"]
    assert "unstable: IQR above 10 % of the median for 1 config(s)" in table
    assert (
        "ceiling beaten: 1 config(s); efficiency shown as >100 is not meaningful: "
        f"tiled/{P.id} ran at"
        in table
    )


def test_kernel_warnings_are_counted_not_printed():
    table = render_table([_ok("sdpa", warnings=["UserWarning: a", "UserWarning: b"])])
    assert "warnings: 2 from 1 config(s), recorded in the report" in table
    assert "UserWarning" not in table


def test_failed_rows_stay_in_the_table_with_their_reason():
    bad = _ok("naive")
    bad.status, bad.reason = "failed", "wrong result: rel_error=1e-1"
    table = render_table([_ok("sdpa"), bad])
    assert "failed" in _rows(table)["naive"]
    assert f"  naive/{P.id}: failed: wrong result: rel_error=1e-1" in table.splitlines()


# ------------------------------------------------------------- the CLI ------
def test_run_defaults_to_one_thread_on_the_cpu_and_says_so(
    cli, tmp_path, tiny_run_args, monkeypatch
):
    import torch

    from attnperf.measure import session as session_mod
    from support import FAKE_CPU_CEILINGS
    # 2 threads is another machine key: no canned ceilings for it; never measure them here.
    monkeypatch.setattr(
        session_mod, "load_or_measure_ceilings", lambda *a, **k: dict(FAKE_CPU_CEILINGS)
    )
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        res = cli("run", *tiny_run_args, "--kernel", "sdpa", "--output", tmp_path / "r.json")
        assert res.code == 0, res.err
        assert json.loads((tmp_path / "r.json").read_text())["environment"]["torch_threads"] == 1
        assert "(cpu, 1 thread; --threads N to change)" in res.err.splitlines()[0]
        torch.set_num_threads(2)
        res = cli("run", *tiny_run_args, "--kernel", "sdpa", "--threads", "2")
        assert "(cpu, 2 threads)" in res.err.splitlines()[0]
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("extra,dtype", [([], "float32"), (["--dtype", "fp16"], "float16")])
def test_custom_cpu_problem_defaults_to_float32(cli, tmp_path, extra, dtype):
    out = tmp_path / "r.json"
    res = cli("run", "--batch", "1", "--heads", "2", "--seq", "16", "--dim", "8", "--device", "cpu",
              "--kernel", "sdpa", "--budget-ms", "20", "--output", out, *extra)
    assert res.code == 0, res.err
    assert json.loads(out.read_text())["results"][0]["config"]["dtype"] == dtype


def noisy(q, k, v, problem):
    """Module level: an isolated run's worker process unpickles it."""
    import warnings

    import torch
    warnings.warn("this kernel is deprecated", UserWarning, stacklevel=1)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def test_kernel_warnings_go_to_the_report_not_the_terminal(
    cli, tmp_path, tiny_run_args, temp_kernel
):
    temp_kernel("test_noisy", noisy)
    out = tmp_path / "r.json"
    res = cli("run", *tiny_run_args, "--kernel", "test_noisy", "--output", out)
    assert res.code == 0, res.err
    assert "deprecated" not in res.err and "deprecated" not in res.out
    assert "warnings: 1 from 1 config(s)" in res.out
    assert json.loads(out.read_text())["results"][0]["warnings"] == [
        "UserWarning: this kernel is deprecated"]
