"""The pull-request benchmark job: `asv continuous` base vs head, a verdict, markdown.

``attnperf ci bench --base BASE --head HEAD --machine NAME`` (:class:`BenchOptions`)
is what the GitHub workflow runs, and what a developer (or a test) runs locally:

1. resolve BASE and HEAD to commits (``git rev-parse``, read-only);
2. describe the machine to asv: ``attnperf asv machine NAME`` writes asv's
   fields plus the GPU facts into ~/.asv-machine.json and the measured
   ceilings into ``results/NAME/attnperf-ceilings.json`` (``--no-describe``
   keeps an existing description);
3. ``asv continuous --factor F -b '^(?!.*Views)' --machine NAME BASE HEAD`` (F:
   ``--factor``, else ``[tool.attnperf]`` regression-factor for the device, else the
   device's default, as ``attnperf bisect``: :data:`attnperf.model.config.DEFAULT_FACTORS`),
   its output shown and kept in ``OUT/asv-continuous.log``; with ``--rounds R``
   also ``--interleave-rounds -a rounds=R``: each commit is measured R times
   in separate processes (asv re-creates the suite's ``setup_cache`` every
   round), in the order base, head, head, base, ... so drift over minutes
   (another job on a shared CPU, a warming GPU) falls on both sides alike;
3b. per-benchmark thresholds: when ``results/NAME/attnperf-thresholds.json``
   exists (``attnperf calibrate``), asv runs at the smallest of them (and F),
   every row is judged again at its own threshold (rows without one at F),
   and the verdict and exit code follow that re-judged table; the file's
   ``rounds`` is the default for ``--rounds``;
3c. on a CPU (``--device cpu``, or ``auto`` on a machine described without a GPU, with
   ``--confirm auto``; or ``--confirm paired``): every time row measured at both
   commits is measured again *paired* -- both commits checked out (git
   worktrees, removed after), one live worker process each, pinned to one
   core, samples alternated (:mod:`attnperf.measure.paired`) -- and judged by
   that: slower past ``--paired-factor`` (1.10) with a sign test p < 0.01.
   asv's separate processes cannot tell identical code from a 30 % slowdown
   on a loaded 2-vCPU machine; the pairs can.  ``OUT/paired.json`` keeps them;
4. read both commits' result files and render ``OUT/summary.md``
   (:mod:`attnperf.render.prcomment`), reported to GitHub Actions when it runs
   there (:mod:`attnperf.ci.github`);
5. copy the result files into ``OUT/results/`` (the artifact) and write
   ``OUT/verdict.json``.

The verdict (:func:`attnperf.analysis.ab.decide`) is the command's exit code:
0 ok, no significant regression; 1 regression, the results show a benchmark slower
past its threshold; 3 error, a harness failure: asv ended without its comparison (a
crash, a failed fork, a timeout), did not produce results for both commits, or the job
could not start (:class:`BenchJobError`; ``OUT/summary.md`` still says why); 4 broken,
a benchmark fails at head (a wrong result or an error).

``render_only`` skips steps 2-3 and renders from results already on disk
(``asv_exit`` then supplies asv's exit code, if known).

``shard`` (``--shard K/N``, :mod:`attnperf.model.shard`): asv runs the whole suite but the
suite measures only shard K's combinations (``ATTNPERF_ASV_SHARD``; the others read n/a),
and the verdict, the summary and ``verdict.json`` (``"shard": "K/N"``, whether asv finished
its comparison, the GPU the job ran on) are about those rows alone.
:mod:`attnperf.ci.shards` merges the shards' folders into one verdict (``attnperf ci
merge``), and runs one shard per GPU of a host (``--gpus``).  ``asv_dir`` (``--asv-dir``)
gives asv a results and environments folder of the job's own, so that jobs side by side on
one host never share them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..analysis import ab, judge
from ..analysis.gate import GATE_REGEX as GATED
from ..asv import runner
from ..errors import (
    BenchInputError,
    BenchJobError,
    ProjectError,
    ReportError,
    UsageError,
)
from ..io import thresholds as thresholds_file
from ..io.asv_results import read_asv_conf, read_results
from ..io.folders import OwnedDir
from ..measure.paired import PAIRED_FACTOR
from ..model import names
from ..model.shard import ENV as SHARD_ENV
from ..model.shard import MAX_SHARDS, Shard
from ..render import prcomment
from ..render.cibench import paired_section, why_section
from . import confirm, github
from .confirm import paired_confirmation
from .folders import copy_results, out_dir, own_asv_config, record_error_in

CONFIRM = confirm.CONFIRM
MAX_FACTOR = 1000.0  # a slowdown factor beyond this judges nothing
MAX_ROUNDS = 100
MAX_TIMEOUT_S = 7 * 86_400.0  # a week for asv continuous


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    """What the job is asked for; checked on construction (:class:`UsageError`).

    ``factor`` None: ``[tool.attnperf]`` regression-factor for the device (``device``, auto
    resolved by :func:`device_of`), else the device's default
    (:data:`attnperf.model.config.DEFAULT_FACTORS`, as ``attnperf bisect``); ``rounds`` None:
    the thresholds file's, else 1;
    ``thresholds`` None: ``results/MACHINE/attnperf-thresholds.json`` when it exists."""

    base: str
    machine: str | None = None  # None: `attnperf asv machine`'s default, the host's name
    head: str = "HEAD"
    factor: float | None = None
    config: str = "asv.conf.json"
    results_dir: str | None = None
    out: str = "ci-artifacts/bench"
    device: str = "auto"
    describe: bool = True
    asv: str | None = None
    asv_args: tuple[str, ...] = ()
    timeout_s: float | None = None
    rounds: int | None = None
    thresholds: str | None = None
    use_thresholds: bool = True
    confirm: str = "auto"
    paired_factor: float = PAIRED_FACTOR
    render_only: bool = False
    asv_exit: int | None = None
    shard: Shard | None = None
    gpus: tuple[int, ...] = ()  # one shard per GPU (attnperf.ci.shards.run_on_gpus)
    asv_dir: str | None = None  # asv's results and environments here, not the config's

    @property
    def machine_name(self) -> str:
        """``machine`` as resolved on construction (never None after it)."""
        assert self.machine is not None
        return self.machine

    def __post_init__(self) -> None:
        if self.machine is None:
            from ..asv.machine import default_name  # (imports torch: only when needed)
            object.__setattr__(self, "machine", names.machine(
                default_name(), "the host's name (the default machine name; pass --machine)"))
        names.machine(self.machine)
        for flag, value in (("--factor", self.factor), ("--paired-factor", self.paired_factor)):
            if value is not None and not (math.isfinite(value) and value >= 1.0):
                raise UsageError(f"{flag} must be >= 1.0, got {value}")
            if value is not None and value > MAX_FACTOR:
                raise UsageError(f"{flag} must be at most {MAX_FACTOR:g}, got {value}")
        if self.rounds is not None and not 1 <= self.rounds <= MAX_ROUNDS:
            raise UsageError(f"--rounds must be a positive integer"
                             f"{f' of at most {MAX_ROUNDS}' if self.rounds > 0 else ''}, "
                             f"got {self.rounds}")
        if self.timeout_s is not None and not (math.isfinite(self.timeout_s)
                                               and 0 < self.timeout_s <= MAX_TIMEOUT_S):
            raise UsageError(f"--timeout must be a positive number of at most "
                             f"{MAX_TIMEOUT_S:g} s, got {self.timeout_s}")
        if self.confirm not in CONFIRM:
            raise UsageError(f"--confirm must be one of {', '.join(CONFIRM)}, got {self.confirm!r}")
        if not self.out:
            raise UsageError("--out must not be empty")
        if self.gpus:
            if self.shard is not None:
                raise UsageError(f"--gpus {gpus_text(self.gpus)} with --shard {self.shard}: give "
                                 "one (--gpus runs shard K of N on the K-th GPU listed)")
            if len(set(self.gpus)) != len(self.gpus) or len(self.gpus) > MAX_SHARDS \
                    or min(self.gpus) < 0:
                raise UsageError(f"--gpus {gpus_text(self.gpus)}: {GPUS_ALLOWED}")
            for flag, given in (("--render-only", self.render_only),
                                ("--asv-dir", self.asv_dir is not None),
                                ("--results-dir", self.results_dir is not None)):
                if given:
                    raise UsageError(f"--gpus with {flag}: --gpus gives each shard asv folders "
                                     "of its own and renders their results")
        if self.asv_dir is not None and self.results_dir is not None:
            raise UsageError("--asv-dir with --results-dir: the results are DIR/results "
                             f"(--asv-dir {self.asv_dir!r})")

    @property
    def confirming(self) -> bool:
        """--confirm paired, or auto with --device cpu (the CPU jobs: CI's and `make continuous`);
        with --device auto the job decides once the device is known (:func:`device_of`)."""
        return confirm.confirming(self.confirm, self.device)


GPUS_ALLOWED = (f"give the indices of distinct GPUs, comma separated (e.g. 0,1,2,3; at most "
                f"{MAX_SHARDS})")


def gpus_text(gpus: tuple[int, ...]) -> str:
    return ",".join(map(str, gpus))


def device_of(o: BenchOptions) -> str:
    """--device, with auto resolved: the device `attnperf asv machine` recorded for the
    machine in ~/.asv-machine.json, else the one this Python sees (cuda if available)."""
    if o.device != "auto":
        return o.device
    if o.machine_name in runner.machine_names():
        return runner.machine_device(str(o.machine_name))
    from ..measure.device import resolve_device  # (imports torch)
    return resolve_device("auto")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The job's verdict: ``code`` (:data:`attnperf.analysis.ab.VERDICTS`), why, and where
    the summary went."""

    code: int
    reason: str
    summary_path: Path
    flagged: tuple[str, ...] = ()  # one line per flagged row: why (analysis.judge.why)

    @property
    def verdict(self) -> str:
        return ab.VERDICTS[self.code]


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise BenchJobError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def resolve(repo: Path, ref: str) -> str:
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except BenchJobError as exc:  # a ref git cannot resolve: the caller's input
        raise BenchInputError(str(exc)) from None


def find_asv(explicit: str | None) -> str:
    try:
        return runner.find_asv(explicit)
    except ProjectError as exc:
        raise BenchJobError(str(exc)) from None


def _env() -> dict[str, str]:
    # attnperf.asv.envinstall lends this interpreter's torch to asv's environments.
    return runner.asv_env()


def _tee(cmd: list[str], cwd: Path, log_path: Path, env: dict[str, str],
         timeout: float | None) -> int:
    """Run ``cmd``, echoing its output and keeping it in ``log_path``."""
    return runner.tee(cmd, cwd, env, sys.stdout, log_path, timeout)


def describe_machine(conf_dir: Path, results_dir: Path, machine: str, device: str,
                     log_path: Path, env: dict[str, str]) -> None:
    cmd = [sys.executable, "-m", "attnperf", "asv", "machine", machine,
           "--results-dir", str(results_dir), "--device", device]
    rc = _tee(cmd, conf_dir, log_path, env, timeout=600)
    if rc != 0:
        raise BenchJobError(f"describing the machine failed ({' '.join(cmd)} exited {rc}); "
                            f"see {log_path}")


@dataclasses.dataclass(frozen=True)
class _Job:
    """What the options resolve to before anything is measured."""

    conf_path: Path
    results_dir: Path
    out: OwnedDir
    base: str
    head: str
    factor: float  # the verdict's factor (rows without a calibrated threshold)
    asv_factor: float  # what asv continuous runs at: the smallest of factor and the thresholds
    rounds: int | None
    calibrated: thresholds_file.Thresholds | None
    device: str  # --device, auto resolved (device_of)

    @property
    def conf_dir(self) -> Path:
        return self.conf_path.parent

    @property
    def log_path(self) -> Path:
        return self.out.root.resolve() / "asv-continuous.log"


def run(o: BenchOptions) -> Outcome:
    """Run the job; :class:`BenchJobError` when it cannot start (see :func:`record_error`),
    :class:`UsageError` for an output folder it must not write."""
    job = _prepare(o)
    asv_exit = o.asv_exit if o.render_only else _continuous(o, job)
    # asv exits 1 for a regression and for a crash alike: only its output tells them apart.
    finished = None if o.render_only else runner.continuous_finished(
        job.log_path.read_text(errors="replace"))
    db = read_results(str(job.results_dir))
    machine = db.machines.get(o.machine_name)
    base_run = machine.runs_for(job.base)[-1] if machine and machine.runs_for(job.base) else None
    head_run = machine.runs_for(job.head)[-1] if machine and machine.runs_for(job.head) else None
    lookup = job.calibrated.lookup() if job.calibrated else None
    cmp = ab.compare(db, o.machine_name, base_run, head_run, job.factor, lookup)
    # What asv itself judged (every row at its factor): tells a flag that the thresholds
    # or the metrics' own factors overrule from an asv error.
    asv_view = ab.compare(db, o.machine_name, base_run, head_run, job.asv_factor,
                          metric_rules=False)
    if o.shard is not None:  # this shard's rows (a base before sharding measured them all)
        cmp, asv_view = (own_rows(c, o.shard) for c in (cmp, asv_view))
    paired = None
    if (confirm.confirming(o.confirm, job.device) and not o.render_only
            and base_run is not None and head_run is not None and finished is not False):
        paired, failed = paired_confirmation(job.conf_dir, job.base, job.head, cmp.rows)
        job.out.write_text("paired.json", json.dumps(
            {"factor": o.paired_factor,
             "results": [{"kernel": k, "problem": p, **r.to_dict()}
                         for (k, p), r in paired.items()],
             "not_measured": [{"kernel": k, "problem": p, "reason": why}
                              for (k, p), why in failed.items()]},
            indent=2) + "\n")
        cmp = ab.confirm_paired(cmp, paired, o.paired_factor)
    # One verdict, from the rows: the exit code and the summary's headline both.
    code, reason = ab.decide(asv_exit, cmp, asv_view, finished)
    footer = "" if o.render_only else (
        f"<sub>asv's own output: `{job.log_path.name}` in this job's artifact.</sub>")
    summary = prcomment.render_section(db, o.machine_name, job.base, job.head, job.factor,
                                       asv_exit=asv_exit, footer=footer,
                                       thresholds=job.calibrated, asv_factor=job.asv_factor,
                                       comparison=cmp, asv_view=asv_view,
                                       verdict=(code, reason))
    reasons = judge.why_lines(cmp.rows)
    summary += why_section(reasons)
    if paired is not None:
        summary += paired_section(paired, o.paired_factor)
    summary_path = job.out.write_text("summary.md", summary)
    copied = copy_results(job.results_dir, o.machine_name, [job.base, job.head], job.out)
    if o.shard is not None and job.calibrated is not None:  # `ci merge` judges with them too
        job.out.copy_in(_thresholds_path(o, job.results_dir),
                        f"results/{o.machine_name}/{thresholds_file.FILE_NAME}", "thresholds")
    verdict = {"exit_code": code, "verdict": ab.VERDICTS[code], "reason": reason,
               "asv_exit": asv_exit, "machine": o.machine_name, "base": job.base, "head": job.head,
               "factor": job.factor, "asv_factor": job.asv_factor, "rounds": job.rounds,
               "thresholds": str(_thresholds_path(o, job.results_dir)) if job.calibrated else None,
               "paired_factor": o.paired_factor if paired is not None else None,
               "files": copied,
               "counts": {c: cmp.count(c) for c in (ab.WORSE, ab.BETTER, ab.BROKE, ab.FIXED)},
               "flagged": reasons}
    if o.shard is not None:
        verdict.update(shard=str(o.shard), asv_finished=finished,
                       gpu=job_gpu() if job.device == "cuda" else None)
    job.out.write_text("verdict.json", json.dumps(verdict, indent=2) + "\n")
    github.publish(code, reason, o.machine_name, summary)
    return Outcome(code, reason, summary_path, tuple(reasons))


def own_rows(comparison: ab.Comparison, shard: Shard) -> ab.Comparison:
    """``comparison`` less the rows another shard measures."""
    return dataclasses.replace(comparison, rows=[r for r in comparison.rows
                                                 if shard.owns_params(r.params)])


def job_gpu() -> dict[str, object]:
    """The GPU this job's benchmarks run on (the first of CUDA_VISIBLE_DEVICES, else 0):
    its index, and its serial, UUID and name where NVML reads them
    (:func:`attnperf.measure.nvml.gpu_identity`)."""
    from ..measure import nvml  # (NVML only: no CUDA context in this process)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return nvml.gpu_identity(visible or "0")


def read_config(config: str) -> tuple[Path, dict[str, Any]]:
    """The asv config's resolved path and its content (:class:`BenchInputError` when it is
    missing or unreadable)."""
    conf_path = Path(config).resolve()
    if not conf_path.is_file():
        raise BenchInputError(f"asv config {config!r} does not exist")
    try:
        return conf_path, read_asv_conf(str(conf_path))
    except (OSError, ValueError, ReportError) as exc:
        raise BenchInputError(f"cannot read {conf_path}: {exc}") from None


def _prepare(o: BenchOptions) -> _Job:
    """Read the config, resolve the refs and the factors; the output folder and an empty
    log are ready after it (every problem a :class:`BenchJobError`; an output folder it
    must not write a :class:`UsageError`, raised before anything is written)."""
    conf_path, conf = read_config(o.config)
    conf_dir = conf_path.parent
    results_dir = (conf_dir / (o.results_dir or conf.get("results_dir", "results"))).resolve()
    if o.asv_dir is not None:
        results_dir = (Path(o.asv_dir) / "results").resolve()
    out = out_dir(o.out, conf_dir, results_dir)
    out.write_text("asv-continuous.log", "")
    base, head = resolve(conf_dir, o.base), resolve(conf_dir, o.head)
    if not base or not head:
        raise BenchInputError(f"cannot resolve --base {o.base!r} / --head {o.head!r} in {conf_dir}")
    device = device_of(o)
    factor = o.factor if o.factor is not None else confirm.default_factor(conf_dir, device)
    calibrated = _thresholds(o, results_dir)
    asv_factor = min(factor, calibrated.smallest() or factor) if calibrated else factor
    rounds = o.rounds or (calibrated.rounds if calibrated else None)
    return _Job(conf_path, results_dir, out, base, head, factor, asv_factor, rounds, calibrated,
                device)


def _continuous(o: BenchOptions, job: _Job) -> int:
    """Describe the machine (unless told not to), then asv continuous; returns asv's exit."""
    env = _env()
    if o.shard is not None:
        env[SHARD_ENV] = str(o.shard)
    if o.describe:
        describe_machine(job.conf_dir, job.results_dir, o.machine_name, o.device, job.log_path, env)
    config = job.conf_path if o.asv_dir is None else own_asv_config(job.conf_path,
                                                                    Path(o.asv_dir))
    cmd = [find_asv(o.asv), "continuous", "--config", str(config), "--factor",
           f"{job.asv_factor:g}", "-b", GATED, "--machine", o.machine_name]
    if job.rounds and job.rounds > 1:
        cmd += ["--interleave-rounds", "-a", f"rounds={job.rounds}"]
    cmd += [*o.asv_args, job.base, job.head]
    try:
        return _tee(cmd, job.conf_dir, job.log_path, env, timeout=o.timeout_s)
    except OSError as exc:  # not executable, no such file, fork refused: the harness failed
        raise BenchJobError(f"cannot start asv ({cmd[0]}): {exc.strerror or exc}") from None


def record_error(o: BenchOptions, message: str, code: int = ab.EXIT_INFRA) -> None:
    """The job could not start (``code``: :data:`~attnperf.analysis.ab.EXIT_INFRA`, or
    :data:`~attnperf.analysis.ab.EXIT_USAGE` for its input): ``OUT/summary.md`` and GitHub
    say why (best effort; never over a file attnperf did not write)."""
    record_error_in(o.out, o.machine_name, message, code)


def _thresholds_path(o: BenchOptions, results_dir: Path) -> Path:
    return Path(o.thresholds) if o.thresholds else thresholds_file.path_for(
        str(results_dir), o.machine_name)


def _thresholds(o: BenchOptions, results_dir: Path
                ) -> thresholds_file.Thresholds | None:
    """The machine's calibrated thresholds (None without a file, or with --no-thresholds)."""
    if not o.use_thresholds:
        return None
    path = _thresholds_path(o, results_dir)
    if o.thresholds and not path.is_file():
        raise BenchInputError(f"--thresholds {o.thresholds!r} does not exist")
    try:
        found = thresholds_file.read(path)
    except ReportError as exc:
        raise BenchInputError(f"{exc} (recalibrate: attnperf calibrate --machine {o.machine_name}; "
                            "or pass --no-thresholds)") from None
    if found is not None and found.machine != o.machine_name:
        raise BenchInputError(f"{path} was calibrated for machine {found.machine!r}, "
                            f"not {o.machine_name!r}")
    return found
