"""The CPU verdict's paired re-measurement (attnperf.measure.paired, ci bench --confirm):
its statistics, its re-judging of rows, two live workers telling a slower commit
from an identical one, each worker importing its own commit's code (attnperf's own
checkout, and a plugin repository's in a src or a flat layout, installed in editable mode),
and what the workers leave (nothing) and print (no traceback)."""

import dataclasses
import functools
import io
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

import faultkernels
from attnperf.analysis import ab
from attnperf.ci import confirm
from attnperf.io.asv_results import OK, Point
from attnperf.kernels.registry import ENV_MODULES
from attnperf.measure import paired as pm
from attnperf.measure import paired_worker
from support import plugin

SRC = Path(__file__).resolve().parents[1] / "src"
TESTS = Path(__file__).resolve().parent
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")


def test_sign_test_is_the_binomial_tail():
    assert pm.sign_test(30, 30) == pytest.approx(2 ** -30)
    assert pm.sign_test(0, 30) == 1.0
    assert pm.sign_test(22, 30) == pytest.approx(0.00806, abs=1e-5)  # 22 of 30 slower: p < 0.01
    assert pm.sign_test(21, 30) > 0.01
    assert pm.sign_test(3, 0) == 1.0


def test_judge_takes_the_median_pair_ratio_and_both_tails():
    base = [1.0, 2.0, 1.0, 2.0] * 5
    r = pm.judge(base, [1.3 * b for b in base], calls=4)
    assert r.ratio == pytest.approx(1.3) and r.pairs == 20 and r.calls == 4
    assert r.p_slower == pytest.approx(2 ** -20) and r.p_faster == 1.0
    assert r.slower() and not r.faster() and not r.slower(factor=1.4)
    same = pm.judge(base, list(base), calls=1)  # all ties: neither side significant
    assert same.ratio == 1.0 and not same.slower(1.0) and not same.faster(1.0)
    fast = pm.judge(base, [b / 1.5 for b in base], calls=1)
    assert fast.faster() and not fast.slower()


def _row(benchmark, params, change, ratio=1.4):
    sig = ab.Significance(True, "p=1e-6", 1e-6)
    return ab.Row(
        benchmark, params, Point(OK, 1.0), Point(OK, ratio), ratio, change, sig, "seconds", 1.5
    )


TIME = "bench_attention.TimeAttention.track_device_time"
ERR = "bench_attention.Accuracy.track_max_abs_error"


def test_confirm_paired_rejudges_time_rows_only():
    cmp = ab.Comparison("m", object(), object(), 1.5, [
        _row(TIME, ("tiled", "p1"), ab.WORSE), _row(TIME, ("sdpa", "p1"), ab.SAME, 1.2),
        _row(ERR, ("tiled", "p1"), ab.WORSE), _row(TIME, ("naive", "p1"), ab.BROKE)])
    base = [1.0] * 30
    results = {("tiled", "p1"): pm.judge(base, [1.01] * 30, 1),   # asv's flag was noise
               ("sdpa", "p1"): pm.judge(base, [1.3] * 30, 1),     # asv missed it
               ("naive", "p1"): pm.judge(base, [1.0] * 30, 1)}
    out = ab.confirm_paired(cmp, results, 1.10)
    by = {(r.benchmark, r.kernel): r for r in out.rows}
    assert by[(TIME, "tiled")].change == ab.SAME and by[(TIME, "tiled")].ratio == pytest.approx(
        1.01
    )
    assert by[(TIME, "sdpa")].change == ab.WORSE and by[(TIME, "sdpa")].factor == 1.10
    assert "paired" in by[(TIME, "sdpa")].significance.text
    assert by[(ERR, "tiled")].change == ab.WORSE  # a metric keeps its own verdict
    assert by[(TIME, "naive")].change == ab.BROKE
    assert out.paired and out.own_factors and out.paired_factor == 1.10
    faster = ab.confirm_paired(
        ab.Comparison("m", object(), object(), 1.5, [_row(TIME, ("tiled", "p1"), ab.SAME)]),
        {("tiled", "p1"): pm.judge(base, [0.7] * 30, 1)},
        1.10,
    )
    assert faster.rows[0].change == ab.BETTER
    assert faster.rows[0].significance.p_value == pytest.approx(2 ** -30)  # the faster tail
    # naive broke: that outranks a slower row
    assert ab.decide(0, out)[0] == ab.EXIT_BROKEN
    # asv exited 0 at x1.5 (it missed sdpa): the paired verdict still says regression
    code, reason = ab.decide(0, ab.Comparison("m", out.base, out.head, 1.5, [
        r for r in out.rows if r.change != ab.BROKE], paired_factor=1.10))
    assert code == ab.EXIT_REGRESSION and "x1.1 in the paired re-measurement" in reason
    # asv exited 1 for tiled's noise; paired says it is the same: ok, and why
    quiet = ab.confirm_paired(
        ab.Comparison("m", object(), object(), 1.5, [_row(TIME, ("tiled", "p1"), ab.WORSE)]),
        {("tiled", "p1"): pm.judge(base, [1.01] * 30, 1)},
        1.10,
    )
    asv_view = ab.Comparison("m", object(), object(), 1.5, [_row(TIME, ("tiled", "p1"), ab.WORSE)])
    code, reason = ab.decide(1, quiet, asv_view)
    assert code == ab.EXIT_OK and "past the paired re-measurement" in reason


