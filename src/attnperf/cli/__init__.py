"""The ``attnperf`` command: one parser built from the commands, one exit-code table.

Each module here is one command group (parse, call, print, exit); every command is
a :class:`~attnperf.cli.command.Command`, listed once in :data:`COMMANDS`.  Exit
codes: :class:`~attnperf.cli.command.ExitCode` (``attnperf --help`` prints them).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

try:  # the commands load PyTorch (seconds): Ctrl-C meanwhile is one line, no traceback
    from .. import __version__
    from ..errors import AttnperfError, UsageError
    from ..render.escape import terminal
    from . import command
    from .asv import EnvBuild, EnvInstall, FetchAssets, Machine
    from .bisect import Bisect
    from .calibrate import Calibrate
    from .ci import Bench, Merge
    from .command import Command, ExitCode
    from .compare import Compare
    from .info import Ceilings, Env, Kernels
    from .init import Init
    from .run import Run
    from .site import PrComment, SiteBuild
except KeyboardInterrupt:
    sys.stderr.write("error: interrupted\n")
    raise SystemExit(130) from None  # ExitCode.INTERRUPTED
except MemoryError:  # a memory limit below what PyTorch needs to load: one line, exit 2
    sys.stderr.write("error: out of memory while loading attnperf and PyTorch "
                     "(this process's memory limit is too low)\n")
    raise SystemExit(2) from None  # ExitCode.USAGE
except ImportError as exc:  # e.g. a shared library that cannot be mapped under a memory cap
    sys.stderr.write(f"error: cannot load attnperf's dependencies: {exc}\n".replace("\n", " ")
                     .rstrip() + "\n")
    raise SystemExit(2) from None  # ExitCode.USAGE

__all__ = ["COMMANDS", "Command", "ExitCode", "build_parser", "main"]

# Every command, in the order `attnperf --help` lists them.
COMMANDS: tuple[type[Command], ...] = (
    Run, Compare, Kernels, Ceilings, Env, Init, SiteBuild, PrComment,
    Machine, FetchAssets, EnvBuild, EnvInstall, Bench, Merge, Bisect, Calibrate)

GROUPS = {
    "site": "build the published site: asv publish + attnperf's roofline pages",
    "asv": "asv helpers: describe this machine (`asv machine NAME`), asv's page scripts for "
           "offline sites (`asv fetch-assets [DIR]`), asv.conf.json's build and install steps "
           "(`asv env-build|env-install`)",
    "ci": "CI jobs: `ci bench --base B --head H --machine M` (asv continuous, verdict, "
          "PR comment markdown; --shard K/N for one shard of the suite), `ci merge DIR...` "
          "(one verdict of the shards' folders)",
}


def build_parser() -> argparse.ArgumentParser:
    """The full ``attnperf`` parser (the docs' CLI reference is generated from it)."""
    parser = command.Parser(
        prog="attnperf",
        epilog=ExitCode.epilog(),
        description="Correctness, GPU-true timing and roofline of attention kernels.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"attnperf {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    command.add_commands(parser, COMMANDS, GROUPS)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return int(ExitCode.USAGE)
        chosen = getattr(args, command.COMMAND_KEY)
        if chosen is None:  # a group without its sub-command: `attnperf site`
            raise UsageError(command.group_usage(args.group_parser))
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        return int(chosen.run_from_args(args))
    except AttnperfError as exc:
        # one line, whatever the message quotes from a file or the command line
        print(f"error: {terminal(str(exc))}", file=sys.stderr)
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except OSError as exc:  # the file system refused (a name too long, an immutable folder...)
        where = "" if exc.filename is None else f": {_short(os.fsdecode(exc.filename))!r}"
        print(f"error: {terminal(exc.strerror or str(exc))}{terminal(where)}", file=sys.stderr)
        return int(ExitCode.USAGE)
    except MemoryError:  # a memory limit below what the inputs need: one line, not a traceback
        print("error: out of memory (inputs too large for this process's memory limit)",
              file=sys.stderr)
        return int(ExitCode.USAGE)


def _short(text: str, most: int = 120) -> str:
    return text if len(text) <= most else text[:most - 3] + "..."


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
