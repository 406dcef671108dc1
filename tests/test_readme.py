"""The README's commands are tests.

The commands are read from README.md itself: every ```bash block and the
`attnperf` command table.  Each one must be either run here, as the README
shows it (`RUN_HERE`), or named in `ELSEWHERE` with the test that covers it, so
a command added to the README without a test fails
`test_every_readme_command_is_accounted_for`.

Subprocesses inherit conftest's private cache (canned ceilings) and
OMP_NUM_THREADS=1; nothing else about the commands is changed.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest
import torch

from conftest import FAKE_CPU_CEILINGS

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
BIN = Path(sys.executable).parent
ATTNPERF = shutil.which("attnperf", path=str(BIN)) or shutil.which("attnperf")
HAS_CUDA = torch.cuda.is_available()


# ------------------------------------------------------------ extraction ----
def fenced_commands(text: str = README) -> List[str]:
    """Commands of every ```bash block: comments dropped, `\\` continuations joined."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            cmd = re.sub(r"\s+#.*$", "", line).strip()
            if cmd and not cmd.startswith("#"):
                out.append(" ".join(cmd.split()))
    return out


def table_commands(text: str = README) -> List[str]:
    """The first column of the `attnperf` command table, e.g. ``attnperf kernels [--sweeps]``."""
    return [" ".join(m.split()) for m in re.findall(r"^\| `(attnperf [^`]+)` \|", text, flags=re.M)]


def expand_optional(command: str) -> List[str]:
    """``attnperf ceilings [--refresh] [--json]`` -> the four commands it stands for."""
    parts = re.split(r"\s*(\[[^\]]+\])\s*", command)
    base = [p for p in parts if p and not p.startswith("[")]
    options = [p[1:-1] for p in parts if p.startswith("[")]
    out = []
    for picks in itertools.product([False, True], repeat=len(options)):
        out.append(" ".join(base + [o for o, on in zip(options, picks) if on]))
    return out


# Commands run below exactly as the README shows them (placeholders filled in).
RUN_HERE = {
    "attnperf run": "test_attnperf_run_with_no_flags",
    "attnperf run --device cuda": "test_run_device_cuda",
    "attnperf run --kernel sdpa,tiled --pass fwd,bwd --pass fwd+bwd": "test_run_training_passes",
    "attnperf compare CURRENT --baseline BASE --threshold -3.0": "test_compare_as_documented",
    "attnperf kernels [--sweeps]": "test_kernels_and_env",
    "attnperf env": "test_kernels_and_env",
    "attnperf ceilings [--refresh] [--json]": "test_ceilings_cached_and_refreshed",
    "attnperf site build --serve": "test_site_build_serve",
    "make run": "test_make_targets_run_the_readme_commands",
    "make test": "test_make_targets_run_the_readme_commands",
    "pip install -e '.[test,nvml]'": "test_make_targets_run_the_readme_commands",
}
# Commands that need asv runs over commits or a GPU: where they are covered.
ELSEWHERE = {
    "asv continuous --machine my-box --factor 1.5 --interleave-rounds -a rounds=2 -b '^(?!.*Views)' main HEAD":
        "test_ci_bench.py (real `asv continuous` with --interleave-rounds -a rounds=R through "
        "`attnperf ci bench`, same -b gate, on a clone; slow)",
    "make continuous MACHINE=my-box":
        "test_make_targets_run_the_readme_commands (the recipe is `attnperf ci bench`)",
    "ATTNPERF_ASV_KERNELS=tiled ATTNPERF_ASV_PROBLEMS=cpu_seed asv run -e --machine my-box "
    "-b track_device_time HEAD^!":
        "the selection variables: test_suite.py (typos named, nothing for this device); "
        "a real asv run: test_asv_e2e.py",
    "attnperf asv machine my-box": "test_ci_bench.py (ci bench describes the machine with it; slow)",
    "ATTNPERF_ASV_KERNELS=triton_flash attnperf ci bench --base main --head HEAD --machine my-gpu --rounds 2":
        "GPU only (Triton needs CUDA): the selection is test_suite.py's "
        "test_triton_flash_is_in_the_grid_but_measured_on_request; the run, tools/gpu/acceptance.py's triton check",
    "attnperf asv fetch-assets": ".ci/run (tools/install_browser.sh) and test_site.py's browser checks",
    "attnperf bisect GOOD BAD [-b REGEX] [--factor F]": "test_bisect.py",
    "ATTNPERF_ASV_KERNELS=tiled ATTNPERF_ASV_PROBLEMS=cpu_causal attnperf bisect GOOD BAD "
    "--machine my-box -b track_device_time": "test_bisect.py (real asv bisect on a clone; slow)",
    "attnperf bisect v0.3 HEAD -b track_device_time --machine h100": "test_bisect.py (GPU machine: same code)",
    "attnperf bisect GOOD BAD --factor 1.05 -b \"'tiled', 'b4_h16_sq2048_d128_bf16'\"":
        "test_bisect.py (the -b regex on name('kernel', 'problem'))",
    "attnperf calibrate [--runs 5] [--rounds 2]": "test_calibrate.py",
    "pip install attnperf -e .": "test_init.py::test_readme_flow_in_a_plugin_repository (this venv)",
    "attnperf init": "test_init.py::test_readme_flow_in_a_plugin_repository",
    "attnperf init [DIR] [--force]": "test_init.py (idempotence, --force, outside git)",
    'git add -A && git commit -m "Track attention kernels with attnperf"':
        "test_init.py::test_readme_flow_in_a_plugin_repository",
    "asv machine --yes": "test_init.py::test_readme_flow_in_a_plugin_repository",
    "asv continuous --factor 1.5 --interleave-rounds -a rounds=3 -b '^(?!.*Views)' HEAD~1 HEAD":
        "test_init.py::test_readme_flow_in_a_plugin_repository (A/A exit 0, 2x exit 1; slow)",
    "attnperf site build": "test_init.py::test_readme_flow_in_a_plugin_repository and test_site.py",
}


def test_every_readme_command_is_accounted_for():
    commands = set(fenced_commands()) | set(table_commands())
    assert "attnperf run" in commands and "make run" in commands  # the extraction works
    assert commands == set(RUN_HERE) | set(ELSEWHERE), (
        f"README commands without a test: {sorted(commands - set(RUN_HERE) - set(ELSEWHERE))}; "
        f"tested but gone from the README: {sorted(set(RUN_HERE) | set(ELSEWHERE) - commands)}")
    names = set(globals())
    assert {t for t in RUN_HERE.values()} <= names


def test_extraction_of_blocks_tables_and_options():
    text = "x\n```bash\nmake a   # note\n# only a comment\nFOO=1 b \\\n  --c d\n```\n" \
           "| `attnperf k [--s]` | what |\n"
    assert fenced_commands(text) == ["make a", "FOO=1 b --c d"]
    assert table_commands(text) == ["attnperf k [--s]"]
    assert expand_optional("attnperf c [--r] [--j]") == [
        "attnperf c", "attnperf c --j", "attnperf c --r", "attnperf c --r --j"]


# --------------------------------------------------------------- running ----
def attnperf(command: str, *, timeout: float = 600, env=None, cwd=REPO) -> subprocess.CompletedProcess:
    """Run a README `attnperf ...` command line through the installed console script."""
    argv = command.split()
    assert argv[0] == "attnperf" and ATTNPERF, command
    return subprocess.run([ATTNPERF, *argv[1:]], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env)


def _readme_table_header() -> List[str]:
    block = re.search(r"`make run` checks every kernel.*?```\n(.*?)\n", README, flags=re.S)
    return re.split(r"\s{2,}", block.group(1).strip())


@pytest.mark.slow  # ~30 s of CPU on 2 cores: `make test-fast` leaves it out, CI runs it
@pytest.mark.skipif(HAS_CUDA, reason="on a GPU machine the default is the GPU sweep (minutes)")
def test_attnperf_run_with_no_flags():
    """The README's main command, unchanged: every kernel over the default CPU sweep."""
    from attnperf.kernels import registry
    from attnperf.model.catalog import sweep

    start = time.monotonic()
    res = attnperf("attnperf run")
    elapsed = time.monotonic() - start
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    documented = _readme_table_header()
    # The README shows a GPU table; a CPU table drops the columns empty on every row
    # (latency, backend, note) and keeps the others in the same order.
    assert header[:5] == documented[:5] and header == [c for c in documented if c in header], header
    rows = [ln.split() for ln in lines[2:] if ln.strip() and not ln.startswith((" ", "-"))]
    problems = [p.id for p in sweep("cpu-small")]
    table = {(r[0], r[1]): r[2] for r in rows if len(r) > 2 and r[1] in problems}
    # Kernels that cannot run on a CPU are one line each below the table, not rows.
    assert set(table.values()) == {"ok"}
    assert all(table[(k, p)] == "ok" for k in ("sdpa", "naive", "tiled") for p in problems)
    assert {k for k, _ in table} <= set(registry.names())
    summary = res.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ ok, 0 failed, 0 errors, 0 skipped, \d+ unavailable", summary), summary
    print(f"\nattnperf run (no flags): {elapsed:.1f} s")


@pytest.mark.skipif(HAS_CUDA, reason="with a GPU this is the GPU sweep: test_cli's gpu tests")
def test_run_training_passes():
    """The --pass example: every problem of the CPU sweep in each pass, gradients checked."""
    from attnperf.model.catalog import sweep

    res = attnperf(next(c for c in RUN_HERE if "--pass" in c), timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = {(r[0], r[1]): r[2] for r in (ln.split() for ln in res.stdout.splitlines()[2:]) if len(r) > 2}
    expected = {(k, p.with_pass(m).id) for k in ("sdpa", "tiled") for p in sweep("cpu-small")
                for m in ("fwd", "bwd", "fwd+bwd")}
    assert {key: rows.get(key) for key in expected} == dict.fromkeys(expected, "ok")
    assert res.stderr.strip().splitlines()[-1].startswith("24 ok, 0 failed")


@pytest.mark.skipif(HAS_CUDA, reason="with a GPU this is the GPU sweep: test_cli's gpu tests")
def test_run_device_cuda():
    res = attnperf("attnperf run --device cuda", timeout=120)
    assert res.returncode == 2 and res.stdout == ""
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: --device cuda") and "--device cpu" in line


def test_compare_as_documented(tmp_path, seed_report):
    command = next(c for c in RUN_HERE if c.startswith("attnperf compare"))
    base = tmp_path / "base.json"
    base.write_text(json.dumps(seed_report(0.0524)))
    for ms, code, word in ((0.0524 * 1.05, 1, "REGRESSION"), (0.0524 * 1.02, 0, "NO SIGNIFICANT")):
        cur = tmp_path / "cur.json"
        cur.write_text(json.dumps(seed_report(ms)))
        res = attnperf(command.replace("CURRENT", str(cur)).replace("BASE", str(base)), timeout=120)
        assert res.returncode == code, res.stderr
        assert word in res.stdout and res.stderr == ""


def test_kernels_and_env():
    for command in expand_optional("attnperf kernels [--sweeps]"):
        res = attnperf(command, timeout=120)
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("kernels on ") and "tiled" in res.stdout
        assert ("sweeps:" in res.stdout) is command.endswith("--sweeps")
    res = attnperf("attnperf env", timeout=120)
    assert res.returncode == 0, res.stderr
    env = json.loads(res.stdout)
    assert env["torch"] == torch.__version__ and env["device"] in ("cpu", "cuda")


QUICK_CEILINGS = """\
import attnperf.measure.ceilings as c
_measure = c.measure_ceilings
c.measure_ceilings = lambda device, quick=False: _measure(device, quick=True)
"""


@pytest.mark.skipif(HAS_CUDA, reason="auto picks the GPU, whose ceilings conftest does not can")
def test_ceilings_cached_and_refreshed(tmp_path, isolated_cache):
    """Without --refresh: conftest's canned cache.  With --refresh: a real measurement, at
    measure_ceilings' own quick sizes (a sitecustomize in the subprocess; seconds, not ~15 s)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(QUICK_CEILINGS)
    env = dict(os.environ, PYTHONPATH=str(site))
    for command in expand_optional("attnperf ceilings [--refresh] [--json]"):
        res = attnperf(command, timeout=300, env=env)
        assert res.returncode == 0, res.stderr
        refresh = "--refresh" in command
        if "--json" in command:
            data = json.loads(res.stdout)
            assert data["cached"] is not refresh
            if refresh:  # measured now (quick sizes): CPU figures, not the canned round numbers
                assert data["bandwidth_gb_s"] > 0 and data["bandwidth_gb_s"] != 50.0
                assert data["matmul_n"] == {"float16": 128, "bfloat16": 128, "float32": 512}
            else:
                assert data["bandwidth_gb_s"] == FAKE_CPU_CEILINGS["bandwidth_gb_s"]
        else:
            first = res.stdout.splitlines()[0]
            assert ("measured now" in first) is refresh and ("cached" in first) is not refresh
            assert "copy bandwidth" in res.stdout and "matmul float32" in res.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_site_build_serve(tmp_path):
    """The README's site command from the committed results/.  Two flags are added:
    --port (a free one: 8000 may be taken on a shared machine) and --out (a temporary
    directory, so a test never writes into the work tree)."""
    command = "attnperf site build --serve"
    assert command in RUN_HERE
    port = _free_port()
    out = tmp_path / "html"
    argv = command.split()[1:] + ["--port", str(port), "--out", str(out)]
    proc = subprocess.Popen([ATTNPERF, *argv], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/attnperf/index.html")
                resp = conn.getresponse()
                status, body = resp.status, resp.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert status == 200
        assert "roofline" in body.lower()
        assert (out / "index.html").is_file()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _make_dry_run(target: str) -> List[str]:
    res = subprocess.run(["make", "-n", "-s", target], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    return [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]


def test_make_targets_run_the_readme_commands():
    # make run = set-up + exactly `attnperf run` (test_attnperf_run_with_no_flags runs it).
    program, *args = _make_dry_run("run")[-1].split()
    assert program.endswith("/bin/attnperf") and args == ["run"]
    # make test = the whole suite (no marker filter).
    test_cmd = _make_dry_run("test")[-1]
    assert test_cmd.endswith("-m pytest -q"), test_cmd
    # make continuous = `attnperf ci bench` base main, head HEAD, as CI runs it.
    recipe = " ".join(_make_dry_run("continuous"))
    assert "attnperf ci bench" in recipe and "--base main" in recipe and "--head HEAD" in recipe
    # pip install -e '.[test,nvml]': both extras exist.
    import tomllib
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"test", "nvml"} <= set(extras)


def test_asv_selection_variables_of_the_readme(monkeypatch):
    from attnperf.asv import suite
    from attnperf.model.catalog import PRESETS

    command = next(c for c in ELSEWHERE if " asv run " in c)
    for assignment in re.findall(r"(ATTNPERF_\w+)=(\S+)", command):
        monkeypatch.setenv(*assignment)
    assert suite.selection() == (["tiled"], [PRESETS["cpu_seed"].id])
    assert re.search(r"-b (\S+)", command).group(1) == "track_device_time"
