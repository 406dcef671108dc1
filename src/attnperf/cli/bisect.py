"""``attnperf bisect GOOD BAD``: the bisect users expect from ``asv find``, with a verdict.

The verdict is :class:`~attnperf.cli.command.ExitCode`: OK, no significant regression
between GOOD and BAD; REGRESSION, a regression, named (or, when NOT CONFIRMED is printed,
present but not a single step); USAGE, bad input or every selected value n/a;
HARNESS, asv produced no results (it crashed or could not start; see the log); BROKEN,
a benchmark fails at BAD that passed at GOOD.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from pathlib import Path

from ..analysis import bisect as bisect_logic
from ..analysis.gate import GATE_REGEX
from ..asv.runner import AsvRunner, Project, machine_device, machine_names
from ..ci import confirm
from ..errors import AttnperfError, UsageError
from ..io import thresholds as thresholds_file
from ..io.asv_results import read_results
from ..io.files import check_appendable
from ..measure.paired import PAIRED_FACTOR
from ..model import names
from ..model.config import default_factors_text
from ..render import bisect as render
from .command import Command, ExitCode, factor_float, int_in, machine_name, text

LAUNCH_METHODS = ("forkserver", "spawn")
DEVICES = ("auto", "cpu", "cuda")


@dataclasses.dataclass(frozen=True)
class BisectOptions:
    """What ``attnperf bisect`` was asked for; checked on construction (UsageError)."""

    good: str
    bad: str
    bench: str | None = None
    factor: float | None = None
    machine: str | None = None
    config: str = "asv.conf.json"
    rounds: int | None = None
    launch_method: str = "forkserver"
    log: str | None = None
    asv: str | None = None
    device: str = "auto"
    confirm: str = "auto"
    paired_factor: float = PAIRED_FACTOR

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise UsageError(f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.confirm not in confirm.CONFIRM:
            raise UsageError(f"--confirm must be one of {', '.join(confirm.CONFIRM)}, "
                             f"got {self.confirm!r}")
        if not (math.isfinite(self.paired_factor) and 1.0 <= self.paired_factor <= 1000.0):
            raise UsageError(f"--paired-factor must be a number in 1.0..1000, "
                             f"got {self.paired_factor}")
        if self.factor is not None and not (math.isfinite(self.factor) and self.factor >= 1.0):
            raise UsageError(f"--factor must be a number >= 1.0, got {self.factor}")
        if self.factor is not None and self.factor > 1000.0:
            raise UsageError(f"--factor must be a number of at most 1000, got {self.factor}")
        if self.rounds is not None and not 1 <= self.rounds <= 100:
            raise UsageError(f"--rounds must be a positive integer"
                             f"{' of at most 100' if self.rounds > 0 else ''}, got {self.rounds}")
        if self.machine is not None:
            names.machine(self.machine)
        if self.bench is not None:
            check_regex(self.bench)


class Bisect(Command):
    name = "bisect"
    help = "find the commit that made a benchmark slower, with a verdict (asv run + asv's own test)"
    exit_codes = (ExitCode.OK, ExitCode.REGRESSION, ExitCode.USAGE, ExitCode.HARNESS,
                  ExitCode.BROKEN)

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        b = parser
        b.add_argument("good", help="a commit known to be fast (GOOD)")
        b.add_argument("bad", help="a later commit known (or suspected) to be slow (BAD)")
        b.add_argument("-b", "--bench", default=None, metavar="REGEX",
                       help="benchmarks to judge, as asv's -b (matched against "
                            "name('kernel', 'problem')); default: the gated ones")
        b.add_argument("--factor", type=factor_float("factor"), default=None,
                       help="slower by more than this and significant = regression (default: the "
                            "machine's calibrated thresholds if present, else [tool.attnperf] "
                            "regression-factor for the device, else the device's: "
                            f"{default_factors_text()})")
        b.add_argument("--machine", default=None, type=machine_name(),
                       help="asv machine name (default: the only one in ~/.asv-machine.json)")
        b.add_argument("--config", default="asv.conf.json",
                       help="asv config (default asv.conf.json)")
        b.add_argument("--rounds", type=int_in("rounds", -2 ** 31, 2 ** 31), default=None,
                       help="asv rounds per commit (independent measurements pooled; default: "
                            "the calibrated thresholds' rounds, else 1)")
        b.add_argument("--launch-method", default="forkserver", choices=LAUNCH_METHODS,
                       help="asv's launch method (default forkserver: one `import torch` "
                            "per commit)")
        b.add_argument("--log", default=None, type=text("log"),
                       help="append asv's output here (default: stderr only)")
        b.add_argument("--asv", default=None, help="asv executable (default: next to this python)")
        b.add_argument("--device", default="auto", choices=DEVICES,
                       help="the machine's device (auto: a GPU if `attnperf asv machine` "
                            "recorded one for --machine, else cpu)")
        b.add_argument("--confirm", default="auto", choices=confirm.CONFIRM,
                       help="judge every CPU time row again by a paired re-measurement (GOOD "
                            "vs BAD, each commit the search tries vs GOOD, the named commit vs "
                            "its parent), as ci bench does (auto: on a cpu)")
        b.add_argument("--paired-factor", type=factor_float("paired-factor"), default=PAIRED_FACTOR,
                       help=f"paired re-measurement: slower than this is a regression "
                            f"(default {PAIRED_FACTOR})")

    @classmethod
    def run_from_args(cls, args: argparse.Namespace) -> int:
        return cls.run(BisectOptions(
            good=args.good, bad=args.bad, bench=args.bench, factor=args.factor,
            machine=args.machine, config=args.config, rounds=args.rounds,
            launch_method=args.launch_method, log=args.log, asv=args.asv, device=args.device,
            confirm=args.confirm, paired_factor=args.paired_factor))

    @classmethod
    def run(cls, options: BisectOptions) -> int:
        return run_bisect(options)


def pick_machine(explicit: str | None) -> str:
    known = machine_names()
    if explicit:
        if explicit not in known:
            raise UsageError(f"asv knows no machine {explicit!r} (~/.asv-machine.json has: "
                             f"{', '.join(known) or 'none'}); "
                             f"run `attnperf asv machine {explicit}`")
        return explicit
    if len(known) == 1:
        return names.machine(known[0], "the machine of ~/.asv-machine.json")
    raise UsageError("pass --machine NAME (~/.asv-machine.json has: "
                     f"{', '.join(known) or 'no machine; run `attnperf asv machine NAME`'})")


def check_regex(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"-b {pattern!r} is not a regular expression ({exc})") from None


def open_project(config: str, *refs: str) -> tuple[Project, list[str]]:
    """The asv project and the full hashes of ``refs``; every problem a usage error."""
    try:
        project = Project(config)
        return project, [project.resolve(r) for r in refs]
    except AttnperfError as exc:
        raise UsageError(str(exc)) from None


def run_bisect(o: BisectOptions) -> int:
    """Measure GOOD, BAD and what lies between as needed; print the verdict (ExitCode)."""
    project, (good, bad) = open_project(o.config, o.good, o.bad)
    try:
        commits = project.first_parent_range(good, bad)
    except AttnperfError as exc:
        raise UsageError(str(exc)) from None
    machine = pick_machine(o.machine)
    if o.log is not None:
        check_appendable(o.log)
    calibrated = thresholds_file.read(thresholds_file.path_for(str(project.results_dir), machine))
    thresholds = calibrated.lookup() if calibrated and o.factor is None else None
    device = machine_device(machine) if o.device == "auto" else o.device
    try:
        factor = o.factor or confirm.default_factor(project.conf_dir, device)
    except AttnperfError as exc:
        raise UsageError(str(exc)) from None
    judge_again = (confirm.paired_judge(project.repo, o.paired_factor, stream=sys.stderr)
                   if confirm.confirming(o.confirm, device) else None)
    regex = o.bench or GATE_REGEX
    rounds = o.rounds or (calibrated.rounds if calibrated else None)
    runner = AsvRunner(project, machine, regex, launch_method=o.launch_method,
                       rounds=rounds, asv=o.asv, stream=sys.stderr,
                       log_path=Path(o.log) if o.log else None)
    print(f"[attnperf bisect] {good[:8]}..{bad[:8]}: {len(commits)} commit(s) on machine "
          f"{machine!r}; factor "
          + ("from the calibrated thresholds (else " if thresholds else "")
          + f"x{factor:g}" + (")" if thresholds else "") + f"; device {device}"
          + (f"; every time row re-measured paired at x{o.paired_factor:g}" if judge_again
             else ""), file=sys.stderr)
    outcome = bisect_logic.bisect(lambda: read_results(str(project.results_dir)), machine, good,
                                  bad, commits, runner.ensure, factor, o.bench, thresholds,
                                  judge_again)
    reused = len(set(outcome.measured)) - len(set(runner.ran))
    print(f"[attnperf bisect] measured {len(set(runner.ran))} commit(s), reused {reused} "
          "from results/", file=sys.stderr)
    if outcome.kind == bisect_logic.NO_RESULTS:
        missing = [f"{label} {c[:8]}" for label, c in (("GOOD", good), ("BAD", bad))
                   if not runner.covers(runner.results(c))]
        print(f"error: asv produced no results matching -b {regex!r} for "
              f"{' and '.join(missing)} (asv exit codes {runner.exit_codes}); see its output above",
              file=sys.stderr)
        return ExitCode.HARNESS
    text = render.outcome(outcome, project.subject)
    if outcome.kind == bisect_logic.ALL_NA:
        print(f"error: {text.strip()}", file=sys.stderr)
        return ExitCode.USAGE
    sys.stdout.write(text)
    if outcome.kind == bisect_logic.BROKEN:
        return ExitCode.BROKEN
    return ExitCode.REGRESSION if outcome.kind == bisect_logic.REGRESSION else ExitCode.OK
