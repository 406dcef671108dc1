"""``attnperf bisect GOOD BAD``: the bisect users expect from ``asv find``, with a verdict.

Exit codes: 0 no significant regression between GOOD and BAD; 1 a regression,
named (or, when NOT CONFIRMED is printed, present but not a single step);
2 usage or input error (bad ref, not a git repository, bad regex, unknown
machine) or every selected value n/a; 3 asv produced no results (see the log).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ..analysis import bisect as bisect_logic
from ..analysis.gate import GATE_REGEX
from ..asv.runner import AsvRunner, Project, machine_names
from ..errors import AttnperfError
from ..io import thresholds as thresholds_file
from ..io.asv_results import read_results
from ..render import bisect as render
from .common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, UsageError

EXIT_ASV = 3
DEFAULT_FACTOR = 1.1  # asv's own default

EPILOG = """exit codes:
  0  no significant regression between GOOD and BAD
  1  a regression: the commit that introduced it is named
  2  usage or input error (bad ref, not a git repository, bad regex, unknown machine),
     or every selected benchmark is n/a at GOOD and BAD on this machine
  3  asv produced no results for GOOD or BAD (see the asv log)
"""


def add_parser(sub) -> None:
    import argparse

    b = sub.add_parser("bisect", help="find the commit that made a benchmark slower, with a verdict "
                       "(asv run + asv's own test)", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("good", help="a commit known to be fast (GOOD)")
    b.add_argument("bad", help="a later commit known (or suspected) to be slow (BAD)")
    b.add_argument("-b", "--bench", default=None, metavar="REGEX",
                   help="benchmarks to judge, as asv's -b (matched against "
                        "name('kernel', 'problem')); default: the gated ones")
    b.add_argument("--factor", type=float, default=None,
                   help="slower by more than this and significant = regression (default: the "
                        "machine's calibrated thresholds if present, else 1.1)")
    b.add_argument("--machine", default=None,
                   help="asv machine name (default: the only one in ~/.asv-machine.json)")
    b.add_argument("--config", default="asv.conf.json", help="asv config (default asv.conf.json)")
    b.add_argument("--rounds", type=int, default=None,
                   help="asv rounds per commit (independent measurements pooled; default: "
                        "the calibrated thresholds' rounds, else 1)")
    b.add_argument("--launch-method", default="forkserver", choices=["forkserver", "spawn"],
                   help="asv's launch method (default forkserver: one `import torch` per commit)")
    b.add_argument("--log", default=None, help="append asv's output here (default: stderr only)")
    b.add_argument("--asv", default=None, help="asv executable (default: next to this python)")


def pick_machine(explicit):
    known = machine_names()
    if explicit:
        if explicit not in known:
            raise UsageError(f"asv knows no machine {explicit!r} (~/.asv-machine.json has: "
                             f"{', '.join(known) or 'none'}); run `attnperf asv machine {explicit}`")
        return explicit
    if len(known) == 1:
        return known[0]
    raise UsageError("pass --machine NAME (~/.asv-machine.json has: "
                     f"{', '.join(known) or 'no machine; run `attnperf asv machine NAME`'})")


def _check(args) -> None:
    if args.factor is not None and not args.factor >= 1.0:
        raise UsageError(f"--factor must be a number >= 1.0, got {args.factor}")
    if args.rounds is not None and args.rounds < 1:
        raise UsageError(f"--rounds must be a positive integer, got {args.rounds}")
    if args.bench is not None:
        check_regex(args.bench)


def check_regex(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"-b {pattern!r} is not a regular expression ({exc})") from None


def open_project(config: str, *refs: str):
    """The asv project and the full hashes of ``refs``; every problem a usage error."""
    try:
        project = Project(config)
        return project, [project.resolve(r) for r in refs]
    except AttnperfError as exc:
        raise UsageError(str(exc)) from None


def cmd_bisect(args) -> int:
    _check(args)
    project, (good, bad) = open_project(args.config, args.good, args.bad)
    try:
        commits = project.first_parent_range(good, bad)
    except AttnperfError as exc:
        raise UsageError(str(exc)) from None
    machine = pick_machine(args.machine)
    calibrated = thresholds_file.read(thresholds_file.path_for(str(project.results_dir), machine))
    thresholds = calibrated.lookup() if calibrated and args.factor is None else None
    factor = args.factor or DEFAULT_FACTOR
    regex = args.bench or GATE_REGEX
    rounds = args.rounds or (calibrated.rounds if calibrated else None)
    runner = AsvRunner(project, machine, regex, launch_method=args.launch_method,
                       rounds=rounds, asv=args.asv, stream=sys.stderr,
                       log_path=Path(args.log) if args.log else None)
    print(f"[attnperf bisect] {good[:8]}..{bad[:8]}: {len(commits)} commit(s) on machine "
          f"{machine!r}; factor "
          + ("from the calibrated thresholds (else " if thresholds else "")
          + f"x{factor:g}" + (")" if thresholds else ""), file=sys.stderr)
    outcome = bisect_logic.bisect(lambda: read_results(str(project.results_dir)), machine, good,
                                  bad, commits, runner.ensure, factor, args.bench, thresholds)
    reused = len(set(outcome.measured)) - len(set(runner.ran))
    print(f"[attnperf bisect] measured {len(set(runner.ran))} commit(s), reused {reused} "
          "from results/", file=sys.stderr)
    if outcome.kind == bisect_logic.NO_RESULTS:
        missing = [f"{label} {c[:8]}" for label, c in (("GOOD", good), ("BAD", bad))
                   if not runner.covers(runner.results(c))]
        print(f"error: asv produced no results matching -b {regex!r} for "
              f"{' and '.join(missing)} (asv exit codes {runner.exit_codes}); see its output above",
              file=sys.stderr)
        return EXIT_ASV
    text = render.outcome(outcome, project.subject)
    if outcome.kind == bisect_logic.ALL_NA:
        print(f"error: {text.strip()}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(text)
    return EXIT_FAIL if outcome.kind == bisect_logic.REGRESSION else EXIT_OK
