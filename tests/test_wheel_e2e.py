"""The built wheel, alone: what a user gets from `pip install attnperf`.

One venv for the module holds only the wheel (built from the sdist of this tree, as the release
workflow builds it) and its dependencies, with the CPU PyTorch of constraints/cpu.txt.  In it:
`attnperf --version`; a small `attnperf run`; and the README's "Track your own kernels" flow in
a new git repository whose package registers one plain-PyTorch float32 kernel (`attnperf init`,
an A/A `attnperf ci bench` that exits clean, a commit making the kernel 2x slower that it flags).
Then the README's install lines, the GitHub URL swapped for a local clone: `pip install .`
from a fresh clone, and `pip install "attnperf @ git+file://<clone>@v<version>"` after tagging
that version in a temporary clone.  Slow (a venv with PyTorch, real asv runs): minutes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import attnperf
from support import REPO
from support.dists import PINNED, VERSION, build_dist, git, snapshot
from support.plugin import make_plugin_repo, readme_commands

pytestmark = pytest.mark.slow

CONSTRAINTS = REPO / "constraints" / "cpu.txt"
# The README's install lines (docs: "Install"), with the URL a test swaps for a local clone.
URL = "https://github.com/attnperf/attnperf"
CLONE_LINE = f"git clone {URL} && cd attnperf && python -m pip install ."
TAG_LINE = f'python -m pip install "attnperf @ git+{URL}@v{VERSION}"'


class Venv:
    def __init__(self, root: Path):
        self.root = root
        self.bin = root / "bin"
        self.python = str(self.bin / "python")

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, VIRTUAL_ENV=str(self.root),
                   PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}", **extra)
        env.pop("PYTHONPATH", None)
        return env

    def sh(self, cmd: str, cwd: Path, timeout: int = 900, **extra: str):
        proc = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=self.env(**extra),
                              capture_output=True, text=True, timeout=timeout)
        return proc.returncode, proc.stdout + proc.stderr

    def pip(self, *args: str, cwd: Path = REPO, timeout: int = 900) -> str:
        proc = subprocess.run([self.python, "-m", "pip", *args], cwd=cwd, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    def installed(self) -> dict:
        """Where the venv's attnperf comes from: version, module file, PEP 610 direct_url."""
        code = ("import importlib.metadata as m, json, attnperf; d = m.distribution('attnperf');"
                "print(json.dumps({'version': d.version, 'file': attnperf.__file__,"
                "'attr': attnperf.__version__, 'direct_url': json.loads("
                "d.read_text('direct_url.json') or 'null')}))")
        proc = subprocess.run([self.python, "-c", code], cwd=self.root, env=self.env(),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """This tree as a git repository (the stand-in for github.com/attnperf/attnperf)."""
    origin = tmp_path_factory.mktemp("origin") / "attnperf"  # `git clone` names the clone so
    origin.mkdir()
    return snapshot(origin)


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory) -> Path:
    pytest.importorskip("build", reason="the test extra has build: pip install -e '.[test]'")
    clone = tmp_path_factory.mktemp("build") / "attnperf"
    git(clone.parent, "clone", "-q", str(source), str(clone))
    return build_dist(clone, tmp_path_factory.mktemp("dist"))["wheel"]


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Venv:
    """A fresh venv holding the wheel and its dependencies only (CPU PyTorch)."""
    root = tmp_path_factory.mktemp("wheel-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
    v = Venv(root)
    # a current pip, as the release workflow and the docs use (the pip that venv bundles with
    # an older Python rejects a git+file:/// URL, which has no host)
    v.pip("install", "-q", "--upgrade", "pip")
    v.pip("install", "-q", "-c", str(CONSTRAINTS), str(wheel))
    return v


@pytest.fixture
def wheel_restored(venv, wheel):
    """For a test that replaces the venv's attnperf: the wheel's attnperf back afterwards."""
    yield venv
    venv.pip("install", "-q", "--force-reinstall", "--no-deps", str(wheel))


# ------------------------------------------------------------- the wheel ---
def test_version_from_the_installed_wheel(venv, wheel):
    code, out = venv.sh("attnperf --version", cwd=venv.root)
    assert (code, out.strip()) == (0, f"attnperf {VERSION}")
    info = venv.installed()
    assert info["version"] == info["attr"] == VERSION == attnperf.__version__
    assert info["file"].startswith(str(venv.root)), info  # not this checkout's src/
    assert info["direct_url"]["url"] == wheel.as_uri(), info
    assert "dir_info" not in info["direct_url"]  # a wheel, not an editable install


def test_run_a_small_cpu_problem(venv, tmp_path):
    code, out = venv.sh("attnperf run --batch 1 --heads 2 --seq 16 --dim 8 --dtype fp32 "
                        "--device cpu --budget-ms 20 -o report.json", cwd=tmp_path)
    assert code == 0, out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["environment"]["attnperf_version"] == VERSION
    assert report["results"] and {r["status"] for r in report["results"]} <= {"ok", "unavailable",
                                                                              "skipped"}
    assert any(r["status"] == "ok" and r["kernel_name"] == "sdpa" for r in report["results"])


def _flagged(out: str) -> list[str]:
    """The rows `attnperf ci bench` flags, one line each saying why."""
    return [line for line in out.splitlines() if line.startswith("[attnperf ci bench] flagged:")]


def test_init_and_the_readme_flow_in_a_plugin_repository(venv, tmp_path):
    """README "Track your own kernels", with attnperf from the wheel: install the user's
    package, init, commit, asv machine, a 2x slower kernel flagged and nothing else (the
    flow's A/A is test_init's, from the source tree)."""
    repo = make_plugin_repo(tmp_path)
    cmds = readme_commands()
    # attnperf is the wheel already (the README installs it first); the flow's first line
    # installs the user's package with its kernels' entry point
    assert cmds[0].startswith("python -m pip install") and cmds[0].endswith("-e ."), cmds[0]
    venv.pip("install", "-q", "-e", ".", cwd=repo)
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "ATTNPERF_ASV_DEVICE": "cpu", "GIT_AUTHOR_NAME": "t",
           "GIT_COMMITTER_NAME": "t", "GIT_AUTHOR_EMAIL": "t@attnperf.invalid",
           "GIT_COMMITTER_EMAIL": "t@attnperf.invalid"}

    code, out = venv.sh(cmds[1], cwd=repo, **env)  # attnperf init
    assert code == 0 and "wrote  asv.conf.json" in out, out
    workflow = (repo / ".github" / "workflows" / "pr.yml").read_text()
    assert f"'{PINNED}'" in workflow and 'pip install "$ATTNPERF_REQUIREMENT" -e .' in workflow
    text = (repo / "pyproject.toml").read_text()
    (repo / "pyproject.toml").write_text(
        re.sub(r"^problems = .*$", 'problems = ["cpu_gqa"]', text, flags=re.M))  # one problem
    for cmd in cmds[2:4]:  # commit, asv machine
        code, out = venv.sh(cmd, cwd=repo, **env)
        assert code == 0, (cmd, out)
    kernel = repo / "toyattn" / "__init__.py"
    kernel.write_text(kernel.read_text().replace("REPEAT = 1", "REPEAT = 2"))
    code, out = venv.sh("git commit -qam 'toy: compute twice' && " + cmds[4], cwd=repo, **env)
    assert code == 1, out
    flagged = _flagged(out)
    assert flagged and all(" toy_attn/" in line for line in flagged), out
    assert any("track_device_time" in line for line in flagged), out


