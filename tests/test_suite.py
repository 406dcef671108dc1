"""The asv suite's grid and its setup-time checks (attnperf.suite)."""

import importlib.util
from pathlib import Path

import pytest

from attnperf.asv import suite
from attnperf.model.catalog import PRESETS
from attnperf.model.problem import Problem
from support.fakesession import fake_session

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_attention.py"


def _bench_module():
    # Named as its path (benchmarks/bench_attention.py) so mutation testing maps it.
    spec = importlib.util.spec_from_file_location("benchmarks.bench_attention", BENCH)
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


def test_triton_flash_is_in_the_default_selection(monkeypatch):
    """The in-repo Triton kernel is measured by default (its compiled kernels and autotuning
    results are cached on disk, so only a cold cache pays for them); a selection narrows it."""
    monkeypatch.delenv("ATTNPERF_ASV_KERNELS", raising=False)
    kernels, _ = suite.selection()
    assert "triton_flash" in suite.GRID_KERNELS and kernels == suite.GRID_KERNELS
    monkeypatch.setenv("ATTNPERF_ASV_KERNELS", "sdpa")
    assert suite.selection()[0] == ["sdpa"]
    with pytest.raises(suite.Skip, match="not selected"):
        suite.entry_for({}, "triton_flash", suite.GRID_PROBLEMS[0])


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


@pytest.mark.parametrize(
    "var,value,needles",
    [
        (
            "ATTNPERF_ASV_KERNELS",
            "tiled,tiledd",
            ["unknown kernel(s) 'tiledd'", "allowed: sdpa, ", "tiled"],
        ),
        (
            "ATTNPERF_ASV_PROBLEMS",
            "cpu_sed",
            ["'cpu_sed' is not a problem of the asv grid", "allowed: seed, ", "cpu_seed"],
        ),
        # a valid problem id outside the grid could never show in asv's table
        ("ATTNPERF_ASV_PROBLEMS", "b1_h1_sq8_d8_fp32", ["'b1_h1_sq8_d8_fp32' is not a problem"]),
    ],
)
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


# ------------------------------------------ the cache entry: a cross-commit contract ---
def _measured(**kw):
    from attnperf.model import roofline
    from attnperf.model.records import Correctness, Measurement, Samples

    p = Problem(batch=1, heads=1, seq_q=8, head_dim=8, dtype="fp32")
    corr = Correctness(passed=True, max_abs_error=1e-6, mean_abs_error=1e-7, rel_error=2e-7,
                       correlation=1.0, nonfinite=0, tolerance=1e-4, tolerance_key="float32")
    m = Measurement("tiled", p, "cuda", correctness=corr, dispatch="flash",
                    device_time=Samples([2e-6, 4e-6], "cuda-graph", 9, 3),
                    latency=Samples([8e-6], "cuda-events-per-call", 1, 3), **kw)
    # 2048 FLOP and 1024 B (fp32) at 3 us on 1 TF/s, 0.1 GB/s: memory floor 10.24 us
    m.roofline = roofline.analyze(p, 3e-6, roofline.Ceiling(1.0, 0.1, "measured"), "cuda")
    return m


def test_entry_keys_and_values():
    e = suite.entry(_measured())
    expected = {
        "status": "ok", "reason": "", "device": "cuda", "dispatch": "flash",
        "correctness": {"passed": True, "max_abs_error": 1e-6, "mean_abs_error": 1e-7,
                        "rel_error": 2e-7, "correlation": 1.0, "nonfinite": 0,
                        "tolerance": 1e-4, "tolerance_key": "float32", "modified_inputs": []},
        "device_time_s": [2e-6, 4e-6], "device_time_method": "cuda-graph", "latency_s": [8e-6],
        "floor_s": pytest.approx(10.24e-6, rel=1e-12),
        "tflops": pytest.approx(2048 / 3e-6 / 1e12, rel=1e-12),
        "gb_s": pytest.approx(1024 / 3e-6 / 1e9, rel=1e-12),
        "efficiency_pct": pytest.approx(100 * 10.24 / 3, rel=1e-12),
        "x_over_floor": pytest.approx(3 / 10.24, rel=1e-12), "regime": "memory-bound",
        "arithmetic_intensity": 2.0, "ceiling_source": "measured"}
    # Keys are a contract between commits: added, never renamed or dropped.
    assert {k: e.get(k, "<missing>") for k in expected} == expected


