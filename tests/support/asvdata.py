"""Hand-made asv result files (asv 0.6 format, results "version": 2) for tests.

Written the way asv writes them (asv/results.py ``Results.save``): one row per
benchmark in ``result_columns`` order, results in itertools.product order of
the parameters (values as their ``repr``), null = failed, NaN = skipped,
trailing null columns dropped.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import subprocess
from collections.abc import Sequence
from pathlib import Path

COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a",
           "stats_ci_99_b", "stats_q_25", "stats_q_75", "stats_number", "stats_repeat",
           "samples", "profile"]
VERSION = "attnperf-asv-1"
TIME = "bench_attention.TimeAttention.track_device_time"
LATENCY = "bench_attention.LatencyViews.track_latency"
XFLOOR = "bench_attention.TimeAttention.track_x_over_floor"
VIEWS = {"bench_attention.RooflineViews.track_tflops": "TFLOP/s",
         "bench_attention.RooflineViews.track_bandwidth_gb_s": "GB/s",
         "bench_attention.RooflineViews.track_efficiency_pct": "%",
         "bench_attention.RooflineViews.track_regime_code": "0=latency 1=memory 2=compute"}
MAX_ERR = "bench_attention.Accuracy.track_max_abs_error"
MEAN_ERR = "bench_attention.Accuracy.track_mean_abs_error"
PEAK = "bench_attention.PeakMemory.track_peak_memory_bytes"
UNITS = {TIME: "seconds", LATENCY: "seconds", XFLOOR: "x floor", **VIEWS,
         MAX_ERR: "abs error", MEAN_ERR: "abs error", PEAK: "bytes"}

CPU_INFO = {"machine": "cpu-ci", "arch": "x86_64", "cpu": "AMD EPYC", "num_cpu": "2",
            "os": "Linux 6.1", "ram": "25274793984", "gpu": "none", "gpu_count": "0",
            "driver": "none", "cuda": "none", "cudnn": "none", "torch": "2.13.0+cpu"}
H100_INFO = {"machine": "h100", "arch": "x86_64", "cpu": "Intel Xeon Platinum 8480+",
             "num_cpu": "16", "os": "Linux 5.15", "ram": "137438953472",
             "gpu": "NVIDIA H100 80GB HBM3", "gpu_count": "1", "driver": "580.95.05",
             "cuda": "13.0", "cudnn": "91900", "torch": "2.11.0+cu130"}
CPU_CEILINGS = {"schema_version": 1, "device": "cpu", "bandwidth_gb_s": 47.0, "copy_bytes": 1,
                "matmul_tflops": {"float16": 0.002, "bfloat16": 0.13, "float32": 0.236},
                "matmul_n": {"float32": 2048}, "measured_at": "2026-11-24T00:00:00Z"}
H100_CEILINGS = {"schema_version": 1, "device": "cuda", "bandwidth_gb_s": 3000.0, "copy_bytes": 1,
                 "matmul_tflops": {"float16": 770.0, "bfloat16": 770.0, "float32": 51.0},
                 "matmul_n": {"bfloat16": 8192}, "measured_at": "2026-11-24T00:00:00Z"}


def samples(median: float, n: int = 15, spread: float = 0.01, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [median * (1 + spread * (rng.random() - 0.5)) for _ in range(n)]


def _stats(xs: Sequence[float]) -> dict:
    s = sorted(xs)
    n = len(s)

    def q(p):
        k = (n - 1) * p
        f = math.floor(k)
        c = min(f + 1, n - 1)
        return s[f] + (s[c] - s[f]) * (k - f)

    return {"ci_99_a": q(0.01), "ci_99_b": q(0.99), "q_25": q(0.25), "q_75": q(0.75),
            "number": 1, "repeat": n}


def row(params: list[list[str]], values: Sequence, with_samples: bool = True,
        version: str = VERSION) -> list:
    """One asv row; each value is a float (ok), None (failed), NaN (skipped) or a list of
    samples."""
    result, samp, stats = [], [], []
    for v in values:
        if isinstance(v, list):
            xs = sorted(v)
            med = xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2
            result.append(med)
            samp.append(list(v) if with_samples else None)
            stats.append(_stats(v))
        else:
            result.append(v)
            samp.append(None)
            stats.append(None)
    r = [result, params, version, 1795502259351, 1.3]
    for key in ("ci_99_a", "ci_99_b", "q_25", "q_75", "number", "repeat"):
        col = [s[key] if s else None for s in stats]
        r.append(col if any(c is not None for c in col) else None)
    r.append(samp if any(s is not None for s in samp) else None)
    while r and r[-1] is None:
        r.pop()
    return r


def grid_params(kernels: Sequence[str], problems: Sequence[str]) -> list[list[str]]:
    return [[repr(k) for k in kernels], [repr(p) for p in problems]]


def grid_values(kernels, problems, fn) -> list:
    """fn(kernel, problem) -> value, in asv's product order."""
    return [fn(k, p) for k, p in itertools.product(kernels, problems)]


