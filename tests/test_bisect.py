"""`attnperf bisect`: the search and verdicts (pure, from result data), the command with a
stand-in asv (which commits it measures, what it reuses, exit codes), and the real asv on a
temporary clone (slow)."""

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attnperf.analysis import ab
from attnperf.analysis import bisect as b
from attnperf.cli import main
from attnperf.io.asv_results import read_results, read_run
from attnperf.render import bisect as render
from support import asvdata as d
from support import realasv

KERNELS, PROBLEMS = ["sdpa", "tiled"], ["seed", "train"]


# ------------------------------------------------------------ the search ---
def _search(values, good_value=1.0, bad_value=3.0):
    """Run a Bisection over commits c0..cN-1 whose values are ``values`` (None: n/a)."""
    commits = [f"c{i}" for i in range(len(values))]
    s = b.Bisection("g", commits, good_value, bad_value)
    asked = []
    while (c := s.next()) is not None:
        asked.append(c)
        s.record(c, values[commits.index(c)])
    return s, asked


@pytest.mark.parametrize("step", range(6))
def test_bisection_finds_every_step_position_in_log_steps(step):
    values = [1.0 if i < step else 3.0 for i in range(6)]
    s, asked = _search(values)
    assert s.culprit == f"c{step}"
    assert s.parent == ("g" if step == 0 else f"c{step - 1}")
    assert s.suspects == [f"c{step}"]
    assert len(asked) <= 3  # ceil(log2(6)); BAD (c5) is never measured again
    assert "c5" not in asked


def test_bisection_uses_the_geometric_midpoint():
    s = b.Bisection("g", ["c0", "c1"], 1.0, 4.0)
    assert s.midpoint == pytest.approx(2.0)
    assert not s.is_bad(1.99) and s.is_bad(2.01)


def test_bisection_skips_unmeasurable_commits_and_reports_a_range():
    # c2 is the culprit but cannot be measured, c1 neither: the answer is "one of c1, c2".
    s, asked = _search([1.0, None, None, 3.0, 3.0, 3.0])
    assert s.culprit == "c3" and s.suspects == ["c1", "c2", "c3"] and s.parent == "c0"
    assert set(asked) >= {"c1", "c2"}


def test_bisection_rejects_bad_input():
    with pytest.raises(ValueError):
        b.Bisection("g", [], 1.0, 2.0)
    with pytest.raises(ValueError):
        b.Bisection("g", ["c0"], 2.0, 1.0)  # not a slowdown
    s = b.Bisection("g", ["c0", "c1", "c2"], 1.0, 2.0)
    with pytest.raises(ValueError):
        s.record("c2", 2.0)  # BAD itself is outside the open range


def test_select_matches_like_asv_b():
    rows = [ab.Row(d.TIME, ("tiled", "seed"), None, None, 1.0, ab.SAME, ab.Significance(None, ""),
                   None), ab.Row(d.TIME, ("sdpa", "seed"), None, None, 1.0, ab.SAME,
                                 ab.Significance(None, ""), None)]
    assert [r.kernel for r in b.select(rows, "'tiled'")] == ["tiled"]
    assert len(b.select(rows, "track_device_time")) == 2
    assert b.asv_name(d.TIME, ("tiled", "seed")) == d.TIME + "('tiled', 'seed')"


# --------------------------------------------- verdicts from result data ---
def _time(k, p, scale):
    t = {"seed": 6e-6, "train": 4e-4}[p] * (scale if k == "tiled" else 1.0)
    return d.samples(t, seed=len(k) * 7 + len(p))


def _results(tmp_path, scales):
    """A git repo with one commit per scale; results where tiled's time is multiplied by it."""
    root = tmp_path / "repo"
    commits = d.git_repo(root, len(scales))
    d.asv_conf(root)
    results = root / "results"
    d.write_benchmarks(results, KERNELS, PROBLEMS)
    d.write_machine(results, d.H100_INFO)
    params = d.grid_params(KERNELS, PROBLEMS)
    for i, (commit, scale) in enumerate(zip(commits, scales, strict=False)):
        def t(k, p, scale=scale):
            if scale is None:
                return math.nan
            return _time(k, p, scale)
        d.write_run(results, d.H100_INFO, commit, 1000 + i,
                    {d.TIME: d.row(params, d.grid_values(KERNELS, PROBLEMS, t))})
    return root, results, commits


