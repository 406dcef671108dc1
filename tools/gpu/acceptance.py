"""GPU acceptance: attnperf's end-to-end checks on one machine, within a time budget, in one report.

    python tools/gpu/acceptance.py --budget-s 540 --out DIR [--checks a,b,...]
                                   [--device cuda|cpu] [...]

The working tree becomes commit C0 of a scratch git repository (on main's history when --repo,
by default this checkout, is a repository or a git bundle); from C0: C1 (a comment), AB (+X %
work after every SDPA call: a sleep kernel sized to X % of the call's device time, on a CPU a
spin of X % of its thread time) and TRI (every Triton configuration forced to 64x16 tiles).  The
checks, in order; one whose estimate no longer fits the budget is skipped, and the report says so:
  ab, aa     attnperf ci bench C0 -> AB: exit 1, every SDPA time row flagged, no other;
             C0 -> C1: exit 0
  isolation  attnperf run: a hang, a segfault and an out-of-bounds read (a device-side assert on
             CUDA) among good kernels (tests/faultkernels.py): timed_out, crashed, error; the good
             ones ok
  passes     attnperf run --pass fwd,bwd,fwd+bwd: all ok, dQ/dK/dV checked against float64; a kernel
             with gradients 10 % off fails the gradient gate
  accmem     two attnperf run processes: error figures and peak memory within x1.25 / x1.10
  profiler   (CUDA) tests/test_profiler_agreement.py: device time = torch.profiler's kernel
             time, 3 %
  triton     (CUDA) attnperf ci bench C0 -> TRI over triton_flash: exit 1, every row flagged
  calibrate  attnperf calibrate --runs 2 of C0: a threshold for every gated benchmark
  history    asv run over main's last N commits (--history; needs --repo)
  site       attnperf site build over the results recorded by the checks before it
asv's grid: GRID below, forward only (ATTNPERF_ASV_KERNELS, _PROBLEMS, _PASSES widen it), or
with --suite full the whole default suite.  The history check's results come back in
DIR/results.tgz (results/MACHINE/, to commit).  One Triton cache (.cache/triton, or
TRITON_CACHE_DIR) serves every check and every call on a machine.
Without thresholds for --machine ci bench judges at x1.05 (GPU) / x1.5 (CPU, time rows paired at
x1.10): hence +10 % / +100 %.  Writes DIR/acceptance.json (per check: pass/fail/error/skipped,
reason, numbers, wall time, NVML clocks before and after; attnperf commit, torch, CUDA, cuDNN,
driver, Triton, asv versions), DIR/acceptance.md and DIR/logs.tgz after each check; exits 0 when
every check that ran passed, 1 when one failed or broke, 2 on a usage error.  Offline GPU hosts:
carry in .whl (or --wheels) the wheels of asv, asv_runner, virtualenv, setuptools, nvidia-ml-py,
pytest and attnperf's dependencies, and
`git bundle create .whl/repo.bundle main` for --repo .whl/repo.bundle.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# attnperf's CLI from src/, not on PYTHONPATH: asv's benchmarks must import the commit they measure.
BOOT = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from attnperf.cli import main; "
        "sys.exit(main(sys.argv[1:]))")
RESERVE_S = 10  # kept for writing the report
# The checks in their order, each one's estimate: seconds on a GPU, on a CPU (None: needs CUDA).
ESTIMATE_S = {"ab": (150, 120), "aa": (150, 120), "isolation": (60, 20), "passes": (150, 20),
              "accmem": (60, 20), "profiler": (60, None), "triton": (300, None),
              "calibrate": (240, 200), "history": (120, 80), "site": (30, 30)}
ORDER = tuple(ESTIMATE_S)
GRID = {"cuda": ("sdpa,sdpa_cudnn,sdpa_flash,tiled", "causal,mid,train"),
        "cpu": ("sdpa,tiled", "cpu_seed")}
SHAPE = {"cuda": "--batch 4 --heads 16 --seq 2048 --dim 128 --dtype bf16".split(),
         "cpu": "--batch 1 --heads 2 --seq 64 --dim 16 --dtype fp32 --budget-ms 20".split()}
INJECT = """

