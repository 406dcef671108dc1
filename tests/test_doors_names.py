"""Names that end up in paths, files, code and terminals: checked where they enter
(attnperf.model.names), escaped for their target (attnperf.render.escape, markdown)."""

from __future__ import annotations

import ast
import json
import os

import pytest
import tomllib
import yaml

from attnperf.errors import UsageError
from attnperf.io.asv_results import read_asv_conf
from attnperf.io.report import build_report
from attnperf.model import names
from attnperf.render import escape
from attnperf.render import markdown as md
from support import asvdata as d
from support.doors import check_rendered, listing, one_error

BAD_MACHINES = ["../../../x", "..", ".", "", "a/b", "/abs", ".hidden", "-flag", "a b",
                "x\x1b[31m", "a\nb", "ü" * 3, "m" * 101]


# ---------------------------------------------------------------- machine -----
@pytest.mark.parametrize("name", BAD_MACHINES)
def test_asv_machine_refuses_names_that_are_not_one_path_component(
    cli, tmp_path, monkeypatch, name
):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    res = cli("asv", "machine", "--results-dir", str(tmp_path / "results"), "--", name)
    one_error(res, "is not a machine name", "allowed:")
    assert os.listdir(tmp_path) == []  # no ~/.asv-machine.json, no results/, nothing outside


@pytest.mark.parametrize("argv", [
    ["ci", "bench", "--base", "x", "--machine", "../x", "--out", "o"],
    ["pr-comment", "--machine", "a/b", "--base", "abcdef12", "--head", "abcdef12"],
    ["calibrate", "--machine", ".."],
    ["bisect", "HEAD~1", "HEAD", "--machine", "../../x"],
    ["site", "build", "--include-machine", "../x"],
])
def test_every_machine_flag_refuses_a_path(cli, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    one_error(cli(*argv), "is not a machine name")
    assert os.listdir(tmp_path) == []


def test_good_machine_names_pass():
    for name in ("cpu-ci", "h100", "gpu_h100.sxm", "runner+2", "A1"):
        assert names.machine(name) == name


# ----------------------------------------------------------------- init ------
# What init writes for a name is checked by support.doors.check_rendered.


HOSTILE_PROJECTS = [
    'x"""; import os; os.system("touch /tmp/attnperf-pwned"); """',
    "x'''\nimport os\n'''", 'a"b', "a\\", "a\\\"", "\u2028x", "x\ny", "{{ secrets.TOKEN }}",
    "${{ github.token }}", "[[ branch ]]", "é ü 中", "a # b: c", "a */ b /* c",
]


@pytest.mark.parametrize("name", HOSTILE_PROJECTS)
def test_init_escapes_project_names(tmp_path, name):
    check_rendered(tmp_path, name, "main", "https://example.org/p")


@pytest.mark.parametrize("branch", ["release/1.x", "dev_2", "v1.0-rc1", "a.b/c-d_e"])
def test_init_writes_valid_branch_names_into_every_file(tmp_path, branch):
    check_rendered(tmp_path, "proj", branch, "")


@pytest.mark.parametrize("branch", ["x'||true||'", "x' || 'a' == 'a", "ma\nin", "a b", "",
                                    "-x", "a..b", "a/", "a.lock", "x\x1b", "a:b", "a#b",
                                    "${{ true }}", "a'", "b" * 201])
def test_init_refuses_branches_it_cannot_write_safely(cli, tmp_path, branch):
    root = tmp_path / "repo"
    d.git_repo(root, 1)
    before = listing(root)
    one_error(cli("init", str(root), f"--branch={branch}"), "--branch", "allowed:")
    assert listing(root) == before


@pytest.mark.parametrize("url", ['https://example.org/a"b', "javascript:alert(1)",
                                 "https://a b", "https://x/<script>", "ftp://x"])
def test_init_refuses_urls_it_would_write_unsafely(cli, tmp_path, url):
    root = tmp_path / "repo"
    d.git_repo(root, 1)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "p"\nurls = {{Repository = {json.dumps(url)}}}\n'
    )
    before = listing(root)
    one_error(cli("init", str(root)), "project URL", "allowed:")
    assert listing(root) == before