def _fetcher(results, log):
    def fetch(commit):
        log.append(commit)
        path = results / "h100" / f"{commit[:8]}-virtualenv-py3.11.json"
        return read_run(path, "h100", []) if path.exists() else None
    return fetch


def _bisect(results, commits, factor=1.5, pattern=None):
    log = []
    out = b.bisect(lambda: read_results(str(results)), "h100", commits[0], commits[-1],
                   commits[1:], _fetcher(results, log), factor, pattern)
    return out, log


def test_bisect_names_the_step_and_confirms_it(tmp_path):
    _, results, commits = _results(tmp_path, [1, 1, 1, 1, 3, 3, 3])
    out, log = _bisect(results, commits)
    assert out.kind == b.REGRESSION and out.culprit == commits[4] and out.parent == commits[3]
    assert out.target == b.Target(d.TIME, ("tiled", "seed")) or out.target.params[0] == "tiled"
    assert (
        out.confirmed and out.step.change == ab.WORSE and out.step.ratio == pytest.approx(3, 0.05)
    )
    assert {(r.kernel, r.problem) for r in out.step_rows} == {("tiled", "seed"), ("tiled", "train")}
    assert len(log) == len(set(log)) <= 2 + 3  # GOOD, BAD, log2(6) midpoints; none twice


def test_bisect_says_no_regression_over_a_flat_range(tmp_path):
    _, results, commits = _results(tmp_path, [1, 1, 1, 1.01, 1, 1, 1.02])
    out, log = _bisect(results, commits)
    assert out.kind == b.NO_REGRESSION and out.culprit is None
    assert log == [commits[0], commits[-1]]  # only GOOD and BAD are measured
    assert all(r.ratio is not None and r.change != ab.WORSE for r in out.rows)


def test_bisect_faster_is_not_a_regression(tmp_path):
    _, results, commits = _results(tmp_path, [3, 3, 1])
    out, _ = _bisect(results, commits)
    assert out.kind == b.NO_REGRESSION
    assert any(r.change == ab.BETTER for r in out.rows)


def test_bisect_all_na_is_its_own_verdict(tmp_path):
    _, results, commits = _results(tmp_path, [None, None, None])
    out, _ = _bisect(results, commits)
    assert out.kind == b.ALL_NA


def test_bisect_regex_limits_the_judged_benchmarks(tmp_path):
    _, results, commits = _results(tmp_path, [1, 1, 3])
    out, _ = _bisect(results, commits, pattern="'sdpa'")
    assert out.kind == b.NO_REGRESSION and {r.kernel for r in out.rows} == {"sdpa"}


def test_bisect_without_results_for_good(tmp_path):
    _, results, commits = _results(tmp_path, [1, 1, 3])
    (results / "h100" / f"{commits[0][:8]}-virtualenv-py3.11.json").unlink()
    out, _ = _bisect(results, commits)
    assert out.kind == b.NO_RESULTS


def test_bisect_gradual_slowdown_is_not_confirmed(tmp_path):
    # 1.0 -> 1.3 -> 1.69 -> 2.2: GOOD..BAD is 2.2x, no single step passes factor 1.5.
    _, results, commits = _results(tmp_path, [1, 1.3, 1.69, 2.197])
    out, _ = _bisect(results, commits)
    assert out.kind == b.REGRESSION and not out.confirmed
    assert out.step.change == ab.SAME and out.step.ratio < 1.5


def test_bisect_skips_a_commit_without_results(tmp_path):
    _, results, commits = _results(tmp_path, [1, 1, 1, 3, 3, 3, 3])
    (results / "h100" / f"{commits[3][:8]}-virtualenv-py3.11.json").unlink()
    out, _ = _bisect(results, commits)
    assert out.kind == b.REGRESSION
    assert out.culprit == commits[4] and out.suspects == [commits[3], commits[4]]


