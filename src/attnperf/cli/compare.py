"""``attnperf compare``: a report against a baseline; exit 1 on a regression."""

from __future__ import annotations

import argparse
import json
import sys

from ..analysis.compare import compare_results
from ..errors import UsageError
from ..io.jsonfile import check_writable, finite, write_json
from ..io.report import read_results
from ..render.compare import render
from .command import Command, ExitCode, finite_float

FORMATS = ("text", "markdown", "json")


class Compare(Command):
    name = "compare"
    help = ("compare a report with a baseline: slower past the threshold, correctness or "
            "coverage lost")

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("current", help="current report (attnperf JSON, or the single-config "
                            "JSON format without schema_version)")
        parser.add_argument("--baseline", required=True, help="baseline report")
        parser.add_argument("--threshold", type=finite_float("threshold"), default=-3.0,
                            help="regression when improvement_pct < THRESHOLD (default -3.0)")
        parser.add_argument("--output", "-o", help="write the comparison JSON here")
        parser.add_argument("--format", dest="fmt", metavar="FORMAT", default="text",
                            help="text|markdown|json (stdout)")
        parser.add_argument("--allow-missing", action="store_true",
                            help="configs of the baseline absent from the current report do not "
                                 "fail (default: lost coverage is a failure, exit 1)")

    @classmethod
    def run(cls, current: str, baseline: str, threshold: float = -3.0,
            output: str | None = None, fmt: str = "text", allow_missing: bool = False) -> int:
        if fmt not in FORMATS:
            raise UsageError(f"--format must be text, markdown or json, got {fmt!r}")
        inputs = (current, baseline)
        if output:
            check_writable(output, inputs)
        base = read_results(baseline, "baseline")
        cur = read_results(current, "current report")
        result = compare_results(base, cur, threshold, allow_missing=allow_missing)
        if fmt == "json":
            # Always valid JSON: no NaN/Infinity literals (null instead).
            print(json.dumps(finite(result), indent=2, allow_nan=False))
        else:
            sys.stdout.write(render(result, fmt))
        if output:
            write_json(output, result, inputs)
        return ExitCode.FAILURE if result["is_regression"] else ExitCode.OK
