"""``attnperf calibrate``: measure this machine's noise A/A and write per-benchmark thresholds.

Runs ``asv run COMMIT^!`` RUNS times, each into its own temporary results
directory (the machine's history is never touched), each with the rounds the
gate uses; then per gated benchmark the spread of the RUNS medians, the
threshold derived from it (:mod:`attnperf.analysis.noise`) and the smallest
slowdown detectable at the suite factor (``--factor``; default: the one
``attnperf ci bench`` judges at on the machine's device) and at the threshold.  Writes
``results/<machine>/attnperf-thresholds.json`` (:mod:`attnperf.io.thresholds`),
which ``attnperf ci bench``, the PR comment and ``attnperf bisect`` then use.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from ..analysis import noise
from ..analysis.gate import GATE_REGEX
from ..analysis.noise import Key
from ..asv.runner import AsvRunner, derived_config, machine_device, temp_dir
from ..ci import confirm
from ..errors import AttnperfError, OutputPathError, ReportError, UsageError
from ..io import thresholds as thresholds_file
from ..io.asv_results import Run, read_run
from ..io.jsonfile import check_writable, load_json
from ..model import names
from ..model.config import default_factors_text
from ..render.bisect import noise_table
from .bisect import LAUNCH_METHODS, check_regex, open_project, pick_machine
from .command import Command, ExitCode, factor_float, int_in, machine_name, text

DEFAULT_RUNS = 5
DEFAULT_ROUNDS = 2
MAX_RUNS = MAX_ROUNDS = 100


@dataclasses.dataclass(frozen=True)
class CalibrateOptions:
    """What ``attnperf calibrate`` was asked for; checked on construction (UsageError)."""

    machine: str | None = None
    commit: str = "HEAD"
    runs: int = DEFAULT_RUNS
    pool: tuple[str, ...] = ()
    rounds: int = DEFAULT_ROUNDS
    factor: float | None = None  # None: the factor ci bench judges at on this machine's device
    floor: float = noise.DEFAULT_FLOOR
    headroom: float = noise.DEFAULT_HEADROOM
    bench: str = GATE_REGEX
    config: str = "asv.conf.json"
    output: str | None = None
    write: bool = True
    launch_method: str = "forkserver"
    asv: str | None = None

    def __post_init__(self) -> None:
        if self.machine is not None:
            names.machine(self.machine)
        if self.runs > MAX_RUNS or self.rounds > MAX_ROUNDS:
            raise UsageError(f"--runs must be at most {MAX_RUNS} and --rounds at most "
                             f"{MAX_ROUNDS}, got {self.runs} and {self.rounds}")
        if self.runs < 2 and not (self.pool and self.runs == 0):
            raise UsageError(f"--runs must be at least 2 (an A/A spread needs two sets), or 0 "
                             f"with --pool, got {self.runs}")
        if self.rounds < 1:
            raise UsageError(f"--rounds must be a positive integer, got {self.rounds}")
        for flag, value in (("--factor", self.factor), ("--floor", self.floor),
                            ("--headroom", self.headroom)):
            if value is None:
                continue
            if not (math.isfinite(value) and value >= 1.0):
                raise UsageError(f"{flag} must be a number >= 1.0, got {value}")
            if value > 1000.0:
                raise UsageError(f"{flag} must be a number of at most 1000, got {value}")
        check_regex(self.bench)


class Calibrate(Command):
    name = "calibrate"
    help = ("run the suite A/A on this machine; per-benchmark spread, detectable slowdown and "
            "thresholds for the CI verdict")
    exit_codes = (ExitCode.OK, ExitCode.USAGE, ExitCode.HARNESS)

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        c = parser
        c.add_argument("--machine", default=None, type=machine_name(),
                       help="asv machine name (default: the only one in ~/.asv-machine.json)")
        c.add_argument("--commit", default="HEAD", help="what to measure A/A (default HEAD)")
        c.add_argument("--runs", type=int_in("runs", -2 ** 31, 2 ** 31), default=DEFAULT_RUNS,
                       help=f"A/A result sets to measure now (default {DEFAULT_RUNS}; at least 2, "
                       "or 0 with --pool)")
        c.add_argument("--pool", action="append", default=[], metavar="FILE", type=text("pool"),
                       help="add earlier A/A sets of the same code on this machine: an asv results "
                       "file (one set) or an attnperf thresholds file (its medians); repeatable")
        c.add_argument(
            "--rounds",
            type=int_in("rounds", -(2**31), 2**31),
            default=DEFAULT_ROUNDS,
            help=f"asv rounds per set: use what the gate uses (default {DEFAULT_ROUNDS})",
        )
        c.add_argument("--factor", type=factor_float("factor"), default=None,
                       help="the suite factor to report the detectable slowdown at (default: the "
                            "one `attnperf ci bench` judges at on the machine's device, as "
                            "`attnperf asv machine` recorded it: [tool.attnperf] "
                            "regression-factor, else the device's: "
                            f"{default_factors_text()})")
        c.add_argument("--floor", type=factor_float("floor"), default=noise.DEFAULT_FLOOR,
                       help=f"no threshold below this (default {noise.DEFAULT_FLOOR})")
        c.add_argument("--headroom", type=factor_float("headroom"), default=noise.DEFAULT_HEADROOM,
                       help=f"threshold = spread ** HEADROOM (default {noise.DEFAULT_HEADROOM:g})")
        c.add_argument("-b", "--bench", default=GATE_REGEX, metavar="REGEX",
                       help="benchmarks to calibrate, as asv's -b (default: the gated ones)")
        c.add_argument(
            "--config", default="asv.conf.json", help="asv config (default asv.conf.json)"
        )
        c.add_argument("--output", "-o", default=None, type=text("output"),
                       help="thresholds file (default results/<machine>/attnperf-thresholds.json; "
                            "never a --pool file or the config)")
        c.add_argument("--no-write", action="store_true", help="report only")
        c.add_argument("--launch-method", default="forkserver", choices=LAUNCH_METHODS,
                       help="asv's launch method (default forkserver: one `import torch` per set)")
        c.add_argument("--asv", default=None, help="asv executable (default: next to this python)")

    @classmethod
    def run_from_args(cls, args: argparse.Namespace) -> int:
        return cls.run(CalibrateOptions(
            machine=args.machine, commit=args.commit, runs=args.runs, pool=tuple(args.pool),
            rounds=args.rounds, factor=args.factor, floor=args.floor, headroom=args.headroom,
            bench=args.bench, config=args.config, output=args.output, write=not args.no_write,
            launch_method=args.launch_method, asv=args.asv))

    @classmethod
    def run(cls, options: CalibrateOptions) -> int:
        return run_calibration(options)


def _pooled(paths: Sequence[str], machine: str, rounds: int
            ) -> tuple[list[Run], list[dict[Key, Sequence[float]]], int]:
    """Earlier A/A sets named by --pool: (asv runs, medians of thresholds files, their set count).

    The user vouches that they measured the same code; attnperf checks what the files record:
    the machine, and for a thresholds file the rounds per set.
    """
    runs: list[Run] = []
    medians: list[dict[Key, Sequence[float]]] = []
    sets = 0
    for raw in paths:
        path = Path(raw)
        try:
            data = load_json(str(path), "--pool file")
        except ReportError as exc:
            raise UsageError(str(exc)) from None
        if isinstance(data, dict) and "schema_version" in data and "benchmarks" in data:
            try:
                earlier = thresholds_file.parse(data, str(path))
            except ReportError as exc:
                raise UsageError(str(exc)) from None
            if earlier.machine != machine or earlier.rounds != rounds:
                raise UsageError(f"--pool {raw}: thresholds of machine {earlier.machine!r} with "
                                 f"{earlier.rounds} round(s) per set; allowed: machine {machine!r} "
                                 f"with {rounds} (--rounds)")
            medians.append({(e.benchmark, e.params): e.medians for e in earlier.entries})
            sets += earlier.runs
            continue
        notes: list[str] = []
        run = read_run(path, machine, notes)
        recorded = run.params.get("machine") if run is not None else None
        if run is None or not run.benchmarks or recorded != machine:
            why = "; ".join(notes) or (f"records machine {recorded!r}" if run and run.benchmarks
                                       else "no benchmark results")
            raise UsageError(
                f"--pool {raw}: not an asv results file of machine {machine!r} ({why})"
            )
        runs.append(run)
    return runs, medians, sets


def run_calibration(o: CalibrateOptions) -> int:
    """Measure the A/A sets, print the table, write the thresholds (ExitCode)."""
    project, (commit,) = open_project(o.config, o.commit)
    # pick_machine (cli.bisect) may carry no annotations yet
    machine: str = pick_machine(o.machine)  # type: ignore[no-untyped-call, unused-ignore]
    out = Path(o.output) if o.output else thresholds_file.path_for(
        str(project.results_dir), machine)
    inputs = (*o.pool, o.config)
    try:
        factor = o.factor if o.factor is not None else confirm.default_factor(
            project.conf_dir, machine_device(machine))
    except AttnperfError as exc:
        raise UsageError(str(exc)) from None
    if o.write:
        if out.parent.is_dir():  # refused before any folder is made
            check_writable(str(out), inputs)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputPathError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from None
        check_writable(str(out), inputs)
    pooled_runs, pooled_medians, pooled_sets = _pooled(o.pool, machine, o.rounds)
    work = temp_dir("attnperf-calibrate-")
    runs: list[Run] = []
    try:
        for i in range(o.runs):
            results = work / f"results-{i}"
            conf = derived_config(project, results, work / f"conf-{i}")
            runner = AsvRunner(project, machine, o.bench, launch_method=o.launch_method,
                               rounds=o.rounds, asv=o.asv, config=conf,
                               results_dir=results, stream=sys.stderr)
            print(f"[attnperf calibrate] A/A set {i + 1}/{o.runs}: {commit[:8]}, "
                  f"{o.rounds} round(s)", file=sys.stderr)
            runner.run(commit)
            run = runner.results(commit)
            if runner.covers(run):
                runs.append(run)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if len(runs) + len(pooled_runs) + pooled_sets < 2:
        print(f"error: asv produced {len(runs)} result set(s) of {o.runs}; need at least two "
              "(see its output above)", file=sys.stderr)
        return ExitCode.HARNESS
    runs.extend(pooled_runs)
    rule = noise.Rule(o.floor, o.headroom)
    entries = noise.entries(runs, rule, pooled_medians)
    result = thresholds_file.Thresholds(
        machine=machine, created=datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"), commit=commit, runs=len(runs) + pooled_sets, rounds=o.rounds,
        factor=factor, floor=o.floor, headroom=o.headroom, entries=entries)
    print(f"A/A on {machine!r}: {result.runs} sets of {o.rounds} round(s) at {commit[:8]}; "
          f"threshold = max({o.floor:g}, spread^{o.headroom:g}); detect = threshold x "
          f"spread; @x{factor:g} = the smallest slowdown a single factor {factor:g} "
          "flags despite the spread")
    sys.stdout.write(noise_table(entries, factor))
    if not entries:
        print("no gated benchmark was measured in two sets: nothing written", file=sys.stderr)
        return ExitCode.HARNESS
    if o.write:
        thresholds_file.write(out, result, inputs)
        print(f"wrote {out}")
    return ExitCode.OK
