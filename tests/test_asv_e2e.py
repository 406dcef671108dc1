"""Real asv on a temporary clone of this repository (CPU).

A commit history is built in the clone: benign commits, one that slows the
`tiled` kernel by a known large factor (it computes the result 8 times), and
one that breaks tiled's correctness.  Then:

* `asv continuous base slow` exits 1 and names tiled's benchmark, not sdpa's;
* (two commits with identical kernel code: test_cpu_load's end-to-end A/A run);
* `asv find good^..last` over >= 8 commits names the injected commit;
* `asv continuous base wrong` exits 2 and shows the assertion's error figures;
* `attnperf ci bench` (asv continuous inside) flags a softmax computed in bfloat16
  through the accuracy metrics (the A/A half: test_cpu_load's end-to-end run).

The grid is restricted (ATTNPERF_ASV_KERNELS/PROBLEMS) to stay cheap; the asv
environment is the slow tier's shared one (support.realasv: about a minute to create, cold).
"""

import json
import re
import subprocess
import sys

import pytest

from support.realasv import (
    ASV,
    GATED,
    MACHINE,
    asv_env,
    clone_with_shared_env,
    commit,
    git,
    inject,
    slowdown,
    touch_readme,
    workdir,
)

pytestmark = pytest.mark.slow

# CPU timings on this 2-vCPU machine kind move between processes: measured
# 613-737 us (sdpa) and 1.5-3.1 ms (tiled) for one kernel in six fresh
# processes under load, and sdpa 1.3x between two identical commits in a quiet
# CI run.  The tests therefore inject 8x and judge at 2.5x; GPU device time
# (< 5 % between identical commits on the H100) is judged at 1.05.
FACTOR = "2.5"
TIME_BENCH = "TimeAttention.track_device_time"
SLOWDOWN = slowdown(8)
# One asv round a commit (asv's default is two): an 8x slowdown, a wrong result and a
# precision loss do not need a second round to show.
ONE_ROUND = ("-a", "rounds=1")


@pytest.fixture(scope="module")
def history(asv_env_lock, cpu_machine_key):
    with workdir("attnperf-asv-e2e-") as root:
        yield _build_history(root, cpu_machine_key)


def _build_history(root, machine_key):
    clone, base = clone_with_shared_env(root)
    commits = {"base": base}
    for i in range(1, 4):
        commits[f"benign{i}"] = commit(clone, f"benign {i}", touch_readme(i))
    commits["slow"] = commit(clone, "slow down tiled 8x", inject(SLOWDOWN))
    for i in range(4, 7):
        commits[f"benign{i}"] = commit(clone, f"benign {i}", touch_readme(i))
    return {"clone": clone, "commits": commits,
            "env": asv_env(root, machine_key, "tiled,sdpa", "cpu_seed")}


