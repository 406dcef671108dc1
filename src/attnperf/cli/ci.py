"""``attnperf ci bench``: the pull-request benchmark job (:mod:`attnperf.ci.bench`), and
``attnperf ci merge``: one verdict of a sharded job (:mod:`attnperf.ci.shards`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ..ci import bench, folders, shards
from ..errors import BenchInputError, BenchJobError, UsageError
from ..measure.paired import PAIRED_FACTOR
from ..model.config import default_factors_text
from ..model.shard import MAX_SHARDS, Shard
from .command import Command, ExitCode, factor_float, int_in, machine_name, positive_float, text


def shard_arg(value: str) -> Shard:
    """``--shard K/N``."""
    try:
        return Shard.parse(value)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def gpu_list(value: str) -> tuple[int, ...]:
    """``--gpus 0,1,...``: distinct GPU indices."""
    parts = [p.strip() for p in value.split(",")]
    if not all(p.isdigit() for p in parts) or len(set(map(int, parts))) != len(parts) \
            or len(parts) > MAX_SHARDS:
        raise argparse.ArgumentTypeError(f"--gpus {value!r}: {bench.GPUS_ALLOWED}")
    return tuple(int(p) for p in parts)


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
        ap.add_argument("--shard", type=shard_arg, default=None, metavar="K/N",
                        help="measure shard K of N of the suite (K in 1..N, N at most "
                             f"{MAX_SHARDS}): the combinations whose id hashes to K, both "
                             "commits in this job; the verdict is about those rows, and "
                             "`attnperf ci merge` makes one verdict of the N folders")
        ap.add_argument("--gpus", type=gpu_list, default=None, metavar="I,J,...",
                        help="one shard per GPU of this host, all at once (shard K of N on the "
                             "K-th GPU listed, pinned with CUDA_VISIBLE_DEVICES in nvidia-smi's "
                             "order), merged into one verdict in --out (each shard's folder: "
                             "OUT/shard-K); a CUDA machine only")
        ap.add_argument("--asv-dir", default=None, type=text("asv-dir"), metavar="DIR",
                        help="asv's results and environments in DIR (DIR/results, DIR/env), "
                             "not the config's: for jobs side by side on one host")

    @classmethod
    def run_from_args(cls, args: argparse.Namespace) -> int:
        return cls.run(bench.BenchOptions(
            base=args.base, machine=args.machine, head=args.head, factor=args.factor,
            config=args.config, results_dir=args.results_dir, out=args.out, device=args.device,
            describe=not args.no_describe, asv=args.asv, asv_args=tuple(args.asv_arg),
            timeout_s=args.timeout, rounds=args.rounds, thresholds=args.thresholds,
            use_thresholds=not args.no_thresholds, confirm=args.confirm,
            paired_factor=args.paired_factor, render_only=args.render_only,
            asv_exit=args.asv_exit, shard=args.shard, gpus=args.gpus or (),
            asv_dir=args.asv_dir))

    @classmethod
    def run(cls, options: bench.BenchOptions) -> int:
        job: Callable[[bench.BenchOptions], bench.Outcome] = (
            shards.run_on_gpus if options.gpus else bench.run)
        return _verdict("ci bench", lambda: job(options),
                        lambda message, code: bench.record_error(options, message, code))


def _verdict(name: str, job: Callable[[], bench.Outcome],
             record: Callable[[str, int], None]) -> int:
    """Run a verdict job: its flagged rows and verdict on stderr, its verdict as the exit
    code; a job that cannot run is one ``error:`` line, its summary saying why (``record``)."""
    try:
        outcome = job()
    except BenchJobError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = ExitCode.USAGE if isinstance(exc, BenchInputError) else ExitCode.HARNESS
        record(str(exc), int(code))
        return code
    for line in outcome.flagged:
        print(f"[attnperf {name}] flagged: {line}", file=sys.stderr)
    print(f"[attnperf {name}] {outcome.verdict}: {outcome.reason} "
          f"(summary: {outcome.summary_path})", file=sys.stderr)
    return ExitCode(outcome.code)


class Merge(Command):
    name = "ci merge"
    help = ("one verdict of a sharded job: the folders of `ci bench --shard K/N` merged "
            "(verdict.json, summary.md, results; exit code = verdict)")
    description = (shards.__doc__ or "").splitlines()[0]
    exit_codes = (ExitCode.OK, ExitCode.REGRESSION, ExitCode.USAGE, ExitCode.HARNESS,
                  ExitCode.BROKEN)

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dirs", nargs="+", metavar="DIR", type=text("DIR"),
                            help="the output folder of each shard (`ci bench --shard K/N "
                                 "--out DIR`), every shard of one job once; with "
                                 "--results-only, asv results folders")
        parser.add_argument("--out", default="ci-artifacts/bench", type=text("out"),
                            help="where the merged summary.md, verdict.json and results go "
                                 "(default ci-artifacts/bench); a new folder, or one attnperf "
                                 "wrote: files it did not write are never replaced")
        parser.add_argument("--results-only", action="store_true",
                            help="the folders are asv results folders of a sharded `asv run` "
                                 "(ATTNPERF_ASV_SHARD): merge them into OUT/results, one file "
                                 "per commit, no verdict")

    @classmethod
    def run_from_args(cls, args: argparse.Namespace) -> int:
        return cls.run(shards.MergeOptions(tuple(args.dirs), args.out, args.results_only))

    @classmethod
    def run(cls, options: shards.MergeOptions) -> int:
        if options.results_only:
            try:
                folder, written, notes = shards.merge_results_only(options)
            except BenchInputError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return ExitCode.USAGE
            for note in notes:
                print(f"[attnperf ci merge] {note}", file=sys.stderr)
            print(f"[attnperf ci merge] {len(written)} file(s) merged into {folder}",
                  file=sys.stderr)
            return ExitCode.OK
        return _verdict("ci merge", lambda: shards.merge(options),
                        lambda message, code: folders.record_error_in(
                            options.out, "shards", message, code))
