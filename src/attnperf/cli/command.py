"""One shape for every command: a :class:`Command`, one exit-code table, one parser.

A command is a class (as asv's ``asv/commands``): ``name`` ("run", or "site build"
for a sub-command), a one-line ``help``, :meth:`Command.setup_arguments` adding its
flags to the parser, and :meth:`Command.run` doing the work with typed parameters.
:meth:`Command.run_from_args` is the only place a parsed ``argparse.Namespace`` is
read: it hands ``run`` the parameters it names, or a frozen options object where
many travel together.  ``attnperf.cli`` lists the commands once (``COMMANDS``) and
builds the one parser from them (:func:`add_commands`).
"""

from __future__ import annotations

import argparse
import enum
import inspect
import math
import textwrap
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar, NoReturn

from ..errors import UsageError
from ..model import names

Details = tuple[tuple[tuple[str, ...], str], ...]  # ((command names, what it means there), ...)

_SIGNALLED: Details = (
    (("run",), "the partial report is kept, marked interrupted"),
    (("site build",), "the output folder is left as it was"))


class ExitCode(enum.IntEnum):
    """What ``attnperf``'s exit status means: one table for every command.

    Each code has a summary and, per command where it says more, the detail; a
    command's ``--help`` shows its own codes and details, ``attnperf --help`` all.
    """

    summary: str
    details: Details

    # summary's default only lets a look-up by value, ``ExitCode(3)``, type-check: every
    # member below gives its summary.
    def __new__(cls, value: int, summary: str = "", details: Details = ()) -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.summary, member.details = summary, details
        member.__doc__ = summary + "".join(
            f"; {', '.join(names)}: {text}" for names, text in details
        )
        return member

    OK = 0, "success", (
        (("run",), "every config measured is correct"),
        (("compare", "ci bench", "ci merge", "bisect"), "no significant regression"),
        (("calibrate",), "thresholds measured and written"))
    FAILURE = 1, "a failure found", (
        (("run",), "a config failed correctness, errored, crashed or timed out, or nothing "
                   "could be measured"),
        (("compare",), "a regression past the threshold, or a correctness or coverage loss"),
        (("ci bench",), "a regression: the results show a benchmark slower past its threshold, "
                        "with significance (verdict \"regression\")"),
        (("ci merge",), "a regression in the shards' rows, judged as one ci bench judges them"),
        (("bisect",), "a regression, and the commit that introduced it is named"),
        (("site build",), "asv publish failed (attnperf's pages were built anyway)"),
        (("asv fetch-assets",), "a package could not be fetched or failed its integrity check"),
        (("asv env-build", "asv env-install"), "a pip step failed"))
    USAGE = 2, ("usage or input error: a bad flag or value, an unknown name, no such device, "
                "an unreadable or invalid file, an unwritable output path"), (
        (("bisect",), "also every selected benchmark n/a at GOOD and BAD on this machine"),
        (("ci bench",), "also a ref git cannot resolve, a missing or unreadable asv config, "
                        "[tool.attnperf] or thresholds file; summary.md says why"),
        (("ci merge",), "also a folder that is not a shard's, a shard missing or given twice, "
                        "shards of different splits, commits, machines or factors; summary.md "
                        "says why"))
    NO_VERDICT = 3, ("harness failure, no verdict: asv crashed, could not start or fork, or "
                     "produced no results"), (
        (("ci bench",), "asv continuous ended without its comparison (a crash, a timeout, an "
                        "exit code other than its verdict's), wrote no results for both commits, "
                        "or could not be started, or the machine could not be described; "
                        "summary.md says why (verdict \"error\")"),
        (("ci merge",), "a shard's job failed before its verdict, or a shard's verdict is a "
                        "harness failure (verdict \"error\")"),
        (("bisect",), "asv produced no results for GOOD or BAD (see its output)"),
        (("calibrate",), "asv produced fewer than two result sets (see its output)"))
    BROKEN = 4, ("wrong result or broken benchmark: a kernel failed its check, or a benchmark "
                 "errored"), (
        (("ci bench",), "a benchmark fails at head (asv continuous exit 2, a failed result): "
                        "a wrong result or an error (verdict \"broken\")"),
        (("ci merge",), "a benchmark fails at head in one of the shards (verdict \"broken\")"),
        (("bisect",), "a benchmark fails at BAD that passed at GOOD (named; no search)"))
    INTERRUPTED = 130, "stopped by SIGINT (Ctrl-C)", _SIGNALLED  # 128 + the signal's number
    TERMINATED = 143, "stopped by SIGTERM", _SIGNALLED
    # Names the verdict flows (ci bench, bisect, calibrate) use for the same numbers.
    REGRESSION = 1, "a regression"
    HARNESS = 3, "harness failure"

    @classmethod
    def epilog(cls, codes: Iterable[ExitCode] | None = None, command: str | None = None,
               width: int = 88) -> str:
        """The table for a ``--help`` epilog: ``codes`` (default: every code) in order, with
        the details for ``command`` (default: every command's, one line each)."""
        chosen = sorted(set(cls) if codes is None else set(codes))
        lines = ["exit codes:"]

        def wrap(text: str, first: str, rest: str) -> list[str]:
            return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest,
                                 break_on_hyphens=False)

        for code in chosen:
            mine = [text for commands, text in code.details if command in commands]
            if command is not None:
                sep = "; " if ":" in code.summary else ": "
                lines += wrap(sep.join([code.summary, *mine]), f"  {int(code):<5}", " " * 7)
                continue
            lines += wrap(code.summary, f"  {int(code):<5}", " " * 7)
            for commands, text in code.details:
                lines += wrap(f"{', '.join(commands)}: {text}", " " * 9, " " * 11)
        return "\n".join(lines) + "\n"


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as :class:`UsageError`: the CLI prints one
    ``error:`` line and exits :attr:`ExitCode.USAGE`, for every command alike."""

    def error(self, message: str) -> NoReturn:  # noqa: D401 - argparse API
        raise UsageError(message)


class Command:
    """A command of ``attnperf``: subclasses set ``name`` and ``help`` and define
    :meth:`setup_arguments` and ``run`` (typed parameters, returns an :class:`ExitCode`)."""

    name: ClassVar[str]  # "run", or "group sub" for a sub-command ("site build")
    help: ClassVar[str]  # one line, in the command list of `attnperf --help`
    description: ClassVar[str | None] = None  # the command's own --help (default: help)
    exit_codes: ClassVar[tuple[ExitCode, ...]] = (ExitCode.OK, ExitCode.FAILURE, ExitCode.USAGE)
    # each subclass's own classmethod, with the typed parameters it needs
    run: ClassVar[Callable[..., int]]

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this command's arguments, each with a help string."""

    @classmethod
    def run_from_args(cls, args: argparse.Namespace) -> int:
        """Call :meth:`run` with the parameters it names, taken from the parsed arguments.

        Commands whose flags need converting (comma lists, a frozen options object)
        override this; ``run`` itself never sees the Namespace."""
        run = cls.run
        names = inspect.signature(run).parameters
        return run(**{name: getattr(args, name) for name in names})