def _asv(history, *args, timeout=1500, **env):
    proc = subprocess.run([ASV, *args, "--machine", MACHINE], cwd=history["clone"],
                          env=dict(history["env"], **env), capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def _changed(out, sign):
    """Rows of asv's comparison table marked with ``sign`` (+ worse, - better)."""
    return [line for line in out.splitlines()
            if "bench_attention" in line and re.match(r"^\|?\s*" + re.escape(sign) + r"\s", line)]


def test_continuous_flags_injected_slowdown(history):
    c = history["commits"]
    rc, out = _asv(history, "continuous", "--factor", FACTOR, "-b", GATED, *ONE_ROUND,
                   c["benign3"], c["slow"])
    assert rc == 1, out
    flagged = _changed(out, "+")
    assert any("track_device_time" in line and "'tiled'" in line for line in flagged), out
    assert not any("'sdpa'" in line for line in flagged), out
    # The ratio asv prints for tiled's device time is the injected factor of 8, within the
    # spread of asv's separate processes on a loaded 2-core machine (a factor of 2.5 either
    # way: the judging factor; identical code reads up to 1.45x apart).
    # (asv prints a ratio of exactly 8 as "8", no decimals)
    ratios = [float(m.group(1)) for line in flagged if "track_device_time" in line
              for m in [re.search(r"(\d+(?:\.\d+)?)[\s|]+bench_attention", line)] if m]
    assert ratios and all(8 / 2.5 < r < 8 * 2.5 for r in ratios), "\n".join(flagged) + out[-3000:]


# The A/A check (two commits with identical kernel code flag nothing) is
# tests/test_cpu_load.py::test_end_to_end_real_asv_on_a_clone: the same asv continuous
# at the same factor, through `attnperf ci bench` (conftest's cpu_pr); one A/A run serves
# both, and test_cpu_load's verdict under load.


def test_find_names_the_injected_commit(history):
    c = history["commits"]
    # A..B excludes A, so start from the parent of the known-good commit.
    # asv find ignores asv.conf.json's launch_method (spawn: one `import torch`
    # per parameter combination), so it is passed explicitly.
    # sdpa is not under test here: tiled alone (the slowed kernel) halves each step.
    rc, out = _asv(history, "find", "--launch-method", "forkserver",
                   f"{c['base']}^..{c['benign6']}", TIME_BENCH, ATTNPERF_ASV_KERNELS="tiled")
    assert rc == 0, out
    found = re.search(r"Greatest regression found: ([0-9a-f]{8})", out)
    assert found, out
    assert c["slow"].startswith(found.group(1)), out


def test_wrong_result_fails_with_error_figures(history):
    clone = history["clone"]
    wrong = commit(clone, "break tiled's scale", inject(
        ".float() * scale\n", ".float() * scale * 1.25\n"))
    rc, out = _asv(history, "continuous", "--factor", FACTOR, "-b", GATED, *ONE_ROUND,
                   history["commits"]["benign6"], wrong, ATTNPERF_ASV_KERNELS="tiled")
    assert rc == 2, out
    assert "tiled/b8_h4_sq64_d64_fp32 is WRONG" in out, out
    assert "rel_error=" in out and "tolerance" in out, out


# The CPU suite runs float32 problems, whose tolerance (1e-4) a bfloat16 softmax breaks
# (rel_error ~2e-3: the correctness gate fails it, test_wrong_result_... shows that path).
# To show that the accuracy metrics catch a precision loss the gate lets through, the
# clone's float32 tolerance is loosened first, in the base of both pairs.
LOOSE_FLOAT32 = ('"float32": 1e-4,', '"float32": 1e-2,')
SOFTMAX_BF16 = (
    "p = torch.exp(s - m_new)\n",
    "p = torch.exp((s - m_new).bfloat16()).float()  # INJECTED (test): softmax in bf16\n",
)


def _loosen(clone):
    path = clone / "src" / "attnperf" / "model" / "problem.py"
    src = path.read_text()
    assert LOOSE_FLOAT32[0] in src
    path.write_text(src.replace(*LOOSE_FLOAT32, 1))


def _ci_bench(history, base, head, out):
    """`attnperf ci bench` on tiled x cpu_seed: (exit code, verdict.json, summary, asv log).
    The time row is asv's to judge (``--confirm none``): the accuracy rows are under test."""
    proc = subprocess.run(
        [sys.executable, "-m", "attnperf", "ci", "bench", "--base", base, "--head", head,
         "--machine", MACHINE, "--no-describe", "--device", "cpu", "--factor", FACTOR,
         "--confirm", "none", "--rounds", "1", "--out", str(out)], cwd=history["clone"],
        capture_output=True, text=True, timeout=900,
        env=dict(history["env"], ATTNPERF_ASV_KERNELS="tiled"))
    assert (out / "verdict.json").is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return (proc.returncode, json.loads((out / "verdict.json").read_text()),
            (out / "summary.md").read_text(), (out / "asv-continuous.log").read_text())


def test_accuracy_metrics_flag_a_bfloat16_softmax(history):
    """The A/A half (identical kernel code flags no accuracy metric) is test_cpu_load's
    end-to-end run: its README-only pair shows both error figures at 1.00x."""
    clone, c = history["clone"], history["commits"]
    branch = git(clone, "rev-parse", "--abbrev-ref", "HEAD")
    git(clone, "checkout", "-q", c["benign6"])
    try:
        loose = commit(clone, "test: float32 tolerance 1e-2", _loosen)
        bf16 = commit(clone, "tiled: softmax in bfloat16", inject(*SOFTMAX_BF16))
        rc, verdict, summary, log = _ci_bench(history, loose, bf16, clone.parent / "bf16")
        # asv continuous flags both error figures of tiled; the job's verdict follows.
        assert rc == 1 and verdict["verdict"] == "regression" and verdict["asv_exit"] == 1, summary
        assert "2 less accurate (past x1.25)" in verdict["reason"], verdict
        flagged = [line for line in _changed(log, "+") if "Accuracy" in line]
        assert len(flagged) == 2 and all("'tiled'" in line for line in flagged), log
        rows = [line for line in summary.splitlines() if line.startswith("| 🔴 worse | track_m")]
        assert {r.split(" | ")[1] for r in rows} == {"track_max_abs_error",
                                                     "track_mean_abs_error"}, summary
        # float32 errors ~1e-7 -> ~1e-3: orders of magnitude, not noise
        ratios = [float(re.search(r"\| ([\d.]+)× \(×1\.25\)", r).group(1)) for r in rows]
        assert all(r > 100 for r in ratios), rows
    finally:
        git(clone, "checkout", "-q", branch)
