"""The reading door (attnperf.io.files): every file attnperf reads is a regular file of a
bounded size and nesting.  A FIFO or a device is refused without blocking, a file too large
or too deep is one line -- in every reader: reports (compare), asv results, machine.json,
benchmarks.json, ceilings, thresholds, [tool.attnperf], asv.conf.json, calibrate --pool,
and the results folder of site build and pr-comment."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from attnperf.errors import ConfigError, ReportError
from attnperf.io import asv_results as ar
from attnperf.io import ceilings as ceilings_file
from attnperf.io import files, project_config
from attnperf.io import thresholds as thresholds_file
from attnperf.io.jsonfile import load_json
from attnperf.io.report import read_results
from support import asvdata as d
from support.doors import one_error, returns_without_blocking


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


# ------------------------------------------------------------- the door -----
@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_read_bytes_refuses_what_is_not_a_regular_file(tmp_path, kind):
    path = {"fifo": lambda: _fifo(tmp_path / "f.json"), "device": lambda: Path("/dev/zero"),
            "directory": lambda: tmp_path}[kind]()
    said = {"fifo": "a FIFO", "device": "a device", "directory": "a directory"}[kind]
    with pytest.raises(ReportError, match=f"is {said}, expected a regular file"):
        returns_without_blocking(lambda: files.read_bytes(path, "report"), [path])


def test_size_cap_is_checked_before_reading(tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:  # sparse: no disk, no memory, any size
        fh.truncate(files.MAX_READ_BYTES + 1)
    with pytest.raises(ReportError, match="larger than 64 MiB, the most attnperf reads"):
        files.read_bytes(big, "report")
    small = tmp_path / "small.json"
    small.write_text('{"a": 1}')
    with pytest.raises(ReportError, match="larger than"):
        files.read_bytes(small, "asv results", limit=4)


def test_nesting_is_bounded_in_json_and_toml(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * (files.MAX_DEPTH + 5) + "]" * (files.MAX_DEPTH + 5))
    with pytest.raises(ReportError, match="nested too deeply"):
        load_json(str(deep))
    very = tmp_path / "very.json"
    very.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ReportError, match="nested too deeply"):
        load_json(str(very))
    toml = tmp_path / "pyproject.toml"
    toml.write_text("[tool.attnperf]\nkernels = " + "[" * 10_000 + "]" * 10_000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        project_config.read_toml(toml)
    toml.write_text("[tool.attnperf]\nkernels = " + "[" * 80 + "]" * 80 + "\n")
    with pytest.raises(ConfigError, match="more than 64 levels"):
        project_config.read_toml(toml)


def test_not_utf8_and_huge_integers_are_one_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"a": "\xff\xfe"}')
    with pytest.raises(ReportError, match="not UTF-8"):
        load_json(str(bad))
    bad.write_text('{"a": ' + "9" * 100_000 + "}")
    with pytest.raises(ReportError, match="Exceeds the limit"):
        load_json(str(bad))


# ------------------------------------------------------- every reader -----
def test_every_reader_returns_on_a_fifo(tmp_path):
    """Each reader of attnperf's own formats, handed a FIFO: an error or a note, at once."""
    fifo = _fifo(tmp_path / "x.json")
    for reader, error in ((lambda: read_results(str(fifo)), ReportError),
                          (lambda: thresholds_file.read(fifo), ReportError),
                          (lambda: project_config.load(fifo), ConfigError),
                          (lambda: ar.read_asv_conf(str(fifo)), ReportError)):
        with pytest.raises(error, match="is a FIFO"):
            returns_without_blocking(reader, [fifo])
    notes: list = []
    assert returns_without_blocking(lambda: ceilings_file.read(fifo, notes), [fifo]) is None
    assert "is a FIFO" in notes[0]


def test_fifos_and_devices_in_a_results_folder_become_notes(tmp_path):
    results = tmp_path / "results"
    d.write_machine(results, d.CPU_INFO)
    mdir = results / "cpu-ci"
    (mdir / "machine.json").unlink()
    fifos = [_fifo(mdir / "machine.json"), _fifo(mdir / "abcdef12-env.json"),
             _fifo(mdir / ceilings_file.FILE_NAME), _fifo(results / "benchmarks.json")]
    os.symlink("/dev/zero", mdir / "12345678-env.json")
    db = returns_without_blocking(lambda: ar.read_results(str(results)), fifos)
    notes = db.all_notes()
    assert sum("is a FIFO" in n for n in notes) == 4, notes
    assert any("is a device" in n for n in notes), notes
    assert db.machines["cpu-ci"].runs == []


