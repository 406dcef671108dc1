"""Numbers where they enter -- flags, [tool.attnperf], tolerances, factors -- are finite and in
range, each refused in one line (exit 2) before anything runs; thread counts are capped at
the machine's cores with a message.  Also the other flags that once passed as "unset"."""

from __future__ import annotations

import json
import os

import pytest

from attnperf.cli import run as run_cli
from attnperf.model.config import MAX_GRID
from support.doors import one_error

RUN_BAD = [
    (["--budget-ms", "1e308"], "--budget-ms must be a positive number of at most 600000"),
    (["--budget-ms", "1e9"], "--budget-ms must be a positive number"),
    (["--budget-ms", "1e15"], "--budget-ms must be a positive number"),
    (["--budget-ms", "inf"], "--budget-ms must be a finite number"),
    (["--timeout-s", "1e308"], "--timeout-s must be a positive number of at most 86400"),
    (["--timeout-s", "-1"], "--timeout-s must be a positive number"),
    (["--timeout-s", "nan"], "--timeout-s must be a finite number"),
    (["--seed", "-1"], "--seed must be an integer in 0.."),
    (["--seed", str(2 ** 70)], "--seed must be an integer in 0.."),
    (["--dtype", ""], "--dtype must not be empty"),
    (["--sweep", ""], "--sweep must not be empty"),
    (["--device", ""], "--device must not be empty"),
    (["--kernel", ""], "--kernel must not be empty"),
]


@pytest.mark.parametrize("bad,needle", RUN_BAD, ids=[" ".join(b) for b, _ in RUN_BAD])
def test_run_refuses_numbers_out_of_range(cli, tmp_path, bad, needle):
    res = cli("run", "--device", "cpu", "--output", tmp_path / "r.json", *bad)
    one_error(res, needle)
    assert os.listdir(tmp_path) == []