def test_bisect_uses_calibrated_thresholds(tmp_path):
    _, results, commits = _results(tmp_path, [1, 1, 1.3])
    log = []
    args = (lambda: read_results(str(results)), "h100", commits[0], commits[-1], commits[1:])
    assert b.bisect(*args, _fetcher(results, log), 1.5).kind == b.NO_REGRESSION
    own = {(d.TIME, ("tiled", "seed")): 1.1}
    out = b.bisect(*args, _fetcher(results, log), 1.5, None, own)
    assert out.kind == b.REGRESSION and out.target == b.Target(d.TIME, ("tiled", "seed"))
    assert out.step.factor == 1.1


# --------------------------------------- the command, with a stand-in asv ---
FAKE_ASV = '''#!{python}
import json, os, re, shutil, sys
argv = sys.argv[1:]
with open(os.environ["FAKE_ASV_LOG"], "a") as fh:
    fh.write(json.dumps(argv) + "\\n")
commit = argv[-1].rstrip("^!")
src = os.path.join(os.environ["FAKE_ASV_STORE"], "h100", commit[:8] + "-virtualenv-py3.11.json")
dest = os.path.join(os.environ["FAKE_ASV_DEST"], "h100")
if os.path.exists(src):
    os.makedirs(dest, exist_ok=True)
    shutil.copy(src, dest)
print("fake asv run", commit[:8])
'''


@pytest.fixture
def cli_project(tmp_path, monkeypatch, capsys):
    """Seven commits (step at the fifth); their results held back in a store the fake asv copies
    from; ~/.asv-machine.json knows h100.  The command runs in this process (``attnperf.cli.main``)
    in the repository's directory."""
    root, results, commits = _results(tmp_path, [1, 1, 1, 1, 3, 3, 3])
    store = tmp_path / "store"
    shutil.move(str(results / "h100"), str(store / "h100"))
    d.write_machine(results, d.H100_INFO)
    fake = tmp_path / "asv"
    fake.write_text(FAKE_ASV.format(python=sys.executable))
    fake.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asv-machine.json").write_text(json.dumps({"version": 1, "h100": d.H100_INFO}))
    for k, v in {"HOME": str(home), "FAKE_ASV_LOG": str(tmp_path / "asv.log"),
                 "FAKE_ASV_STORE": str(store), "FAKE_ASV_DEST": str(results)}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(root)
    return {"root": root, "results": results, "commits": commits, "tmp": tmp_path,
            "store": store, "capsys": capsys}


class Proc:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _cli(p, *args):
    p["capsys"].readouterr()
    rc = main(["bisect", *args])
    out, err = p["capsys"].readouterr()
    log = p["tmp"] / "asv.log"
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return Proc(rc, out, err), calls


def test_cli_names_the_commit_and_reuses_results(cli_project):
    p = cli_project
    c = p["commits"]
    proc, calls = _cli(p, c[0], c[-1], "--machine", "h100", "--factor", "1.5",
                       "--asv", str(p["tmp"] / "asv"))
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith(f"regression: {c[4]} commit 4\n"), proc.stdout
    assert "benchmark: TimeAttention.track_device_time('tiled'," in proc.stdout
    assert re.search(r"ratio: 3\.\d+x against " + c[3][:8] + r" \(its parent\)", proc.stdout)
    assert "test: p=" in proc.stdout and "-> worse" in proc.stdout
    run_args = calls[0]
    assert run_args[:2] == ["run", "--config"] and "--launch-method" in run_args
    assert run_args[run_args.index("--launch-method") + 1] == "forkserver"
    assert run_args[-1] == f"{c[0]}^!"
    measured = [a[-1][:-2] for a in calls]
    assert len(measured) == len(set(measured)) <= 5
    # Again: everything is in results/ now; asv is not run at all.
    proc2, calls2 = _cli(p, c[0], c[-1], "--machine", "h100", "--factor", "1.5",
                         "--asv", str(p["tmp"] / "asv"))
    assert proc2.returncode == 1 and proc2.stdout == proc.stdout
    assert calls2 == calls
    assert "measured 0 commit(s)" in proc2.stderr