def test_cli_compare_on_a_fifo_and_dev_zero(cli, tmp_path):
    fifo = _fifo(tmp_path / "r.json")
    res = returns_without_blocking(
        lambda: cli("compare", str(fifo), "--baseline", str(fifo)), [fifo]
    )
    one_error(res, "is a FIFO, expected a regular file")
    one_error(cli("compare", "/dev/zero", "--baseline", "/dev/zero"), "is a device")


def test_cli_pr_comment_and_render_only_with_a_fifo_in_results(cli, tmp_path):
    results = tmp_path / "results"
    d.write_machine(results, d.CPU_INFO)
    fifo = _fifo(results / "cpu-ci" / "abcdef12-env.json")
    res = returns_without_blocking(lambda: cli(
        "pr-comment", "--results", str(results), "--machine", "cpu-ci", "--base", "abcdef12",
        "--head", "abcdef12"), [fifo])
    assert res.code == 0 and "is a FIFO" in res.out and "Traceback" not in res.err


def test_cli_site_build_with_a_fifo_in_results(cli, tmp_path):
    hist = d.history(tmp_path / "proj", 2, machines=("cpu",))
    fifo = _fifo(hist["results"] / "cpu-ci" / "abcdef12-virtualenv-py3.11.json")
    out = tmp_path / "site"
    res = returns_without_blocking(lambda: cli(
        "site", "build", "--config", str(hist["conf"]), "--no-asv", "--out", str(out)), [fifo])
    assert res.code == 0, res.err
    assert "not a regular file; not published" in res.err and "Traceback" not in res.err
    assert (out / "attnperf" / "index.html").is_file()


def test_cli_site_build_says_which_result_file_it_left_out(cli, tmp_path):
    """A latest run that cannot be read: on the machine's page and on the terminal."""
    hist = d.history(tmp_path / "proj", 2, machines=("cpu",))
    latest = max((hist["results"] / "cpu-ci").glob("*-virtualenv-*.json"),
                 key=lambda p: json.loads(p.read_text())["date"])
    latest.write_text(latest.read_text()[:100])
    res = cli("site", "build", "--config", str(hist["conf"]), "--no-asv", "--out",
              str(tmp_path / "site"))
    assert res.code == 0, res.err
    (line,) = [x for x in res.err_lines if x.startswith("note: cpu-ci: ")]
    assert latest.name in line and "not valid JSON" in line
    assert "not valid JSON" in (tmp_path / "site" / "attnperf" / "cpu-ci.html").read_text()


def test_cli_run_with_a_fifo_or_deep_pyproject(cli, tmp_path, monkeypatch, tiny_run_args):
    monkeypatch.chdir(tmp_path)
    fifo = _fifo(tmp_path / "pyproject.toml")
    one_error(returns_without_blocking(lambda: cli("run", *tiny_run_args), [fifo]), "is a FIFO")
    fifo.unlink()
    (tmp_path / "pyproject.toml").write_text(
        "[tool.attnperf]\nkernels = " + "[" * 10_000 + "]" * 10_000 + "\n")
    one_error(cli("run", *tiny_run_args), "nested too deeply")
    assert sorted(os.listdir(tmp_path)) == ["pyproject.toml"]


def test_cli_site_build_and_ci_bench_with_a_fifo_config(cli, tmp_path):
    fifo = _fifo(tmp_path / "asv.conf.json")
    res = returns_without_blocking(lambda: cli("site", "build", "--config", str(fifo)), [fifo])
    one_error(res, "does not exist")  # not a file: refused before it is opened
    res = returns_without_blocking(lambda: cli(
        "ci", "bench", "--config", str(fifo), "--base", "HEAD", "--machine", "m", "--out",
        str(tmp_path / "o"), "--render-only"), [fifo])
    assert res.code == 2 and "does not exist" in res.err and "Traceback" not in res.err


