"""`attnperf ci bench`: the pull-request job's logic, run here without GitHub.

Most tests put a stand-in for the `asv` executable on the command line (it
records its arguments, drops prepared result files where asv would write them
and exits with a chosen code), to pin how asv's exit codes and results become
the job's verdict (support.fakeasv).  One test runs the real `asv continuous` on a
temporary clone of this repository (CPU, the A/A pair of conftest's ``cpu_pr``, one core
kept busy).
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from support import asvdata as d
from support import fakeasv
from support.fakeasv import SCRIPT

GATED = "^(?!.*Views)"  # the documented gate: every benchmark but the views


@pytest.fixture
def project(tmp_path):
    """support.fakeasv's project: a git repo with two commits, an asv config, prepared
    results for both commits and the stand-in asv."""
    return fakeasv.make_project(tmp_path)


def test_regression_exit_1_and_asv_arguments(project):
    proc, out, verdict = fakeasv.run_job(project, 1)
    assert proc.returncode == 1, proc.stderr
    argv = json.loads((project["tmp"] / "argv.json").read_text())
    assert argv == ["continuous", "--config", str(project["conf"]), "--factor", "1.05", "-b", GATED,
                    "--machine", "h100", project["base"], project["head"]]
    assert verdict["verdict"] == "regression" and verdict["asv_exit"] == 1
    assert verdict["counts"]["worse"] == 1 and verdict["head"] == project["head"]
    summary = (out / "summary.md").read_text()
    assert summary.startswith("### 🔴 `h100`: regression")
    assert "| 🔴 worse | track_device_time | tiled | train" in summary
    assert (project["tmp"] / "step-summary.md").read_text() == summary + "\n"
    assert "verdict=regression\nexit_code=1\n" in (project["tmp"] / "github-output").read_text()
    assert "::error title=Regression (h100)::1 benchmark(s) slower" in proc.stdout
    assert "fake asv: exit 1" in (out / "asv-continuous.log").read_text()
    # one line per flagged row saying why, in the output, the summary and verdict.json
    why = ("tiled/train TimeAttention.track_device_time: x2.000 > x1.05 (factor); p=1.3e-08 "
           "(Mann–Whitney U, n=15/15); asv's separate runs, not paired")
    assert verdict["flagged"] == [why]
    assert f"[attnperf ci bench] flagged: {why}\n" in proc.stderr
    assert "#### Why flagged\n\n- tiled/train TimeAttention.track_device_time: x2.000 &gt; x1.05" \
        in summary
    assert sorted(p.name for p in (out / "results" / "h100").iterdir()) == sorted(
        ["machine.json", "attnperf-ceilings.json", f"{project['base'][:8]}-virtualenv-py3.11.json",
         f"{project['head'][:8]}-virtualenv-py3.11.json"])


def test_broken_benchmark_exit_4(project):
    """asv exits 2 and head holds a failed result: broken (4), not the regression code,
    though tiled/train is slower too."""
    proc, out, verdict = fakeasv.run_job(project, 2, results="broken")
    assert proc.returncode == 4 and verdict["verdict"] == "broken", proc.stderr
    assert "::error title=Broken benchmark (h100)::" in proc.stdout
    assert (out / "summary.md").read_text().startswith("### 💥 `h100`: broken benchmark")


def test_asv_exit_2_without_a_failed_result_is_a_harness_failure(project):
    """asv's own argument error also exits 2: with no failed result it is not "broken"."""
    proc, out, verdict = fakeasv.run_job(project, 2)
    assert proc.returncode == 3 and verdict["verdict"] == "error", proc.stderr
    assert "no benchmark failed in the results" in verdict["reason"]


