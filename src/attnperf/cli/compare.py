"""``attnperf compare``: a report against a baseline (the seed's compare_baseline.py)."""

from __future__ import annotations

import json
import sys

from ..analysis.compare import compare_results
from ..io.jsonfile import check_writable, finite, write_json
from ..io.report import read_results
from ..render.compare import render
from .common import EXIT_FAIL, EXIT_OK, UsageError


def cmd_compare(args) -> int:
    if args.format not in ("text", "markdown", "json"):
        raise UsageError(f"--format must be text, markdown or json, got {args.format!r}")
    inputs = (args.current, args.baseline)
    if args.output:
        check_writable(args.output, inputs)
    baseline = read_results(args.baseline, "baseline")
    current = read_results(args.current, "current report")
    result = compare_results(baseline, current, args.threshold,
                             allow_missing=getattr(args, "allow_missing", False))
    if args.format == "json":
        # Always valid JSON: no NaN/Infinity literals (null instead).
        print(json.dumps(finite(result), indent=2, allow_nan=False))
    else:
        sys.stdout.write(render(result, args.format))
    if args.output:
        write_json(args.output, result, inputs)
    return EXIT_FAIL if result["is_regression"] else EXIT_OK