# acceptance AB commit: +{pct} % work after every SDPA call, sized to that call
import time as _acc_time, types  # noqa: E401,E402
_ACC_F, _ACC_COST = F, {{}}

# {pct} % of one warm call: sleep-kernel cycles (GPU), thread seconds (CPU)
def _acc_cost(call, cuda):
    if not cuda:
        t = [call() for _ in range(3)] and _acc_time.thread_time()
        return [call() for _ in range(5)] and {pct} / 100 * (_acc_time.thread_time() - t) / 5
    ms = []
    for fn in (call, lambda: torch.cuda._sleep(10**5)):
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
        fn(), ev[0].record(), [fn() for _ in range(20)], ev[1].record(), torch.cuda.synchronize()
        ms.append(ev[0].elapsed_time(ev[1]))
    return max(1, int({pct} / 100 * ms[0] / ms[1] * 10**5))

def _acc_sdpa(q, k, *args, **kwargs):
    call = lambda: _ACC_F.scaled_dot_product_attention(q, k, *args, **kwargs)  # noqa: E731
    out, b = call(), torch.backends.cuda
    key = (q.shape, k.shape, q.dtype, q.device.type, str(kwargs), b.flash_sdp_enabled(),
           b.mem_efficient_sdp_enabled(), b.math_sdp_enabled(),
           getattr(b, "cudnn_sdp_enabled", bool)())
    if key not in _ACC_COST and not (q.is_cuda and torch.cuda.is_current_stream_capturing()):
        _ACC_COST[key] = _acc_cost(call, q.is_cuda)
    if q.is_cuda and key in _ACC_COST:
        torch.cuda._sleep(_ACC_COST[key])
    end = _acc_time.thread_time() + (0 if q.is_cuda else _ACC_COST[key])
    while _acc_time.thread_time() < end:
        pass
    return out

F = types.SimpleNamespace(**{{**vars(_ACC_F), "scaled_dot_product_attention": _acc_sdpa}})
"""
DETUNE = """

# acceptance TRI commit: every Triton configuration forced to 64x16 tiles
if triton is not None and not _INTERPRETED:
    for _c in (_FWD_CONFIGS, _DKDV_CONFIGS, _DQ_CONFIGS):
        _c[:] = [triton.Config({"BLOCK_M": 64, "BLOCK_N": 16}, num_warps=4, num_stages=2,
                               pre_hook=_c[0].pre_hook)]
