"""Fuzz every door: 1,000 crafted files through each reader (report, asv results,
benchmarks.json, machine.json, ceilings, thresholds, [tool.attnperf]) and 200+ crafted names
through init and asv machine.  No traceback: a reader returns something sane or raises its
one documented error in one line; a generated file parses, and reads back the name as it
was given, with nothing injected (the structure is a plain project's).

In-process and derandomized (the same examples on every run, no example database), so the
whole file takes seconds; the CLI runs for a sample only.
"""

from __future__ import annotations

import json
import math
import os
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnperf.asv import machine as machine_mod
from attnperf.errors import ConfigError, ReportError, UsageError
from attnperf.io import asv_results as ar
from attnperf.io import project_config
from attnperf.io import thresholds as thresholds_file
from attnperf.io.report import read_results
from attnperf.model import names
from attnperf.model.config import ALLOWED, PROBLEM_KEYS, SCHEMA
from attnperf.render import escape
from support import asvdata as d
from support.doors import check_rendered
from support.fuzz import ASV_TEMPLATES, REPORT_TEMPLATES, check_ceilings_file, damaged

FILES = 1000  # per reader
NAMES = 200  # per kind of name

FUZZ = settings(max_examples=FILES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
FUZZ_NAMES = settings(FUZZ, max_examples=NAMES)


def one_line(exc: BaseException) -> None:
    text = str(exc)
    assert text and "\n" not in text and len(text) < 2000, text


# Whole-file damage on top of the structural kind (support.fuzz.damaged): bytes that
# are not UTF-8, control characters, a NUL, an empty file, a JSON value that is no object.
raw_files = st.one_of(
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["", " ", "null", "[]", "1e999", '"x"', "\x00", "\ufeff{}", "{" * 300,
                     '{"a": ' + "[" * 70 + "]" * 70 + "}"]))


def crafted(template) -> st.SearchStrategy:
    return st.one_of(damaged(template), damaged(template), damaged(template), raw_files)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("doors-fuzz")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    return path


# ------------------------------------------------------------------ readers -----
@FUZZ
@given(text=st.sampled_from(REPORT_TEMPLATES).flatmap(crafted))
def test_fuzz_reports(scratch, text):
    path = _write(scratch / "report.json", text)
    try:
        results = read_results(str(path))
    except ReportError as exc:
        one_line(exc)
        return
    assert isinstance(results, list)


@FUZZ
@given(text=crafted(ASV_TEMPLATES["run"]))
def test_fuzz_asv_result_files(scratch, text):
    path = _write(scratch / "cpu-ci" / "aaaaaaaa-virtualenv-py3.11.json", text)
    notes: list = []
    run = ar.read_run(path, "cpu-ci", notes)  # never raises: a run or None with a note
    assert run is not None or notes
    for note in notes + (run.notes if run else []):
        assert "\n" not in note
    for bench in (run.benchmarks.values() if run else ()):
        for point in bench.points.values():
            assert point.value is None or math.isfinite(point.value)


@FUZZ
@given(text=crafted(ASV_TEMPLATES["benchmarks"]))
def test_fuzz_benchmarks_json(scratch, text):
    _write(scratch / "bench" / "benchmarks.json", text)
    notes: list = []
    got = ar.read_benchmarks(scratch / "bench", notes)
    assert isinstance(got, dict) and all(isinstance(v, dict) for v in got.values())
    assert all("\n" not in n for n in notes)


@FUZZ
@given(text=crafted(ASV_TEMPLATES["machine"]))
def test_fuzz_machine_json(scratch, text):
    _write(scratch / "mach" / "cpu-ci" / "machine.json", text)
    m = ar.read_machine(scratch / "mach" / "cpu-ci")
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in m.info.items())
    assert all("\n" not in n for n in m.notes)


@FUZZ
@given(text=st.sampled_from([d.CPU_CEILINGS, d.H100_CEILINGS]).flatmap(crafted))
def test_fuzz_ceilings(scratch, text):
    check_ceilings_file(_write(scratch / "ceil" / "attnperf-ceilings.json", text))


THRESHOLDS = {"schema_version": 1, "machine": "cpu-ci", "created": "2026-01-01T00:00:00+00:00",
              "commit": "a" * 40, "runs": 4, "rounds": 2, "factor": 1.5, "floor": 1.05,
              "headroom": 2.0, "benchmarks": [
                  {"benchmark": d.TIME, "params": ["tiled", "seed"], "medians": [1.0, 1.1],
                   "spread": 1.1, "threshold": 1.21, "detectable": 1.33}]}


@FUZZ
@given(text=crafted(THRESHOLDS))
def test_fuzz_thresholds(scratch, text):
    path = _write(scratch / "thr" / "attnperf-thresholds.json", text)
    try:
        got = thresholds_file.read(path)
    except ReportError as exc:
        one_line(exc)
        return
    assert got is not None
    assert all(math.isfinite(t) and t >= 1.0 for t in got.lookup().values())