def test_run_output_empty_is_an_error_not_unset(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_error(cli("run", "--device", "cpu", "-o", ""), "--output must not be empty")


def test_threads_are_capped_at_the_cores_with_a_message(capsys):
    cores = os.cpu_count() or 1
    assert run_cli._threads(100_000) == cores and run_cli._threads(30_000) == cores
    assert f"note: --threads 100000 is more than this machine's {cores} cores; using {cores}" \
        in capsys.readouterr().err
    assert run_cli._threads(1) == 1 and run_cli._threads(None) is None


def test_run_with_100000_threads_runs_at_the_cores(cli, tmp_path, tiny_run_args, monkeypatch):
    import torch

    from attnperf.measure import ceilings as ceilings_mod
    from support import FAKE_CPU_CEILINGS

    monkeypatch.setattr(ceilings_mod, "measure_ceilings", lambda device, quick=False:
                        dict(FAKE_CPU_CEILINGS))
    before = torch.get_num_threads()
    try:
        res = cli("run", *tiny_run_args, "--kernel", "sdpa", "--threads", "100000",
                  "--output", tmp_path / "r.json")
    finally:
        torch.set_num_threads(before)
    assert res.code == 0, res.err
    assert "is more than this machine's" in res.err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["environment"]["torch_threads"] == (os.cpu_count() or 1)


CONFIGS = [
    (
        "tolerances = {float32 = nan}",
        "tool.attnperf.tolerances.float32 = nan is not a finite number",
    ),
    ("tolerances = {float16 = inf}", "is not a finite number"),
    ("regression-factor = nan", "regression-factor = nan is not a finite number"),
    ("regression-factor = {cpu = inf}", "is not a finite number"),
    ("regression-factor = 1e9", "regression-factor = 1000000000.0 is invalid"),
    (
        "problems = [{batch = ["
        + ", ".join(map(str, range(1, 101)))
        + "], heads = ["
        + ", ".join(map(str, range(1, 101)))
        + "], seq_q = ["
        + ", ".join(map(str, range(1, 101)))
        + "], head_dim = ["
        + ", ".join(map(str, range(1, 101)))
        + "]}]",
        f"expands to 100000000 problems; allowed: at most {MAX_GRID}",
    ),
    (
        "sweeps = {big = [{batch = ["
        + ", ".join(map(str, range(1, 70)))
        + "], heads = ["
        + ", ".join(map(str, range(1, 70)))
        + "], seq_q = 16, head_dim = 8}]}",
        "sweeps.big expands to 4761 problems",
    ),
]


@pytest.mark.parametrize("line,needle", CONFIGS, ids=[c[:40] for c, _ in CONFIGS])
def test_project_config_numbers_are_finite_and_grids_bounded(cli, tmp_path, monkeypatch,
                                                             tiny_run_args, line, needle):
    (tmp_path / "pyproject.toml").write_text(f"[tool.attnperf]\n{line}\n")
    monkeypatch.chdir(tmp_path)
    one_error(cli("run", *tiny_run_args), needle)


@pytest.mark.parametrize("flag,value,needle", [
    ("--factor", "nan", "--factor must be a finite number"),
    ("--factor", "inf", "--factor must be a finite number"),
    ("--paired-factor", "nan", "--paired-factor must be a finite number"),
    ("--factor", "1e9", "--factor must be at most 1000"),
    ("--timeout", "-5", "--timeout must be a positive number"),
    ("--timeout", "1e308", "--timeout must be a positive number of at most 604800"),
    ("--timeout", "nan", "--timeout must be a finite number"),
    ("--rounds", "1000", "--rounds must be a positive integer of at most 100"),
    ("--asv-exit", "99999", "--asv-exit must be an integer in -255..255"),
    ("--out", "", "--out must not be empty"),
])
def test_ci_bench_refuses_numbers_out_of_range(cli, tmp_path, flag, value, needle):
    res = cli("ci", "bench", "--base", "x", "--machine", "m", "--out", str(tmp_path / "o"),
              f"{flag}={value}")
    one_error(res, needle)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "argv,needle",
    [
        (
            [
                "pr-comment",
                "--machine",
                "m",
                "--base",
                "abcdef12",
                "--head",
                "abcdef12",
                "--factor",
                "nan",
            ],
            "--factor must be a finite number",
        ),
        (
            [
                "pr-comment",
                "--machine",
                "m",
                "--base",
                "abcdef12",
                "--head",
                "abcdef12",
                "--factor",
                "inf",
            ],
            "--factor must be a finite number",
        ),
        (["calibrate", "--factor", "nan"], "--factor must be a finite number"),
        (["calibrate", "--headroom", "inf"], "--headroom must be a finite number"),
        (["calibrate", "--runs", "1000"], "--runs must be at most 100"),
        (["bisect", "a", "b", "--factor", "nan"], "--factor must be a finite number"),
        (
            ["compare", "x", "--baseline", "y", "--threshold", "nan"],
            "--threshold must be a finite number",
        ),
        (
            ["site", "build", "--port", "70000"],
            "--port must be a positive integer of at most 65535",
        ),
    ],
)
def test_other_commands_refuse_non_finite_numbers(cli, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    one_error(cli(*argv), needle)
    assert os.listdir(tmp_path) == []


def test_duplicate_kernels_are_measured_once(cli, tmp_path, tiny_run_args):
    out = tmp_path / "r.json"
    res = cli("run", *tiny_run_args, "--kernel", "sdpa,sdpa", "--kernel", "sdpa", "-o", out)
    assert res.code == 0, res.err
    ids = [r["id"] for r in json.loads(out.read_text())["results"]]
    assert len(ids) == len(set(ids)) == 1
    # and compare reads it back (duplicate ids are what it refuses)
    assert cli("compare", str(out), "--baseline", str(out)).code == 0


def test_run_accepts_verbose_after_the_command(cli, tmp_path, tiny_run_args):
    res = cli("run", *tiny_run_args, "--kernel", "sdpa", "--verbose", "-o", tmp_path / "r.json")
    assert res.code == 0, res.err
    res = cli("-v", "run", *tiny_run_args, "--kernel", "sdpa", "-o", tmp_path / "r.json")
    assert res.code == 0, res.err
