#!/usr/bin/env python3
"""The pull-request benchmark job: `asv continuous` base vs head, a verdict, markdown.

    attnperf ci bench --base BASE --head HEAD --machine NAME [--factor 1.05] [--out DIR]

What the GitHub workflow runs, and what a developer (or a test) runs locally:

1. resolve BASE and HEAD to commits (``git rev-parse``, read-only);
2. describe the machine to asv: ``attnperf asv machine NAME`` writes asv's
   fields plus the GPU facts into ~/.asv-machine.json and the measured
   ceilings into ``results/NAME/attnperf-ceilings.json`` (``--no-describe``
   keeps an existing description);
3. ``asv continuous --factor F -b '^(?!.*Views)' --machine NAME BASE HEAD``,
   its output shown and kept in ``OUT/asv-continuous.log``; with ``--rounds R``
   also ``--interleave-rounds -a rounds=R``: each commit is measured R times
   in separate processes (asv re-creates the suite's ``setup_cache`` every
   round), in the order base, head, head, base, ... so drift over minutes
   (another job on a shared CPU, a warming GPU) falls on both sides alike;
3b. per-benchmark thresholds: when ``results/NAME/attnperf-thresholds.json``
   exists (``attnperf calibrate``), asv runs at the smallest of them (and F),
   every row is judged again at its own threshold (rows without one at F),
   and the verdict and exit code follow that re-judged table; the file's
   ``rounds`` is the default for ``--rounds``;
3c. on a CPU (``--device cpu`` with ``--confirm auto``, or ``--confirm paired``): every time row measured at both
   commits is measured again *paired* -- both commits checked out (git
   worktrees, removed after), one live worker process each, pinned to one
   core, samples alternated (:mod:`attnperf.measure.paired`) -- and judged by
   that: slower past ``--paired-factor`` (1.10) with a sign test p < 0.01.
   asv's separate processes cannot tell identical code from a 30 % slowdown
   on a loaded 2-vCPU machine; the pairs can.  ``OUT/paired.json`` keeps them;
4. read both commits' result files and render ``OUT/summary.md``
   (:mod:`attnperf.prcomment`), appended to ``$GITHUB_STEP_SUMMARY`` when set;
5. copy the result files into ``OUT/results/`` (the artifact) and write
   ``OUT/verdict.json``.

Exit codes (also ``verdict=`` in ``$GITHUB_OUTPUT`` and an annotation title):
  0  ok          no significant regression
  1  regression  asv continuous exit 1 and the results show a slower benchmark
  2  broken      a benchmark failed (asv exit 2): a wrong result or an error
  3  error       asv did not produce results for both commits, or this script's input was bad

``--render-only`` skips steps 2-3 and renders from results already on disk
(``--asv-exit`` then supplies asv's exit code, if known).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..analysis import ab
from ..analysis.gate import GATE_REGEX as GATED
from ..analysis.gate import metric_class
from ..asv import runner
from ..errors import ConfigError, ReportError
from ..io import project_config
from ..io import thresholds as thresholds_file
from ..io.asv_results import read_asv_conf, read_results
from ..measure.paired import PAIRED_FACTOR, PairedRunner
from ..render import markdown as md
from ..render import prcomment


DEFAULT_FACTOR = 1.05


class InputError(Exception):
    """A bad argument or an environment this script cannot work in (exit 3)."""


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise InputError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def resolve(repo: Path, ref: str) -> str:
    return _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")


def find_asv(explicit: Optional[str]) -> str:
    try:
        return runner.find_asv(explicit)
    except runner.ProjectError as exc:
        raise InputError(str(exc)) from None


def _env() -> dict:
    # attnperf.asv.envinstall lends this interpreter's torch to asv's environments.
    return runner.asv_env()


def _tee(cmd: List[str], cwd: Path, log_path: Path, env: dict, timeout: Optional[float]) -> int:
    """Run ``cmd``, echoing its output and keeping it in ``log_path``."""
    return runner.tee(cmd, cwd, env, sys.stdout, log_path, timeout)


def describe_machine(conf_dir: Path, results_dir: Path, machine: str, device: str,
                     log_path: Path, env: dict) -> None:
    cmd = [sys.executable, "-m", "attnperf", "asv", "machine", machine,
           "--results-dir", str(results_dir), "--device", device]
    rc = _tee(cmd, conf_dir, log_path, env, timeout=600)
    if rc != 0:
        raise InputError(f"describing the machine failed ({' '.join(cmd)} exited {rc}); "
                         f"see {log_path}")


def copy_results(results_dir: Path, machine: str, commits: List[str], dest: Path) -> List[str]:
    copied = []
    mdir = results_dir / machine
    names = ["machine.json", "attnperf-ceilings.json"]
    names += [p.name for c in commits for p in sorted(mdir.glob(f"{c[:8]}-*.json"))]
    for name in names:
        src = mdir / name
        if src.is_file():
            (dest / machine).mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / machine / name)
            copied.append(f"{machine}/{name}")
    if (results_dir / "benchmarks.json").is_file():
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(results_dir / "benchmarks.json", dest / "benchmarks.json")
        copied.append("benchmarks.json")
    return copied


def publish_to_github(code: int, reason: str, machine: str, summary: str) -> None:
    """Job summary, step outputs and an annotation; no-ops outside GitHub Actions."""
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a") as fh:
            fh.write(summary + "\n")
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a") as fh:
            fh.write(f"verdict={ab.VERDICTS[code]}\nexit_code={code}\n")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        title = {0: "No regression", 1: "Regression", 2: "Broken benchmark",
                 3: "Benchmark job error"}[code]
        level = "notice" if code == 0 else "error"
        print(f"::{level} title={title} ({machine})::{reason}")


def run(args: argparse.Namespace) -> int:
    conf_path = Path(args.config).resolve()
    if not conf_path.is_file():
        raise InputError(f"asv config {args.config!r} does not exist")
    conf_dir = conf_path.parent
    try:
        conf = read_asv_conf(str(conf_path))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {conf_path}: {exc}") from None
    results_dir = (conf_dir / (args.results_dir or conf.get("results_dir", "results"))).resolve()
    if args.factor is None:  # [tool.attnperf] regression-factor of the repository, per device
        try:
            config = project_config.load(conf_dir / project_config.PYPROJECT) \
                if (conf_dir / project_config.PYPROJECT).is_file() else None
        except ConfigError as exc:
            raise InputError(str(exc)) from None
        args.factor = config.factor(args.device) if config else DEFAULT_FACTOR
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "asv-continuous.log"
    log_path.write_text("")
    base, head = resolve(conf_dir, args.base), resolve(conf_dir, args.head)
    if not base or not head:
        raise InputError(f"cannot resolve --base {args.base!r} / --head {args.head!r} in {conf_dir}")
    env = _env()
    calibrated = _thresholds(args, results_dir)
    lookup = calibrated.lookup() if calibrated else None
    asv_factor = min(args.factor, calibrated.smallest() or args.factor) if calibrated else args.factor
    rounds = args.rounds or (calibrated.rounds if calibrated else None)
    asv_exit: Optional[int] = args.asv_exit
    if not args.render_only:
        if not args.no_describe:
            describe_machine(conf_dir, results_dir, args.machine, args.device, log_path, env)
        cmd = [find_asv(args.asv), "continuous", "--config", str(conf_path), "--factor",
               f"{asv_factor:g}", "-b", GATED, "--machine", args.machine]
        if rounds and rounds > 1:
            cmd += ["--interleave-rounds", "-a", f"rounds={rounds}"]
        cmd += [*args.asv_arg, base, head]
        asv_exit = _tee(cmd, conf_dir, log_path, env, timeout=args.timeout)
    db = read_results(str(results_dir))
    machine = db.machines.get(args.machine)
    base_run = machine.runs_for(base)[-1] if machine and machine.runs_for(base) else None
    head_run = machine.runs_for(head)[-1] if machine and machine.runs_for(head) else None
    cmp = ab.compare(db, args.machine, base_run, head_run, args.factor, lookup)
    # What asv itself judged (every row at its factor): tells a flag that the thresholds
    # or the metrics' own factors overrule from an asv error.
    asv_view = ab.compare(db, args.machine, base_run, head_run, asv_factor, metric_rules=False)
    paired = None
    if _confirming(args) and not args.render_only and base_run is not None and head_run is not None:
        paired, failed = paired_confirmation(conf_dir, base, head, cmp)
        (out / "paired.json").write_text(json.dumps(
            {"factor": args.paired_factor,
             "results": [{"kernel": k, "problem": p, **r.to_dict()} for (k, p), r in paired.items()],
             "not_measured": [{"kernel": k, "problem": p, "reason": why} for (k, p), why in failed.items()]},
            indent=2) + "\n")
        cmp = ab.confirm_paired(cmp, paired, args.paired_factor)
    if args.render_only and asv_exit is None:
        code, reason = _code_from_rows(cmp)
    else:
        code, reason = ab.decide(asv_exit, cmp, asv_view)
    footer = "" if args.render_only else (
        f"<sub>asv's own output: `{log_path.name}` in this job's artifact.</sub>")
    summary = prcomment.render_section(db, args.machine, base, head, args.factor,
                                       asv_exit=asv_exit, footer=footer, thresholds=calibrated,
                                       asv_factor=asv_factor)
    if paired is not None:
        summary += _paired_section(paired, args.paired_factor)
    (out / "summary.md").write_text(summary)
    copied = copy_results(results_dir, args.machine, [base, head], out / "results")
    verdict = {"exit_code": code, "verdict": ab.VERDICTS[code], "reason": reason,
               "asv_exit": asv_exit, "machine": args.machine, "base": base, "head": head,
               "factor": args.factor, "asv_factor": asv_factor, "rounds": rounds,
               "thresholds": str(_thresholds_path(args, results_dir)) if calibrated else None,
               "paired_factor": args.paired_factor if paired is not None else None,
               "files": copied,
               "counts": {c: cmp.count(c) for c in (ab.WORSE, ab.BETTER,
                                                   ab.BROKE, ab.FIXED)}}
    (out / "verdict.json").write_text(json.dumps(verdict, indent=2) + "\n")
    publish_to_github(code, reason, args.machine, summary)
    print(f"[attnperf ci bench] {ab.VERDICTS[code]}: {reason} (summary: {out / 'summary.md'})",
          file=sys.stderr)
    return code


def _confirming(args: argparse.Namespace) -> bool:
    """--confirm paired, or auto with --device cpu (the CPU jobs: CI's and `make continuous`)."""
    return args.confirm == "paired" or (args.confirm == "auto" and args.device == "cpu")


Key = Tuple[str, str]


def paired_confirmation(repo: Path, base: str, head: str, cmp: ab.Comparison
                        ) -> Tuple[Dict[Key, object], Dict[Key, str]]:
    """(kernel, problem id) -> paired figures for every time row measured at both
    commits, and -> why not for those the workers could not measure."""
    keys = sorted({(r.kernel, r.problem) for r in cmp.rows if metric_class(r.benchmark) is None
                   and r.before.ok and r.after.ok})
    done: Dict[Key, object] = {}
    failed: Dict[Key, str] = {}
    if not keys:
        return done, failed
    tmp = Path(tempfile.mkdtemp(prefix="attnperf-paired-"))
    trees: List[Path] = []
    try:
        try:
            for name, sha in (("base", base), ("head", head)):
                _git(repo, "worktree", "add", "--detach", str(tmp / name), sha)
                trees.append(tmp / name)
        except InputError as exc:  # the rows keep asv's verdict; paired.json says why
            print(f"[attnperf ci bench] no paired re-measurement: {exc}", file=sys.stderr)
            return done, {key: f"no checkout: {exc}" for key in keys}
        src = [str(t / "src") if (t / "src" / "attnperf").is_dir() else None for t in trees]
        with PairedRunner(src[0], src[1], str(trees[0]), str(trees[1])) as runner:
            for key in keys:
                result = runner.measure(*key)
                if isinstance(result, str):
                    failed[key] = result
                else:
                    done[key] = result
                print(f"[attnperf ci bench] paired {key[0]} {key[1]}: "
                      + (result if isinstance(result, str) else
                         f"x{result.ratio:.3f} (p={result.p_slower:.1e}, {result.pairs} pairs)"),
                      file=sys.stderr)
    finally:
        for t in trees:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(t)],
                           capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    return done, failed


