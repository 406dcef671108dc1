"""The test suite's own rules: shared helpers come from ``support``, and the strict settings
stay on.

A test file that imports another test file runs that file's module-level code again (and, for
pytest, makes its fixtures and tests appear twice or vanish with a rename); one that imports
``conftest`` gets a second copy of it under another name.  What two test files share lives in
tests/support/; conftest.py keeps the fixtures.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # the project's own reader before Python 3.11 (a dependency there)
    import tomli as tomllib

TESTS = Path(__file__).resolve().parent
PYPROJECT = TESTS.parent / "pyproject.toml"


# ------------------------------------------------------------- imports -----
def _imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in ``tree``, at any depth: ``import x.y``, ``from x import
    y`` (``x``; ``tests.y`` for ``from tests import y``; ``y`` for ``from . import y``), and
    ``__import__("x")`` / ``importlib.import_module("x")`` with a literal name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.module:
                yield node.lineno, node.module
            if node.module == "tests" or (node.level and not node.module):
                for alias in node.names:
                    yield node.lineno, f"tests.{alias.name}"
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else \
                func.attr if isinstance(func, ast.Attribute) else ""
            if name in ("__import__", "import_module"):
                yield node.lineno, node.args[0].value


def _is_test_module(module: str) -> bool:
    """A test file or conftest as an import target (``test_x``, ``conftest``, ``tests.test_x``)."""
    parts = module.split(".")
    if parts[0] == "tests":
        parts = parts[1:]
    return bool(parts) and (parts[0] == "conftest" or parts[0].startswith("test_"))


def _python_files() -> list[Path]:
    return sorted(TESTS.glob("*.py")) + sorted((TESTS / "support").glob("*.py"))


def import_violations(files: list[Path]) -> list[str]:
    """``file:line imports module`` for every import of a test module or conftest."""
    out = []
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, module in _imported_modules(tree):
            if _is_test_module(module):
                where = path.relative_to(TESTS) if path.is_relative_to(TESTS) else path.name
                out.append(f"{where}:{line} imports {module}")
    return sorted(set(out))


def test_no_test_file_imports_another_test_file_or_conftest():
    files = _python_files()
    assert len(files) > 50 and TESTS / "conftest.py" in files
    assert TESTS / "support" / "__init__.py" in files and TESTS / "test_cpu_load.py" in files
    bad = import_violations(files)
    assert not bad, ("move what these share into tests/support/ (fixtures: conftest.py):\n"
                     + "\n".join(bad))


@pytest.mark.parametrize("source, found", [
    ("from test_asv_e2e import _commit", True),
    ("import conftest", True),
    ("from conftest import FAKE_CPU_CEILINGS", True),
    ("def f():\n    from test_passes import wrong_dk_only", True),
    ("import test_ci_bench  # noqa: E402", True),
    ("x = __import__('test_passes')", True),
    ("import importlib\nm = importlib.import_module('tests.test_cli')", True),
    ("from tests import test_cli", True),
    ("from . import conftest", True),
    ("from support import asvdata as d", False),
    ("from support.realasv import CpuPrJob", False),
    ("import faultkernels", False),
    ("import testinfra", False),
    ("from attnperf.cli import main", False),
])
def test_the_import_check_sees_every_form(tmp_path, source, found):
    path = tmp_path / "test_probe.py"
    path.write_text(source + "\n")
    assert bool(import_violations([path])) is found


def test_support_is_a_package_of_helpers_not_tests():
    """Nothing under tests/support/ is collected: no test module, no conftest, no test
    function; and the helper modules that used to sit beside the test files are gone."""
    support = TESTS / "support"
    assert (support / "__init__.py").is_file()
    assert not list(support.glob("test_*.py")) and not (support / "conftest.py").exists()
    for path in support.glob("*.py"):
        tree = ast.parse(path.read_text())
        tests = [n.name for n in tree.body
                 if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name.startswith("test")]
        assert not tests, (path.name, tests)
    # Beside the test files only conftest, the fault kernels (imported by reference in worker
    # subprocesses) and the mutation-testing script remain.
    helpers = {p.name for p in TESTS.glob("*.py") if not p.name.startswith("test_")}
    assert helpers == {"conftest.py", "faultkernels.py", "_mutation.py"}, helpers


# ---------------------------------------------------------------- config -----
def _ini() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["tool"]["pytest"]["ini_options"]


def test_strict_settings_stay_on():
    """Unknown markers and config keys fail the run, warnings are errors, every test has a
    time limit (from a required plugin, pinned in the test extra), and the report lists skips
    and the slowest tests."""
    ini = _ini()
    for flag in ("--strict-markers", "--strict-config", "-ra", "--durations=25"):
        assert flag in ini["addopts"], flag
    assert ini["filterwarnings"][0] == "error"
    assert float(ini["timeout"]) == 300
    assert any(p.startswith("pytest-timeout") for p in ini["required_plugins"])
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert "pytest-timeout==2.4.0" in extras["test"]
    markers = {m.split(":")[0] for m in ini["markers"]}
    assert markers == {"slow", "gpu"}


def test_the_running_session_is_strict(pytestconfig):
    """What pyproject.toml says is what this session runs with."""
    assert pytestconfig.getoption("strict_markers") and pytestconfig.getoption("strict_config")
    assert pytestconfig.pluginmanager.hasplugin("timeout")
    assert float(pytestconfig.getini("timeout")) == 300


def test_every_warning_exception_says_why():
    """Each entry after "error" in filterwarnings comes under a comment giving its reason
    (entries that share one reason may follow one comment)."""
    text = PYPROJECT.read_text()
    block = re.search(r"^filterwarnings = \[\n(.*?)^\]", text, re.M | re.S)
    assert block, "no filterwarnings list in pyproject.toml"
    lines = [line.strip() for line in block.group(1).splitlines() if line.strip()]
    entries = [i for i, line in enumerate(lines) if line.startswith('"')]
    assert lines[entries[0]] == '"error",' and entries[0] == 0
    for i in entries[1:]:
        above = i - 1
        while lines[above].startswith('"') and above > 0:
            above -= 1
        assert lines[above].startswith("#"), f"no reason given for {lines[i]}"


def test_a_longer_time_limit_says_why():
    """A test that needs more than the default limit carries @pytest.mark.timeout(N) with
    a comment giving the reason on the same line."""
    found = 0
    for path in sorted(TESTS.glob("test_*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"\s*@pytest\.mark\.timeout\(", line):
                found += 1
                assert re.search(r"\)\s+#\s*\S", line), f"{path.name}:{n}: say why: {line}"
    assert found  # the slow tier has some
