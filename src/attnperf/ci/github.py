"""What the PR job tells GitHub Actions: the job summary, step outputs and an annotation.

Each is a no-op outside GitHub Actions (its variable unset): ``$GITHUB_STEP_SUMMARY``
gets the summary markdown appended; ``$GITHUB_OUTPUT`` gets ``verdict=`` (ok,
regression, broken, error, input error) and ``exit_code=``; with ``GITHUB_ACTIONS=true`` a
``::notice``/``::error`` workflow command on stdout titles the job's result.
"""

from __future__ import annotations

import os
import sys

from ..analysis import ab
from ..io.files import append_text

TITLES = {ab.EXIT_OK: "No regression", ab.EXIT_REGRESSION: "Regression",
          ab.EXIT_BROKEN: "Broken benchmark", ab.EXIT_INFRA: "Benchmark job error",
          ab.EXIT_USAGE: "Benchmark job input error"}


def publish(code: int, reason: str, machine: str, summary: str) -> None:
    """Report the verdict ``code`` (:data:`attnperf.analysis.ab.VERDICTS`) with its reason."""
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        append_text(step_summary, summary + "\n")
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        append_text(output, f"verdict={ab.VERDICTS[code]}\nexit_code={code}\n")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        level = "notice" if code == ab.EXIT_OK else "error"
        # A workflow command: the runner reads it from the step's stdout.
        print(f"::{level} title={TITLES[code]} ({machine})::{reason}", file=sys.stdout)
