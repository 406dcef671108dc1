"""The ``attnperf`` command: argument parsing, printing and exit codes only.

Exit codes (all subcommands):
  0  success: every measured config correct / no regression
  1  a config failed correctness, raised, crashed or timed out, or nothing could be
     measured (run); a regression (compare)
  2  usage or input error: bad flag or value, unknown kernel/sweep/dtype,
     missing device, unreadable/invalid report, unwritable output path
  130, 143  run stopped by SIGINT, SIGTERM (partial report kept, marked interrupted)
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from typing import List, Optional

from .. import __version__
from ..errors import AttnperfError
from .common import EPILOG, EXIT_USAGE, _Parser
from .bisect import add_parser as add_bisect_parser, cmd_bisect
from .calibrate import add_parser as add_calibrate_parser, cmd_calibrate
from .compare import cmd_compare
from .info import cmd_ceilings, cmd_env, cmd_kernels
from .init import cmd_init
from .run import cmd_run
from .site import cmd_asv, cmd_ci, cmd_pr_comment, cmd_site

def _positive_int(name: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--{name} must be a positive integer, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"--{name} must be a positive integer, got {value}")
        return value
    return parse


def _float(name: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{name} must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"--{name} must be a finite number, got {text!r}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="attnperf", description="Correctness, GPU-true timing and roofline of attention kernels.",
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"attnperf {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    r = sub.add_parser("run", help="check and time kernels over problems (the seed's integrated_test.py)",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--kernel", action="append", metavar="NAME",
                   help="kernel to run (repeat or comma-separate; default: [tool.attnperf]'s, else all)")
    r.add_argument("--kernel-module", action="append", metavar="MODULE:ATTR",
                   help="also load the kernel(s) that MODULE:ATTR names (repeatable)")
    r.add_argument("--batch", type=_positive_int("batch"))
    r.add_argument("--heads", type=_positive_int("heads"))
    r.add_argument("--kv-heads", type=_positive_int("kv-heads"), help="K/V heads (GQA when fewer than --heads)")
    r.add_argument("--seq", type=_positive_int("seq"), help="query length")
    r.add_argument("--seq-kv", type=_positive_int("seq-kv"), help="key/value length (default: --seq)")
    r.add_argument("--dim", type=_positive_int("dim"), help="head dimension")
    r.add_argument("--dtype", help="float16|bfloat16|float32 (aliases fp16, bf16, fp32)")
    r.add_argument("--causal", action="store_true")
    r.add_argument("--sweep", help="named sweep (see `attnperf kernels --sweeps`)")
    r.add_argument("--pass", dest="passes", action="append", metavar="PASS",
                   help="fwd|bwd|fwd+bwd (repeat or comma-separate; default fwd): backward "
                        "passes time torch.autograd.grad and check dQ, dK, dV")
    r.add_argument("--device", default="auto", help="auto|cpu|cuda (default auto: cuda when present)")
    r.add_argument("--output", "-o", help="write the JSON report here (atomically)")
    r.add_argument("--budget-ms", type=_float("budget-ms"), default=None,
                   help="time spent sampling each timing (default 500)")
    r.add_argument("--no-latency", action="store_true", help="GPU: skip the per-call latency timing")
    r.add_argument("--no-l2-flush", action="store_true", help="GPU: keep L2 warm between latency samples")
    r.add_argument("--seed", type=int, default=None, help="input seed")
    r.add_argument("--threads", type=_positive_int("threads"), default=None,
                   help="CPU threads for PyTorch (default: 1, as the asv CPU suite: steady on a small shared CPU)")
    r.add_argument("--timeout-s", type=_float("timeout-s"), default=None,
                   help="limit per config; past it the config is 'timed_out' and the sweep "
                        "goes on (default: 60, or 40x (budget + warm-up) when larger)")
    r.add_argument("--in-process", action="store_true",
                   help="measure in this process, for debuggers (default: each config in a "
                        "worker process, so a crash or hang is recorded and the sweep goes on)")

    c = sub.add_parser("compare", help="compare a report with a baseline (the seed's compare_baseline.py)",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("current", help="current report (attnperf or seed JSON)")
    c.add_argument("--baseline", required=True, help="baseline report")
    c.add_argument("--threshold", type=_float("threshold"), default=-3.0,
                   help="regression when improvement_pct < THRESHOLD (default -3.0)")
    c.add_argument("--output", "-o", help="write the comparison JSON here")
    c.add_argument("--format", default="text", help="text|markdown|json (stdout)")
    c.add_argument("--allow-missing", action="store_true",
                   help="configs of the baseline absent from the current report do not fail "
                        "(default: lost coverage is a failure, exit 1)")

    k = sub.add_parser("kernels", help="list kernels (built-in and plugins) and whether they can run here")
    k.add_argument("--device", default="auto")
    k.add_argument("--sweeps", action="store_true", help="also list named problems and sweeps")

    e = sub.add_parser("ceilings", help="measure (and cache) this machine's copy bandwidth and matmul rates")
    e.add_argument("--device", default="auto")
    e.add_argument("--refresh", action="store_true", help="measure again even if cached")
    e.add_argument("--json", action="store_true")

    v = sub.add_parser("env", help="print the environment fingerprint (allowlisted fields only)")
    v.add_argument("--device", default="auto")

    i = sub.add_parser("init", help="set up asv, benchmarks/ and the CI workflows for a git repository "
                       "(README: Track your own kernels)")
    i.add_argument("dir", nargs="?", default=None, help="the repository (default: here)")
    i.add_argument("--force", action="store_true", help="also rewrite files edited since init wrote them")
    i.add_argument("--branch", default=None, help="the main branch (default: origin's, else main/master)")

    # CI and the published site (docs/ci.md).
    s = sub.add_parser("site", help="build the published site: asv publish + attnperf's roofline pages")
    s_sub = s.add_subparsers(dest="site_command", parser_class=_Parser)
    sb = s_sub.add_parser("build", help="asv publish, then attnperf's pages linked from it")
    sb.add_argument("--config", default="asv.conf.json", help="asv config (default asv.conf.json)")
    sb.add_argument("--results", default=None, help="asv results dir (default: the config's)")
    sb.add_argument("--out", default=None, help="output dir (default: the config's html_dir)")
    sb.add_argument("--no-asv", action="store_true",
                    help="skip asv publish (attnperf's pages only)")
    sb.add_argument("--asv-assets", default=None,
                    help="local copies of asv's CDN scripts (`attnperf asv fetch-assets DIR`)")
    sb.add_argument("--include-machine", action="append", metavar="NAME",
                    help="also publish this machine of the results dir (repeatable; default: "
                    "only asv.conf.json's attnperf_machines, the machines CI records)")
    sb.add_argument("--asv", default=None, help="asv executable (default: next to this python)")
    sb.add_argument("--all-machines", action="store_true",
                    help="publish every machine of the results dir (local runs too)")
    sb.add_argument("--serve", action="store_true",
                    help="then serve the site on http://127.0.0.1:PORT until Ctrl-C "
                    "(as GitHub Pages would; not needed to view it from file://)")
    sb.add_argument("--port", type=_positive_int("port"), default=8000)

    pc = sub.add_parser("pr-comment", help="markdown comparing two commits' asv results (PR comment)")
    pc.add_argument("--results", default="results", help="asv results dir (default results)")
    pc.add_argument("--machine", required=True, help="asv machine name")
    pc.add_argument("--base", required=True, help="base commit hash (or its first 8+ characters)")
    pc.add_argument("--head", required=True, help="head commit hash (or its first 8+ characters)")
    pc.add_argument("--factor", type=_float("factor"), default=1.05)
    pc.add_argument("--asv-exit", type=int, default=None, help="exit code of asv continuous, if run")
    pc.add_argument("--output", "-o", help="write the markdown here instead of stdout")

    a = sub.add_parser("asv", help="asv helpers: `asv env-build|env-install` (asv.conf.json's build "
                       "and install steps), `asv machine NAME` (describe this machine, measure "
                       "its ceilings), `asv fetch-assets [DIR]` (asv's page scripts for offline sites)")
    a.add_argument("asv_command", choices=["machine", "fetch-assets", "env-build", "env-install"])
    a.add_argument("rest", nargs=argparse.REMAINDER)
    ci = sub.add_parser("ci", help="CI jobs: `ci bench --base B --head H --machine M` "
                        "(asv continuous, verdict, PR comment markdown)")
    ci.add_argument("ci_command", choices=["bench"])
    ci.add_argument("rest", nargs=argparse.REMAINDER)
    add_bisect_parser(sub)
    add_calibrate_parser(sub)
    return p


COMMANDS = {"run": cmd_run, "compare": cmd_compare, "kernels": cmd_kernels,
            "ceilings": cmd_ceilings, "env": cmd_env, "site": cmd_site,
            "pr-comment": cmd_pr_comment, "asv": cmd_asv, "ci": cmd_ci, "init": cmd_init,
            "bisect": cmd_bisect, "calibrate": cmd_calibrate}


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        return COMMANDS[args.command](args)
    except AttnperfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
