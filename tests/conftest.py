"""Shared fixtures for the attnperf test suite.

* Every test gets its own ``XDG_CACHE_HOME`` holding a canned CPU ceilings file,
  so no test measures ceilings (seconds of matmul) or touches the real cache.
* ``@pytest.mark.gpu`` tests are skipped, with a reason, when CUDA is absent.
* The slow tier's real asv runs share one asv environment per session (per pytest-xdist
  worker), locked for it (``asv_env_lock``), and the CPU pull-request job's runs (``cpu_pr``).

Helpers that test files share live in tests/support/, never here: a test file does not
import conftest.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from attnperf.kernels import registry
from attnperf.kernels.registry import REGISTRY
from attnperf.kernels.spec import KernelSpec
from attnperf.measure.device import fingerprint, machine_key
from attnperf.model.problem import Problem
from support import TEST_THREADS, realasv, write_canned_ceilings

HAS_CUDA = torch.cuda.is_available()


def pytest_configure(config):
    torch.set_num_threads(TEST_THREADS)


def pytest_collection_modifyitems(config, items):
    # The files that hold slow tests first (a stable sort: files and tests keep their order
    # otherwise): pytest-xdist hands files out in this order, so the minutes-long ones start
    # at once and the fast files fill the workers around them, instead of one slow file
    # starting last and running alone at the end of `make test-all`.
    slow_files = {item.path for item in items if "slow" in item.keywords}
    items.sort(key=lambda item: item.path not in slow_files)
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# ------------------------------------------------------------ ceilings ------
@pytest.fixture(scope="session")
def cpu_machine_key() -> str:
    return machine_key(fingerprint("cpu"))


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch, cpu_machine_key) -> Path:
    """A private cache dir with canned CPU ceilings (also seen by subprocesses,
    whose fingerprint, hence machine key, matches ours through OMP_NUM_THREADS)."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("OMP_NUM_THREADS", str(TEST_THREADS))
    write_canned_ceilings(cache, cpu_machine_key)
    return cache


# ------------------------------------------------------------------ CLI -----
@dataclasses.dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@pytest.fixture
def cli(capsys) -> Callable[..., CliResult]:
    """Run ``attnperf.cli.main(argv)`` in-process; return exit code, stdout, stderr."""
    from attnperf.cli import main

    def run(*argv: str) -> CliResult:
        capsys.readouterr()  # drop anything printed before
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


# A problem small enough that a full `attnperf run` of every kernel takes ~1 s.
TINY_PROBLEM_ARGS = ["--batch", "1", "--heads", "2", "--seq", "16", "--dim", "8",
                     "--dtype", "fp32", "--device", "cpu", "--budget-ms", "20"]


@pytest.fixture
def tiny_run_args() -> list[str]:
    return list(TINY_PROBLEM_ARGS)


@pytest.fixture
def tiny_problem() -> Problem:
    """The problem ``tiny_run_args`` describes."""
    return Problem(batch=1, heads=2, seq_q=16, head_dim=8, dtype="float32")


# -------------------------------------------------------------- kernels -----
@pytest.fixture
def temp_kernel():
    """Register a kernel in the global registry for one test, then remove it.

    Runs isolated (the default of ``attnperf run``) need a picklable spec:
    module-level functions, not closures or lambdas."""
    registry.names()  # load the built-in kernels first (their names must not clash)
    added: list[str] = []

    def register(name: str, fn, check=None, workspace_bytes=None) -> KernelSpec:
        """``fn(q, k, v, problem)`` and ``check(problem, device) -> (ok, why)``, adapted
        to the public kernel API (``fn(q, k, v, *, causal, scale)``, ``supports``)."""
        spec = KernelSpec(
            name=name, fn=_WithProblem(fn), family="test", description=f"test kernel {name}",
            supports=_SupportsFromCheck(check) if check else None, workspace_bytes=workspace_bytes)
        REGISTRY.register(spec)
        added.append(name)
        return spec

    yield register
    for name in added:
        REGISTRY._kernels.pop(name, None)


class _WithProblem:
    """A test kernel written as ``fn(q, k, v, problem)``, called the public way
    (a class, not a closure: an isolated worker process receives it pickled)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, q, k, v, *, causal, scale):
        return self.fn(q, k, v, Problem(batch=q.shape[0], heads=q.shape[1], kv_heads=k.shape[1],
                                        seq_q=q.shape[2], seq_kv=k.shape[2], head_dim=q.shape[3],
                                        causal=causal, dtype=str(q.dtype).replace("torch.", "")))


class _SupportsFromCheck:
    """``check(problem, device) -> (ok, why)`` as the API's ``supports(problem, device)``."""

    def __init__(self, check):
        self.check = check

    def __call__(self, problem, device):
        ok, why = self.check(problem, device)
        return None if ok else why


def softmax_wrong_axis(q, k, v, problem: Problem):
    """Deliberately wrong: normalises over the queries (dim -2), not the keys."""
    g = problem.gqa_group
    k = k.repeat_interleave(g, dim=1)
    v = v.repeat_interleave(g, dim=1)
    s = torch.matmul(q.float(), k.float().transpose(-2, -1)) / math.sqrt(problem.head_dim)
    return torch.matmul(torch.softmax(s, dim=-2), v.float()).to(q.dtype)


