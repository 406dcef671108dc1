"""The asv suite's grid and its setup-time checks (attnperf.suite)."""

import importlib.util
from pathlib import Path

import pytest

from attnperf.asv import suite
from attnperf.model.catalog import PRESETS
from attnperf.model.problem import Problem

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_attention.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_attention", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_params_are_the_suite_grid_as_stable_ids():
    bench = _bench_module()
    assert bench.KERNELS == suite.GRID_KERNELS
    assert bench.PROBLEMS == suite.GRID_PROBLEMS
    for pid in bench.PROBLEMS:  # ids parse back to themselves: history keys are stable
        assert Problem.from_id(pid).id == pid
    assert PRESETS["seed"].id in bench.PROBLEMS and PRESETS["train"].id in bench.PROBLEMS


def test_selection_accepts_preset_names_and_ids(monkeypatch):
    monkeypatch.setenv("ATTNPERF_ASV_KERNELS", "tiled")
    monkeypatch.setenv("ATTNPERF_ASV_PROBLEMS", "cpu_seed,b1_h8_sq512_d64_fp32_causal")
    assert suite.selection() == (["tiled"], ["b8_h4_sq64_d64_fp32", "b1_h8_sq512_d64_fp32_causal"])


def test_cpu_runs_only_small_float32_problems():
    assert suite.fits_device(PRESETS["cpu_seed"], "cpu")[0]
    ok, why = suite.fits_device(PRESETS["seed"], "cpu")
    assert not ok and "float32" in why
    big = Problem(batch=4, heads=16, seq_q=2048, head_dim=128, dtype="float32")
    ok, why = suite.fits_device(big, "cpu")
    assert not ok and "too large" in why
    assert suite.fits_device(PRESETS["train"], "cuda")[0]


def test_measure_grid_and_setup_time_checks(monkeypatch, temp_kernel, wrong_kernel):
    pid = PRESETS["cpu_seed"].id
    cache = suite.measure_grid(kernels=["tiled", wrong_kernel, "sdpa_cudnn"], problems=[pid],
                               device_name="cpu", budget=suite.Budget(min_samples=7, budget_s=0.05))
    ok = suite.entry_for(cache, "tiled", pid)
    assert len(ok["device_time_s"]) >= 7 and ok["floor_s"] > 0 and ok["regime"]
    assert suite.samples(ok["device_time_s"]) == {"samples": ok["device_time_s"], "number": 1}
    with pytest.raises(AssertionError, match=f"{wrong_kernel}/{pid} is WRONG: rel_error="):
        suite.entry_for(cache, wrong_kernel, pid)
    with pytest.raises(NotImplementedError, match="CUDA"):
        suite.entry_for(cache, "sdpa_cudnn", pid)
    with pytest.raises(NotImplementedError, match="not selected"):
        suite.entry_for(cache, "naive", pid)


@pytest.mark.parametrize("var,value,needles", [
    ("ATTNPERF_ASV_KERNELS", "tiled,tiledd", ["unknown kernel(s) 'tiledd'", "allowed: sdpa, ", "tiled"]),
    ("ATTNPERF_ASV_PROBLEMS", "cpu_sed", ["'cpu_sed' is not a problem of the asv grid",
                                          "allowed: seed, ", "cpu_seed"]),
    # a valid problem id outside the grid could never show in asv's table
    ("ATTNPERF_ASV_PROBLEMS", "b1_h1_sq8_d8_fp32", ["'b1_h1_sq8_d8_fp32' is not a problem"]),
])
def test_selection_typos_are_named_with_the_allowed_values(monkeypatch, var, value, needles):
    # Before: a typo in ATTNPERF_ASV_KERNELS measured nothing for it (n/a everywhere) or
    # surfaced only as "setup_cache failed".
    monkeypatch.setenv(var, value)
    with pytest.raises(suite.SelectionError) as info:
        suite.selection()
    for needle in needles:
        assert needle in str(info.value)


def test_a_selection_with_nothing_for_this_device_fails(monkeypatch):
    # ATTNPERF_ASV_PROBLEMS=seed (fp16) on a CPU: every benchmark n/a, asv exit 0, no message.
    monkeypatch.setenv("ATTNPERF_ASV_PROBLEMS", "seed,train")
    with pytest.raises(suite.SelectionError, match="no selected problem runs on cpu: .*float32.*"
                                                   "CPU problems: cpu_seed, cpu_decode"):
        suite.measure_grid(device_name="cpu")