# ---- argument types: a bad value is argparse's "argument --x: ..." usage error ----
# Every number enters through one of these: finite, and in the range the flag documents.
def positive_int(flag: str, most: int | None = None) -> Callable[[str], int]:
    """A positive integer (at most ``most``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--{flag} must be a positive integer, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"--{flag} must be a positive integer, got {value}")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(
                f"--{flag} must be a positive integer of at most {most}, got {value}")
        return value
    return parse


def int_in(flag: str, least: int, most: int) -> Callable[[str], int]:
    """An integer in [``least``, ``most``]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{flag} must be an integer, got {text!r}") from None
        if not least <= value <= most:
            raise argparse.ArgumentTypeError(
                f"--{flag} must be an integer in {least}..{most}, got {value}")
        return value
    return parse


def finite_float(flag: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{flag} must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"--{flag} must be a finite number, got {text!r}")
        return value
    return parse


def positive_float(flag: str, most: float, unit: str = "") -> Callable[[str], float]:
    """A finite number in (0, ``most``]: a duration, whose upper bound keeps every timer
    and poll attnperf starts from overflowing."""
    finite = finite_float(flag)

    def parse(text: str) -> float:
        value = finite(text)
        if not 0 < value <= most:
            raise argparse.ArgumentTypeError(
                f"--{flag} must be a positive number of at most {most:g}{unit}, got {value:g}")
        return value
    return parse


def factor_float(flag: str) -> Callable[[str], float]:
    """A slowdown factor: a finite number (``>= 1`` is checked where the options are built,
    with the message the library gives)."""
    return finite_float(flag)


def text(flag: str) -> Callable[[str], str]:
    """A non-empty value: ``--dtype ''`` or ``-o ''`` is an error, never "unset"."""
    def parse(value: str) -> str:
        if not value.strip():
            raise argparse.ArgumentTypeError(f"--{flag} must not be empty")
        return value
    return parse


def machine_name(flag: str = "machine") -> Callable[[str], str]:
    """An asv machine name (:func:`attnperf.model.names.machine`): one safe path component."""
    def parse(value: str) -> str:
        try:
            return names.machine(value, f"--{flag}" if flag else "")
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


# ---- the one parser ----------------------------------------------------------------
COMMAND_KEY = "_command"  # the Namespace attribute naming the chosen Command class


def add_commands(parser: argparse.ArgumentParser, commands: Sequence[type[Command]],
                 groups: dict[str, str]) -> None:
    """Add ``commands`` to ``parser``; ``groups`` gives the help line of each command group
    ("site", "asv", "ci") whose sub-commands are named "group sub"."""
    subs = parser.add_subparsers(dest="command", parser_class=Parser)
    group_subs: dict[str, argparse._SubParsersAction[Parser]] = {}
    for command in commands:
        group, _, sub = command.name.partition(" ")
        where = subs
        if sub:
            if group not in group_subs:
                g = subs.add_parser(group, help=groups[group], description=groups[group])
                g.set_defaults(**{COMMAND_KEY: None, "group_parser": g})
                group_subs[group] = g.add_subparsers(dest=f"{group}_command", parser_class=Parser)
            where = group_subs[group]
        p = where.add_parser(sub or group, help=command.help,
                             description=textwrap.fill(command.description or command.help, 88,
                                                     break_on_hyphens=False),
                             epilog=ExitCode.epilog(command.exit_codes, command.name),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        command.setup_arguments(p)
        if not any("--verbose" in a.option_strings for a in p._actions):
            # also after the command (`attnperf run --verbose`); SUPPRESS keeps a
            # `attnperf -v run` from being reset by this parser's default
            p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                           help="log details to stderr (as `attnperf -v`)")
        p.set_defaults(**{COMMAND_KEY: command})


def group_usage(group_parser: argparse.ArgumentParser) -> str:
    """'usage: attnperf site build [--config CONFIG] ...' on one line: the usage of a
    group's only sub-command, else 'usage: attnperf asv {machine,...} ...'."""
    action = next(a for a in group_parser._actions if isinstance(a, argparse._SubParsersAction))
    choices = dict(action.choices)
    if len(choices) == 1:
        return " ".join(next(iter(choices.values())).format_usage().split())
    return f"usage: {group_parser.prog} {{{','.join(choices)}}} ..."
