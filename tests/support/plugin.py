"""A plugin repository: a user's package that registers one plain-PyTorch float32 kernel
(``toy_attn``) through the ``attnperf.kernels`` entry point, committed on ``main``; and the
README's "Track your own kernels" commands run in it (tests/test_init.py, tests/test_wheel_e2e.py).

``REPEAT = 1`` in the kernel's module is the knob a test turns to make it 2x slower,
``SHARE = 0.0`` the one for 1 + SHARE times the work (0.3: 1.3x).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from support import REPO


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def pyproject(name: str, entry: str, target: str, package_dir: str = "") -> str:
    """A setuptools pyproject.toml of package ``name`` registering ``entry = target`` in the
    ``attnperf.kernels`` entry-point group (``package_dir``: a src layout's table line)."""
    return f'''[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.1.0"

[project.entry-points."attnperf.kernels"]
{entry} = "{target}"

[tool.setuptools]
packages = ["{name}"]
{package_dir}
'''


PLUGIN_PYPROJECT = pyproject("toyattn", "toy", "toyattn:toy_attn")

PLUGIN_KERNEL = '''\
"""A user's attention kernel: plain PyTorch, registered through an entry point."""
import math

import torch

import attnperf

REPEAT = 1
SHARE = 0.0


def _attend(q, k, v, causal, scale):
    s = torch.matmul(q, k.transpose(-2, -1)).float() * scale
    if causal:
        keep = torch.ones(s.shape[-2:], dtype=torch.bool, device=q.device).tril()
        s = s.masked_fill(~keep, float("-inf"))
    return torch.matmul(torch.softmax(s, dim=-1).to(v.dtype), v)


@attnperf.kernel(name="toy_attn", family="toy", devices=["cpu", "cuda"],
                 dtypes=["float32", "float16", "bfloat16"])
def toy_attn(q, k, v, *, causal, scale):
    """toy: matmul, softmax, matmul"""
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
    for _ in range(REPEAT):
        out = _attend(q, k, v, causal, scale)
    b, h, sq, d = q.shape
    n = math.ceil(SHARE * b * h)
    if n:  # the first SHARE of the batch x head slices computed once more
        _attend(*(x.reshape(1, b * h, -1, d)[:, :n] for x in (q, k, v)), causal, scale)
    return out
'''


def make_plugin_repo(root: Path) -> Path:
    """``root/toyattn-repo``: the plugin package, one commit on ``main``."""
    repo = root / "toyattn-repo"
    (repo / "toyattn").mkdir(parents=True)
    (repo / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (repo / "toyattn" / "__init__.py").write_text(PLUGIN_KERNEL)
    _git(repo, "init", "-q")
    _git(repo, "symbolic-ref", "HEAD", "refs/heads/main")
    _git(repo, "config", "user.name", "attnperf-test")
    _git(repo, "config", "user.email", "test@attnperf.invalid")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "toy attention kernel")
    return repo


def readme_commands() -> list[str]:
    """The commands of the README's "Track your own kernels" block, comments dropped."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Track your own kernels"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
