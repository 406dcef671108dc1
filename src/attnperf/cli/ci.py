"""``attnperf ci bench``: the pull-request benchmark job (:mod:`attnperf.ci.bench`)."""

from __future__ import annotations

import argparse
import sys

from ..ci import bench
from ..errors import BenchInputError, BenchJobError
from ..measure.paired import PAIRED_FACTOR
from ..model.config import default_factors_text
from .command import Command, ExitCode, factor_float, int_in, machine_name, positive_float, text


class Bench(Command):
    name = "ci bench"
    help = ("the pull-request job: asv continuous base vs head, a verdict, the PR comment's "
            "markdown (exit code = verdict)")
    description = (bench.__doc__ or "").splitlines()[0]
    exit_codes = (ExitCode.OK, ExitCode.REGRESSION, ExitCode.USAGE, ExitCode.HARNESS,
                  ExitCode.BROKEN)

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        ap = parser
        ap.add_argument("--base", required=True, type=text("base"),
                        help="base commit or ref (the PR's base)")
        ap.add_argument("--head", default="HEAD", type=text("head"),
                        help="head commit or ref (default HEAD)")
        ap.add_argument("--machine", default=None, type=machine_name(),
                        help="asv machine name (one history per name; default: the host's name, "
                             "as `attnperf asv machine`)")
        ap.add_argument("--factor", type=factor_float("factor"), default=None,
                        help="asv's factor: slower by more than this and significant = regression "
                             "(default: [tool.attnperf] regression-factor for --device, else the "
                             f"device's: {default_factors_text()})")
        ap.add_argument("--config", default="asv.conf.json", type=text("config"),
                        help="asv.conf.json (default: ./asv.conf.json)")
        ap.add_argument("--results-dir", default=None, type=text("results-dir"),
                        help="asv results dir (default: the config's results_dir)")
        ap.add_argument("--out", default="ci-artifacts/bench", type=text("out"),
                        help="where summary.md, verdict.json, the asv log and the result files go "
                             "(default ci-artifacts/bench); a new folder, or one an earlier "
                             "`ci bench` wrote: files it did not write are never replaced")
        ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="the machine's device (auto: the one `attnperf asv machine` recorded "
                             "for --machine, else cuda if this Python sees one, else cpu); picks "
                             "the factor and, on a cpu, the paired re-measurement")
        ap.add_argument("--no-describe", action="store_true",
                        help="keep the existing asv machine description "
                             "(skip `attnperf asv machine`)")
        ap.add_argument("--asv", default=None, help="asv executable (default: next to this python)")
        ap.add_argument("--asv-arg", action="append", default=[],
                        help="extra argument for asv continuous (repeatable)")
        ap.add_argument("--timeout", type=positive_float("timeout", bench.MAX_TIMEOUT_S, " s"),
                        default=None, help="seconds for asv continuous (at most "
                        f"{bench.MAX_TIMEOUT_S:g})")
        ap.add_argument("--rounds", type=int_in("rounds", -2 ** 31, 2 ** 31), default=None,
                        help="measure each commit R times, interleaved base/head (asv "
                             "--interleave-rounds -a rounds=R; default: the thresholds file's, "
                             "else 1)")
        ap.add_argument("--thresholds", default=None,
                        help="per-benchmark thresholds (default "
                             "results/MACHINE/attnperf-thresholds.json "
                             "when it exists; `attnperf calibrate` writes it)")
        ap.add_argument("--no-thresholds", action="store_true",
                        help="judge every benchmark at --factor, even if a thresholds file exists")
        ap.add_argument("--confirm", choices=bench.CONFIRM, default="auto",
                        help="judge CPU time rows again by a paired re-measurement of both commits "
                             "(auto: on a cpu)")
        ap.add_argument("--paired-factor", type=factor_float("paired-factor"),
                        default=PAIRED_FACTOR,
                        help="paired re-measurement: slower than this is a regression "
                             f"(default {PAIRED_FACTOR})")
        ap.add_argument("--render-only", action="store_true",
                        help="do not run asv; render from the results on disk")
        ap.add_argument("--asv-exit", type=int_in("asv-exit", -255, 255), default=None,
                        help="with --render-only: the exit code asv continuous returned")

    @classmethod
    def run_from_args(cls, args: argparse.Namespace) -> int:
        return cls.run(bench.BenchOptions(
            base=args.base, machine=args.machine, head=args.head, factor=args.factor,
            config=args.config, results_dir=args.results_dir, out=args.out, device=args.device,
            describe=not args.no_describe, asv=args.asv, asv_args=tuple(args.asv_arg),
            timeout_s=args.timeout, rounds=args.rounds, thresholds=args.thresholds,
            use_thresholds=not args.no_thresholds, confirm=args.confirm,
            paired_factor=args.paired_factor, render_only=args.render_only,
            asv_exit=args.asv_exit))

    @classmethod
    def run(cls, options: bench.BenchOptions) -> int:
        try:
            outcome = bench.run(options)
        except BenchJobError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = ExitCode.USAGE if isinstance(exc, BenchInputError) else ExitCode.HARNESS
            bench.record_error(options, str(exc), int(code))
            return code
        for line in outcome.flagged:
            print(f"[attnperf ci bench] flagged: {line}", file=sys.stderr)
        print(f"[attnperf ci bench] {outcome.verdict}: {outcome.reason} "
              f"(summary: {outcome.summary_path})", file=sys.stderr)
        return ExitCode(outcome.code)