# ------------------------------------------------ the README's install lines ---
def test_pip_install_dot_from_a_fresh_clone(wheel_restored, source, tmp_path):
    venv = wheel_restored
    venv.pip("uninstall", "-q", "-y", "attnperf")
    line = CLONE_LINE.replace(URL, source.as_uri())
    code, out = venv.sh(line, cwd=tmp_path)
    assert code == 0, out
    info = venv.installed()
    assert info["version"] == VERSION and info["file"].startswith(str(venv.root)), info
    assert info["direct_url"]["url"] == (tmp_path / "attnperf").as_uri(), info
    code, out = venv.sh("attnperf --version", cwd=tmp_path)
    assert (code, out.strip()) == (0, f"attnperf {VERSION}")


def test_pip_install_pinned_to_a_release_tag_from_git(wheel_restored, source, tmp_path):
    venv = wheel_restored
    clone = tmp_path / "attnperf"
    git(tmp_path, "clone", "-q", str(source), str(clone))
    git(clone, "tag", f"v{VERSION}")
    tagged = git(clone, "rev-parse", "HEAD")
    # main moves on past the tag: the pin must still install the tagged commit
    init = clone / "src" / "attnperf" / "__init__.py"
    init.write_text(
        init.read_text().replace(f'__version__ = "{VERSION}"', '__version__ = "99.0.0"')
    )
    git(clone, "commit", "-qam", "after the release")
    venv.pip("uninstall", "-q", "-y", "attnperf")
    line = TAG_LINE.replace(f"git+{URL}", f"git+{clone.as_uri()}")
    code, out = venv.sh(line, cwd=tmp_path)
    assert code == 0, out
    info = venv.installed()
    assert info["version"] == VERSION and info["file"].startswith(str(venv.root)), info
    vcs = info["direct_url"]
    assert vcs["url"] == clone.as_uri() and vcs["vcs_info"]["commit_id"] == tagged, vcs
    assert vcs["vcs_info"]["requested_revision"] == f"v{VERSION}"
    code, out = venv.sh("attnperf --version", cwd=tmp_path)
    assert (code, out.strip()) == (0, f"attnperf {VERSION}")
