"""tools/gpu/acceptance.py, run on a CPU as a developer runs it on a GPU host.

Fast: the report's structure with the checks that take seconds (isolation, passes, accmem; the
CUDA-only ones skipped), a check that does not fit the budget, usage errors, and the synthetic
commits' patches themselves (the AB commit's added work, the TRI commit's de-tuned Triton
configurations).  Slow: the ``attnperf ci bench`` pairs through real asv -- the injected slowdown
flagged, identical code not -- and calibrate, history and site on top of them.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "gpu" / "acceptance.py"
_spec = importlib.util.spec_from_file_location("acceptance", SCRIPT)
acceptance = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(acceptance)


def _acceptance(tmp_path: Path, *args: str, timeout: float = 300):
    out = tmp_path / "out"
    proc = subprocess.run(
        # --wheels: an empty folder (what this Python has is all a CPU run needs; a checkout
        # may hold wheels carried for a GPU host in .whl, the default)
        [sys.executable, str(SCRIPT), "--device", "cpu", "--out", str(out),
         "--wheels", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    path = out / "acceptance.json"
    return proc, (json.loads(path.read_text()) if path.exists() else None), out


def _checks(report: dict) -> dict:
    return {c["check"]: c for c in report["checks"]}


def test_fast_checks_write_one_report(tmp_path):
    proc, report, out = _acceptance(tmp_path, "--checks", "triton,passes,isolation,accmem,profiler",
                                    "--budget-s", "200")
    assert proc.returncode == 0, proc.stderr + json.dumps(report, indent=1)
    assert sorted(p.name for p in out.iterdir()) == ["acceptance.json", "acceptance.md", "logs.tgz"]
    assert report["schema_version"] == 1 and report["device"] == "cpu" and report["budget_s"] == 200
    assert report["environment"]["torch"] == torch.__version__ and "triton" in report["environment"]
    assert 0 < report["wall_s"] < 200
    checks = _checks(report)
    assert list(checks) == [
        "isolation",
        "passes",
        "accmem",
        "profiler",
        "triton",
    ]  # the script's order
    for c in checks.values():
        assert set(c) >= {
            "status",
            "reason",
            "numbers",
            "wall_s",
            "estimate_s",
            "clocks_before",
            "clocks_after",
        }
        assert c["clocks_before"] is None and c["wall_s"] >= 0  # no GPU: no NVML clocks
    assert checks["isolation"]["status"] == "pass", checks["isolation"]
    assert checks["isolation"]["numbers"]["statuses"] == {
        "sdpa": "ok",
        "fault_bad_index": "error",
        "naive": "ok",
        "fault_hang": "timed_out",
        "tiled": "ok",
        "fault_segfault": "crashed",
        "sdpa_math": "ok",
    }
    passes = checks["passes"]
    assert passes["status"] == "pass", passes
    bad = {
        i: s for i, s in passes["numbers"]["statuses"].items() if i.startswith("fault_grad_off/")
    }
    assert sorted(bad.values()) == ["failed", "failed", "ok"] and all(
        s == "ok" for i, s in passes["numbers"]["statuses"].items() if i not in bad)
    assert (
        0.09
        < passes["numbers"]["max_grad_rel_error"][min(i for i in bad if i.endswith("_bwd"))]
        < 0.11
    )
    assert checks["accmem"]["status"] == "pass" and checks["accmem"]["numbers"]["configs"] == 3
    assert (
        checks["accmem"]["numbers"]["worst_ratio"]["max_abs_error"] == 1.0
    )  # seeded inputs on a CPU
    for name in ("profiler", "triton"):
        assert checks[name]["status"] == "skipped" and checks[name]["reason"] == "needs CUDA"
    md = (out / "acceptance.md").read_text()
    assert md.startswith("# attnperf acceptance: ") and "| isolation | pass |" in md
    assert "| profiler | skipped | 0 | needs CUDA |" in md
    with tarfile.open(out / "logs.tgz") as tar:
        assert {"logs/env.log", "logs/isolation.log", "logs/passes.log", "logs/accmem1.log"} <= set(
            tar.getnames()
        )


def test_a_check_that_does_not_fit_the_budget_is_skipped_and_said(tmp_path):
    proc, report, _ = _acceptance(tmp_path, "--checks", "ab,isolation", "--budget-s", "25")
    assert proc.returncode == 0, proc.stderr
    checks = _checks(report)
    assert [c["status"] for c in checks.values()] == ["skipped", "skipped"]
    assert checks["ab"]["reason"].startswith("would not fit: ~120 s estimated, ")
    assert checks["isolation"]["reason"].startswith("would not fit: ~20 s estimated, ")
    assert report["commits"] == {}  # nothing ran: no scratch repository either


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--checks", "ab,nope"],
            "error: unknown check 'nope' (known: ab, aa, isolation, passes, accmem, profiler, "
            "triton, calibrate, history, site)",
        ),
        (["--device", "gpu"], "error: --device 'gpu' (allowed: cuda, cpu)"),
        (["--budget-s", "0"], "error: --budget-s 0 (must be > 0)"),
        (["--history", "0"], "error: --history 0 (must be >= 1)"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, args, message):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), *args], capture_output=True, text=True
    )
    assert (proc.returncode, proc.stderr) == (2, message + "\n") and not out.exists()


def _thread_time(fn, calls=30) -> float:
    t = time.thread_time()
    for _ in range(calls):
        fn()
    return time.thread_time() - t


def test_the_ab_commit_adds_work_sized_to_each_call():
    namespace = {"F": F, "torch": torch}
    exec(
        acceptance.INJECT.format(pct=100), namespace
    )  # what the AB commit appends to kernels/sdpa.py
    slowed = namespace["F"]
    assert slowed.softmax is F.softmax  # everything else of torch.nn.functional is untouched
    q, k, v = (torch.randn(1, 4, 256, 64) for _ in range(3))
    assert torch.equal(
        slowed.scaled_dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v)
    )
    plain = min(_thread_time(lambda: F.scaled_dot_product_attention(q, k, v)) for _ in range(3))
    added = min(
        _thread_time(lambda: slowed.scaled_dot_product_attention(q, k, v)) for _ in range(3)
    )
    assert 1.5 < added / plain < 3.0, (plain, added)  # +100 %, measured in the thread's CPU time


def test_the_tri_commit_forces_small_tiles():
    config = pytest.importorskip("attnperf.kernels.triton_flash.config")
    if config.triton is None:
        pytest.skip(f"Triton unavailable: {config.TRITON_IMPORT_ERROR}")
    namespace = dict(vars(config), _INTERPRETED=False)
    lists = {
        n: list(getattr(config, n)) * 2 for n in ("_FWD_CONFIGS", "_DKDV_CONFIGS", "_DQ_CONFIGS")
    }
    namespace.update(lists)
    exec(acceptance.DETUNE, namespace)  # what the TRI commit appends to triton_flash/config.py
    for name, configs in lists.items():
        assert (
            configs is namespace[name] and len(configs) == 1
        )  # changed in place: the autotuners hold it
        assert (configs[0].kwargs, configs[0].num_warps, configs[0].num_stages) == (
            {"BLOCK_M": 64, "BLOCK_N": 16}, 4, 2)
    assert lists["_FWD_CONFIGS"][0].pre_hook is config._FWD_CONFIGS[0].pre_hook


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the acceptance run's own budget is 1500 s (its process's limit 1600 s)
def test_ci_bench_pairs_calibrate_history_and_site(tmp_path):
    """+100 % work in every SDPA call is flagged (only SDPA's rows: tiled's, untouched, is the
    A/A side; a whole A/A pair through ci bench is test_cpu_load's end-to-end run); calibrate,
    the history of main's last commit and the site run on the same scratch repository."""
    proc, report, out = _acceptance(
        tmp_path,
        "--checks",
        "ab,calibrate,history,site",
        "--history",
        "1",
        "--budget-s",
        "1500",
        timeout=1600,
    )
    checks = _checks(report)
    assert proc.returncode == 0, json.dumps(report, indent=1)
    ab = checks["ab"]["numbers"]
    assert (
        ab["exit"] == 1 and ab["flagged"] == 1 and ab["misjudged"] == [] and ab["inject_pct"] == 100
    )
    assert (
        ab["ratio_span"]["flag"][0] > 1.5
    )  # sdpa's rows; tiled's is judged "same" (misjudged is empty)
    assert checks["calibrate"]["numbers"]["benchmarks"] > 0
    assert (
        checks["history"]["numbers"]["commits"] == 1
        and len(checks["history"]["numbers"]["recorded"]) == 1
    )
    assert checks["site"]["numbers"]["pages"] > 2
    assert set(report["commits"]) == {"main", "C0", "C1", "AB", "TRI"}
    # The history comes back to be committed: results/MACHINE/ with main's last commit.
    with tarfile.open(out / "results.tgz") as tar:
        names = tar.getnames()
    main = report["commits"]["main"][:8]
    assert any(n.startswith(f"acceptance/{main}-") for n in names), names


@pytest.mark.parametrize("suite", ["acceptance", "full"])
def test_the_suite_option_narrows_asvs_grid_or_not(tmp_path, monkeypatch, suite):
    """--suite acceptance narrows asv's grid to the checks' own; --suite full leaves the whole
    default suite (every kernel, problem and pass) as a user's CI runs it.  Either way every
    check and call on a machine shares one Triton cache."""
    for name in ("ATTNPERF_ASV_KERNELS", "ATTNPERF_ASV_PROBLEMS", "ATTNPERF_ASV_PASSES",
                 "TRITON_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    args = acceptance.argparse.Namespace(device="cpu", budget_s=10.0, wheels=None, suite=suite)
    runner = acceptance.Runner(args)
    try:
        narrowed = {k: runner.asv_env.get(k) for k in
                    ("ATTNPERF_ASV_KERNELS", "ATTNPERF_ASV_PROBLEMS", "ATTNPERF_ASV_PASSES")}
        if suite == "full":
            assert narrowed == dict.fromkeys(narrowed)
        else:
            assert narrowed == {"ATTNPERF_ASV_KERNELS": acceptance.GRID["cpu"][0],
                                "ATTNPERF_ASV_PROBLEMS": acceptance.GRID["cpu"][1],
                                "ATTNPERF_ASV_PASSES": "fwd"}
        assert runner.asv_env["TRITON_CACHE_DIR"] == str(REPO / ".cache" / "triton")
    finally:
        acceptance.shutil.rmtree(runner.work, ignore_errors=True)
