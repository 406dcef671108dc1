"""Fuzz every door: 1,000 crafted files through each reader (report, asv results,
benchmarks.json, machine.json, ceilings, thresholds, [tool.attnperf]) and 200+ crafted names
through init and asv machine.  No traceback: a reader returns something sane or raises its
one documented error in one line; a generated file parses, and reads back the name as it
was given, with nothing injected (the structure is a plain project's).

In-process and derandomized (the same examples on every run, no example database), so the
whole file takes seconds; the CLI runs for a sample only.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import string
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnperf.asv import machine as machine_mod
from attnperf.cli import main as cli_main
from attnperf.errors import ConfigError, ReportError
from attnperf.io import asv_results as ar
from attnperf.io import project_config
from attnperf.io import thresholds as thresholds_file
from attnperf.io.report import read_results
from attnperf.model.config import ALLOWED, PROBLEM_KEYS, SCHEMA
from attnperf.render import escape
from support import asvdata as d
from support.doors import check_rendered, listing
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


# Text that would run the canary (create the file CANARY) if it became code in the suite,
# a config or a workflow; drawn into names beside the hostile characters.
INJECTIONS = ['"""; open(CANARY, "w"); """', "'''; open(CANARY, 'w'); '''",
              '\nopen(CANARY, "w")\n', '\\\nopen(CANARY, "w")  #', '\u2028open(CANARY, "w")',
              '"}, "x": {"', "'\n  run: touch CANARY\n", "${{ github.event.issue.title }}",
              "' || true || '", "[[ project ]]", "{{ 7 * 7 }}"]


def with_injection(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda a, b, c: a + b + c, text, st.sampled_from(INJECTIONS), text)


# Names init may accept (one printable line) beside the hostile ones, so that a good part of
# the examples write files.
printable_text = st.text(alphabet=st.one_of(
    st.sampled_from(list("\"'\\`$#:{}[]|&;<>()*!?%@/. -_")), st.sampled_from(string.ascii_letters),
    st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Co", "Cn", "Zs", "Zl", "Zp"))),
    max_size=40)


def mostly(good: st.SearchStrategy[str], bad: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``good`` in 3 draws of 4 (one_of alone leans to the hostile side)."""
    return st.integers(0, 3).flatmap(lambda i: bad if i == 3 else good)


project_names = mostly(st.one_of(printable_text, with_injection(printable_text)),
                       with_injection(hostile_text))
url_tails = mostly(st.from_regex(r"[A-Za-z0-9._~/-]{0,30}", fullmatch=True),
                   with_injection(hostile_text))
branch_names = mostly(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,30}", fullmatch=True),
                      st.one_of(hostile_text, with_injection(hostile_text)))


def _cli(*argv: str) -> tuple[int, str, str]:
    """``attnperf ARGV`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _refused(code: int, err: str) -> None:
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (code, err)


@pytest.fixture(scope="module")
def init_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("init-fuzz") / "repo"
    d.git_repo(root, 1)
    return root


def _import_suite(root: Path) -> None:
    """Run the generated suite's module code (what asv's import of it runs)."""
    path = root / "benchmarks" / "bench_attention.py"
    exec(compile(path.read_text(), str(path), "exec"),  # noqa: S102 - the point of the test
         {"__name__": "bench_attention", "__file__": str(path)})


@FUZZ_NAMES
@given(name=project_names, url_tail=url_tails, branch=branch_names)
def test_fuzz_names_through_init(init_repo, scratch, name, url_tail, branch):
    """`attnperf init --branch B` in a repository whose pyproject.toml names the project and
    its URL: one `error:` line and nothing written, or files that parse, read every name
    back as given, have a plain project's structure, and run nothing injected when the
    suite is imported (the canary file never appears)."""
    root = init_repo
    canary = root.parent / "CANARY"
    canary.unlink(missing_ok=True)  # each example on its own (shrinking needs that)
    # the payloads name the canary by its path (a Python string literal)
    name, url_tail, branch = (x.replace("CANARY", repr(str(canary)))
                              for x in (name, url_tail, branch))
    url = "https://example.org/" + url_tail
    (root / "pyproject.toml").write_text(
        f"[project]\nname = {escape.toml_string(name)}\n"
        f"urls = {{Repository = {escape.toml_string(url)}}}\n")
    before = listing(root)
    code, _, err = _cli("init", str(root), "--force", f"--branch={branch}")
    assert "Traceback" not in err and "\x1b" not in err, err
    if code != 0:
        _refused(code, err)
        assert listing(root) == before  # nothing written
        if "--branch" not in err:  # escaping alone holds too: what was refused, rendered
            check_rendered(scratch, name or "p", "main", "")
    else:
        _import_suite(root)
        assert not canary.exists(), name
        check_rendered(scratch, name or root.name, branch, url.rstrip("/"), written=root)
        assert tomllib.loads((root / "pyproject.toml").read_text())["project"]["name"] == name
    assert not canary.exists()


class _FakeSession:
    environment = {"cpu_model": "cpu", "cpu_count": 2, "gpu_name": None, "gpu_count": 0,
                   "driver": None, "cuda": None, "cudnn": None, "torch": "2"}
    ceilings = {"schema_version": 2, "device": "cpu", "bandwidth_gb_s": 10.0,
                "matmul_tflops": {"float32": 0.1}}

    def __init__(self, *args, **kwargs):
        pass


@FUZZ_NAMES
@given(name=st.one_of(hostile_text, with_injection(hostile_text),
                      st.sampled_from(["..", ".", "../x", "a/../../b", "/etc", "-x", ""]),
                      st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,20}", fullmatch=True)))
def test_fuzz_machine_names(scratch, name):
    """`attnperf asv machine NAME` (measuring faked): a refused name is one `error:` line and
    writes nothing; an accepted one writes ~/.asv-machine.json (valid JSON holding it) and
    only results/NAME/."""
    home, results = scratch / "home", scratch / "results"
    for p in (home, results):
        if p.exists():
            for f in sorted(p.rglob("*"), reverse=True):
                f.rmdir() if f.is_dir() else f.unlink()
        p.mkdir(exist_ok=True)
    old = os.environ.get("HOME"), machine_mod.Session
    os.environ["HOME"], machine_mod.Session = str(home), _FakeSession
    try:
        code, out, err = _cli("asv", "machine", "--results-dir", str(results), "--", name)
    finally:
        os.environ["HOME"] = old[0] or ""
        machine_mod.Session = old[1]
    assert "Traceback" not in err and "\x1b" not in err, err
    if code != 0:
        _refused(code, err)
        assert list(home.iterdir()) == [] and list(results.iterdir()) == []
        return
    assert json.loads(out)["machine"] == name
    assert json.loads((home / ".asv-machine.json").read_text())[name]["machine"] == name
    assert [p.name for p in results.iterdir()] == [name]
    assert [p.name for p in (results / name).iterdir()] == ["attnperf-ceilings.json"]


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
