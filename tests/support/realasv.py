"""Real asv on a temporary clone of this repository (CPU): the slow tier's shared machinery.

Every test that runs asv for real works in a clone whose asv.conf.json points at the session's
asv environment (``ENV_DIR``, created once, about a minute cold): asv then only builds and
installs each benchmarked commit into it.  Two asv processes must never build in one
environment, so a pytest session holds the environment's lock (:func:`env_lock`, conftest's
``asv_env_lock``) from its first real-asv test to its end; under pytest-xdist each worker has
an environment of its own.

Commits are made with a fixed author, committer and date, so the same edits on the same
parent give the same commit id in every clone: asv's wheel cache in the environment
(``build_cache_size``, keyed by commit id) then serves a commit that an earlier test of the
same session (worker) built.

:class:`CpuPrJob` is the CPU pull-request job (`attnperf ci bench --device cpu`) on a clone,
with one core kept busy; :meth:`CpuPrJob.aa` is its A/A run, which two tests of
tests/test_cpu_load.py judge (conftest's ``cpu_pr``: run once per session).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import REPO, write_canned_ceilings

BIN = Path(sys.executable).parent
ASV = shutil.which("asv", path=str(BIN)) or shutil.which("asv")
# One environment per pytest-xdist worker ("main" without xdist): two asv processes must never
# build in one environment, and each worker is a session of its own.
ENV_DIR = (Path(os.environ.get("ATTNPERF_TEST_ASV_ENV", REPO / ".asv" / "test-env"))
           / os.environ.get("PYTEST_XDIST_WORKER", "main"))
# The documented gate: every benchmark but the views.
GATED = "^(?!.*Views)"
# The asv machine every clone describes in its HOME (results/<MACHINE>/).
MACHINE = "attnperf-test"
MACHINE_INFO = {"machine": MACHINE, "os": "Linux", "arch": "x86_64", "cpu": "test cpu",
                "num_cpu": "2", "ram": "1"}
# Fixed identity and date for the tests' commits (see the module docstring).
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "attnperf-test", "GIT_AUTHOR_EMAIL": "test@attnperf.invalid",
                "GIT_COMMITTER_NAME": "attnperf-test",
                "GIT_COMMITTER_EMAIL": "test@attnperf.invalid",
                "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
                "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00"}

Edit = Callable[[Path], None]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=dict(os.environ, **GIT_IDENTITY)).stdout.strip()


def commit(clone: Path, message: str, edit: Edit) -> str:
    """Commit ``edit``'s source change; what asv wrote into the clone's results/ (rewritten
    by every run) is never committed, so switching between the test's commits never collides."""
    edit(clone)
    git(clone, "add", "-A", "--", ".", ":(exclude)results")
    git(clone, "commit", "-q", "-m", message)
    return git(clone, "rev-parse", "HEAD")


def touch_readme(n: int) -> Edit:
    """A benign change: a comment appended to README.md (no code changes)."""
    def edit(clone: Path) -> None:
        with open(clone / "README.md", "a") as fh:
            fh.write(f"\n<!-- benign change {n} -->\n")
    return edit


def inject(marker_text: str, replacement: str | None = None,
           append_before: str = "\nKERNELS = [") -> Edit:
    """Replace ``marker_text`` by ``replacement`` in tiled's kernel (kernels/tiled.py), or
    without a replacement insert ``marker_text`` before ``append_before``."""
    def edit(clone: Path) -> None:
        path = clone / "src" / "attnperf" / "kernels" / "tiled.py"
        src = path.read_text()
        if replacement is not None:
            assert marker_text in src
            src = src.replace(marker_text, replacement, 1)
        else:
            assert append_before in src
            src = src.replace(append_before, marker_text + append_before, 1)
        path.write_text(src)
    return edit