def test_init_refuses_a_project_name_with_a_control_character(cli, tmp_path):
    root = tmp_path / "repo"
    d.git_repo(root, 1)
    (root / "pyproject.toml").write_text('[project]\nname = "a\\nb"\n')
    one_error(cli("init", str(root)), "project name", "one line")


def test_generated_files_of_a_hostile_project_import_nothing_injected(cli, tmp_path):
    """Through the command: a quote-laden project name, then the generated suite is imported
    (only its docstring holds the name) and asv.conf.json and the workflows parse."""
    root = tmp_path / "repo"
    d.git_repo(root, 1)
    marker = tmp_path / "pwned"
    name = f'x"""; open({str(marker)!r}, "w"); """'
    (root / "pyproject.toml").write_text(f"[project]\nname = {json.dumps(name)}\n")
    assert cli("init", str(root)).code == 0
    src = (root / "benchmarks" / "bench_attention.py").read_text()
    compile(src, "bench_attention.py", "exec")
    tree = ast.parse(src)
    assert name in ast.get_docstring(tree)
    assert not any(isinstance(n, ast.Call) and getattr(n.func, "id", "") == "open"
                   for n in ast.walk(tree))
    assert read_asv_conf(str(root / "asv.conf.json"))["project"] == name
    for wf in (root / ".github" / "workflows").glob("*.yml"):
        yaml.safe_load(wf.read_text())
    assert not marker.exists()


# --------------------------------------------------------------- escapers -----
def test_escapers_round_trip():
    for value in [
        'a"b',
        "a\\b",
        "x\ny\u2028z",
        "\x1b[2J",
        "é",
        "'",
        '"""',
        "\U0001f600",
        "\x7f\x85",
    ]:
        assert json.loads(escape.json_string(value)) == value
        assert yaml.safe_load("v: " + escape.yaml_string(value))["v"] == value
        assert ast.literal_eval(escape.python_string(value)) == value
        assert tomllib.loads("v = " + escape.toml_string(value))["v"] == value
        assert ast.literal_eval('"""' + escape.docstring_text(value) + '"""') == value
        assert "\n" not in escape.comment_text(value) and "\x1b" not in escape.terminal(value)
    assert escape.github_expression_string("a'b") == "'a''b'"


def test_terminal_output_carries_no_control_characters(cli, tmp_path, json_file, v1_report,
                                                       result_entry):
    evil = "sdpa\x1b[2J\x1b]0;owned\x07\r\nfake"
    report = v1_report([result_entry(evil, "cfg\x1b[31m", 1.0, 1.0)])
    path = json_file("r.json", report)
    res = cli("compare", str(path), "--baseline", str(path))
    assert res.code == 0 and "\x1b" not in res.out and "\x07" not in res.out and "\r" not in res.out
    assert "\\x1b[2J" in res.out
    res = cli("compare", str(path), "--baseline", str(path), "--format", "markdown")
    assert "\x1b" not in res.out
    assert "\x1b" not in md.text(evil) and "\x1b" not in md.code(evil)
    res = cli("compare", str(tmp_path / "no\x1b[31mpe\nx.json"), "--baseline", str(path))
    one_error(res, "\\x1b[31m")


def test_exception_texts_in_reports_name_the_home_as_tilde(monkeypatch):
    home = "/home/ann"
    monkeypatch.setenv("HOME", home)
    text = f"OSError: [Errno 2] No such file: '{home}/work/k.py' (also {home}x/y)"
    assert (
        names.home_to_tilde(text)
        == "OSError: [Errno 2] No such file: '~/work/k.py' (also /home/annx/y)"
    )
    report = build_report([], {"python": f"{home}/.venv/bin/python"}, None,
                          {"note": f"{home}/a"})
    assert home not in json.dumps(report) and "~/a" in json.dumps(report)


def test_name_validators_say_what_is_allowed():
    for fn, bad in ((names.machine, "a/b"), (names.branch, "a b"), (names.url, "ftp://x")):
        with pytest.raises(UsageError, match="allowed"):
            fn(bad)