def test_cpu_entry_says_its_clock_and_keeps_the_ungated_figures():
    from attnperf.model.records import Measurement, Samples

    dt = Samples([1e-3, 2e-3], "cpu-thread_time", 4, 2, cpu_clock="thread",
                 wall_s=[1.5e-3, 2e-3], reference_s=[8e-4, 8e-4, 1.6e-3],
                 normalised_s=[1e-3, 4 / 3 * 1e-3])
    e = suite.entry(Measurement("tiled", PRESETS["cpu_seed"], "cpu", device_time=dt))
    # The gated samples (device_time_s, a history key) are the thread's CPU time.
    assert e["device_time_s"] == [1e-3, 2e-3] and e["device_time_method"] == "cpu-thread_time"
    assert (e["cpu_clock"], e["wall_time_s"], e["cpu_reference_s"], e["calls_per_sample"]) == (
        "thread", [1.5e-3, 2e-3], [8e-4, 8e-4, 1.6e-3], 4)
    assert e["normalised_time_s"] == [1e-3, 4 / 3 * 1e-3]
    # A wall-time CPU entry (several threads, older commits) has no cpu_clock.
    wall = Samples([1e-3], "cpu-perf_counter", 1, 2)
    assert "cpu_clock" not in suite.entry(Measurement("tiled", PRESETS["cpu_seed"], "cpu",
                                                      device_time=wall))


def test_entry_of_what_was_not_measured():
    from attnperf.model.records import Measurement

    m = Measurement("sdpa_cudnn", PRESETS["cpu_seed"], "cpu", status="unavailable", reason="no")
    e = suite.entry(m)
    assert "floor_s" not in e and "x_over_floor" not in e
    expected = {"status": "unavailable", "reason": "no", "device": "cpu",
                              "dispatch": None, "correctness": None, "device_time_s": None,
                              "device_time_method": None, "latency_s": None}
    assert {k: e.get(k, "<missing>") for k in expected} == expected


def test_entry_for_statuses():
    ok = suite.entry(_measured())
    failed = dict(ok, status="failed", correctness=dict(ok["correctness"], passed=False,
                                                        rel_error=0.5, nonfinite=3))
    cache = {"tiled|p": ok, "a|p": dict(ok, status="unavailable", reason="needs CUDA"),
             "b|p": dict(ok, status="skipped", reason="too large"), "c|p": failed,
             "d|p": dict(ok, status="error", reason="IndexError: boom"),
             "e|p": dict(failed, correctness=None)}
    assert suite.entry_for(cache, "tiled", "p") is ok
    with pytest.raises(suite.Skip, match="^a/p: needs CUDA$"):
        suite.entry_for(cache, "a", "p")
    with pytest.raises(suite.Skip, match="^b/p: too large$"):
        suite.entry_for(cache, "b", "p")
    with pytest.raises(AssertionError) as info:
        suite.entry_for(cache, "c", "p")
    assert str(info.value) == ("c/p is WRONG: rel_error=0.5 (tolerance 0.0001), "
                               "max_abs_error=1e-06, nonfinite=3")
    with pytest.raises(AssertionError, match="rel_error=None .*nonfinite=None"):
        suite.entry_for(cache, "e", "p")
    with pytest.raises(RuntimeError, match="^d/p raised: IndexError: boom$"):
        suite.entry_for(cache, "d", "p")


def test_training_pass_params_are_the_suite_grid_and_the_forward_params_unchanged():
    bench = _bench_module()
    assert bench.PASS_PROBLEMS == suite.GRID_PASS_PROBLEMS and bench.PASSES == suite.GRID_PASSES
    assert set(bench.PASS_PROBLEMS) <= set(bench.PROBLEMS)
    assert bench.TimeAttention.params == (bench.KERNELS, bench.PROBLEMS)  # history keys
    assert bench.TrainingPass.params == (bench.KERNELS, bench.PASS_PROBLEMS, bench.PASSES)
    assert suite.pass_key("cpu_gqa", "fwd+bwd") == "b1_h8_kv2_sq256_d64_fp32_fwdbwd"