def slowdown(times: int) -> str:
    """Source appended to kernels/tiled.py: ``tiled_attention`` does its whole work
    ``times`` times."""
    return f"""

_fast_tiled_attention = tiled_attention


def tiled_attention(q, k, v, *, causal, scale, block_kv=BLOCK_KV):
    # INJECTED SLOWDOWN (test): the whole computation, {times} times.
    for _ in range({times}):
        out = _fast_tiled_attention(q, k, v, causal=causal, scale=scale, block_kv=block_kv)
    return out

"""


def more_work(tenths: int) -> str:
    """Source appended to kernels/tiled.py: ``tiled_attention`` computes the first
    ``tenths``/10 of its batch x head slices once more (rounded up), at least that share more
    work, counted in work, not in time (a clock read inside the kernel would let the machine's
    state decide the size of the slowdown); tiled's per-call overhead comes on top."""
    return f"""

_fast_tiled_attention = tiled_attention


def tiled_attention(q, k, v, *, causal, scale, block_kv=BLOCK_KV):
    # INJECTED SLOWDOWN (test): the first {tenths}/10 of the batch x head slices once more.
    out = _fast_tiled_attention(q, k, v, causal=causal, scale=scale, block_kv=block_kv)
    b, h, sq, d = q.shape
    group = h // k.shape[1]
    n = -(-{tenths} * b * h // 10)
    qs = q.reshape(1, b * h, sq, d)[:, :n]
    ks = k.repeat_interleave(group, dim=1).reshape(1, b * h, -1, d)[:, :n]
    vs = v.repeat_interleave(group, dim=1).reshape(1, b * h, -1, d)[:, :n]
    _fast_tiled_attention(qs, ks, vs, causal=causal, scale=scale, block_kv=block_kv)
    return out

"""