def _paired_section(paired: Dict[Key, object], factor: float) -> str:
    lines = ["", f"#### CPU times re-measured paired (both commits alternated on one core; "
                 f"slower past x{factor:g} with sign-test p < 0.01 is a regression)", "",
             "Times: the measuring thread's CPU time per call, median of the samples.", "",
             "| kernel | problem | base ms | head ms | head/base (median pair) | p (slower) |",
             "|---|---|---|---|---|---|"]
    for (k, p), r in sorted(paired.items()):
        lines.append(f"| {md.text(k)} | {md.text(p)} | {r.base_s * 1e3:.3f} | {r.head_s * 1e3:.3f} | "
                     f"{r.ratio:.3f} | {r.p_slower:.1e} |")
    return "\n".join(lines) + "\n"


def _thresholds_path(args: argparse.Namespace, results_dir: Path) -> Path:
    return Path(args.thresholds) if args.thresholds else thresholds_file.path_for(
        str(results_dir), args.machine)


def _thresholds(args: argparse.Namespace, results_dir: Path):
    """The machine's calibrated thresholds (None without a file, or with --no-thresholds)."""
    if args.no_thresholds:
        return None
    path = _thresholds_path(args, results_dir)
    if args.thresholds and not path.is_file():
        raise InputError(f"--thresholds {args.thresholds!r} does not exist")
    try:
        found = thresholds_file.read(path)
    except ReportError as exc:
        raise InputError(f"{exc} (recalibrate: attnperf calibrate --machine {args.machine}; "
                         "or pass --no-thresholds)") from None
    if found is not None and found.machine != args.machine:
        raise InputError(f"{path} was calibrated for machine {found.machine!r}, "
                         f"not {args.machine!r}")
    return found