def test_measure_grid_measures_training_passes_and_gates_gradients(monkeypatch):
    from attnperf.kernels.registry import REGISTRY
    from attnperf.kernels.spec import KernelSpec
    from support.kernels import wrong_dk_only
    REGISTRY.names()  # the built-ins first; the copy below is restored after the test
    monkeypatch.setattr(REGISTRY, "_kernels", dict(REGISTRY._kernels))
    REGISTRY.register(KernelSpec(name="test_wrong_dk", fn=wrong_dk_only, family="test"))
    pid = PRESETS["cpu_gqa"].id
    monkeypatch.setenv("ATTNPERF_ASV_PASSES", "bwd")
    cache = suite.measure_grid(
        kernels=["tiled", "test_wrong_dk"],
        problems=[pid],
        device_name="cpu",
        budget=suite.Budget(min_samples=7, budget_s=0.05),
    )
    bench = _bench_module()
    t = bench.TrainingPass()
    t.setup(cache, "tiled", pid, "bwd")
    assert len(t.track_device_time(cache, "tiled", pid, "bwd")["samples"]) >= 7
    assert cache[suite.key("tiled", pid + "_bwd")]["gradients"]["dk"]["passed"] is True
    suite.entry_for(cache, "test_wrong_dk", pid)  # its forward is right
    t.setup(cache, "test_wrong_dk", pid, "bwd")  # reported by track_device_time, once
    with pytest.raises(AssertionError, match="is WRONG: wrong gradient dk"):
        t.track_device_time(cache, "test_wrong_dk", pid, "bwd")
    with pytest.raises(NotImplementedError, match="not selected"):  # ATTNPERF_ASV_PASSES=bwd
        t.setup(cache, "tiled", pid, "fwd+bwd")
    monkeypatch.setenv("ATTNPERF_ASV_PASSES", "bwd,sideways")
    with pytest.raises(suite.SelectionError, match="'sideways'; allowed: fwd, bwd, fwd\\+bwd"):
        suite.measure_grid(kernels=["tiled"], problems=[pid], device_name="cpu")


def test_a_repository_opts_in_to_the_training_grid(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.attnperf]\nproblems = ["cpu_gqa"]\n')
    assert suite.pass_grid(tmp_path) == ([suite.NO_PASSES], [suite.NO_PASSES])
    (tmp_path / "pyproject.toml").write_text(
        '[tool.attnperf]\nproblems = ["cpu_gqa"]\npasses = ["fwd", "bwd"]\n')
    assert suite.pass_grid(tmp_path) == ([PRESETS["cpu_gqa"].id], ["bwd"])
    (tmp_path / "pyproject.toml").write_text('[tool.attnperf]\npasses = ["sideways"]\n')
    from attnperf.errors import ConfigError
    with pytest.raises(ConfigError, match="passes\\[0\\] = 'sideways' is not allowed"):
        suite.pass_grid(tmp_path)


def test_gpu_training_passes_skip_the_latency_view(monkeypatch):
    # LatencyViews covers forward problems only: timing latency for the 42 GPU
    # training-pass combinations cost the H100 A/A its 6-minute budget.
    asked = []
    _fake_gpu_session(monkeypatch, asked)
    out = suite.measure_grid(["sdpa"], device_name="cuda")
    fwd = {lat for *_, mode, _, lat in asked if mode == "fwd"}
    trained = {lat for *_, mode, _, lat in asked if mode != "fwd"}
    assert fwd == {True} and trained == {False}
    # on the GPU the passes run at causal, gqa and train, not at the CPU's two problems
    assert sum(mode != "fwd" for _, _, mode, _, _ in asked) == 2 * 3
    assert len(out) - 1 == len(asked)
    cpu_bwd = suite.pass_key("cpu_causal", "bwd")
    with pytest.raises(suite.Skip, match="the CPU's training problem"):
        suite.entry_for(out, "sdpa", cpu_bwd)
    with pytest.raises(suite.Skip, match="not selected"):  # on a CPU it would have been measured
        suite.entry_for({"__meta__": {"device": "cpu"}}, "sdpa", cpu_bwd)


