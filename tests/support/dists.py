"""attnperf's own distributions, built the way the release workflow builds them: a snapshot of
the working tree as a fresh clone would hold it, its sdist, and the wheel built from that sdist
(tests/test_packaging.py, tests/test_wheel_e2e.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import attnperf
from attnperf import scaffold
from support import REPO

VERSION = attnperf.__version__
# What a generated workflow installs: attnperf pinned to this release's tag.
PINNED = f"attnperf @ git+{scaffold.REPOSITORY}@v{VERSION}"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=attnperf-test",
                           "-c", "user.email=test@attnperf.invalid", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def snapshot(dest: Path) -> Path:
    """The repository as a fresh clone of it would hold it, with the working tree's edits: the
    tracked and untracked-but-not-ignored files, committed into a new git repository."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, check=True, capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git(dest, "init", "-q")
    git(dest, "symbolic-ref", "HEAD", "refs/heads/main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "attnperf snapshot")
    return dest


def build_dist(source: Path, out: Path) -> dict[str, Path]:
    """`python -m build` of ``source`` (the sdist, then the wheel built from that sdist, as the
    release workflow does): {"sdist": path, "wheel": path}."""
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [sdist] = out.glob("attnperf-*.tar.gz")
    [wheel] = out.glob("attnperf-*-py3-none-any.whl")
    return {"sdist": sdist, "wheel": wheel}
