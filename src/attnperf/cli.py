"""The ``attnperf`` command: argument parsing, printing and exit codes only.

Exit codes (all subcommands):
  0  success: every measured config correct / no regression
  1  a config failed correctness or raised, or nothing could be measured (run);
     a regression (compare)
  2  usage or input error: bad flag or value, unknown kernel/sweep/dtype,
     missing device, unreadable/invalid report, unwritable output path
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from typing import List, Optional

from . import __version__
from .errors import AttnperfError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

EPILOG = """exit codes:
  0  success (all configs correct; no regression)
  1  a config failed correctness or errored, or nothing could be measured (run);
     a regression past the threshold, a correctness or coverage loss (compare)
  2  usage or input error (bad value, unknown name, no such device, unreadable report, bad output path)
"""


class UsageError(AttnperfError):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one ``error:`` line, exit 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UsageError(message)


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
                   help="kernel to run (repeat or comma-separate; default: all)")
    r.add_argument("--batch", type=_positive_int("batch"))
    r.add_argument("--heads", type=_positive_int("heads"))
    r.add_argument("--kv-heads", type=_positive_int("kv-heads"), help="K/V heads (GQA when fewer than --heads)")
    r.add_argument("--seq", type=_positive_int("seq"), help="query length")
    r.add_argument("--seq-kv", type=_positive_int("seq-kv"), help="key/value length (default: --seq)")
    r.add_argument("--dim", type=_positive_int("dim"), help="head dimension")
    r.add_argument("--dtype", help="float16|bfloat16|float32 (aliases fp16, bf16, fp32)")
    r.add_argument("--causal", action="store_true")
    r.add_argument("--sweep", help="named sweep (see `attnperf kernels --sweeps`)")
    r.add_argument("--device", default="auto", help="auto|cpu|cuda (default auto: cuda when present)")
    r.add_argument("--output", "-o", help="write the JSON report here (atomically)")
    r.add_argument("--budget-ms", type=_float("budget-ms"), default=None,
                   help="time spent sampling each timing (default 500)")
    r.add_argument("--no-latency", action="store_true", help="GPU: skip the per-call latency timing")
    r.add_argument("--no-l2-flush", action="store_true", help="GPU: keep L2 warm between latency samples")
    r.add_argument("--seed", type=int, default=None, help="input seed")
    r.add_argument("--threads", type=_positive_int("threads"), default=None,
                   help="CPU threads for PyTorch (default: PyTorch's; the asv CPU suite uses 1)")

    c = sub.add_parser("compare", help="compare a report with a baseline (the seed's compare_baseline.py)",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("current", help="current report (attnperf or seed JSON)")
    c.add_argument("--baseline", required=True, help="baseline report")
    c.add_argument("--threshold", type=_float("threshold"), default=-3.0,
                   help="regression when improvement_pct < THRESHOLD (default -3.0)")
    c.add_argument("--output", "-o", help="write the comparison JSON here")
    c.add_argument("--format", default="text", help="text|markdown|json (stdout)")

    k = sub.add_parser("kernels", help="list kernels and whether they can run here")
    k.add_argument("--device", default="auto")
    k.add_argument("--sweeps", action="store_true", help="also list named problems and sweeps")

    e = sub.add_parser("ceilings", help="measure (and cache) this machine's copy bandwidth and matmul rates")
    e.add_argument("--device", default="auto")
    e.add_argument("--refresh", action="store_true", help="measure again even if cached")
    e.add_argument("--json", action="store_true")

    v = sub.add_parser("env", help="print the environment fingerprint (allowlisted fields only)")
    v.add_argument("--device", default="auto")

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
                    help="local copies of asv's CDN scripts (tools/fetch_asv_assets.py DIR)")
    sb.add_argument("--serve", action="store_true",
                    help="then serve the site on http://127.0.0.1:PORT until Ctrl-C")
    sb.add_argument("--port", type=_positive_int("port"), default=8000)

    pc = sub.add_parser("pr-comment", help="markdown comparing two commits' asv results (PR comment)")
    pc.add_argument("--results", default="results", help="asv results dir (default results)")
    pc.add_argument("--machine", required=True, help="asv machine name")
    pc.add_argument("--base", required=True, help="base commit hash (or its first 8+ characters)")
    pc.add_argument("--head", required=True, help="head commit hash (or its first 8+ characters)")
    pc.add_argument("--factor", type=_float("factor"), default=1.05)
    pc.add_argument("--asv-exit", type=int, default=None, help="exit code of asv continuous, if run")
    pc.add_argument("--output", "-o", help="write the markdown here instead of stdout")
    return p


# ------------------------------------------------------------------ run -----
def _problems(args) -> list:
    from .shapes import PRESETS, Problem, sweep

    custom = [args.batch, args.heads, args.kv_heads, args.seq, args.seq_kv, args.dim, args.dtype]
    if args.sweep and (any(x is not None for x in custom) or args.causal):
        raise UsageError("--sweep cannot be combined with --batch/--heads/--seq/--dim/--dtype/--causal")
    if args.sweep:
        return sweep(args.sweep)
    if any(x is not None for x in custom) or args.causal:
        seed = PRESETS["seed"]
        return [Problem(batch=args.batch or seed.batch, heads=args.heads or seed.heads,
                        kv_heads=args.kv_heads, seq_q=args.seq or seed.seq_q, seq_kv=args.seq_kv,
                        head_dim=args.dim or seed.head_dim, causal=args.causal,
                        dtype=args.dtype or seed.dtype)]
    return []  # filled with the device's default sweep


def _kernels(args) -> List[str]:
    from . import registry

    if not args.kernel:
        return registry.names()
    names = [n.strip() for arg in args.kernel for n in arg.split(",") if n.strip()]
    if not names:
        raise UsageError(f"--kernel {','.join(args.kernel)!r} names no kernel; "
                         f"allowed: {', '.join(registry.names())}")
    for n in names:
        registry.get(n)  # raises UnknownNameError listing the valid names
    return [registry.canonical_name(n) for n in names]


def cmd_run(args) -> int:
    from .devices import fingerprint, load_or_measure_ceilings, match_peak, resolve_device
    from .measure import measure
    from .report import build_report, check_writable, write_json
    from .shapes import sweep
    from .timing import Budget

    problems = _problems(args)
    kernels = _kernels(args)
    if args.output:
        check_writable(args.output)
    if args.budget_ms is not None and args.budget_ms <= 0:
        raise UsageError(f"--budget-ms must be positive, got {args.budget_ms}")
    device = resolve_device(args.device)
    if args.threads is not None:
        import torch
        torch.set_num_threads(args.threads)
    if not problems:
        problems = sweep("gpu-default" if device == "cuda" else "cpu-small")
    budget = Budget() if args.budget_ms is None else Budget(budget_s=args.budget_ms / 1e3)
    env = fingerprint(device)
    print(f"attnperf {__version__}: {len(kernels)} kernels x {len(problems)} problems on "
          f"{env['gpu_name'] or env['cpu_model']} ({device}), torch {env['torch']}", file=sys.stderr)
    ceilings = load_or_measure_ceilings(device, env)
    peak = match_peak(env["gpu_name"]) if env["gpu_name"] else None
    jobs = [(k, p) for p in problems for k in kernels]
    measurements = []
    from tqdm import tqdm
    with tqdm(jobs, desc="attnperf run", unit="config", disable=None, file=sys.stderr,
              leave=False) as bar:
        for kernel, problem in bar:
            bar.set_postfix_str(f"{kernel} {problem.id}")
            kw = {} if args.seed is None else {"seed": args.seed}
            measurements.append(measure(kernel, problem, device, ceiling_data=ceilings, peak=peak,
                                        budget=budget, latency=not args.no_latency,
                                        l2_flush=not args.no_l2_flush, **kw))
    print(render_table(measurements))
    settings = {"device": device, "kernels": kernels, "problems": [p.id for p in problems],
                "budget_s": budget.budget_s, "latency": not args.no_latency,
                "l2_flush": not args.no_l2_flush, "sweep": args.sweep}
    report = build_report(measurements, env, ceilings, settings)
    if args.output:
        write_json(args.output, report)
        print(f"wrote {args.output}", file=sys.stderr)
    s = report["summary"]
    print(f"{s['ok']} ok, {s['failed']} failed, {s['error']} errors, {s['skipped']} skipped, "
          f"{s['unavailable']} unavailable", file=sys.stderr)
    if s["ok"] == 0 and not (s["failed"] or s["error"]):
        print("nothing could be measured (every config skipped or unavailable; reasons above)",
              file=sys.stderr)
        return EXIT_FAIL
    return EXIT_FAIL if s["failed"] or s["error"] else EXIT_OK


def _fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def render_table(measurements) -> str:
    head = ["kernel", "problem", "status", "time ms", "iqr%", "latency ms", "TF/s", "GB/s",
            "regime", "eff%", "x_floor", "rel_err", "backend"]
    rows = []
    for m in measurements:
        st = m.device_time.stats() if m.device_time else None
        lat = m.latency.stats() if m.latency else None
        rf = m.roofline
        rows.append([
            m.kernel, m.problem.id, m.status,
            _fmt(st and st["median_ms"], ".4f"),
            _fmt(st and 100 * st["iqr_over_median"], ".1f") + ("!" if st and st["unstable"] else ""),
            _fmt(lat and lat["median_ms"], ".4f"),
            _fmt(rf and rf.achieved_tflops, ".2f"), _fmt(rf and rf.achieved_gb_s, ".1f"),
            rf.regime if rf else "-", _fmt(rf and rf.efficiency_pct, ".1f"),
            _fmt(rf and rf.x_over_floor, ".2f"),
            _fmt(m.correctness and m.correctness.rel_error, ".1e"),
            m.dispatch or "-",
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(r, widths)) for r in rows]
    notes = [f"  {m.kernel}/{m.problem.id}: {m.status}: {m.reason}" for m in measurements
             if m.status != "ok"]
    if notes:
        lines += ["", "not measured:"] + notes
    device = measurements[0].device if measurements else "cpu"
    unstable = [m for m in measurements if m.device_time and m.device_time.stats()["unstable"]]
    if unstable:
        lines += ["", f"! unstable: IQR above 10 % of the median for {len(unstable)} config(s); "
                      "the machine is busy or throttling (re-run, or fewer --threads on a shared CPU)"]
    lines.append("")
    lines.append("time = device time per call (CUDA graph replay)" if device == "cuda"
                 else "time = wall time per call on the CPU")
    if device == "cuda":
        lines.append("latency = one isolated call (sync, L2 flushed, CUDA events)")
    return "\n".join(lines)


# -------------------------------------------------------------- compare -----
def cmd_compare(args) -> int:
    from .compare import compare_results, render
    from .report import check_writable, read_results, write_json

    if args.format not in ("text", "markdown", "json"):
        raise UsageError(f"--format must be text, markdown or json, got {args.format!r}")
    if args.output:
        check_writable(args.output)
    baseline = read_results(args.baseline, "baseline")
    current = read_results(args.current, "current report")
    result = compare_results(baseline, current, args.threshold)
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        sys.stdout.write(render(result, args.format))
    if args.output:
        write_json(args.output, result)
    return EXIT_FAIL if result["is_regression"] else EXIT_OK


# ----------------------------------------------------- kernels/env/ceil -----
def cmd_kernels(args) -> int:
    from . import registry
    from .devices import resolve_device
    from .shapes import PRESETS, SWEEPS

    device = resolve_device(args.device)
    probe = PRESETS["seed"]
    print(f"kernels on {device} (checked for {probe.id}):")
    for name in registry.names():
        spec = registry.get(name)
        ok, why = spec.check(probe, device)
        print(f"  {name:16s} {'available' if ok else 'unavailable'}: "
              f"{spec.description if ok else why}")
    if args.sweeps:
        print("problems:")
        for name, p in PRESETS.items():
            print(f"  {name:18s} {p.id}")
        print("sweeps:")
        for name, members in SWEEPS.items():
            print(f"  {name:12s} {', '.join(members)}")
    return EXIT_OK


def cmd_ceilings(args) -> int:
    from .devices import fingerprint, load_or_measure_ceilings, match_peak, resolve_device

    device = resolve_device(args.device)
    env = fingerprint(device)
    data = load_or_measure_ceilings(device, env, refresh=args.refresh)
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    peak = match_peak(env["gpu_name"]) if env["gpu_name"] else None
    where = env["gpu_name"] or env["cpu_model"]
    print(f"ceilings on {where} ({'cached' if data['cached'] else 'measured now'}: {data['cache_path']})")
    ds = f" (datasheet {peak.bandwidth_tb_s * 1e3:.0f})" if peak else ""
    print(f"  copy bandwidth   {data['bandwidth_gb_s']:10.1f} GB/s{ds}")
    for dt, tf in data["matmul_tflops"].items():
        ds = f" (datasheet {peak.tflops[dt]:.1f})" if peak and dt in peak.tflops else ""
        print(f"  matmul {dt:9s} {tf:10.4g} TFLOP/s at n={data['matmul_n'].get(dt)}{ds}")
    return EXIT_OK


def cmd_env(args) -> int:
    from .devices import fingerprint, resolve_device

    print(json.dumps(fingerprint(resolve_device(args.device)), indent=2))
    return EXIT_OK


# ------------------------------------------------------ site/pr-comment -----
def cmd_site(args) -> int:
    from pathlib import Path

    from . import site

    if args.site_command != "build":
        raise UsageError("usage: attnperf site build [--config F] [--results D] [--out D] "
                         "[--no-asv] [--asv-assets D] [--serve] [--port N]")
    if not Path(args.config).is_file():
        raise UsageError(f"asv config {args.config!r} does not exist (--config)")
    if args.results and not Path(args.results).is_dir():
        raise UsageError(f"results directory {args.results!r} does not exist (--results)")
    if args.asv_assets and not Path(args.asv_assets).is_dir():
        raise UsageError(f"--asv-assets {args.asv_assets!r} is not a directory "
                         "(python tools/fetch_asv_assets.py DIR fetches them)")
    report = site.build(args.config, results=args.results, out=args.out,
                        publish=not args.no_asv, asv_assets=args.asv_assets)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for page in report.pages:
        print(f"{page.machine}: {page.points} points, {page.roofs} roofs, {page.rows} rows "
              f"-> {report.out_dir}/{site.SUBDIR}/{page.file}", file=sys.stderr)
    print(f"site: {report.out_dir}/index.html (attnperf pages: {report.out_dir}/{site.SUBDIR}/)")
    failed = not args.no_asv and report.asv_exit != 0
    if failed:
        print(f"error: asv publish exited {report.asv_exit}; attnperf's pages were built anyway",
              file=sys.stderr)
    if args.serve:
        import functools
        import http.server

        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=report.out_dir)
        with http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler) as server:
            print(f"serving http://127.0.0.1:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
    return EXIT_FAIL if failed else EXIT_OK


def cmd_pr_comment(args) -> int:
    from pathlib import Path

    from .asvresults import read_results
    from .prcomment import render_section
    from .report import check_writable

    if args.output:
        check_writable(args.output)
    if args.factor < 1.0:
        raise UsageError(f"--factor must be >= 1.0, got {args.factor}")
    import re
    for flag, value in (("--base", args.base), ("--head", args.head)):
        if not re.fullmatch(r"[0-9a-f]{7,40}", value):
            raise UsageError(f"{flag} must be a commit hash (7-40 hex digits; "
                             f"`git rev-parse REF` gives one), got {value!r}")
    db = read_results(args.results)
    text = render_section(db, args.machine, args.base, args.head, args.factor,
                          asv_exit=args.asv_exit)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


COMMANDS = {"run": cmd_run, "compare": cmd_compare, "kernels": cmd_kernels,
            "ceilings": cmd_ceilings, "env": cmd_env, "site": cmd_site,
            "pr-comment": cmd_pr_comment}


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
