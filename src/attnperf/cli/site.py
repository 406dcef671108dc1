"""``attnperf site build`` and ``attnperf pr-comment``: the published site and the PR
comment's markdown."""

from __future__ import annotations

import argparse
import functools
import http.server
import math
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

from ..analysis.cells import device_of
from ..errors import Signalled, UsageError
from ..io.asv_results import read_results
from ..io.jsonfile import check_writable, write_text
from ..model import names
from ..model.config import default_factor, default_factors_text
from ..render.escape import terminal
from ..render.prcomment import render_section
from ..render.site import SUBDIR
from ..site import publish
from .command import Command, ExitCode, finite_float, int_in, machine_name, positive_int, text


def _raise_signalled(signum: int, frame: FrameType | None) -> NoReturn:
    raise Signalled(signum)


class SiteBuild(Command):
    name = "site build"
    help = "asv publish, then attnperf's pages linked from it"
    exit_codes = (ExitCode.OK, ExitCode.FAILURE, ExitCode.USAGE, ExitCode.INTERRUPTED,
                  ExitCode.TERMINATED)

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        sb = parser
        sb.add_argument("--config", default="asv.conf.json", type=text("config"),
                        help="asv config (default asv.conf.json)")
        sb.add_argument("--results", default=None, type=text("results"),
                        help="asv results dir (default: the config's)")
        sb.add_argument("--out", default=None, type=text("out"),
                        help="output dir (default: the config's html_dir); files attnperf did not "
                             "write there stay")
        sb.add_argument("--no-asv", action="store_true",
                        help="skip asv publish (attnperf's pages only)")
        sb.add_argument("--asv-assets", default=None,
                        help="local copies of asv's CDN scripts (`attnperf asv fetch-assets DIR`)")
        sb.add_argument("--include-machine", action="append", metavar="NAME",
                        type=machine_name("include-machine"),
                        help="also publish this machine of the results dir (repeatable; default: "
                        "only asv.conf.json's attnperf_machines, the machines CI records)")
        sb.add_argument("--asv", default=None, help="asv executable (default: next to this python)")
        sb.add_argument("--all-machines", action="store_true",
                        help="publish every machine of the results dir (local runs too)")
        sb.add_argument("--serve", action="store_true",
                        help="then serve the site on http://127.0.0.1:PORT until Ctrl-C "
                        "(as GitHub Pages would; not needed to view it from file://)")
        sb.add_argument("--port", type=positive_int("port", 65535), default=8000,
                        help="the port --serve listens on (default 8000)")

    @classmethod
    def run_from_args(cls, args: argparse.Namespace) -> int:
        return cls.run(config=args.config, results=args.results, out=args.out,
                       publish_asv=not args.no_asv, asv_assets=args.asv_assets,
                       include_machines=tuple(args.include_machine or ()), asv=args.asv,
                       all_machines=args.all_machines, serve=args.serve, port=args.port)

    @classmethod
    def run(cls, config: str = "asv.conf.json", results: str | None = None,
            out: str | None = None, publish_asv: bool = True, asv_assets: str | None = None,
            include_machines: Sequence[str] = (), asv: str | None = None,
            all_machines: bool = False, serve: bool = False, port: int = 8000) -> int:
        if not Path(config).is_file():
            raise UsageError(f"asv config {config!r} does not exist (--config)")
        if results and not Path(results).is_dir():
            raise UsageError(f"results directory {results!r} does not exist (--results)")
        if asv_assets and not Path(asv_assets).is_dir():
            raise UsageError(f"--asv-assets {asv_assets!r} is not a directory "
                             "(`attnperf asv fetch-assets DIR` fetches them)")
        # (signal handlers exist in the main thread only: called from another, none are set)
        handled = (signal.SIGINT, signal.SIGTERM) if \
            threading.current_thread() is threading.main_thread() else ()
        previous = {s: signal.signal(s, _raise_signalled) for s in handled}
        try:
            report = publish.build(config, results=results, out=out, publish=publish_asv,
                                   asv_assets=asv_assets, asv=asv, include=include_machines,
                                   all_machines=all_machines)
        except Signalled as sig:
            name = signal.Signals(sig.signum).name
            print(f"error: interrupted by {name}: asv publish stopped, temporary files removed, "
                  f"{out or 'the output folder'} left as it was", file=sys.stderr)
            return 128 + sig.signum
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        for note in report.notes:
            print(f"note: {terminal(note)}", file=sys.stderr)
        for page in report.pages:
            for note in page.file_notes:  # on the page too; a file left out is said here
                print(f"note: {terminal(page.machine)}: {terminal(note)}", file=sys.stderr)
            print(f"{terminal(page.machine)}: {page.points} points, {page.roofs} roofs, "
                  f"{page.rows} rows -> {report.out_dir}/{SUBDIR}/{page.file}", file=sys.stderr)
        offline = (f"; asv's graphs work from file:// ({report.offline_files} data files)"
                   if report.offline_files else "")
        print(f"site: {report.out_dir}/index.html (attnperf pages: {report.out_dir}/{SUBDIR}/"
              f"{offline})")
        failed = publish_asv and report.asv_exit != 0
        if failed:
            print(
                f"error: asv publish exited {report.asv_exit}; attnperf's pages were built anyway",
                file=sys.stderr,
            )
        if serve:
            _serve(report.out_dir, port)
        return ExitCode.FAILURE if failed else ExitCode.OK