def _fake_gpu_session(monkeypatch, asked):
    FakeSession = fake_session(
        "cuda", lambda k, p, budget, latency: asked.append((k, p.id, p.mode, budget, latency)))
    monkeypatch.setattr(suite, "Session", FakeSession)
    monkeypatch.setattr(
        suite, "resolve_device", lambda name: name if name in ("cpu", "cuda") else "cuda"
    )
    for name in ("ATTNPERF_ASV_KERNELS", "ATTNPERF_ASV_PROBLEMS", "ATTNPERF_ASV_PASSES"):
        monkeypatch.delenv(name, raising=False)


def test_a_gpu_leaves_the_cpu_presets_out_unless_asked(monkeypatch):
    # The whole-suite H100 `asv continuous` must fit 6 minutes: the cpu_* presets (the
    # 2-core CPU's float32 problems) run on a GPU only on request.
    asked = []
    _fake_gpu_session(monkeypatch, asked)
    out = suite.measure_grid(["sdpa"], device_name="cuda")
    fwd = [pid for _, pid, mode, *_ in asked if mode == "fwd"]
    gpu_ids = [pid for pid in suite.GRID_PROBLEMS if pid not in suite.CPU_PROBLEM_IDS]
    assert fwd == gpu_ids and len(gpu_ids) == 6
    assert {b for *_, b, _ in asked} == {suite.ASV_BUDGET_GPU}
    assert suite.ASV_BUDGET_GPU.max_samples < suite.ASV_BUDGET.max_samples
    cpu_causal = PRESETS["cpu_causal"].id
    with pytest.raises(suite.Skip, match="on request: ATTNPERF_ASV_PROBLEMS=cpu_causal"):
        suite.entry_for(out, "sdpa", cpu_causal)
    with pytest.raises(suite.Skip, match="not selected"):  # a GPU problem missing on a GPU
        suite.entry_for(out, "naive", PRESETS["decode"].id)
    with pytest.raises(suite.Skip, match="not selected"):  # a CPU's own problem missing on a CPU
        suite.entry_for({"__meta__": {"device": "cpu"}}, "sdpa", cpu_causal)

    asked.clear()  # asked for by name: measured
    monkeypatch.setenv("ATTNPERF_ASV_PROBLEMS", "cpu_causal,train")
    suite.measure_grid(["sdpa"], device_name="cuda")
    assert [pid for _, pid, mode, *_ in asked if mode == "fwd"] == [cpu_causal, PRESETS["train"].id]

    asked.clear()  # named by the caller: measured too
    monkeypatch.delenv("ATTNPERF_ASV_PROBLEMS")
    suite.measure_grid(["sdpa"], problems=["cpu_causal"], device_name="cuda")
    assert [pid for _, pid, mode, *_ in asked if mode == "fwd"] == [cpu_causal]
    # the suite's verdicts were verified without the settling cycles `attnperf run` spends
    assert suite.ASV_BUDGET.settle_s == 0 == suite.ASV_BUDGET_GPU.settle_s

    asked.clear()  # a CPU keeps its own problems and the CPU budget
    suite.measure_grid(["sdpa"], device_name="cpu")
    fwd = [pid for _, pid, mode, *_ in asked if mode == "fwd"]
    assert fwd == suite.GRID_PROBLEMS and {b for *_, b, _ in asked} == {suite.ASV_BUDGET}


def test_a_repository_grid_keeps_its_cpu_presets_on_a_gpu(monkeypatch, tmp_path):
    asked = []
    _fake_gpu_session(monkeypatch, asked)
    (tmp_path / "pyproject.toml").write_text('[tool.attnperf]\nproblems = ["cpu_gqa", "train"]\n')
    suite.measure_grid(["sdpa"], device_name="cuda", project_dir=tmp_path)
    assert [pid for _, pid, mode, *_ in asked if mode == "fwd"] == [
        PRESETS["cpu_gqa"].id,
        PRESETS["train"].id,
    ]


