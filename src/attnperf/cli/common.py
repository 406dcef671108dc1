"""What every command module shares: exit codes and the usage error."""

from __future__ import annotations

import argparse

from ..errors import AttnperfError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

EPILOG = """exit codes:
  0  success (all configs correct; no regression)
  1  a config failed correctness, errored, crashed or timed out, or nothing could be
     measured (run); a regression past the threshold, a correctness or coverage loss (compare)
  2  usage or input error (bad value, unknown name, no such device, unreadable report, bad output path)
  130/143  run stopped by SIGINT/SIGTERM (the partial report is kept, marked interrupted)
"""


class UsageError(AttnperfError):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one ``error:`` line, exit 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UsageError(message)