"""


class Runner:
    """The work folder, the commands' environments, the clone and its commits."""

    def __init__(self, args: argparse.Namespace):
        self.a, self.dev, self.clone = args, args.device, None
        self.commits: dict[str, str] = {}
        self.last_bench = 0.0
        self.work = Path(tempfile.mkdtemp(prefix="attnperf-acceptance-"))
        self.logs, self.deadline = self.work / "logs", time.monotonic() + args.budget_s
        env, site = dict(os.environ), []
        if args.wheels and any(Path(args.wheels).glob("*.whl")):  # an offline host: the
            # carried wheels, installed into the work folder (an empty folder: none to install)
            site = [str(self.work / "site")]
            wheels = [str(p) for p in sorted(Path(args.wheels).glob("*.whl"))
                      if not re.match(r"(pip|wheel|setuptools|build|pyproject_hooks)-", p.name)]
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                            "--no-compile", "--target", site[0], *wheels], check=True)
            sys.path.insert(0, site[0])
            env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(Path(args.wheels).resolve()),
                       PATH=os.pathsep.join([f"{site[0]}/bin", env.get("PATH", "")]))
        [d.mkdir() for d in (self.logs, self.work / "home")]
        self.run_env = dict(
            env, PYTHONPATH=os.pathsep.join(site + [str(ROOT / "src"), str(ROOT / "tests")]),
            ATTNPERF_KERNEL_MODULES="faultkernels:KERNELS")
        self.asv_env = dict(
            env, HOME=str(self.work / "home"), ATTNPERF_TORCH_PYTHON=sys.executable,
            ATTNPERF_ASV_DEVICE=self.dev, PYTHONPATH=os.pathsep.join(site),
            # One Triton cache for every check and call on this machine: a cold cache pays
            # Triton's compiling and tuning once (the first check's cost says how much).
            TRITON_CACHE_DIR=env.get("TRITON_CACHE_DIR", str(ROOT / ".cache" / "triton")))
        if args.suite == "acceptance":  # else the whole default suite, as a user's CI runs it
            kernels, problems = GRID[self.dev]
            self.asv_env.update(ATTNPERF_ASV_PASSES=env.get("ATTNPERF_ASV_PASSES", "fwd"),
                                ATTNPERF_ASV_KERNELS=env.get("ATTNPERF_ASV_KERNELS", kernels),
                                ATTNPERF_ASV_PROBLEMS=env.get("ATTNPERF_ASV_PROBLEMS", problems))

    def sh(self, log: str, cmd: list, cwd=None, env=None) -> tuple[int, str]:
        """Exit code and output of ``cmd``; its process group is stopped when the budget ends."""
        with open(self.logs / f"{log}.log", "w") as fh:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env or self.run_env, stdout=fh,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = proc.wait(timeout=max(1.0, self.deadline - time.monotonic() - RESERVE_S))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise RuntimeError(f"`{log}` was stopped at the end of the budget") from None
        return rc, (self.logs / f"{log}.log").read_text(errors="replace")

    def attnperf(self, *args: str) -> list:
        return [sys.executable, "-c", BOOT, str(ROOT / "src"), *args]

    def git(self, *args: str) -> str:
        who = ("-c", "user.name=attnperf acceptance", "-c",
               "user.email=acceptance@attnperf.invalid")
        return subprocess.check_output(["git", "-C", str(self.work / "repo"), *who, *args],
                                       text=True).strip()

    def repo(self) -> Path:
        """The clone: C0 = the working tree (on main's history when there is one), C1, AB, TRI."""
        if self.clone is not None:
            return self.clone
        c = self.work / "repo"
        shutil.rmtree(c, ignore_errors=True)  # what a failed attempt left
        subprocess.run(["git", "clone", "-q", self.a.repo, str(c)] if self.a.repo
                       else ["git", "init", "-q", str(c)], check=True, capture_output=True)
        if self.a.repo:  # main's tip, else what the clone checked out
            self.commits["main"] = (self.git("for-each-ref", "--format=%(objectname)",
                                             "refs/remotes/origin/main")
                                    or self.git("rev-parse", "HEAD"))
        self.git("checkout", "-q", "-B", "acceptance",
                 *([self.commits["main"]] if self.a.repo else []))
        self.git("--work-tree", str(ROOT), "add", "-A")  # the working tree, as .gitignore sees it
        self.git("commit", "-q", "--allow-empty", "-m", "C0: the working tree")
        self.git("reset", "-q", "--hard")
        c0 = self.commits["C0"] = self.git("rev-parse", "HEAD")
        # main: the branch asv measures (asv.conf.json)
        self.git("branch", "-f", "main", self.commits.get("main", c0))
        for name, path, text in (
            ("C1", "README.md", "\n<!-- A/A: no code change -->\n"),
            ("AB", "src/attnperf/kernels/sdpa.py", INJECT.format(pct=self.a.inject_pct)),
            ("TRI", "src/attnperf/kernels/triton_flash/config.py", DETUNE),
        ):
            self.git("checkout", "-q", "-B", name.lower(), c0)
            (c / path).write_text((c / path).read_text() + text)
            self.git("commit", "-q", "-am", f"{name}: acceptance")
            self.commits[name] = self.git("rev-parse", "HEAD")
        self.git("checkout", "-q", "acceptance")
        rc, out = self.sh("asv-machine", self.attnperf("asv", "machine", self.a.machine, "--device",
                                                       self.dev), cwd=c, env=self.asv_env)
        if rc:
            raise RuntimeError(f"attnperf asv machine exited {rc}: {out[-400:]}")
        self.clone = c
        return c