@pytest.fixture(scope="module")
def slowed_src(tmp_path_factory):
    """A copy of attnperf's source whose tiled kernel does its whole work 3 times (its
    parent folder stands for a checkout of that commit)."""
    dest = tmp_path_factory.mktemp("slowed") / "src"
    shutil.copytree(SRC, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    tiled = dest / "attnperf" / "kernels" / "tiled.py"
    text = tiled.read_text()
    marker = "KERNELS = ["  # the module-level list of specs
    assert marker in text
    tiled.write_text(text.replace(marker, '''_fast = tiled_attention


def tiled_attention(q, k, v, *, causal, scale, block_kv=BLOCK_KV):  # noqa: F811
    for _ in range(3):
        out = _fast(q, k, v, causal=causal, scale=scale, block_kv=block_kv)
    return out


''' + marker, 1))
    return str(dest)


def test_judge_cancels_a_samples_place_in_its_pair():
    """The second sample of a pair reads 6 % slower, whichever side it is: a quad (a
    base-first and the next, head-first pair) cancels it, the plain median of pairs would
    land on either mode."""
    base = [1.06 if i % 2 else 1.0 for i in range(16)]  # head-first pairs: base second
    head = [1.0 if i % 2 else 1.06 for i in range(16)]
    assert pm.judge(base, head, calls=1).ratio == pytest.approx(1.0)
    assert pm.judge(base, [1.2 * h for h in head], calls=1).ratio == pytest.approx(1.2)


def test_judge_outvotes_one_process_pairs_luck_with_the_other_runs():
    """One fresh pair of workers read 1.15x throughout (where its heap landed), the other two
    1.0x: the median of the runs says 1.0, though the first run's pairs alone are unanimous."""
    base = [1.0] * 30
    lucky = [1.15] * 10 + [1.0 + (0.01 if i % 2 else -0.01) for i in range(20)]
    r = pm.judge(base, lucky, calls=1, runs=[10, 10, 10])
    assert r.runs == pytest.approx((1.15, 1.0, 1.0), rel=1e-3)
    assert r.ratio == pytest.approx(1.0, rel=1e-3)
    assert not r.slower() and r.pairs == 30
    assert pm.judge(base, lucky, calls=1).ratio == pytest.approx(1.0, rel=1e-3)  # one run'
    slow = pm.judge(base, [1.3] * 10 + [1.25] * 10 + [1.35] * 10, calls=1, runs=[10, 10, 10])
    assert slow.slower() and slow.ratio == pytest.approx(1.3) and slow.p_slower < 1e-8


def test_paired_figures_round_trip_through_their_dict():
    r = pm.judge([1.0] * 8, [1.2] * 8, calls=3, runs=[4, 4])
    assert pm.Paired.from_dict(r.to_dict()) == r and r.runs == pytest.approx((1.2, 1.2))
    older = {k: v for k, v in r.to_dict().items() if k != "runs"}  # written before runs
    assert pm.Paired.from_dict(older) == dataclasses.replace(r, runs=())
    with pytest.raises(KeyError):
        pm.Paired.from_dict({"ratio": 1.0})


def test_a_run_that_reads_head_faster_withholds_the_verdict():
    """Two of three fresh pairs of workers read 1.2x, one 0.95x, every pair agreeing within
    its run: the median (1.2x) and the sign test (20 of 30 pairs) are not enough when one
    pair of workers saw head faster; the mirror holds for faster."""
    base = [1.0] * 30
    head = [1.2] * 10 + [0.95] * 10 + [1.2] * 10
    split = pm.judge(base, head, calls=1, runs=[10, 10, 10])
    assert split.ratio == pytest.approx(1.2) and split.p_slower < 0.05
    assert not dataclasses.replace(split, p_slower=1e-6).slower()  # the run decides
    agree = pm.judge(base, [1.2] * 10 + [1.05] * 10 + [1.2] * 10, calls=1, runs=[10, 10, 10])
    assert agree.slower() and agree.p_slower < 1e-8
    mirror = pm.judge(base, [1 / 1.2] * 20 + [1.05] * 10, calls=1, runs=[10, 10, 10])
    assert mirror.ratio * 1.1 < 1 and not mirror.faster()
    assert pm.judge(base, [1 / 1.2] * 30, calls=1, runs=[10, 10, 10]).faster()


class _Recorded(pm._Worker):
    """A worker that notes which side (by its import root) started, in order."""

    started: list[str] = []
    setups: list[str] = []
    samples: list[str] = []  # which side each sample was asked of, in order

    def __init__(self, src, cwd, *args, **kwargs):
        type(self).started.append(src)
        self.side = "b" if not src.endswith(os.sep) else "h"
        super().__init__(src, cwd, *args, **kwargs)

    def ask(self, msg, timeout_s=None):
        if msg["op"] == "setup":
            type(self).setups.append(msg["kernel"])
        else:
            type(self).samples.append(self.side)
        return super().ask(msg, timeout_s)


def test_every_run_starts_a_fresh_pair_of_workers_alternating_which_starts_first(monkeypatch):
    monkeypatch.setattr(pm, "_Worker", _Recorded)
    monkeypatch.setattr(_Recorded, "started", [])
    monkeypatch.setattr(_Recorded, "setups", [])
    monkeypatch.setattr(_Recorded, "samples", [])
    base, head = str(SRC), str(SRC) + os.sep  # one tree, two names: which side started
    seen = []
    with pm.PairedRunner(base, head) as runner:
        got = runner.measure_all([("sdpa", "cpu_seed"), ("tiled", "no_such_problem"),
                                  ("naive", "cpu_seed")], pairs=3, runs=2,
                                 done=lambda key, result: seen.append(key))
    assert _Recorded.started == [base, head, head, base]  # a fresh pair a run, not one per key
    # 3 pairs over 2 runs: 2 a run, whole quads (a base-first and a head-first pair)
    assert got[("sdpa", "cpu_seed")].pairs == 4 and len(got[("sdpa", "cpu_seed")].runs) == 2
    assert "no_such_problem" in got[("tiled", "no_such_problem")]  # asked once, in the 1st run
    # every run sets each row up on both sides (a backward pass's first call is its check
    # against float64), a row that failed only once
    assert _Recorded.setups == ["sdpa", "sdpa", "tiled", "naive", "naive"] + [
        "sdpa", "sdpa", "naive", "naive"]
    assert seen == [("tiled", "no_such_problem"), ("sdpa", "cpu_seed"), ("naive", "cpu_seed")]
    # a row's run: a head-first pair not kept (the set-up's warm-up), then base head head base
    assert "".join(_Recorded.samples) == "hbbhhb" * 4


def test_two_live_workers_tell_a_slower_commit_from_an_identical_one(slowed_src):
    with pm.PairedRunner(str(SRC), str(SRC)) as same:
        aa = same.measure("tiled", "cpu_seed", pairs=16, runs=2)
    # As ci bench runs them: each worker in its commit's checkout, importing its src/ first.
    with pm.PairedRunner(None, None, str(SRC.parent), str(Path(slowed_src).parent)) as runner:
        got = runner.measure_all([("tiled", "cpu_seed"), ("sdpa", "cpu_seed"),  # sdpa: untouched
                                  ("sdpa_cudnn", "cpu_seed"),  # CUDA only: a reason, no crash
                                  ("tiled", "no_such_problem")], pairs=16, runs=2)
    ab_, other = got[("tiled", "cpu_seed")], got[("sdpa", "cpu_seed")]
    missing, bad = got[("sdpa_cudnn", "cpu_seed")], got[("tiled", "no_such_problem")]
    # identical code: never slower; its ratio read as low as 0.77 with the machine loaded
    assert not aa.slower() and 0.7 < aa.ratio < 1.3
    # Three times the work read as low as 1.95x on a loaded 2-core machine (shared caches):
    # still far past the paired factor (1.1).
    assert ab_.slower() and ab_.ratio > 1.5 and ab_.p_slower < 1e-3
    assert not other.slower()
    assert isinstance(missing, str) and "CUDA" in missing
    assert isinstance(bad, str) and "no_such_problem" in bad


# ----------------------------------- each commit's own code, never the installed copy ---
def test_a_workers_import_roots_are_the_checkouts_src_then_its_root(tmp_path):
    assert paired_worker.import_roots("/given/src", str(tmp_path)) == ["/given/src"]
    assert paired_worker.import_roots("", str(tmp_path)) == [str(tmp_path)]  # a flat layout
    (tmp_path / "src").mkdir()
    assert paired_worker.import_roots("", str(tmp_path)) == [str(tmp_path / "src"), str(tmp_path)]


MARKS = "ATTNPERF_TEST_PLUGIN_MARKS"
# One copy of the plugin's kernel module: it notes which copy was imported, and where.
PLUGIN_KERNEL = """import os

import torch

import attnperf

COPY = {copy!r}
with open(os.environ["{marks}"], "a") as fh:
    fh.write(COPY + " " + os.getcwd() + "\\n")


@attnperf.kernel(name="plug")
def plug(q, k, v, *, causal, scale):
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
    return {result}


KERNELS = [plug]
"""


def _layered_venv(root: Path) -> Path:
    """A fresh venv that sees this one's packages (torch, attnperf, setuptools) behind its
    own: what a test installs there is installed for its Python only."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                   capture_output=True, timeout=300)
    python = root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"], check=True,
                             capture_output=True, text=True, timeout=60).stdout.strip()
    outer = sysconfig.get_paths()["purelib"]
    Path(purelib, "outer.pth").write_text(f"import site; site.addsitedir({outer!r})\n")
    return python


def _plugin_repo(repo: Path, layout: str) -> tuple[str, str, str]:
    """A plugin repository (git) with a base and a head commit whose kernel modules differ,
    and a working copy that differs from both (its kernel is wrong); returns (package,
    base, head)."""
    name = f"plug{layout}"
    package = repo / ("src" if layout == "src" else "") / name
    package.mkdir(parents=True)
    (repo / "pyproject.toml").write_text(plugin.pyproject(
        name, name, f"{name}:KERNELS",
        package_dir='package-dir = {"" = "src"}' if layout == "src" else ""))

    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
                              cwd=repo, check=True, capture_output=True, text=True,
                              timeout=60).stdout.strip()

    git("init", "-q", "-b", "main")
    commits = []
    for copy, result in (("base", "out"), ("head", "out.clone()"), ("installed", "out * 0")):
        (package / "__init__.py").write_text(PLUGIN_KERNEL.format(copy=copy, marks=MARKS,
                                                                  result=result))
        if copy != "installed":  # the working copy stays uncommitted
            git("add", "-A")
            git("commit", "-q", "-m", copy)
            commits.append(git("rev-parse", "HEAD"))
    return name, commits[0], commits[1]


@linux_only
@pytest.mark.parametrize("layout", ["src", "flat"])
def test_each_paired_worker_imports_its_commits_plugin_not_the_installed_one(
        layout, tmp_path, monkeypatch):
    """A plugin repository installed in editable mode (its working copy: a .pth path for a
    src layout, an import hook for a flat one): ci bench's paired re-measurement of two
    of its commits measures each commit's own kernel, never the working copy's."""
    python = _layered_venv(tmp_path / "venv")
    repo = tmp_path / "repo"
    name, base, head = _plugin_repo(repo, layout)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-build-isolation", "--no-index",
                    "--disable-pip-version-check", "-e", str(repo)],
                   check=True, capture_output=True, timeout=300)
    marks = tmp_path / "marks"
    monkeypatch.setenv(MARKS, str(marks))
    # What that Python imports anywhere else is the installed working copy.
    subprocess.run([str(python), "-c", f"import {name}"], cwd=tmp_path, check=True, timeout=120)
    assert marks.read_text().split()[0] == "installed"
    marks.unlink()
    monkeypatch.setattr(confirm, "PairedRunner", functools.partial(pm.PairedRunner,
                                                                   python=str(python)))
    monkeypatch.setattr(confirm, "RUNS", 2)  # two fresh pairs of workers show it
    done, failed = confirm.paired_confirmation(
        repo, base, head, [_row(TIME, ("plug", "cpu_seed"), ab.WORSE)], stream=io.StringIO())
    assert failed == {} and isinstance(done[("plug", "cpu_seed")], pm.Paired), failed
    imported = sorted((copy, Path(where).name) for copy, where in
                      (line.split(" ", 1) for line in marks.read_text().splitlines()))
    # each in its own checkout, once per run (a fresh pair of workers each)
    assert imported == [("base", "base")] * 2 + [("head", "head")] * 2


def test_without_a_checkout_the_rows_keep_asvs_verdict(tmp_path):
    from attnperf.ci import bench

    cmp = ab.Comparison("m", object(), object(), 1.5, [_row(TIME, ("tiled", "cpu_seed"), ab.WORSE),
                                                     _row(ERR, ("tiled", "cpu_seed"), ab.SAME)])
    done, failed = bench.paired_confirmation(tmp_path, "a" * 40, "b" * 40, cmp)  # not a git repo
    assert done == {} and list(failed) == [("tiled", "cpu_seed")]  # the time row only
    assert failed[("tiled", "cpu_seed")].startswith("no checkout: git worktree add")
    assert ab.confirm_paired(cmp, done, 1.1).rows[0].change == ab.WORSE


# ------------------------------------------------- the workers' processes ---
@linux_only
def test_closing_the_runner_leaves_no_process_a_kernel_started(monkeypatch):
    marker = "apq" + secrets.token_hex(6)
    monkeypatch.setenv(ENV_MODULES, "faultkernels:KERNELS")  # found in the workers' cwd
    monkeypatch.setenv(faultkernels.MARKER_ENV, marker)
    try:
        with pm.PairedRunner(None, None, str(TESTS), str(TESTS)) as runner:
            got = runner.measure("fault_leave_ok", "cpu_seed", pairs=4, runs=1)
            left = faultkernels.marked(marker)
            assert any(marker in cmd for cmd in left.values()), left  # the sleepers run
        assert isinstance(got, pm.Paired), got  # the fork copy never answered
        deadline = time.monotonic() + 5
        while faultkernels.marked(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert faultkernels.marked(marker) == {}
    finally:
        for pid in faultkernels.marked(marker):
            os.kill(pid, signal.SIGKILL)


def _sigint_ignored(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False


@linux_only
def test_a_paired_worker_ignores_sigint_and_leaves_quietly_on_a_broken_pipe():
    # `with`: every pipe is closed however the test ends (a leaked one is a ResourceWarning).
    with subprocess.Popen([sys.executable, str(pm.WORKER), str(SRC)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            deadline = time.monotonic() + 30
            while not _sigint_ignored(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.01)
            proc.send_signal(signal.SIGINT)  # while it imports torch, or after
            proc.stdin.write(json.dumps({"op": "sample", "calls": 1}) + "\n")
            proc.stdin.flush()
            reply = json.loads(proc.stdout.readline())
            assert "error" in reply  # alive and answering: nothing set up yet
            proc.stdout.close()  # the coordinator is gone
            proc.stdin.write(json.dumps({"op": "sample", "calls": 1}) + "\n")
            proc.stdin.close()
            stderr = proc.stderr.read()
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for word in ("Traceback", "KeyboardInterrupt", "BrokenPipe"):
        assert word not in stderr, stderr


@linux_only
@pytest.mark.parametrize("layout", ["src", "flat"])
def test_a_plugin_that_is_not_installed_is_measured_from_its_commits_declaration(
        layout, tmp_path, monkeypatch):
    """The Python that runs ci bench may lack the repository's package (its entry points are
    not registered there): each worker registers the kernels its commit's pyproject.toml
    declares, and measures that commit's own code."""
    repo = tmp_path / "repo"
    name, base, head = _plugin_repo(repo, layout)
    marks = tmp_path / "marks"
    monkeypatch.setenv(MARKS, str(marks))
    assert subprocess.run([sys.executable, "-c", f"import {name}"], cwd=tmp_path,
                          capture_output=True, timeout=120).returncode != 0  # not installed
    monkeypatch.setattr(confirm, "RUNS", 2)  # two fresh pairs of workers show it
    done, failed = confirm.paired_confirmation(
        repo, base, head, [_row(TIME, ("plug", "cpu_seed"), ab.WORSE)], stream=io.StringIO())
    assert failed == {} and isinstance(done[("plug", "cpu_seed")], pm.Paired), failed
    imported = sorted(line.split(" ", 1)[0] for line in marks.read_text().splitlines())
    assert imported == ["base"] * 2 + ["head"] * 2


def test_declared_kernels_read_the_commits_pyproject(tmp_path):
    from attnperf.measure.paired_worker import declared_kernels

    assert declared_kernels(str(tmp_path)) == []  # no pyproject.toml
    (tmp_path / "pyproject.toml").write_text(
        '[project.entry-points."attnperf.kernels"]\na = "pkg.k:A"\nb = "attnperf.kernels.x:K"\n'
        '[tool.attnperf]\nkernel-modules = ["pkg.extra:KERNELS", "pkg.k:A"]\n')
    assert declared_kernels(str(tmp_path)) == ["pkg.k:A", "pkg.extra:KERNELS"]
    (tmp_path / "pyproject.toml").write_text("not toml [")
    assert declared_kernels(str(tmp_path)) == []
