"""Running asv for attnperf's commands: one commit at a time, results reused.

``attnperf bisect`` and ``attnperf calibrate`` measure commits with plain
``asv run COMMIT^!`` and read the result files back through
:mod:`attnperf.io.asv_results`.  What this module adds to asv:

* **reuse** -- a commit whose results for the selected benchmarks already lie
  in ``results/<machine>/`` is not run again (:meth:`AsvRunner.ensure`);
* ``--launch-method`` is passed explicitly (``asv find`` ignores the config's,
  ``asv run`` honours it; explicit is the same for both);
* ``-a rounds=R``: the suite measures everything once per commit in
  ``setup_cache``; asv re-creates that cache for every round (asv/runner.py
  ``run_benchmarks`` is called once per round with ``--interleave-rounds``,
  asv's default when environments are not ``existing``), so R rounds are R
  independent measuring processes whose samples asv pools;
* a separate results directory for A/A result sets (:func:`derived_config`):
  asv keeps one result file per commit, and calibration must not overwrite
  the machine's real history.

Library code: output of asv goes to the ``stream`` and ``log`` the caller
passes; nothing is printed here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, TypeGuard

from ..analysis.gate import is_view
from ..errors import ProjectError, ReportError
from ..io.asv_results import Run, read_asv_conf, read_run
from ..io.files import append_stream, write_text
from ..io.jsonfile import load_json

log = logging.getLogger(__name__)


class Project:
    """An asv project: its config file, the repository, the results directory."""

    def __init__(self, config: str = "asv.conf.json", results_dir: str | None = None):
        path = Path(config).resolve()
        if not path.is_file():
            raise ProjectError(f"asv config {config!r} does not exist")
        try:
            self.conf = read_asv_conf(str(path))
        except (OSError, ValueError, ReportError) as exc:
            raise ProjectError(f"cannot read {config!r}: {exc}") from None
        self.conf_path, self.conf_dir = path, path.parent
        self.repo = (self.conf_dir / str(self.conf.get("repo", "."))).resolve()
        self.results_dir = (self.conf_dir / (results_dir or self.conf.get("results_dir", "results"))
                            ).resolve()
        if self.git("rev-parse", "--is-inside-work-tree", check=False) != "true":
            raise ProjectError(f"{self.repo} is not a git repository (asv.conf.json 'repo')")

    def git(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["git", "-C", str(self.repo), *args], capture_output=True,
                              text=True, check=False, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            if not check:
                return ""
            raise ProjectError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def resolve(self, ref: str) -> str:
        """The full hash of ``ref``; :class:`ProjectError` naming it when git cannot."""
        if not ref or ref.startswith("-"):
            raise ProjectError(f"{ref!r} is not a commit (a branch, tag or hash is expected)")
        full = self.git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        if not full:
            raise ProjectError(f"{ref!r} is not a commit in {self.repo}")
        return full

    def subject(self, commit: str) -> str:
        return self.git("log", "-1", "--format=%s", commit, check=False)

    def first_parent_range(self, good: str, bad: str) -> list[str]:
        """``git rev-list --first-parent GOOD..BAD``, oldest first (as asv find walks it)."""
        if good == bad:
            raise ProjectError("GOOD and BAD are the same commit; nothing to bisect")
        is_ancestor = subprocess.run(["git", "-C", str(self.repo), "merge-base", "--is-ancestor",
                                      good, bad], capture_output=True, check=False)
        if is_ancestor.returncode != 0:
            raise ProjectError(
                f"{good[:8]} is not an ancestor of {bad[:8]}: GOOD must come before BAD"
            )
        out = self.git("rev-list", "--first-parent", "--reverse", f"{good}..{bad}")
        commits = out.split()
        if not commits or commits[-1] != bad:
            raise ProjectError(f"no first-parent path from {good[:8]} to {bad[:8]}")
        return commits


def find_asv(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    found = shutil.which("asv", path=str(Path(sys.executable).parent)) or shutil.which("asv")
    if not found:
        raise ProjectError("asv is not installed here (pip install -e '.[asv]')")
    return found


def asv_env() -> dict[str, str]:
    """The environment for asv: this interpreter's bin first; its torch lent to asv's envs."""
    env = dict(os.environ)
    env.setdefault("ATTNPERF_TORCH_PYTHON", sys.executable)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def tee(cmd: list[str], cwd: Path, env: dict[str, str], stream: IO[str] | None,
        log_path: Path | None, timeout: float | None = None) -> int:
    """Run ``cmd``; its output goes to ``stream`` and is appended to ``log_path``.

    The command runs in its own session: on the timeout, or when this process is
    interrupted, the whole group is killed (asv's benchmark processes included), so
    nothing it started outlives the call."""
    log.info("running %s", " ".join(cmd))
    with contextlib.ExitStack() as stack:
        logf = stack.enter_context(append_stream(log_path)) if log_path else None
        return _tee(cmd, cwd, env, stream, logf, timeout)


def _tee(cmd: list[str], cwd: Path, env: dict[str, str], stream: IO[str] | None,
         logf: IO[str] | None, timeout: float | None) -> int:
    proc = None
    try:
        if logf:
            logf.write(f"$ {' '.join(cmd)}\n")
            logf.flush()
        proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                                bufsize=1, start_new_session=True)
        assert proc.stdout is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        timer = None
        if timeout is not None:
            timer = threading.Timer(max(timeout, 0.0), _kill_group, (proc,))
            timer.daemon = True
            timer.start()
        try:
            for line in proc.stdout:
                if stream is not None:
                    stream.write(line)
                if logf:
                    logf.write(line)
            code = proc.wait()
        finally:
            if timer is not None:
                timer.cancel()
        if deadline is not None and time.monotonic() >= deadline and code < 0:
            if logf:
                logf.write(f"\n[attnperf] killed after {timeout} s\n")
            return 124
        return code
    except BaseException:  # KeyboardInterrupt, SIGTERM turned into an exception: no orphans
        if proc is not None:
            _kill_group(proc)
            proc.wait()
        raise
    finally:
        if proc is not None:
            if proc.returncode is None:
                _kill_group(proc)
                proc.wait()
            if proc.stdout is not None:  # the pipe, on every way out (a leak is a ResourceWarning)
                proc.stdout.close()


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL ``proc``'s process group (its session: it and every process it started)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


CANNOT_START = 127  # the exit code recorded for an asv that could not be started (as a shell)

# The last lines `asv continuous` prints once it has compared the two commits
# (asv/commands/continuous.py); an exit without one of them is not its verdict.
CONTINUOUS_VERDICTS = ("PERFORMANCE DECREASED.", "PERFORMANCE INCREASED.",
                       "BENCHMARKS NOT SIGNIFICANTLY CHANGED.")


def continuous_finished(output: str) -> bool:
    """Did ``asv continuous`` (its ``output``) get as far as its comparison?  asv exits 1
    both for a regression and for a crash (an uncaught exception, a fork that failed, a
    refused argument); only the comparison's last line tells them apart."""
    return any(line.strip() in CONTINUOUS_VERDICTS for line in output.splitlines())


def machine_names(path: Path | None = None) -> list[str]:
    """Machines described in ~/.asv-machine.json (what ``asv run --machine`` accepts)."""
    path = path or Path.home() / ".asv-machine.json"
    try:
        data = load_json(str(path), "asv machine file")
    except ReportError:
        return []
    return [k for k in data if k != "version"] if isinstance(data, dict) else []


def machine_device(machine: str, path: Path | None = None) -> str:
    """"cuda" when ``attnperf asv machine`` recorded a GPU for ``machine`` in
    ~/.asv-machine.json (its ``gpu`` field), else "cpu"."""
    path = path or Path.home() / ".asv-machine.json"
    try:
        data = load_json(str(path), "asv machine file")
    except ReportError:
        return "cpu"
    entry = data.get(machine) if isinstance(data, dict) else None
    gpu = entry.get("gpu") if isinstance(entry, dict) else None
    return "cuda" if isinstance(gpu, str) and gpu.strip().lower() not in ("", "none") else "cpu"


class AsvRunner:
    """``asv run`` one commit at a time on one machine, reusing results already there."""

    def __init__(self, project: Project, machine: str, bench_regex: str, *,
                 launch_method: str = "forkserver", rounds: int | None = None,
                 asv: str | None = None, config: Path | None = None,
                 results_dir: Path | None = None, stream: IO[str] | None = None,
                 log_path: Path | None = None, timeout: float | None = None):
        self.project, self.machine, self.bench_regex = project, machine, bench_regex
        self.launch_method, self.rounds = launch_method, rounds
        self.asv = find_asv(asv)
        self.config = config or project.conf_path
        self.results_dir = results_dir or project.results_dir
        self.stream, self.log_path, self.timeout = stream, log_path, timeout
        self.ran: list[str] = []  # commits asv was run for (not reused)
        self.exit_codes: list[int] = []

    def results(self, commit: str) -> Run | None:
        """This commit's newest result file on the machine, or None."""
        mdir = self.results_dir / self.machine
        notes: list[str] = []
        runs = [r for p in sorted(mdir.glob(f"{commit[:8]}-*.json"))
                for r in [read_run(p, self.machine, notes)] if r is not None and r.commit == commit]
        for note in notes:
            log.warning("%s", note)
        runs.sort(key=lambda r: Path(r.path).stat().st_mtime)
        return runs[-1] if runs else None

    def covers(self, run: Run | None) -> TypeGuard[Run]:
        """Does ``run`` hold results for the benchmarks this runner selects?"""
        import re
        rx = re.compile(self.bench_regex)
        return run is not None and any(
            rx.search(name) or any(rx.search(f"{name}({', '.join(repr(v) for v in key)})")
                                   for key in b.points)
            for name, b in run.benchmarks.items() if not is_view(name))

    def run(self, commit: str) -> int:
        cmd = [self.asv, "run", "--config", str(self.config), "--machine", self.machine,
               "--launch-method", self.launch_method, "-b", self.bench_regex]
        if self.rounds and self.rounds > 1:
            cmd += ["--interleave-rounds", "-a", f"rounds={self.rounds}"]
        cmd.append(f"{commit}^!")
        try:
            rc = tee(cmd, self.project.conf_dir, asv_env(), self.stream, self.log_path,
                     self.timeout)
        except OSError as exc:  # asv could not be started: no results, the caller's verdict
            rc = CANNOT_START
            log.error("cannot start asv (%s): %s", cmd[0], exc.strerror or exc)
            if self.stream is not None:
                self.stream.write(f"[attnperf] cannot start asv ({cmd[0]}): "
                                  f"{exc.strerror or exc}\n")
        self.ran.append(commit)
        self.exit_codes.append(rc)
        return rc

    def ensure(self, commit: str) -> Run | None:
        """Results of ``commit`` for the selected benchmarks: reused when present, else measured."""
        run = self.results(commit)
        if self.covers(run):
            log.info("reusing %s", run.path if run else "")
            return run
        self.run(commit)
        run = self.results(commit)
        return run if self.covers(run) else None


def derived_config(project: Project, results_dir: Path, dest: Path) -> Path:
    """A copy of the project's asv config that writes results to ``results_dir``.

    Every path is made absolute (the copy lives elsewhere) and ``{conf_dir}``
    in the build/install commands points at the project; environments stay
    shared (same ``env_dir``).
    """
    conf = dict(project.conf)
    for key, default in (("repo", "."), ("benchmark_dir", "benchmarks"), ("env_dir", "env"),
                         ("html_dir", "html")):
        conf[key] = str((project.conf_dir / str(conf.get(key, default))).resolve())
    conf["results_dir"] = str(results_dir.resolve())
    for key in ("build_command", "install_command", "uninstall_command"):
        if isinstance(conf.get(key), list):
            conf[key] = [c.replace("{conf_dir}", str(project.conf_dir)) for c in conf[key]]
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "asv.conf.json"
    write_text(path, json.dumps(conf, indent=2))
    return path


def temp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
