"""``attnperf init [DIR]``: set up asv, the suite and the workflows for a git repository."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import scaffold
from ..io import project_config
from .command import Command, ExitCode

NEXT = """next:
  git add -A && git commit -m "Track attention kernels with attnperf"
  attnperf asv machine
  attnperf ci bench --base HEAD~1 --head HEAD
  attnperf site build --serve"""


class Init(Command):
    name = "init"
    help = ("set up asv, benchmarks/ and the CI workflows for a git repository "
            "(README: Track your own kernels)")
    exit_codes = (ExitCode.OK, ExitCode.USAGE)

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("directory", metavar="dir", nargs="?", default=None,
                            help="the repository (default: here)")
        parser.add_argument("--force", action="store_true",
                            help="also rewrite files edited since init wrote them")
        parser.add_argument("--branch", default=None,
                            help="the main branch (default: origin's, else main/master)")

    @classmethod
    def run(cls, directory: str | None = None, force: bool = False,
            branch: str | None = None) -> int:
        project = scaffold.inspect_project(
            Path(directory or "."), branch=branch
        )  # InitError: exit 2
        pyproject = project.root / project_config.PYPROJECT
        if project.has_config:
            project_config.load(
                pyproject
            )  # an invalid [tool.attnperf]: exit 2 before writing anything
        outcomes = scaffold.write(project, force=force)
        for o in outcomes:
            note = (
                " (edited since attnperf init wrote it; --force rewrites it)"
                if o.action == "kept"
                else ""
            )
            print(f"{o.action:>9}  {o.path}{note}" if o.action != "added [tool.attnperf]"
                  else f"    added  [tool.attnperf] to {o.path}")
        config = project_config.load(pyproject)
        if config is not None and not config.kernels:
            print("note: [tool.attnperf] kernels is empty: name your kernels there "
                  "(`attnperf kernels` lists them)", file=sys.stderr)
        print(f"attnperf init: {project.root} ({project.name}, branch {project.branch})")
        print(NEXT)
        return ExitCode.OK
