"""attnperf as a package: one version (attnperf.__version__) everywhere, the sdist and wheel
that `python -m build` makes (metadata, `twine check`, every template, schema and static file
of the package inside), the release workflow's shape, and the rule that no workflow -- attnperf's
own or one `attnperf init` writes -- installs attnperf by a name another index could answer.

The wheel's own end-to-end tier (a fresh venv holding only the wheel) is test_wheel_e2e.py."""

from __future__ import annotations

import email.parser
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement

from attnperf import scaffold
from attnperf.io.project_config import read_toml
from support import REPO
from support.dists import PINNED, VERSION, build_dist, snapshot
from support.ghexpr import evaluate, interpolate

WORKFLOWS = REPO / ".github" / "workflows"
PYPROJECT = read_toml(REPO / "pyproject.toml")
# Non-Python files the package reads at run time (templates, schemas, page assets).
PACKAGE_DATA = ["io/schemas", "render/static", "render/templates", "scaffold/templates", "site/www"]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("build", reason="the test extra has build: pip install -e '.[test]'")
    src = snapshot(tmp_path_factory.mktemp("attnperf-src"))
    return build_dist(src, tmp_path_factory.mktemp("dist"))


def _metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        text = z.read(f"attnperf-{VERSION}.dist-info/METADATA").decode()
    return email.parser.Parser().parsestr(text)


# ------------------------------------------------------------------ version ---
def test_the_version_has_one_source():
    project = PYPROJECT["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "attnperf.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION), VERSION  # a release tag v<VERSION> exists