def _serve(directory: str, port: int) -> None:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving http://127.0.0.1:{port}/ (Ctrl-C stops)", file=sys.stderr)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


class PrComment(Command):
    name = "pr-comment"
    help = "markdown comparing two commits' asv results (PR comment)"
    exit_codes = (ExitCode.OK, ExitCode.USAGE)

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        pc = parser
        pc.add_argument("--results", default="results", type=text("results"),
                        help="asv results dir (default results)")
        pc.add_argument("--machine", required=True, type=machine_name(), help="asv machine name")
        pc.add_argument(
            "--base", required=True, help="base commit hash (or its first 8+ characters)"
        )
        pc.add_argument(
            "--head", required=True, help="head commit hash (or its first 8+ characters)"
        )
        pc.add_argument("--factor", type=finite_float("factor"), default=None,
                        help="slower by more than this and significant = regression (default: "
                             f"the device's: {default_factors_text()}, for the device the "
                             "machine's description in --results records; a repository's "
                             "[tool.attnperf] regression-factor and calibrated thresholds are read "
                             "by `attnperf ci bench --render-only`, which renders the same comment "
                             "with them)")
        pc.add_argument("--asv-exit", type=int_in("asv-exit", -255, 255), default=None,
                        help="exit code of asv continuous, if run")
        pc.add_argument("--output", "-o", type=text("output"),
                        help="write the markdown here instead of stdout (never into --results)")

    @classmethod
    def run(cls, machine: str, base: str, head: str, results: str = "results",
            factor: float | None = None, asv_exit: int | None = None,
            output: str | None = None) -> int:
        names.machine(machine)
        if output is not None:
            check_writable(output, (results,))
        if factor is not None and not (math.isfinite(factor) and factor >= 1.0):
            raise UsageError(f"--factor must be >= 1.0, got {factor}")
        for flag, value in (("--base", base), ("--head", head)):
            if not re.fullmatch(r"[0-9a-f]{7,40}", value):
                raise UsageError(f"{flag} must be a commit hash (7-40 hex digits; "
                                 f"`git rev-parse REF` gives one), got {value!r}")
        db = read_results(results)
        if factor is None:  # the results say which device: a GPU recorded, or none
            described = db.machines.get(machine)
            factor = default_factor(device_of(described.info) if described else "cpu")
        text = render_section(db, machine, base, head, factor, asv_exit=asv_exit)
        if output is not None:
            write_text(output, text, (results,))
        else:
            sys.stdout.write(text)
        return ExitCode.OK