def check_bench(r: Runner, name: str):
    """``attnperf ci bench`` C0 -> the check's head: its exit code, and exactly the rows expected
    flagged."""
    (head, want_rc, should_flag, env), c = BENCHES[name], r.repo()
    out, t0 = r.work / f"bench-{name}", time.monotonic()
    try:
        rc, _ = r.sh(name, r.attnperf("ci", "bench", "--base", r.commits["C0"], "--head",
                                      r.commits[head], "--machine", r.a.machine, "--device", r.dev,
                                      "--rounds", "2", "--no-describe", "--out", str(out)),
                     cwd=c, env=dict(r.asv_env, **env))
    finally:
        r.last_bench = time.monotonic() - t0
        for f in (out / "summary.md", out / "verdict.json", out / "paired.json"):
            shutil.copy(f, r.logs / f"{name}-{f.name}") if f.exists() else None
    rows = []  # the time rows of the summary's table: change, kernel, problem, ratio
    summary = (out / "summary.md").read_text() if (out / "summary.md").exists() else ""
    for line in summary.splitlines():
        cells = [c.strip().replace("\\", "") for c in line.strip().strip("|").split("|")]
        ratio = re.search(r"([\d.]+)×", cells[6]) if (
            len(cells) >= 8 and cells[1] == "track_device_time") else None
        rows += [{"change": cells[0].split()[-1], "kernel": cells[2], "problem": cells[3],
                  "ratio": float(ratio.group(1))}] if ratio else []
    wrong = [x for x in rows if (x["change"] == "worse") != should_flag(x)]
    span = {k: [f(x["ratio"] for x in rows if should_flag(x) == (k == "flag")) for f in (min, max)]
            for k in ("flag", "keep") if any(should_flag(x) == (k == "flag") for x in rows)}
    return rc == want_rc and bool(rows) and not wrong, {
        "exit": rc, "rows": len(rows), "flagged": sum(x["change"] == "worse" for x in rows),
        "ratio_span": span,
        "misjudged": [f"{x['kernel']} {x['problem']} {x['ratio']}x {x['change']}" for x in wrong],
        **({"inject_pct": r.a.inject_pct} if name == "ab" else {})}


BENCHES = {
    "ab": ("AB", 1, lambda x: x["kernel"].startswith("sdpa"), {}),  # head, exit, flagged rows, env
    "aa": ("C1", 0, lambda x: False, {}),
    "triton": ("TRI", 1, lambda x: True, {"ATTNPERF_ASV_KERNELS": "triton_flash"}),
}


def _run(r: Runner, log: str, kernels: str, *extra: str) -> tuple[int, list]:
    report = r.work / f"{log}.json"
    rc, out = r.sh(log, r.attnperf("run", "--device", r.dev, "--kernel", kernels, *SHAPE[r.dev],
                                   "--no-latency", "-o", str(report), *extra))
    if not report.exists():
        raise RuntimeError(f"attnperf run exited {rc} without a report: {out[-400:]}")
    return rc, json.loads(report.read_text())["results"]


def check_isolation(r: Runner):
    expect = {"fault_bad_index": ("error", "crashed"), "fault_hang": ("timed_out",),
              "fault_segfault": ("crashed",)}
    rc, results = _run(r, "isolation",
                       "sdpa,fault_bad_index,naive,fault_hang,tiled,fault_segfault,sdpa_math",
                       "--timeout-s", "20" if r.dev == "cuda" else "8")
    status = {x["kernel_name"]: x["status"] for x in results}
    return rc == 1 and len(status) == 7 and all(
        s in expect.get(k, ("ok",)) for k, s in status.items()), {"exit": rc, "statuses": status}


