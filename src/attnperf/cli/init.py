"""``attnperf init [DIR]``: set up asv, the suite and the workflows for a git repository."""

from __future__ import annotations

import sys
from pathlib import Path

from .. import scaffold
from ..io import project_config
from .common import EXIT_OK, UsageError

NEXT = """next:
  git add -A && git commit -m "Track attention kernels with attnperf"
  asv machine --yes
  asv continuous --factor {factor} --interleave-rounds -a rounds=3 -b '^(?!.*Views)' HEAD~1 HEAD
  attnperf site build --serve"""


def cmd_init(args) -> int:
    try:
        project = scaffold.inspect_project(Path(args.dir or "."), branch=args.branch)
    except scaffold.InitError as exc:
        raise UsageError(str(exc)) from None
    pyproject = project.root / project_config.PYPROJECT
    if project.has_config:
        project_config.load(pyproject)  # an invalid [tool.attnperf]: exit 2 before writing anything
    outcomes = scaffold.write(project, force=args.force)
    for o in outcomes:
        note = " (edited since attnperf init wrote it; --force rewrites it)" if o.action == "kept" else ""
        print(f"{o.action:>9}  {o.path}{note}" if o.action != "added [tool.attnperf]"
              else f"    added  [tool.attnperf] to {o.path}")
    config = project_config.load(pyproject)
    if config is not None and not config.kernels:
        print("note: [tool.attnperf] kernels is empty: name your kernels there "
              "(`attnperf kernels` lists them)", file=sys.stderr)
    print(f"attnperf init: {project.root} ({project.name}, branch {project.branch})")
    print(NEXT.format(factor=config.factor("cpu") if config else 1.5))
    return EXIT_OK