def test_version_flag_and_reports_carry_it():
    proc = subprocess.run([sys.executable, "-m", "attnperf", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert (proc.returncode, proc.stdout.strip()) == (0, f"attnperf {VERSION}")
    from attnperf.measure.device import fingerprint
    assert fingerprint("cpu")["attnperf_version"] == VERSION


# ------------------------------------------------------------ sdist, wheel ---
def _package_files(exts=None) -> list[str]:
    root = REPO / "src" / "attnperf"
    return sorted(str(p.relative_to(root.parent)) for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts
                  and (exts is None or p.suffix in exts))


def test_wheel_holds_the_package_and_all_its_data(dist):
    with zipfile.ZipFile(dist["wheel"]) as z:
        names = set(z.namelist())
    data = [
        f for f in _package_files() if any(f.startswith(f"attnperf/{d}/") for d in PACKAGE_DATA)
    ]
    assert len(data) >= 17 and any(f.endswith(".yml") for f in data)
    missing = [f for f in _package_files() if f not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert "attnperf/py.typed" in names  # PEP 561: type checkers read attnperf's annotations
    extra = [n for n in names if not n.startswith(("attnperf/", f"attnperf-{VERSION}.dist-info/"))]
    assert not extra, f"the wheel also installs {extra}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_sdist_builds_the_wheel_and_leaves_the_repo_bound_tests_out(dist):
    with tarfile.open(dist["sdist"]) as t:
        tops = {n.split("/", 1)[0] for n in t.getnames()}
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert tops == {f"attnperf-{VERSION}"}
    assert {"pyproject.toml", "README.md", "LICENSE", "PKG-INFO"} <= names
    missing = [f for f in _package_files() if f"src/{f}" not in names]
    assert not missing, f"not in the sdist: {missing}"
    assert not [n for n in names if n.startswith("tests/")]


def test_wheel_metadata_matches_pyproject(dist):
    meta = _metadata(dist["wheel"])
    project = PYPROJECT["project"]
    assert (meta["Name"], meta["Version"]) == ("attnperf", VERSION)
    assert meta["License-Expression"] == "MIT" and meta["Requires-Python"] == ">=3.10"
    assert meta["Description-Content-Type"] == "text/markdown"
    base = [str(Requirement(r)) for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    assert sorted(base) == sorted(str(Requirement(r)) for r in project["dependencies"])
    assert f"Repository, {scaffold.REPOSITORY}" in meta.get_all("Project-URL")
    with zipfile.ZipFile(dist["wheel"]) as z:
        eps = z.read(f"attnperf-{VERSION}.dist-info/entry_points.txt").decode()
    assert "[console_scripts]\nattnperf = attnperf.cli:main" in eps
    for name, ref in project["entry-points"]["attnperf.kernels"].items():
        assert f"{name} = {ref}" in eps


def test_twine_check_passes(dist):
    pytest.importorskip("twine", reason="the test extra has twine: pip install -e '.[test]'")
    proc = subprocess.run([sys.executable, "-m", "twine", "check", "--strict",
                           str(dist["sdist"]), str(dist["wheel"])],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2, proc.stdout


# -------------------------------------------------------- release workflow ---
def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def _runs(job: dict) -> str:
    return "\n".join(s.get("run", "") for s in job.get("steps", []))


def test_release_workflow_builds_proves_then_publishes_without_a_token():
    wf = _load(WORKFLOWS / "release.yml")
    assert wf["on"] == {"push": {"tags": ["v*"]}} and wf["permissions"] == {}
    build, smoke, publish = (wf["jobs"][k] for k in ("build", "smoke", "publish"))
    # build: sdist + wheel, twine, the tag names the version; the tools pinned as the test extra
    assert "python -m build" in _runs(build) and "twine check --strict dist/*" in _runs(build)
    assert 'version="${TAG#v}"' in _runs(build)
    pins = {Requirement(r).name: str(Requirement(r).specifier)
            for r in PYPROJECT["project"]["optional-dependencies"]["test"]}
    for tool in ("build", "twine"):
        assert pins[tool].startswith("==") and f'"{tool}{pins[tool]}"' in _runs(build), tool
    # smoke: the built wheel alone in a fresh venv with the CPU PyTorch, then the CLI
    runs = _runs(smoke)
    assert smoke["needs"] == "build"
    assert 'python -m venv "$RUNNER_TEMP/venv"' in runs
    assert "pip install -c constraints/cpu.txt dist/*.whl" in runs
    for cmd in ('test "$(attnperf --version)" = "attnperf ${TAG#v}"', "attnperf run --batch 1",
                "attnperf init"):
        assert cmd in runs, cmd
    # publish: after both, the only job that can mint an identity token, in the pypi environment
    assert publish["needs"] == ["build", "smoke"] and publish["environment"]["name"] == "pypi"
    assert publish["permissions"] == {"id-token": "write"}
    [step] = [s for s in publish["steps"] if "gh-action-pypi-publish" in s.get("uses", "")]
    assert "with" not in step  # no password, no token: trusted publishing
    for name, job in wf["jobs"].items():
        if name != "publish":
            assert "id-token" not in (job.get("permissions") or {}), name
            assert "environment" not in job, name


# ------------------------------------------ how workflows install attnperf ---
def _pip_installs(script: str):
    """The argument lists of the `pip install` commands of a shell script."""
    script = re.sub(r"\\\n\s*", " ", script)
    for line in script.splitlines():
        line = line.split(" #", 1)[0].strip()
        m = re.search(r"\bpip install (.*)$", line)
        if m and not line.startswith("#"):
            yield shlex.split(m.group(1))


def _with_env(arg: str, env: dict[str, str]) -> str:
    """``arg`` with its $VARIABLES replaced by their env: values, a ${{ }} value read as it is
    when no repository variable overrides it."""
    return re.sub(r"\$\{?(\w+)\}?",
                  lambda m: interpolate(env[m.group(1)], {"vars": {}}) if m.group(1) in env
                  else m.group(0), arg)


LOCAL = re.compile(r"^(\.|\.\[[\w,]+\]|dist/\*\.whl)$")  # a checkout or the wheel this run built


def install_problems(text: str) -> list[str]:
    """Every way a workflow installs attnperf that is not pinned to attnperf's own repository
    at this release.  A local path is what the run owns: in attnperf's workflows `.` is
    attnperf's checkout and dist/*.whl the wheel the run built; in a generated one `.` is the
    user's package."""
    data = yaml.safe_load(text)
    problems = []
    top_env = data.get("env") or {}
    for name, job in data["jobs"].items():
        for step in job.get("steps", []):
            env = {k: str(v) for k, v in {**top_env, **(job.get("env") or {}),
                                          **(step.get("env") or {})}.items()}
            for args in _pip_installs(step.get("run", "")):
                it = iter(args)
                for arg in it:
                    if arg in ("-c", "--constraint", "-r"):
                        next(it)
                    if arg.startswith("-"):
                        continue
                    arg = _with_env(arg, env)
                    if LOCAL.match(arg):
                        continue
                    try:
                        req = Requirement(arg)
                    except InvalidRequirement:
                        problems.append(f"{name}: cannot read {arg!r}")
                        continue
                    if req.name.lower() == "attnperf" and (
                        str(req) != PINNED or req.url != f"git+{scaffold.REPOSITORY}@v{VERSION}"
                    ):
                        problems.append(f"{name}: installs {arg!r}")
    return problems


def _generated(tmp_path) -> dict[str, str]:
    project = scaffold.Project(root=tmp_path, name="toyattn", branch="main",
                               url="https://github.com/o/toyattn")
    return {rel: text for rel, text in scaffold.render(project).items()
            if rel.startswith(".github/workflows/")}


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_project_workflows_install_attnperf_only_from_what_they_own(path):
    assert install_problems(path.read_text()) == []
    data = yaml.safe_load(path.read_text())
    installs = [a for j in data["jobs"].values() for s in j.get("steps", [])
                for a in _pip_installs(s.get("run", ""))]
    assert bool(installs) == (path.name != "pr-comment.yml")  # the check saw them


def test_generated_workflows_install_attnperf_pinned_to_this_release(tmp_path):
    generated = _generated(tmp_path)
    installing = []
    for rel, text in generated.items():
        assert install_problems(text) == [], rel
        data = yaml.safe_load(text)
        runs = [s.get("run", "") for j in data["jobs"].values() for s in j.get("steps", [])]
        if any("pip install" in r for r in runs):
            installing.append(rel)
            # one setting: the repository variable, else this release's tag
            expr = data["env"]["ATTNPERF_REQUIREMENT"]
            assert expr == "${{ vars.ATTNPERF_REQUIREMENT || '" + PINNED + "' }}", rel
            assert evaluate(expr[3:-2], {"vars": {}}) == PINNED
            other = "attnperf @ git+https://github.com/attnperf/attnperf@0123abc"
            assert evaluate(expr[3:-2], {"vars": {"ATTNPERF_REQUIREMENT": other}}) == other
            # attnperf only as the setting says: with this repository's package (the jobs
            # that measure it), or alone (the jobs that merge shards' result files)
            for r in runs:
                for args in _pip_installs(r):
                    assert args in (["--upgrade", "pip"], ["$ATTNPERF_REQUIREMENT", "-e", "."],
                                    ["$ATTNPERF_REQUIREMENT"]), args
    assert sorted(installing) == [".github/workflows/main.yml", ".github/workflows/pr.yml"]


@pytest.mark.parametrize("bad", [
    'python -m pip install attnperf -e .',
    'python -m pip install "attnperf==0.2.0" -e .',
    'python -m pip install "attnperf>=0.2" -e .',
    'python -m pip install "attnperf @ git+https://github.com/mallory/attnperf@v0.2.0" -e .',
    'python -m pip install "attnperf @ git+https://github.com/attnperf/attnperf" -e .',
    'python -m pip install "attnperf @ git+https://github.com/attnperf/attnperf@main" -e .',
])
def test_the_install_check_catches_an_unpinned_or_foreign_attnperf(tmp_path, bad):
    text = _generated(tmp_path)[".github/workflows/pr.yml"]
    good = 'python -m pip install "$ATTNPERF_REQUIREMENT" -e .'
    assert good in text
    assert install_problems(text.replace(good, bad)) != []
    # ... and the variable's default, when it is what goes wrong
    unpinned = text.replace(f"'{PINNED}'", "'attnperf'")
    assert install_problems(unpinned) != []


def test_the_override_is_documented_where_the_variable_is_set(tmp_path):
    """The generated file says how to move the pin: the comment above the variable."""
    text = _generated(tmp_path)[".github/workflows/pr.yml"]
    head = text[:text.index("  ATTNPERF_REQUIREMENT:")]
    assert "repository" in head[-600:] and "variable ATTNPERF_REQUIREMENT" in head[-600:]


def test_release_smoke_script_runs(tmp_path):
    """The smoke step of release.yml, run here against this environment's attnperf (standing
    in for the venv that holds the built wheel): --version, the small run, init."""
    wf = _load(WORKFLOWS / "release.yml")
    [step] = [s for s in wf["jobs"]["smoke"]["steps"] if "attnperf init" in s.get("run", "")]
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "attnperf").exists():
        pytest.skip("no attnperf command beside this Python (pip install -e .)")
    (tmp_path / "venv").symlink_to(bin_dir.parent, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(TAG=f"v{VERSION}", RUNNER_TEMP=str(tmp_path))
    proc = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "project" / "asv.conf.json").is_file()
    # ... and it fails when the tag and the version differ
    env["TAG"] = "v99.0.0"
    proc = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0


def test_release_refuses_a_tag_that_is_not_the_version(dist, tmp_path):
    wf = _load(WORKFLOWS / "release.yml")
    [step] = [s for s in wf["jobs"]["build"]["steps"] if s.get("name", "").startswith("The tag")]
    (tmp_path / "dist").mkdir()
    for path in dist.values():
        shutil.copy2(path, tmp_path / "dist")

    def run(tag):
        return subprocess.run(["bash", "-e", "-c", step["run"]], env=dict(os.environ, TAG=tag),
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)

    assert run(f"v{VERSION}").returncode == 0
    wrong = run("v0.0.1")
    assert (
        wrong.returncode == 1 and "::error title=Tag and version differ::tag v0.0.1" in wrong.stdout
    )