def check_passes(r: Runner):
    kernels = "sdpa_cudnn,sdpa_flash,triton_flash" if r.dev == "cuda" else "sdpa,tiled"
    rc, results = _run(r, "passes", kernels + ",fault_grad_off", "--pass", "fwd,bwd,fwd+bwd",
                       "--timeout-s", "300")
    status = {x["id"]: x["status"] for x in results}
    grads = {x["id"]: max(g["rel_error"] for g in x["gradients"].values())
             for x in results if x.get("gradients")}
    bad = {i: s for i, s in status.items() if i.startswith("fault_grad_off/")}
    good = {i: s for i, s in status.items() if i not in bad}
    ok = (rc == 1  # the wrong gradients: fwd ok, _bwd and _fwdbwd failed
          and [bad[i] for i in sorted(bad)] == ["ok", "failed", "failed"]
          and set(good.values()) <= {"ok", "unavailable"}
          and "ok" in {good[i] for i in good if i.endswith("_bwd")})
    return ok, {"exit": rc, "statuses": status, "max_grad_rel_error": grads}


def check_accmem(r: Runner):
    from attnperf.analysis.gate import METRIC_FACTORS

    (_, a), (_, b) = (_run(r, f"accmem{i}", "sdpa_cudnn,sdpa_flash,tiled,naive" if r.dev == "cuda"
                           else "sdpa,tiled,naive") for i in (1, 2))
    acc, mem = METRIC_FACTORS["Accuracy"], METRIC_FACTORS["PeakMemory"]
    limit = {("correctness", "max_abs_error"): acc, ("correctness", "mean_abs_error"): acc,
             ("peak_memory", "peak_bytes"): mem}
    worst = dict.fromkeys(limit, 1.0)
    for x, y in zip(a, b, strict=False):
        for part, key in limit:
            u, v = ((z.get(part) or {}).get(key) for z in (x, y))
            worst[part, key] = max(worst[part, key], v / u, u / v) if u and v else worst[part, key]
    ok = (len(a) == len(b) > 0 and all(x["status"] == "ok" for x in a + b)
          and all(worst[k] <= limit[k] for k in limit))
    return ok, {"configs": len(a), "worst_ratio": {k: worst[p, k] for p, k in limit},
                "peak_memory_measured": sum(bool((x.get("peak_memory") or {}).get("peak_bytes"))
                                            for x in a)}


def check_profiler(r: Runner):
    rc, out = r.sh("profiler", [sys.executable, "-m", "pytest", "-q", "-s", "-p",
                                "no:cacheprovider", "-m", "gpu",
                                str(ROOT / "tests" / "test_profiler_agreement.py")])
    rows = [json.loads(x.split(": ", 1)[1]) for x in out.splitlines()
            if x.startswith("profiler agreement: ")]
    ratio = {x["kernel"]: x["ratio"] for x in rows}
    return rc == 0 and len(rows) == 3, {"exit": rc, "ratio": ratio, "ms": rows}


def check_calibrate(r: Runner):
    c, path = r.repo(), r.work / "thresholds.json"
    rc, _ = r.sh("calibrate", r.attnperf("calibrate", "--machine", r.a.machine, "--commit",
                                         r.commits["C0"], "--runs", "2", "--rounds", "1", "-o",
                                         str(path)), cwd=c, env=r.asv_env)
    thr = sorted(x["threshold"] for x in json.loads(path.read_text())["benchmarks"]) if rc == 0 \
        else []
    return rc == 0 and bool(thr), {
        "exit": rc, "benchmarks": len(thr),
        "threshold_min_median_max": thr and [thr[0], statistics.median(thr), thr[-1]]}