def result_doc(commit: str, info: dict, date_ms: int, rows: dict[str, list],
               env: str = "virtualenv-py3.11") -> dict:
    params = dict(info)
    params["python"] = "3.11"
    return {"commit_hash": commit, "env_name": env, "date": date_ms, "params": params,
            "python": "3.11", "requirements": {}, "env_vars": {}, "result_columns": COLUMNS,
            "results": rows, "durations": {}, "version": 2}


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # asv writes NaN as a bare NaN literal (Python's json default)
    path.write_text(json.dumps(data, indent=None))
    return path


def write_machine(results: Path, info: dict, ceilings: dict | None = None) -> Path:
    mdir = results / info["machine"]
    write_json(mdir / "machine.json", dict(info, version=1))
    if ceilings is not None:
        write_json(mdir / "attnperf-ceilings.json", ceilings)
    return mdir


def write_run(results: Path, info: dict, commit: str, date_ms: int, rows: dict[str, list],
              env: str = "virtualenv-py3.11") -> Path:
    return write_json(results / info["machine"] / f"{commit[:8]}-{env}.json",
                      result_doc(commit, info, date_ms, rows, env))


def write_benchmarks(results: Path, kernels: Sequence[str], problems: Sequence[str],
                     names: Sequence[str] = (TIME, LATENCY, XFLOOR, *VIEWS)) -> Path:
    data = {"version": 2}
    for name in names:
        data[name] = {"code": "def f(): pass", "name": name, "param_names": ["kernel", "problem"],
                      "params": grid_params(kernels, problems), "timeout": 1800,
                      "type": "track", "unit": UNITS[name], "version": VERSION}
    return write_json(results / "benchmarks.json", data)


def git_repo(path: Path, n_commits: int) -> list[str]:
    """A throwaway git repository on branch main with n empty commits (oldest first)."""
    path.mkdir(parents=True, exist_ok=True)

    def git(*args):
        return subprocess.run(["git", *args], cwd=path, check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q", "-b", "main")
    commits = []
    for i in range(n_commits):
        env_date = f"2026-11-{10 + i:02d}T12:00:00+00:00"
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-q",
                        "--allow-empty", "-m", f"commit {i}", "--date", env_date], cwd=path,
                       check=True, capture_output=True,
                       env={**os.environ, "GIT_COMMITTER_DATE": env_date})
        commits.append(git("rev-parse", "HEAD"))
    return commits


def asv_conf(path: Path) -> Path:
    conf = {"version": 1, "project": "attnperf", "project_url": "https://example.invalid/",
            "repo": ".", "branches": ["main"], "dvcs": "git", "environment_type": "virtualenv",
            "benchmark_dir": "benchmarks", "env_dir": ".asv/env", "results_dir": "results",
            "html_dir": "html"}
    (path / "asv.conf.json").write_text("// test config\n" + json.dumps(conf, indent=2))
    return path / "asv.conf.json"


def history(root: Path, n_commits: int = 4, machines=("cpu", "h100")) -> dict:
    """A repo + results with a history on a CPU and an H100-like machine, and views recorded."""
    commits = git_repo(root, n_commits)
    asv_conf(root)
    results = root / "results"
    kernels = ["sdpa", "sdpa_flash", "tiled"]
    problems = ["seed", "train", "cpu_seed", "cpu_causal"]
    write_benchmarks(results, kernels, problems)
    base_ms = 1795000000000
    for mi, mname in enumerate(machines):
        gpu = mname == "h100"
        info = H100_INFO if gpu else CPU_INFO
        write_machine(results, info, H100_CEILINGS if gpu else CPU_CEILINGS)
        for ci, commit in enumerate(commits):
            def time_of(k, p, ci=ci, gpu=gpu):
                on = (p in ("seed", "train")) == gpu
                if not on or (k == "sdpa_flash" and not gpu):
                    return math.nan
                t = {"seed": 6e-6, "train": 4e-4, "cpu_seed": 7e-4, "cpu_causal": 3e-3}[p]
                t *= {"sdpa": 1.0, "sdpa_flash": 1.4, "tiled": 3.0}[k] * (1 + 0.02 * ci)
                return samples(t, seed=ci * 31 + len(k) + len(p))

            def xfloor(k, p, time_of=time_of):
                v = time_of(k, p)
                return [x / (v[0] / 2.5) for x in v] if isinstance(v, list) else v

            rows = {
                TIME: row(grid_params(kernels, problems), grid_values(kernels, problems, time_of)),
                XFLOOR: row(grid_params(kernels, problems), grid_values(kernels, problems, xfloor)),
                LATENCY: row(
                    grid_params(kernels, problems),
                    grid_values(
                        kernels,
                        problems,
                        lambda k, p, time_of=time_of, gpu=gpu: (
                            [x * 3 for x in time_of(k, p)]
                            if gpu and isinstance(time_of(k, p), list)
                            else math.nan
                        ),
                    ),
                ),
            }
            write_run(results, info, commit, base_ms + 86400000 * ci + mi, rows)
    return {"root": root, "commits": commits, "results": results, "conf": root / "asv.conf.json",
            "kernels": kernels, "problems": problems}