def test_cli_no_regression_exit_0_with_ratios(cli_project):
    p = cli_project
    c = p["commits"]
    proc, calls = _cli(p, c[4], c[-1], "--machine", "h100", "--asv", str(p["tmp"] / "asv"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"no significant regression between {c[4][:8]} and {c[-1][:8]}")
    assert re.search(r"1\.0\d\dx\s+same .*TimeAttention\.track_device_time\('tiled', 'train'\)",
                     proc.stdout), proc.stdout
    assert len(calls) == 2


@pytest.mark.parametrize("args, message", [
    (["nosuchref", "HEAD"], "'nosuchref' is not a commit"),
    (["HEAD", "HEAD~2"], "is not an ancestor of"),
    (["HEAD~2", "HEAD", "-b", "("], "is not a regular expression"),
    (["HEAD~2", "HEAD", "--machine", "nosuch"], "asv knows no machine 'nosuch'"),
    (["HEAD~2", "HEAD", "--factor", "0.9"], "--factor must be a number >= 1.0"),
])
def test_cli_usage_errors_exit_2(cli_project, args, message):
    proc, calls = _cli(cli_project, *args, "--asv", str(cli_project["tmp"] / "asv"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and calls == []


def test_cli_not_a_git_repo_exit_2(tmp_path, monkeypatch, capsys):
    d.asv_conf(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["bisect", "A", "B"]) == 2
    assert "is not a git repository" in capsys.readouterr().err


def test_cli_all_na_exit_2(cli_project):
    """A GPU-only problem on a CPU: every value n/a at GOOD and BAD -> said so, exit 2."""
    p = cli_project
    c = p["commits"]
    params = d.grid_params(KERNELS, PROBLEMS)
    for i, commit in enumerate(c):
        d.write_run(p["store"], d.H100_INFO, commit, 1000 + i, {d.TIME: d.row(
            params, d.grid_values(KERNELS, PROBLEMS, lambda k, q: math.nan))})
    proc, calls = _cli(p, c[0], c[-1], "--machine", "h100", "--asv", str(p["tmp"] / "asv"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("error: ") == 1
    assert "every selected benchmark is n/a" in proc.stderr and len(calls) == 2


def test_cli_asv_without_results_exit_3(cli_project):
    p = cli_project
    c = p["commits"]
    proc, calls = _cli(p, c[0], c[-1], "--machine", "h100", "-b", "x_over_floor",
                       "--asv", str(p["tmp"] / "asv"))
    # The store holds no x_over_floor results: asv "ran", nothing matched -> no results.
    assert proc.returncode == 3 and "asv produced no results matching" in proc.stderr
    assert f"GOOD {c[0][:8]} and BAD {c[-1][:8]}" in proc.stderr


def test_cli_asv_that_cannot_start_is_the_harness_code(cli_project):
    """The asv executable cannot be started (here: it does not exist): exit 3, said once,
    never the regression code."""
    p = cli_project
    c = p["commits"]
    missing = p["tmp"] / "no-such-asv"
    proc, calls = _cli(p, c[0], c[-1], "--machine", "h100", "--asv", str(missing))
    assert proc.returncode == 3 and proc.stdout == "", proc.stderr
    assert f"cannot start asv ({missing})" in proc.stderr and calls == []


def test_cli_asv_that_crashes_is_the_harness_code(cli_project):
    """asv crashes (a fork refused: a traceback, exit 1) and writes nothing: exit 3."""
    p = cli_project
    c = p["commits"]
    crash = p["tmp"] / "asv-crash"
    crash.write_text(f"#!{sys.executable}\nimport sys\n"
                     "print('BlockingIOError: [Errno 11] Resource temporarily unavailable')\n"
                     "sys.exit(1)\n")
    crash.chmod(0o755)
    proc, _ = _cli(p, c[0], c[-1], "--machine", "h100", "--asv", str(crash))
    assert proc.returncode == 3 and "asv exit codes [1, 1]" in proc.stderr, proc.stderr


def test_cli_a_benchmark_that_breaks_is_exit_4_not_a_regression(cli_project):
    """tiled/seed passes at GOOD and fails at BAD (a wrong result): exit 4, named, no search,
    though tiled/train is 3x slower."""
    p = cli_project
    c = p["commits"]
    params = d.grid_params(KERNELS, PROBLEMS)
    d.write_run(p["store"], d.H100_INFO, c[-1], 2000, {d.TIME: d.row(params, d.grid_values(
        KERNELS, PROBLEMS, lambda k, q: None if (k, q) == ("tiled", "seed") else
        d.samples((3e-4 if k == "tiled" else 1e-4), seed=len(k + q))))})
    proc, calls = _cli(p, c[0], c[-1], "--machine", "h100", "--asv", str(p["tmp"] / "asv"))
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"broken: 1 benchmark(s) pass at {c[0][:8]} and fail at "
                                  f"{c[-1][:8]}")
    assert "  tiled/seed TimeAttention.track_device_time: fails at head, passed at base" \
        in proc.stdout and len(calls) == 2


# ------------------------------------------------------- real asv (CPU) ---
# A temporary clone of this repository; asv runs the suite for real (tiled only, one CPU
# problem, forkserver).  History: base, b1, b2, b3, slow (tiled 4x the work), b4 .. b9.
# 1.3x (30 % more work): under the CPU default factor x1.5, found by the paired re-measurement
SLOW_TILED = realasv.more_work(3)


@pytest.fixture(scope="module")
def clone(asv_env_lock, cpu_machine_key):
    with realasv.workdir("attnperf-bisect-e2e-") as root:
        yield _history(root, cpu_machine_key)


def _history(root, machine_key):
    repo, base = realasv.clone_with_shared_env(root)
    c = {"base": base}
    for i in range(1, 4):
        c[f"b{i}"] = realasv.commit(repo, f"benign {i}", realasv.touch_readme(i))
    c["slow"] = realasv.commit(repo, "tiled does 30 % more work", realasv.inject(SLOW_TILED))
    for i in range(4, 10):
        c[f"b{i}"] = realasv.commit(repo, f"benign {i}", realasv.touch_readme(i))
    return {"repo": repo, "c": c, "env": realasv.asv_env(root, machine_key, "tiled", "cpu_seed")}


def _real_bisect(clone, good, bad):
    # bisect's defaults: the CPU's factor (x1.5) and every time row re-measured paired
    proc = subprocess.run([sys.executable, "-m", "attnperf", "bisect", good, bad,
                           "--machine", realasv.MACHINE, "-b", "track_device_time"],
                          cwd=clone["repo"], env=clone["env"],
                          capture_output=True, text=True, timeout=1200)
    ran = re.search(r"measured (\d+) commit\(s\), reused (\d+)", proc.stderr)
    return proc, (int(ran.group(1)), int(ran.group(2))) if ran else None


@pytest.mark.slow
@pytest.mark.timeout(600)  # two bisects: up to five commits built and measured, then reused
def test_real_asv_bisect_names_the_injected_commit(clone):
    c = clone["c"]
    proc, (ran, reused) = _real_bisect(clone, c["base"], c["b5"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"regression: {c['slow']} tiled does 30 % more work\n"), \
        proc.stdout
    assert "TimeAttention.track_device_time('tiled', 'b8_h4_sq64_d64_fp32')" in proc.stdout
    assert re.search(r"ratio: 1\.[1-9]\d*x against " + c["b3"][:8] + r" \(its parent\)",
                     proc.stdout), proc.stdout
    assert "-> worse" in proc.stdout and "NOT CONFIRMED" not in proc.stdout
    assert ran <= 2 + 3 and reused == 0
    # Everything measured is kept in results/: a second bisect runs asv for no commit.
    again, (ran2, reused2) = _real_bisect(clone, c["base"], c["b5"])
    # (the paired re-measurement is live: its figures differ, the commit and benchmark do not)
    assert again.returncode == 1 and again.stdout.splitlines()[:2] == proc.stdout.splitlines()[:2]
    assert ran2 == 0 and reused2 == ran


@pytest.mark.slow
def test_real_asv_bisect_says_no_regression_over_a_flat_range(clone):
    c = clone["c"]
    proc, _ = _real_bisect(clone, c["slow"], c["b9"])  # six commits after the step, no step
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"no significant regression between {c['slow'][:8]} and "
                                  f"{c['b9'][:8]}"), proc.stdout
    assert "TimeAttention.track_device_time('tiled', 'b8_h4_sq64_d64_fp32')" in proc.stdout


# ------------------------------- a CPU: flagged rows confirmed paired ---
class _Paired:
    """What measure.paired returns for one pair of commits (ratio, the sign test)."""

    def __init__(self, ratio):
        self.ratio, self.pairs = ratio, 30
        self.p_slower = 1e-6 if ratio > 1.1 else 0.5
        self.p_faster = 0.5

    def slower(self, factor=1.1):
        return self.ratio > factor

    def faster(self, factor=1.1):
        return False


def _confirmer(ratio_of, calls):
    """A ``confirm`` for bisect: the paired ratio of (before, after) is ``ratio_of``'s."""
    def confirm(before, after, rows):
        calls.append((before, after, [(r.kernel, r.problem) for r in rows]))
        paired = {(r.kernel, r.problem): _Paired(ratio_of(before, after)) for r in rows}
        return ab.confirm_paired(ab.Comparison("h100", None, None, 1.1, list(rows)),
                                 paired, 1.1).rows
    return confirm


def test_paired_confirmation_clears_a_range_that_asvs_separate_runs_flag(tmp_path):
    """asv's runs read BAD 1.5x slower (a process state, identical code); the pairs say
    x1.0: no significant regression, nothing searched.  As in ci bench, every comparable row
    is re-measured, not only those asv flagged."""
    _, results, commits = _results(tmp_path, [1, 1, 1, 1, 1.5])
    calls, log = [], []
    out = b.bisect(lambda: read_results(str(results)), "h100", commits[0], commits[-1],
                   commits[1:], _fetcher(results, log), 1.1, None, None,
                   _confirmer(lambda x, y: 1.0, calls))
    assert out.kind == b.NO_REGRESSION and out.paired and log == [commits[0], commits[-1]]
    assert [c[:2] for c in calls] == [(commits[0], commits[-1])]
    db = read_results(str(results))
    every = b.comparable(b.compare(db, "h100", db.machines["h100"].runs_for(commits[0])[0],
                                   db.machines["h100"].runs_for(commits[-1])[0], 1.1, None))
    assert sorted(calls[0][2]) == sorted((r.kernel, r.problem) for r in every)
    assert {("tiled", "seed"), ("tiled", "train")} <= set(calls[0][2])
    assert all(r.change == ab.SAME and r.source == "paired"
               for r in out.rows if r.kernel == "tiled")
    assert render.outcome(out, lambda c: "").startswith(
        f"no significant regression between {commits[0][:8]} and {commits[-1][:8]}")


def test_paired_confirmation_names_the_step_it_confirms(tmp_path):
    _, results, commits = _results(tmp_path, [1, 1, 1, 3, 3, 3])
    slow = set(commits[3:])
    calls, log = [], []
    out = b.bisect(lambda: read_results(str(results)), "h100", commits[0], commits[-1],
                   commits[1:], _fetcher(results, log), 1.1, None, None,
                   _confirmer(lambda x, y: 3.0 if (y in slow) != (x in slow) else 1.0, calls))
    assert out.kind == b.REGRESSION and out.culprit == commits[3] and out.confirmed
    # GOOD vs BAD, then the search on paired ratios against GOOD (commits[2]: x1.0, good;
    # commits[3]: x3.0, bad), then the named step against its parent.
    assert [c[:2] for c in calls] == [(commits[0], commits[-1]), (commits[0], commits[2]),
                                      (commits[0], commits[3]), (commits[2], commits[3])]
    assert out.values == {commits[0]: 1.0, commits[-1]: 3.0, commits[2]: 1.0, commits[3]: 3.0}
    assert out.step.source == "paired" and out.step.ratio == 3.0
    text = render.outcome(out, lambda c: "subject")
    assert f"why flagged at {commits[3][:8]} against {commits[2][:8]}:" in text
    assert "x3.000 > x1.1 (paired factor); paired p=1.0e-06 (sign test, 30 pairs); paired " \
           "re-measurement" in text


def test_a_step_under_asvs_factor_is_found_by_the_pairs(tmp_path):
    """asv's separate runs read a 1.3x step as nothing at factor 1.5 (a CPU's default); the
    pairs, asked about every row as ci bench asks them, see it, and the search names it."""
    _, results, commits = _results(tmp_path, [1, 1, 1, 1.3, 1.3, 1.3])
    slow = set(commits[3:])
    out = b.bisect(lambda: read_results(str(results)), "h100", commits[0], commits[-1],
                   commits[1:], _fetcher(results, []), 1.5, None, None,
                   _confirmer(lambda x, y: 1.3 if (y in slow) != (x in slow) else 1.0, []))
    assert out.kind == b.REGRESSION and out.culprit == commits[3] and out.confirmed
    without = b.bisect(lambda: read_results(str(results)), "h100", commits[0], commits[-1],
                       commits[1:], _fetcher(results, []), 1.5)
    assert without.kind == b.NO_REGRESSION  # asv's test alone, at its factor


def test_a_step_the_pairs_do_not_confirm_is_not_named(tmp_path):
    _, results, commits = _results(tmp_path, [1, 1, 1, 3, 3, 3])
    out = b.bisect(lambda: read_results(str(results)), "h100", commits[0], commits[-1],
                   commits[1:], _fetcher(results, []), 1.1, None, None,
                   _confirmer(lambda x, y: 3.0 if (x, y) == (commits[0], commits[-1]) else 1.0,
                              []))
    assert out.kind == b.REGRESSION and not out.confirmed
    assert "NOT CONFIRMED" in render.outcome(out, lambda c: "")


def test_cli_on_a_cpu_confirms_paired_and_says_no_significant_regression(cli_project,
                                                                         monkeypatch):
    """A CPU machine (no GPU recorded): bisect re-measures every time row paired, as ci bench
    does; a flat range under the pairs is 'no significant regression', exit 0."""
    from attnperf.ci import confirm as confirm_mod

    p = cli_project
    c = p["commits"]
    home = Path(os.environ["HOME"])
    (home / ".asv-machine.json").write_text(json.dumps(
        {"version": 1, "h100": dict(d.H100_INFO, gpu="none")}))
    asked = []

    def fake(repo, before, after, rows, label="ci bench", stream=None):
        asked.append((before, after))
        return {(r.kernel, r.problem): _Paired(1.0) for r in rows}, {}

    monkeypatch.setattr(confirm_mod, "paired_confirmation", fake)
    proc, calls = _cli(p, c[0], c[-1], "--machine", "h100", "--asv", str(p["tmp"] / "asv"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"no significant regression between {c[0][:8]} and "
                                  f"{c[-1][:8]}") and "re-measured paired" in proc.stdout
    assert "device cpu; every time row re-measured paired at x1.1" in proc.stderr
    assert asked == [(c[0], c[-1])] and len(calls) == 2
    # --confirm none: asv's verdict alone names a commit (the factor is the CPU's 1.5)
    proc, _ = _cli(p, c[0], c[-1], "--machine", "h100", "--confirm", "none",
                   "--asv", str(p["tmp"] / "asv"))
    assert proc.returncode == 1 and proc.stdout.startswith(f"regression: {c[4]}")
    assert "factor x1.5; device cpu\n" in proc.stderr and len(asked) == 1