def _code_from_rows(cmp: ab.Comparison):
    if cmp.base is None or cmp.head is None:
        return ab.decide(None, cmp)
    if cmp.count(ab.BROKE):
        return ab.EXIT_BROKEN, "a benchmark fails at head that passed at base"
    if cmp.count(ab.WORSE):
        return ab.EXIT_REGRESSION, ab.worse_text(cmp, f"x{cmp.factor:g}")
    return ab.EXIT_OK, "no significant regression"


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 3 (exit 2 means "broken benchmark" here)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(ab.EXIT_INFRA)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    ap = _Parser(description=__doc__.splitlines()[0],
                                 epilog="exit codes: 0 ok, 1 regression, 2 broken benchmark, "
                                        "3 error", formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="base commit or ref (the PR's base)")
    ap.add_argument("--head", default="HEAD", help="head commit or ref (default HEAD)")
    ap.add_argument("--machine", required=True, help="asv machine name (one history per name)")
    ap.add_argument("--factor", type=float, default=None,
                    help="asv's factor: slower by more than this and significant = regression "
                         "(default: [tool.attnperf] regression-factor for --device, else 1.05)")
    ap.add_argument("--config", default="asv.conf.json", help="asv.conf.json (default: ./asv.conf.json)")
    ap.add_argument("--results-dir", default=None, help="default: the config's results_dir")
    ap.add_argument("--out", default="ci-artifacts/bench", help="where summary.md etc. go")
    ap.add_argument("--device", default="auto", help="auto|cpu|cuda, for `attnperf asv machine`")
    ap.add_argument("--no-describe", action="store_true",
                    help="keep the existing asv machine description (skip `attnperf asv machine`)")
    ap.add_argument("--asv", default=None, help="asv executable (default: next to this python)")
    ap.add_argument("--asv-arg", action="append", default=[],
                    help="extra argument for asv continuous (repeatable)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds for asv continuous")
    ap.add_argument("--rounds", type=int, default=None,
                    help="measure each commit R times, interleaved base/head (asv "
                         "--interleave-rounds -a rounds=R; default: the thresholds file's, else 1)")
    ap.add_argument("--thresholds", default=None,
                    help="per-benchmark thresholds (default results/MACHINE/attnperf-thresholds.json "
                         "when it exists; `attnperf calibrate` writes it)")
    ap.add_argument("--no-thresholds", action="store_true",
                    help="judge every benchmark at --factor, even if a thresholds file exists")
    ap.add_argument("--confirm", choices=("auto", "paired", "none"), default="auto",
                    help="judge CPU time rows again by a paired re-measurement of both commits "
                         "(auto: with --device cpu; see module doc)")
    ap.add_argument("--paired-factor", type=float, default=PAIRED_FACTOR,
                    help=f"paired re-measurement: slower than this is a regression (default {PAIRED_FACTOR})")
    ap.add_argument("--render-only", action="store_true",
                    help="do not run asv; render from the results on disk")
    ap.add_argument("--asv-exit", type=int, default=None,
                    help="with --render-only: the exit code asv continuous returned")
    args = ap.parse_args(argv)
    if args.factor is not None and args.factor < 1.0:
        ap.error(f"--factor must be >= 1.0, got {args.factor}")
    if args.paired_factor < 1.0:
        ap.error(f"--paired-factor must be >= 1.0, got {args.paired_factor}")
    if args.rounds is not None and args.rounds < 1:
        ap.error(f"--rounds must be a positive integer, got {args.rounds}")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            text = prcomment.render_unavailable(args.machine, str(exc))
            (out / "summary.md").write_text(text)
            publish_to_github(ab.EXIT_INFRA, str(exc), args.machine, text)
        except OSError:
            pass
        return ab.EXIT_INFRA