def test_calibrate_pool_fifo_is_one_error(cli, tmp_path, monkeypatch):
    root = tmp_path / "repo"
    d.git_repo(root, 1)
    d.asv_conf(root)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asv-machine.json").write_text(json.dumps({"version": 1, "cpu-ci": d.CPU_INFO}))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(root)
    fifo = _fifo(tmp_path / "pool.json")
    res = returns_without_blocking(lambda: cli("calibrate", "--runs", "0", "--pool", str(fifo),
                                               "--no-write"), [fifo])
    one_error(res, "--pool file", "is a FIFO")


@pytest.mark.parametrize("limit_mb", [450, 600])
def test_a_memory_limit_is_one_line_even_while_pytorch_loads(tmp_path, limit_mb):
    """Under a memory cap too low for PyTorch to load, or for a command's inputs, the
    command ends in one ``error:`` line and exit 2, never a MemoryError traceback."""
    import resource
    import subprocess
    import sys

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit_mb << 20, limit_mb << 20))

    res = subprocess.run([sys.executable, "-m", "attnperf", "site", "build", "--no-asv",
                          "--results", str(tmp_path / "results"), "--out", str(tmp_path / "site")],
                         cwd=tmp_path, preexec_fn=cap, capture_output=True, text=True, timeout=120)
    if res.returncode == 0:
        pytest.skip(f"{limit_mb} MiB was enough for this build of PyTorch")
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr


# Runs in a process of its own: PyTorch and every command load first, then the address
# space is capped a little above what is in use, and each command reads a results file
# whose parse needs several times that.
CAPPED = textwrap.dedent("""
    import contextlib, io, json, resource, sys
    from attnperf.cli import main

    def in_use():
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) << 10 for line in fh if line.startswith("VmSize:"))

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    out = []
    for argv in json.loads(sys.argv[1]):
        o, e = io.StringIO(), io.StringIO()
        resource.setrlimit(resource.RLIMIT_AS, (in_use() + (32 << 20), hard))
        try:
            with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
                code = main(argv)
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        out.append({"code": code, "out": o.getvalue(), "err": e.getvalue()})
    print(json.dumps(out))
""")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmSize from /proc")
def test_a_memory_limit_while_reading_is_one_line_or_a_note(tmp_path):
    """site build, pr-comment, ci bench --render-only and calibrate under a memory cap that
    the results cannot be parsed in: one ``error:`` line (exit 2), or the file left out
    with a note saying so; never a MemoryError traceback."""
    import subprocess
    import sys

    root = tmp_path / "repo"
    base, head = d.git_repo(root, 2)
    d.asv_conf(root)
    results = root / "results"
    d.write_benchmarks(results, ["sdpa"], ["seed"])
    d.write_machine(results, d.H100_INFO, d.H100_CEILINGS)
    runs = [d.write_run(results, d.H100_INFO, c, ms, {
        d.TIME: d.row([["'sdpa'"], ["'seed'"]], [d.samples(1e-3)])})
        for c, ms in ((base, 1000), (head, 2000))]
    pad = ', "pad": [' + ",".join(["0.5"] * 3_600_000) + "]}"
    for run in runs:  # ~14 MiB each (under the asv-file cap), ~130 MB once parsed
        run.write_text(run.read_text()[:-1] + pad)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asv-machine.json").write_text(json.dumps({"version": 1, "h100": d.H100_INFO}))
    commands = [
        ["site", "build", "--no-asv", "--out", str(tmp_path / "site")],
        ["pr-comment", "--results", "results", "--machine", "h100", "--base", base,
         "--head", head],
        ["ci", "bench", "--base", base, "--head", head, "--machine", "h100", "--render-only",
         "--out", str(tmp_path / "ci")],
        ["calibrate", "--runs", "0", "--machine", "h100", "--pool", str(runs[0]),
         "--no-write"],
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB")}
    proc = subprocess.run([sys.executable, "-c", CAPPED, json.dumps(commands)], cwd=root,
                          capture_output=True, text=True, timeout=300, env={**env,
                                                                            "HOME": str(home)})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    summary = tmp_path / "ci" / "summary.md"
    for argv, res in zip(commands, json.loads(proc.stdout), strict=True):
        said = res["out"] + res["err"] + (summary.read_text() if argv[0] == "ci" else "")
        assert "Traceback" not in said and "MemoryError" not in said, (argv, said)
        if res["code"] == 2:
            assert res["err"].startswith("error: ") and res["err"].count("\n") == 1, res
        else:  # the file left out, and the output says why
            assert res["code"] in (0, 1, 3), (argv, res)
        assert "out of memory" in said, (argv, res)