# --------------------------------------------- what asv shows on this device ---
def test_a_cpu_grid_shows_only_the_problems_a_cpu_runs(tmp_path, monkeypatch):
    # Before: the README's CPU flow printed a row of n/a in every table for each of the
    # starter config's four GPU presets.  The ids stay the grid's own (history keys).
    (tmp_path / "pyproject.toml").write_text(
        '[tool.attnperf]\nkernels = ["tiled"]\n'
        'problems = ["cpu_seed", "seed", "cpu_gqa", "train"]\n'
        'passes = ["bwd"]\n'
    )
    monkeypatch.delenv("ATTNPERF_ASV_PROBLEMS", raising=False)
    cpu_ids = [PRESETS["cpu_seed"].id, PRESETS["cpu_gqa"].id]
    monkeypatch.setenv("ATTNPERF_ASV_DEVICE", "cpu")
    assert suite.device_grid(tmp_path) == (["tiled"], cpu_ids)
    assert suite.device_pass_grid(tmp_path) == (cpu_ids, ["bwd"])
    monkeypatch.setenv("ATTNPERF_ASV_PROBLEMS", "train")  # asked for: shown (n/a, with its reason)
    assert suite.device_grid(tmp_path)[1] == [*cpu_ids, PRESETS["train"].id]
    monkeypatch.delenv("ATTNPERF_ASV_PROBLEMS")
    monkeypatch.setenv("ATTNPERF_ASV_DEVICE", "cuda")  # a GPU shows the whole grid
    assert suite.device_grid(tmp_path) == suite.grid(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.attnperf]\nproblems = ["seed"]\n')
    monkeypatch.setenv("ATTNPERF_ASV_DEVICE", "cpu")  # nothing for a CPU: the grid stays whole
    assert suite.device_grid(tmp_path)[1] == [PRESETS["seed"].id]


def test_device_problems_are_the_repositorys_that_the_device_runs():
    from attnperf.model.config import parse
    config = parse({"problems": ["seed", "cpu_gqa"]})
    assert suite.device_problems(config, "cpu") == [PRESETS["cpu_gqa"]]
    assert suite.device_problems(config, "cuda") == [PRESETS["seed"], PRESETS["cpu_gqa"]]
    assert [p.id for p in suite.device_problems(None, "cpu")] == [
        PRESETS[n].id for n in ("cpu_seed", "cpu_decode", "cpu_causal", "cpu_gqa")]
    assert suite.device_problems(parse({"problems": ["seed"]}), "cpu") == [PRESETS["seed"]]


def test_unitless_figures_reach_asv_rounded_and_timings_as_measured():
    # Before: asv printed x_over_floor as 5.223710399461449±0.94.
    bench = _bench_module()
    entry = {
        "status": "ok",
        "device_time_s": [1.2345678e-3, 1.3e-3, 1.25e-3],
        "floor_s": 2.3456789e-4,
        "correctness": {"max_abs_error": 6.724951880365815e-07, "mean_abs_error": 3.894e-08},
        "tflops": 0.12345678,
        "gb_s": 12.345678,
        "efficiency_pct": 19.123456,
        "regime": "memory-bound",
    }
    cache = {"k|p": entry, "__meta__": {"device": "cpu"}}
    t = bench.TimeAttention()
    t.setup(cache, "k", "p")
    assert t.track_device_time(cache, "k", "p")["samples"] == entry["device_time_s"]
    assert t.track_x_over_floor(cache, "k", "p")["samples"] == [5.263, 5.542, 5.329]
    a = bench.Accuracy()
    a.setup(cache, "k", "p")
    assert (a.track_max_abs_error(cache, "k", "p"), a.track_mean_abs_error(cache, "k", "p")) == (
        6.725e-07, 3.894e-08)
    assert suite.figure(5.223710399461449) == 5.224 and suite.figure(1980.25) == 1980.0


def test_asv_prints_x_over_floor_with_its_rounded_digits():
    """asv prints the median of the samples it pools over a commit's rounds: of an even
    count, the mean of two rounded values, 2.8055000000000003.  An odd count a round gives an
    odd pool over the README's three rounds, whose median is one of the rounded samples."""
    import random

    from asv.util import human_value
    from asv_runner.statistics import compute_stats
    rng = random.Random(1)
    floor = 3.3e-4
    printed = []
    for _ in range(50):
        rounds = [suite.over_floor_samples(
            {"device_time_s": [floor * rng.uniform(2.7, 2.9) for _ in range(rng.randint(15, 40))],
             "floor_s": floor})["samples"] for _ in range(3)]
        assert all(len(r) % 2 == 1 for r in rounds)
        median, stats = compute_stats([x for r in rounds for x in r], 1)
        printed.append(human_value(median, "x floor").split("±")[0])
    assert max(len(text) for text in printed) <= 5, printed  # e.g. 2.805