def test_asv_crash_is_a_harness_failure_never_the_regression_code(project):
    """asv exits 1 for a crash too (a fork that failed): without its comparison's last
    line the job says harness failure (3), though the result files on disk (an earlier
    run's) show a slower benchmark."""
    proc, out, verdict = fakeasv.run_job(project, 1, says=(
        "Traceback (most recent call last):\nBlockingIOError: [Errno 11] Resource temporarily "
        "unavailable (os.fork)"))
    assert proc.returncode == 3 and verdict["verdict"] == "error", proc.stderr
    assert verdict["reason"].startswith("asv continuous exited 1 without its comparison")
    assert "::error title=Benchmark job error (h100)::" in proc.stdout
    assert (out / "summary.md").read_text().startswith("### ⚠️ `h100`: asv continuous exited 1")


def test_asv_that_cannot_start_is_a_harness_failure(project, tmp_path):
    """An asv executable that cannot be started: exit 3, one error line, a summary."""
    missing = tmp_path / "no-such-asv"
    proc = subprocess.run(
        [sys.executable, *SCRIPT, "--config", str(project["conf"]), "--base", project["base"],
         "--machine", "h100", "--no-describe", "--asv", str(missing), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("GITHUB")})
    assert proc.returncode == 3, proc.stderr
    assert f"error: cannot start asv ({missing})" in proc.stderr and "Traceback" not in proc.stderr


def test_no_regression_exit_0_and_factor(project):
    proc, out, verdict = fakeasv.run_job(project, 0, extra=["--factor", "2.5"], github=False)
    assert proc.returncode == 0 and verdict["verdict"] == "ok" and verdict["factor"] == 2.5
    assert "::" not in proc.stdout
    assert "--factor" in (argv := json.loads((project["tmp"] / "argv.json").read_text()))
    assert argv[argv.index("--factor") + 1] == "2.5"


def test_asv_error_without_results_is_exit_3(project):
    proc, out, verdict = fakeasv.run_job(project, 1, with_results=False)
    assert proc.returncode == 3 and verdict["verdict"] == "error"
    assert "asv wrote no results for both commits" in verdict["reason"]
    assert "no results for the base and head commit" in (out / "summary.md").read_text()


def test_unknown_base_is_an_input_error_exit_2_with_a_summary(project):
    tmp = project["tmp"]
    proc = subprocess.run([sys.executable, *SCRIPT, "--config", str(project["conf"]),
                           "--base", "no-such-ref", "--machine", "h100", "--no-describe",
                           "--out", str(tmp / "o")], capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if not k.startswith("GITHUB")})
    assert proc.returncode == 2 and "error: git rev-parse" in proc.stderr
    assert "no benchmark results" in (tmp / "o" / "summary.md").read_text()