@contextlib.contextmanager
def env_lock() -> Iterator[Path]:
    """Hold the shared asv environment's lock (blocks while another process holds it); skips
    the test when asv is not installed.  Once per session: a second flock of the same file
    from this process would wait for the first forever."""
    if ASV is None:
        pytest.skip("asv is not installed (pip install -e '.[asv]')")
    ENV_DIR.mkdir(parents=True, exist_ok=True)
    with open(ENV_DIR / ".attnperf-test.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield ENV_DIR


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A fresh work directory, removed after.  Not tmp_path: a concurrent pytest session
    rotates /tmp/pytest-of-*, which would delete a clone under asv's feet."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def clone_with_shared_env(root: Path) -> tuple[Path, str]:
    """``root/repo``: a clone of this repository whose asv config uses the shared
    environment directory (results and html stay in the clone), that edit committed.
    Returns (clone, its first commit)."""
    clone = root / "repo"
    git(REPO, "clone", "-q", str(REPO), str(clone))

    def shared_env(c: Path) -> None:
        conf = c / "asv.conf.json"
        conf.write_text(conf.read_text().replace('"env_dir": ".asv/env"',
                                                 f'"env_dir": "{ENV_DIR}"'))
    return clone, commit(clone, "test: local asv env dir", shared_env)


def asv_env(root: Path, machine_key: str, kernels: str, problems: str) -> dict[str, str]:
    """The environment of asv and `attnperf` subprocesses working in ``root``'s clone: the CPU
    suite restricted to ``kernels`` x ``problems`` (ATTNPERF_ASV_*), this interpreter's PyTorch,
    a HOME whose ~/.asv-machine.json describes :data:`MACHINE`, and canned ceilings (one
    machine key: the suite runs single-threaded), so no benchmarked commit spends ~10 s
    measuring copy and matmul rates.  No PYTHONPATH and no GitHub step variables leak in."""
    home = root / "home"
    home.mkdir(exist_ok=True)
    (home / ".asv-machine.json").write_text(json.dumps({"version": 1, MACHINE: MACHINE_INFO}))
    write_canned_ceilings(root / "cache", machine_key)
    env = dict(os.environ)
    for var in ("PYTHONPATH", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        env.pop(var, None)
    env.update({"ATTNPERF_ASV_KERNELS": kernels, "ATTNPERF_ASV_PROBLEMS": problems,
                "ATTNPERF_ASV_DEVICE": "cpu", "ATTNPERF_TORCH_PYTHON": sys.executable,
                "XDG_CACHE_HOME": str(root / "cache"), "HOME": str(home),
                "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"})
    return env


# ------------------------------------------------------- the CPU PR job ------
# Its grid: tiled (the kernel the tests slow down), sdpa and sdpa_math (the controls) over a
# small and a larger CPU problem; cpu_causal brings its training passes (bwd, fwd+bwd):
# 12 time rows.
PR_KERNELS, PR_PROBLEMS = "tiled,sdpa,sdpa_math", "cpu_seed,cpu_causal"


@dataclasses.dataclass(frozen=True)
class Job:
    """What one `attnperf ci bench` run wrote and said."""

    name: str
    proc: subprocess.CompletedProcess
    out: Path
    verdict: dict
    summary: str
    asv_log: str
    paired: dict
    step_summary: str
    seconds: float
    load: tuple[float, float]  # 1-minute load average before and after


class CpuPrJob:
    """A clone for the CPU pull-request job: ``base`` (the shared environment's config) and
    ``readme`` (a README-only commit on it: the A/A head); tests add commits on top
    (:meth:`commit`).  :meth:`run` runs `attnperf ci bench --device cpu` (asv continuous, then
    every time row re-measured paired) while an unrelated process keeps one core busy; each
    named run happens once, later calls get its outcome."""

    def __init__(self, root: Path, machine_key: str):
        self.root = root
        self.clone, base = clone_with_shared_env(root)
        self.commits = {"base": base, "readme": commit(self.clone, "benign 1", touch_readme(1))}
        self.env = asv_env(root, machine_key, PR_KERNELS, PR_PROBLEMS)
        self._jobs: dict[str, Job] = {}

    def commit(self, name: str, message: str, edit: Edit) -> str:
        """``edit`` committed on top of the clone's HEAD, once per ``name``."""
        if name not in self.commits:
            self.commits[name] = commit(self.clone, message, edit)
        return self.commits[name]

    def run(self, name: str, base: str, head: str, machine: str, *extra: str) -> Job:
        """`attnperf ci bench` of commit ``base`` against ``head`` (names of :attr:`commits`)
        for asv machine ``machine`` (described by the job itself), one core kept busy."""
        if name in self._jobs:
            return self._jobs[name]
        slug = "".join(c if c.isalnum() else "-" for c in name)
        out, step = self.root / f"out-{slug}", self.root / f"step-summary-{slug}.md"
        argv = [sys.executable, "-m", "attnperf", "ci", "bench", "--config",
                str(self.clone / "asv.conf.json"), "--base", self.commits[base],
                "--head", self.commits[head], "--machine", machine, "--device", "cpu",
                "--out", str(out), *extra]
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        load0, t0 = os.getloadavg()[0], time.monotonic()
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=900,
                                  env=dict(self.env, GITHUB_STEP_SUMMARY=str(step)))
            busy = spinner.poll() is None
        finally:
            spinner.kill()
            spinner.wait()
        assert busy, "the busy loop died"
        assert (out / "verdict.json").is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]

        def read(path: Path) -> str:
            return path.read_text() if path.is_file() else ""
        job = Job(name, proc, out, json.loads(read(out / "verdict.json")),
                  read(out / "summary.md"), read(out / "asv-continuous.log"),
                  json.loads(read(out / "paired.json") or "{}"), read(step),
                  time.monotonic() - t0, (load0, os.getloadavg()[0]))
        self._jobs[name] = job
        return job

    def aa(self) -> Job:
        """The A/A run (base..readme: identical kernel code) the way the CPU job runs it, with
        one asv round (the paired re-measurement judges every time row; the workflow's two
        interleaved rounds through `ci bench` are test_acceptance's), judged at x2.5, asv's own
        factor for the end-to-end checks (test_asv_e2e), machine ``ci-e2e`` described by the
        job itself."""
        return self.run("A/A", "base", "readme", "ci-e2e", "--factor", "2.5", "--rounds", "1")