@pytest.fixture
def wrong_kernel(temp_kernel) -> str:
    """The name of a registered, deliberately wrong kernel (the negative fixture)."""
    temp_kernel("test_wrong_softmax_axis", softmax_wrong_axis)
    return "test_wrong_softmax_axis"


# -------------------------------------------------------------- reports -----
def seed_report_dict(mean_time_ms: float = 0.0524, key: str = "performance",
                     passed: bool = True) -> dict:
    """A legacy single-config report (integrated_test.py's output), the numbers of a
    recorded GPU run."""
    return {
        "correctness": {"passed": passed, "max_abs_error": 0.000444, "mean_abs_error": 3.9e-05,
                        "correlation": 0.999999965},
        key: {"mean_time_ms": mean_time_ms, "std_dev_ms": 0.0084, "throughput_gflops": 639.94,
              "bandwidth_gb_s": 20.0},
        "roofline": {"arithmetic_intensity": 32.0, "bottleneck": "Memory Bandwidth",
                     "efficiency_pct": 6.67, "recommendations": []},
        "config": {"batch_size": 8, "num_heads": 4, "seq_len": 64, "head_dim": 64,
                   "dtype": "float16"},
        "kernel_name": "pytorch_sdpa",
        "timestamp": "2025-10-13 05:37:26",
    }


def result_dict(kernel: str, config_id: str, mean_ms: float | None = None,
                median_ms: float | None = None, status: str = "ok") -> dict:
    """One schema-v1 ``results`` entry with just the fields compare reads."""
    perf = None
    if mean_ms is not None or median_ms is not None:
        perf = {"mean_time_ms": mean_ms, "median_time_ms": median_ms}
    return {"id": f"{kernel}/{config_id}", "kernel_name": kernel, "config_id": config_id,
            "status": status, "correctness": None, "performance": perf}


_TINY_CONFIG = {"batch_size": 1, "num_heads": 2, "num_kv_heads": 2, "seq_len": 16, "seq_len_kv": 16,
                "head_dim": 8, "causal": False, "dtype": "float32", "mode": "fwd"}


def _schema_valid_entry(entry: dict) -> dict:
    """``entry`` completed with what report-v1.schema.json requires (values it has are kept)."""
    e = {"config": dict(_TINY_CONFIG, id=entry.get("config_id")), "device": "cpu", "reason": "",
         "roofline": None, **entry}
    perf = e.get("performance")
    if isinstance(perf, dict):
        mean = perf.get("mean_time_ms")
        e["performance"] = {"std_dev_ms": 0.0, "throughput_gflops": None, "bandwidth_gb_s": None,
                            "time_basis": "cpu_wall_time", "device_time": None, **perf,
                            "median_time_ms": perf.get("median_time_ms") or mean}
    return e


def v1_report_dict(results: list[dict], schema_version=1) -> dict:
    """A schema-v1 report (valid against report-v1.schema.json) around ``results``."""
    return {
        "schema_version": schema_version,
        "tool": "attnperf",
        "timestamp": "2026-01-01 00:00:00",
        "environment": {
            "attnperf_version": "0",
            "python": "3",
            "torch": "2",
            "device": "cpu",
            "cpu_model": "test",
        },
        "settings": {},
        "summary": {
            "ok": 0,
            "failed": 0,
            "error": 0,
            "skipped": 0,
            "unavailable": 0,
            "total": len(results),
        },
        "results": [_schema_valid_entry(r) for r in results],
    }


@pytest.fixture
def seed_report():
    """Factory of seed-format report dicts (see :func:`seed_report_dict`)."""
    return seed_report_dict


@pytest.fixture
def result_entry():
    """Factory of schema-v1 result entries (see :func:`result_dict`)."""
    return result_dict


@pytest.fixture
def v1_report():
    """Factory of schema-v1 reports around a list of result entries."""
    return v1_report_dict


@pytest.fixture
def json_file(tmp_path) -> Callable[[str, object], Path]:
    """Write ``obj`` as JSON to ``tmp_path / name`` and return the path."""
    def write(name: str, obj) -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(obj))
        return path
    return write


# ---------------------------------------------------- real asv (slow tier) -----
@pytest.fixture(scope="session")
def asv_env_lock() -> Iterator[Path]:
    """This session's asv environment (support.realasv.ENV_DIR), locked from the first test that
    needs it to the end of the session; skips when asv is not installed."""
    with realasv.env_lock() as env_dir:
        yield env_dir


@pytest.fixture(scope="session")
def cpu_pr(asv_env_lock, cpu_machine_key) -> Iterator[realasv.CpuPrJob]:
    """The CPU pull-request job on a clone (support.realasv.CpuPrJob): its A/A run is judged by
    test_cpu_load (the job's outputs, and the verdict under load), measured once."""
    with realasv.workdir("attnperf-cpu-pr-") as root:
        yield realasv.CpuPrJob(root, cpu_machine_key)