def check_history(r: Runner):
    c = r.repo()
    if not (main := r.commits.get("main")):
        return None, {"skipped": "no history: --repo names a repository or a git bundle of main"}
    n = min(r.a.history, int(r.git("rev-list", "--count", main)) - 1)
    rc, _ = r.sh("history", [sys.executable, "-m", "asv", "run", "--machine", r.a.machine, "-a",
                             "rounds=1", "--skip-existing-commits", f"{main}~{n}..{main}"],
                 cwd=c, env=r.asv_env)
    have = {p.name[:8] for p in (c / "results" / r.a.machine).glob("*-*.json")}
    done = [h[:8] for h in r.git("rev-list", f"{main}~{n}..{main}").split() if h[:8] in have]
    return rc == 0 and n >= 1 and len(done) == n, {"exit": rc, "commits": n, "recorded": done}


def check_site(r: Runner):
    if not any((r.repo() / "results" / r.a.machine).glob("*-*.json")):
        return None, {"skipped": "no results recorded by the checks before it"}
    site = r.work / "site-html"
    rc, _ = r.sh("site", r.attnperf("site", "build", "--out", str(site), "--include-machine",
                                    r.a.machine), cwd=r.clone, env=r.asv_env)
    pages = {str(p.relative_to(site)) for p in site.rglob("*.html")} if site.exists() else set()
    return rc == 0 and {"index.html", "attnperf/index.html"} <= pages, {"exit": rc,
                                                                          "pages": len(pages)}


CHECKS = {name: globals().get(f"check_{name}", lambda r, n=name: check_bench(r, n))
          for name in ORDER}