# ----------------------------------------------------------- [tool.attnperf] -----
def _toml(value) -> str:
    """``value`` as a TOML value (inline tables and arrays; floats as TOML spells them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return escape.toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return (
        "{"
        + ", ".join(f"{escape.toml_string(str(k))} = {_toml(v)}" for k, v in value.items())
        + "}"
    )


toml_leaves = st.one_of(
    st.integers(-2 ** 63, 2 ** 63 - 1), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.text(max_size=12),
    st.sampled_from(["sdpa", "cpu_seed", "b1_h8_sq512_d64_fp32_causal", "fp16", "fwd",
                     "mod:ATTR", 0, 1, 1e-3, 2 ** 62]))
toml_values = st.recursive(toml_leaves, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(list(PROBLEM_KEYS) + ["x", "cpu",
                                                                                   "float32"]),
                                             inner, max_size=4), max_leaves=10)
grids = st.fixed_dictionaries({k: st.lists(st.integers(1, 64), min_size=1, max_size=40)
                               for k in ("batch", "heads", "seq_q", "head_dim")})
tables = st.dictionaries(st.sampled_from(list(SCHEMA["properties"]) + ["bogus"]),
                         st.one_of(toml_values, st.lists(grids, min_size=1, max_size=2)),
                         max_size=4)


@st.composite
def pyprojects(draw) -> str:
    table = draw(tables)
    body = "".join(f"{escape.toml_string(k)} = {_toml(v)}\n" for k, v in table.items())
    text = "[project]\nname = \"p\"\n\n[tool.attnperf]\n" + body
    kind = draw(st.integers(0, 9))
    if kind == 0:
        text = text[:draw(st.integers(0, len(text)))]
    elif kind == 1:
        depth = draw(st.sampled_from([70, 1000, 10_000]))
        text += "deep = " + "[" * depth + "]" * depth + "\n"
    elif kind == 2:
        text = draw(raw_files)
    return text


@FUZZ
@given(text=pyprojects())
def test_fuzz_tool_attnperf(scratch, text):
    path = _write(scratch / "proj" / "pyproject.toml", text)
    try:
        config = project_config.load(path)
    except ConfigError as exc:
        one_line(exc)
        return
    if config is not None:
        for p in (config.problems or ()):
            assert p.batch >= 1
        assert all(math.isfinite(t) and 0 < t <= 1 for t in config.tolerances.values())
        assert all(math.isfinite(f) and 1 <= f <= 1000 for f in config.factors.values())


def test_the_allowed_text_covers_every_key():
    assert set(ALLOWED) == set(SCHEMA["properties"])


# --------------------------------------------------------------------- names -----
hostile_text = st.text(alphabet=st.one_of(
    st.sampled_from(list("\"'\\`$#:{}[]|&;<>()*!?%@/. \t\n\r\x00\x1b\x7f\x85\u2028\u2029-_")),
    st.characters(blacklist_categories=("Cs",)), st.sampled_from(string.ascii_letters)),
    min_size=0, max_size=40)


@FUZZ_NAMES
@given(name=hostile_text, url_tail=hostile_text)
def test_fuzz_project_names_and_urls_through_init(scratch, name, url_tail):
    """Any project name and URL: refused in one line, or written so that every file parses
    and reads it back.  Escaping alone holds too: names the check refuses are rendered anyway."""
    url = "https://example.org/" + url_tail
    try:
        names.text_line(name, "the project name")
    except UsageError as exc:
        one_line(exc)
    try:
        url = names.url(url)
    except UsageError as exc:
        one_line(exc)
        url = ""
    check_rendered(scratch, name or "p", "main", url)


branches = st.one_of(hostile_text, st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,30}",
                                                 fullmatch=True))


@FUZZ_NAMES
@given(branch=branches)
def test_fuzz_branch_names_through_init(scratch, branch):
    try:
        names.branch(branch)
    except UsageError as exc:
        one_line(exc)
        return
    check_rendered(scratch, "p", branch, "")


class _FakeSession:
    environment = {"cpu_model": "cpu", "cpu_count": 2, "gpu_name": None, "gpu_count": 0,
                   "driver": None, "cuda": None, "cudnn": None, "torch": "2"}
    ceilings = {"schema_version": 2, "device": "cpu", "bandwidth_gb_s": 10.0,
                "matmul_tflops": {"float32": 0.1}}

    def __init__(self, *args, **kwargs):
        pass


@FUZZ_NAMES
@given(name=st.one_of(hostile_text, st.sampled_from(["..", ".", "../x", "a/../../b", "/etc"]),
                      st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,20}", fullmatch=True)))
def test_fuzz_machine_names(scratch, name):
    """`asv machine NAME` (measuring faked): a refused name writes nothing; an accepted one
    writes ~/.asv-machine.json (valid JSON holding it) and only results/NAME/."""
    home, results = scratch / "home", scratch / "results"
    for p in (home, results):
        if p.exists():
            for f in sorted(p.rglob("*"), reverse=True):
                f.rmdir() if f.is_dir() else f.unlink()
        p.mkdir(exist_ok=True)
    old = os.environ.get("HOME"), machine_mod.Session
    os.environ["HOME"], machine_mod.Session = str(home), _FakeSession
    try:
        try:
            machine_mod.describe(name, results, "cpu")
        except UsageError as exc:
            one_line(exc)
            assert list(home.iterdir()) == [] and list(results.iterdir()) == []
            return
    finally:
        os.environ["HOME"] = old[0] or ""
        machine_mod.Session = old[1]
    assert json.loads((home / ".asv-machine.json").read_text())[name]["machine"] == name
    assert [p.name for p in results.iterdir()] == [name]
    assert (results / name / "attnperf-ceilings.json").is_file()


# ------------------------------------------------------------ a CLI sample -----
@pytest.mark.parametrize("argv", [
    ["asv", "machine", "--", "../../../x"],
    ["asv", "machine", "--", "a\x1b[31mb"],
    ["init", ".", "--branch=x'||true||'"],
])
def test_a_sample_through_the_command_in_a_real_process(tmp_path, argv):
    root = tmp_path / "repo"
    d.git_repo(root, 1)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    proc = subprocess.run([sys.executable, "-m", "attnperf", *argv], cwd=root, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "HOME": str(tmp_path)})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and "\x1b" not in proc.stderr
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