def test_usage_errors_exit_2_as_every_command(tmp_path):
    """A bad command line is a usage error (2, one `error:` line), as for every other
    command; it writes nothing (no summary, no verdict)."""
    for extra, message in ((["--factor", "0.5"], "--factor must be >= 1.0, got 0.5"),
                           (["--paired-factor", "0.9"], "--paired-factor must be >= 1.0"),
                           (["--rounds", "0"], "--rounds must be a positive integer, got 0"),
                           (["--confirm", "maybe"], "invalid choice: 'maybe'"),
                           (["--frobnicate"], "--frobnicate")):
        bad = subprocess.run([sys.executable, *SCRIPT, "--base", "x", "--machine", "m",
                              "--out", str(tmp_path / "o"), *extra],
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2, (extra, bad.stderr)
        assert bad.stderr.strip().splitlines() == [bad.stderr.strip()] and \
            bad.stderr.startswith("error: ") and message in bad.stderr, bad.stderr
        assert not (tmp_path / "o").exists()


def test_render_only_from_results_on_disk(project):
    shutil.copytree(project["prepared"], project["root"] / "results")
    proc, out, verdict = fakeasv.run_job(project, 0, extra=["--render-only"], with_results=False)
    assert not (project["tmp"] / "argv.json").exists()  # asv not run
    assert (
        proc.returncode == 1 and verdict["verdict"] == "regression" and verdict["asv_exit"] is None
    )


# ------------------------------------------ the default factor, as bisect's ---
@pytest.mark.parametrize("machine, info, device, factor, verdict", [
    ("cpu-ci", d.CPU_INFO, "cpu", 1.5, "ok"),
    ("h100", d.H100_INFO, "cuda", 1.05, "regression"),
])
def test_without_thresholds_or_config_ci_bench_judges_at_the_devices_default_as_bisect(
        tmp_path, monkeypatch, cli, machine, info, device, factor, verdict):
    """No --factor, no thresholds file, no [tool.attnperf]: ci bench runs asv and judges at
    the default of the device `attnperf asv machine` recorded -- the factor `attnperf
    bisect` judges at -- and both say the same of the same results: a kernel 1.3x slower
    at head is within a CPU's x1.5, a regression past a GPU's x1.05."""
    root = tmp_path / "repo"
    base, head = d.git_repo(root, 2)
    d.asv_conf(root)
    prepared = tmp_path / "prepared"
    d.write_benchmarks(prepared, ["tiled"], ["seed"])
    d.write_machine(prepared, info)
    for commit, scale, ms in ((base, 1.0, 1000), (head, 1.3, 2000)):
        d.write_run(prepared, info, commit, ms, {d.TIME: d.row([["'tiled'"], ["'seed'"]], [
            d.samples(1e-3 * scale, seed=3)])})
    assert not (root / "pyproject.toml").exists()
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asv-machine.json").write_text(json.dumps({"version": 1, machine: info}))
    fake = tmp_path / "asv"
    fake.write_text(fakeasv.FAKE_ASV.format(python=sys.executable))
    fake.chmod(0o755)
    asv_exit = 1 if verdict == "regression" else 0
    for k, v in {"HOME": str(home), "FAKE_ASV_ARGV": str(tmp_path / "argv.json"),
                 "FAKE_ASV_EXIT": str(asv_exit), "FAKE_ASV_SAYS": fakeasv.SAYS[asv_exit],
                 "FAKE_ASV_RESULTS": str(prepared), "FAKE_ASV_DEST": str(root / "results")
                 }.items():
        monkeypatch.setenv(k, v)
    for var in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(root)
    out = tmp_path / "out"
    # --confirm none: asv's verdict alone, in both commands (a CPU's pairs are not the point)
    job = cli("ci", "bench", "--base", base, "--head", head, "--machine", machine,
              "--no-describe", "--asv", fake, "--confirm", "none", "--out", out)
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[argv.index("--factor") + 1] == f"{factor:g}"
    judged = json.loads((out / "verdict.json").read_text())
    assert (judged["factor"], judged["verdict"], judged["thresholds"]) == (factor, verdict, None)
    found = cli("bisect", base, head, "--machine", machine, "--confirm", "none", "--asv", fake)
    assert f"factor x{factor:g}; device {device}\n" in found.err, found.err
    assert "measured 0 commit(s)" in found.err  # the results ci bench judged
    assert job.code == found.code == asv_exit, (job.err, found.out, found.err)
    assert found.out.startswith("regression:" if asv_exit else "no significant regression")


def test_machine_defaults_to_the_hosts_name_and_auto_reads_its_description(tmp_path, monkeypatch):
    """The flow for other repositories: `attnperf ci bench --base HEAD~1 --head HEAD` needs
    no --machine (`attnperf asv machine`'s default, the host's name) and no --device (the
    one `attnperf asv machine` recorded)."""
    import platform

    from attnperf.ci import bench

    monkeypatch.setattr(platform, "node", lambda: "my-box")
    assert bench.BenchOptions(base="HEAD~1").machine == "my-box"
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".asv-machine.json").write_text(json.dumps(
        {"version": 1, "my-box": {"gpu": "none"}, "h100": d.H100_INFO}))
    assert bench.device_of(bench.BenchOptions(base="HEAD~1")) == "cpu"
    assert bench.device_of(bench.BenchOptions(base="HEAD~1", machine="h100")) == "cuda"
    assert bench.device_of(bench.BenchOptions(base="x", machine="h100", device="cpu")) == "cpu"
    monkeypatch.setattr(platform, "node", lambda: "../x")
    with pytest.raises(Exception, match="the host's name .* is not a machine name"):
        bench.BenchOptions(base="HEAD~1")