def write_report(out: Path, report: dict, t0: float) -> None:
    report["wall_s"] = time.monotonic() - t0
    (out / "acceptance.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    e = report["environment"]
    lines = [
        f"# attnperf acceptance: {e.get('gpu_name') or e.get('cpu_model')} ({report['device']})",
        "", f"{report['started']}; budget {report['budget_s']:g} s, used {report['wall_s']:.0f} s; "
        f"attnperf {e.get('attnperf_commit')}; torch {e.get('torch')}, CUDA {e.get('cuda')}, "
        f"cuDNN {e.get('cudnn')}, driver {e.get('driver')}, Triton {e.get('triton')}, "
        f"asv {e.get('asv')}", "", "| check | status | wall s | numbers or reason |",
        "|---|---|---|---|"]
    for c in report["checks"]:
        detail = c["reason"] or "; ".join(f"{k}: {json.dumps(v, default=str)}"
                                          for k, v in c["numbers"].items())
        detail = detail.replace("|", "/")
        lines.append(f"| {c['check']} | {c['status']} | {c['wall_s']:.0f} | {detail} |")
    (out / "acceptance.md").write_text("\n".join(lines) + "\n")


def run_checks(args: argparse.Namespace) -> int:
    from attnperf.measure.nvml import gpu_clock_state

    r, t0 = Runner(args), time.monotonic()
    clocks = gpu_clock_state if args.device == "cuda" else lambda: None
    rc, out = r.sh("env", r.attnperf("env", "--device", r.dev))
    env = json.loads(out[out.index("{"):out.rindex("}") + 1]) if rc == 0 else {"error": out[-400:]}
    env.update({d: next((x.version for x in metadata.distributions(name=d)), None)
                for d in ("triton", "asv", "asv_runner", "nvidia-ml-py")})
    report = {"schema_version": 1, "device": args.device, "budget_s": args.budget_s, "wall_s": 0.0,
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "environment": env,
              "commits": r.commits, "checks": []}
    try:
        for name in (n for n in ORDER if n in args.checks):
            est = ESTIMATE_S[name][args.device == "cpu"]
            est = est and max(est, r.last_bench if name in ("ab", "aa", "triton") else 0)
            left, start = r.deadline - time.monotonic() - RESERVE_S, time.monotonic()
            entry = {"check": name, "status": "skipped", "reason": "", "numbers": {}, "wall_s": 0.0,
                     "estimate_s": est, "clocks_before": clocks(), "clocks_after": None}
            if est is None:
                entry["reason"] = "needs CUDA"
            elif est > left:
                entry["reason"] = (f"would not fit: ~{est:.0f} s estimated, "
                                   f"{max(left, 0):.0f} s left of the budget")
            else:
                try:
                    ok, entry["numbers"] = CHECKS[name](r)  # ok None: skipped, for the reason given
                    entry["status"] = "skipped" if ok is None else "pass" if ok else "fail"
                    entry["reason"] = entry["numbers"].pop("skipped", "")
                except (OSError, ValueError, LookupError, RuntimeError,
                        subprocess.SubprocessError) as exc:
                    entry["status"], entry["reason"] = "error", f"{type(exc).__name__}: {exc}"[:600]
            entry["wall_s"], entry["clocks_after"] = time.monotonic() - start, clocks()
            report["checks"].append(entry)
            write_report(args.out, report, t0)
    finally:
        write_report(args.out, report, t0)
        with tarfile.open(args.out / "logs.tgz", "w:gz") as tar:
            tar.add(r.logs, arcname="logs")
        recorded = r.clone and r.clone / "results" / args.machine
        if recorded and any(recorded.glob("*-*.json")):  # the history, to commit under results/
            with tarfile.open(args.out / "results.tgz", "w:gz") as tar:
                tar.add(recorded, arcname=args.machine)
        shutil.rmtree(r.work, ignore_errors=True)
    return 1 if any(c["status"] in ("fail", "error") for c in report["checks"]) else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-s", type=float, default=540.0, help="wall-clock budget of all checks")
    ap.add_argument("--out", type=Path, help="where acceptance.json, acceptance.md and logs.tgz go")
    ap.add_argument("--checks", default=",".join(ORDER),
                    help=f"a comma-separated subset of {','.join(ORDER)}")
    ap.add_argument("--device", default="cuda", help="cuda or cpu")
    ap.add_argument("--repo",
                    help="a git repository or bundle with main's history (default: this checkout)")
    ap.add_argument("--wheels",
                    help="a folder of wheels to install first (default: .whl when present)")
    ap.add_argument("--machine", default="acceptance",
                    help="asv machine name (its thresholds apply)")
    ap.add_argument("--inject-pct", type=float,
                    help="work added to every SDPA call (default 10 GPU, 100 CPU)")
    ap.add_argument("--history", type=int, default=3, help="commits of main for the history check")
    ap.add_argument("--suite", choices=("acceptance", "full"), default="acceptance",
                    help="asv's grid: the checks' own (GRID below, forward only) or the whole "
                         "default suite (every kernel, problem and pass)")
    args = ap.parse_args(argv)
    args.checks = [c.strip() for c in args.checks.split(",") if c.strip()]
    bad = [c for c in args.checks if c not in ORDER]
    problems = [text for wrong, text in (
        (bad, f"unknown check {', '.join(map(repr, bad))} (known: {', '.join(ORDER)})"),
        (args.device not in ("cuda", "cpu"), f"--device {args.device!r} (allowed: cuda, cpu)"),
        (not args.budget_s > 0, f"--budget-s {args.budget_s:g} (must be > 0)"),
        (args.history < 1, f"--history {args.history} (must be >= 1)"),
        (args.out is None, "--out DIR is required")) if wrong]
    if problems:
        print(f"error: {problems[0]}", file=sys.stderr)
        return 2
    args.inject_pct = args.inject_pct or (10.0 if args.device == "cuda" else 100.0)
    args.repo = args.repo or (str(ROOT) if (ROOT / ".git").exists() else None)
    has_wheels = any((ROOT / ".whl").glob("*.whl"))
    args.wheels = args.wheels or (str(ROOT / ".whl") if has_wheels else None)
    args.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT / "src"))
    return run_checks(args)


if __name__ == "__main__":
    sys.exit(main())