def _failing_cache():
    ok = {"status": "ok", "device_time_s": [1e-3], "floor_s": 5e-4,
          "correctness": {"passed": True, "max_abs_error": 1e-7, "mean_abs_error": 1e-8}}
    wrong = {"status": "failed", "reason": "wrong", "correctness": {
        "passed": False, "rel_error": 0.009999988133245909, "tolerance": 1e-4,
        "max_abs_error": 0.014953824278275407, "mean_abs_error": 1e-3, "nonfinite": 0}}
    return {"__meta__": {"device": "cpu"}, "sdpa|p1": ok, "sdpa|p2": ok,
            "mine|p1": wrong, "mine|p2": dict(wrong), "other|p1": ok,
            "other|p2": {"status": "error", "reason": "IndexError: boom"}}


def test_a_failing_config_is_one_line_in_one_benchmark_and_a_summary_closes_the_grid(monkeypatch):
    # Before: each wrong config failed all five gated benchmarks with a traceback each.
    bench = _bench_module()
    monkeypatch.setattr(bench, "KERNELS", ["sdpa", "mine", "other"])
    monkeypatch.setattr(bench, "PROBLEMS", ["p1", "p2"])
    cache = _failing_cache()
    t = bench.TimeAttention()
    messages = {}
    for kernel in bench.KERNELS:
        for problem in bench.PROBLEMS:
            t.setup(cache, kernel, problem)  # never raises for a failed config
            if cache[f"{kernel}|{problem}"]["status"] == "ok":
                continue
            with pytest.raises((AssertionError, RuntimeError)) as info:
                t.track_device_time(cache, kernel, problem)
            messages[(kernel, problem)] = str(info.value)
            with pytest.raises(NotImplementedError):  # said once, by track_device_time
                t.track_x_over_floor(cache, kernel, problem)
            # Accuracy.track_max_abs_error, PeakMemory.track_peak_memory_bytes: n/a from setup
            for cls in (bench.Accuracy, bench.PeakMemory):
                with pytest.raises(NotImplementedError):
                    cls().setup(cache, kernel, problem)
    assert messages[("mine", "p1")] == ("mine/p1 is WRONG: rel_error=0.01 (tolerance 0.0001), "
                                        "max_abs_error=0.01495, nonfinite=0")
    assert messages[("mine", "p2")] == messages[("mine", "p1")].replace("p1", "p2")
    assert messages[("other", "p2")] == (
        "other/p2 raised: IndexError: boom\n"
        "attnperf: 3 of 6 kernel x problem configs failed at this commit (2 wrong results, "
        "1 error), one line each above; every other config was measured")


def test_asvs_benchmark_process_prints_a_failure_as_its_lines(tmp_path):
    """In asv's benchmark process the failure prints without a traceback."""
    script = tmp_path / "benchmark.py"  # asv runs its benchmarks as asv/benchmark.py
    script.write_text(
        "import importlib.util, sys, traceback\n"
        f"spec = importlib.util.spec_from_file_location('bench_attention', {str(BENCH)!r})\n"
        "bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)\n"
        "bench.KERNELS, bench.PROBLEMS = ['sdpa', 'mine'], ['p1', 'p2']\n"
        f"cache = {_failing_cache()!r}\n"
        "del cache['other|p1'], cache['other|p2']\n"
        "t = bench.TimeAttention(); t.setup(cache, 'mine', 'p2')\n"
        "try:\n    t.track_device_time(cache, 'mine', 'p2')\n"
        "except BaseException:\n    traceback.print_exc()\n")
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert proc.stderr.splitlines() == [
        "AssertionError: mine/p2 is WRONG: rel_error=0.01 (tolerance 0.0001), "
        "max_abs_error=0.01495, nonfinite=0",
        "attnperf: 2 of 4 kernel x problem configs failed at this commit (2 wrong results), "
        "one line each above; every other config was measured"], proc.stderr
