"""``attnperf site``, ``attnperf pr-comment``, ``attnperf asv ...`` and ``attnperf ci ...``:
the published site and the CI jobs."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

from ..site import publish
from ..io.asv_results import read_results
from ..io.jsonfile import check_writable, write_text
from ..render.prcomment import render_section
from ..render.site import SUBDIR
from .common import EXIT_FAIL, EXIT_OK, UsageError


class _Signalled(BaseException):
    """SIGINT/SIGTERM during a build (BaseException: no ``except Exception`` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_signalled(signum, frame):
    raise _Signalled(signum)


def cmd_site(args) -> int:
    if args.site_command != "build":
        raise UsageError("usage: attnperf site build [--config F] [--results D] [--out D] "
                         "[--no-asv] [--asv-assets D] [--include-machine M] [--all-machines] "
                         "[--serve] [--port N]")
    if not Path(args.config).is_file():
        raise UsageError(f"asv config {args.config!r} does not exist (--config)")
    if args.results and not Path(args.results).is_dir():
        raise UsageError(f"results directory {args.results!r} does not exist (--results)")
    if args.asv_assets and not Path(args.asv_assets).is_dir():
        raise UsageError(f"--asv-assets {args.asv_assets!r} is not a directory "
                         "(`attnperf asv fetch-assets DIR` fetches them)")
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, _raise_signalled) for s in handled}
    try:
        report = publish.build(args.config, results=args.results, out=args.out,
                               publish=not args.no_asv, asv_assets=args.asv_assets, asv=args.asv,
                               include=args.include_machine or (),
                               all_machines=args.all_machines)
    except _Signalled as sig:
        name = signal.Signals(sig.signum).name
        print(f"error: interrupted by {name}: asv publish stopped, temporary files removed, "
              f"{args.out or 'the output folder'} left as it was", file=sys.stderr)
        return 128 + sig.signum
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for page in report.pages:
        print(f"{page.machine}: {page.points} points, {page.roofs} roofs, {page.rows} rows "
              f"-> {report.out_dir}/{SUBDIR}/{page.file}", file=sys.stderr)
    offline = (f"; asv's graphs work from file:// ({report.offline_files} data files)"
               if report.offline_files else "")
    print(f"site: {report.out_dir}/index.html (attnperf pages: {report.out_dir}/{SUBDIR}/"
          f"{offline})")
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
    if args.output:
        check_writable(args.output, (args.results,))
    if args.factor < 1.0:
        raise UsageError(f"--factor must be >= 1.0, got {args.factor}")
    for flag, value in (("--base", args.base), ("--head", args.head)):
        if not re.fullmatch(r"[0-9a-f]{7,40}", value):
            raise UsageError(f"{flag} must be a commit hash (7-40 hex digits; "
                             f"`git rev-parse REF` gives one), got {value!r}")
    db = read_results(args.results)
    text = render_section(db, args.machine, args.base, args.head, args.factor,
                          asv_exit=args.asv_exit)
    if args.output:
        write_text(args.output, text, (args.results,))
    else:
        sys.stdout.write(text)
    return EXIT_OK




def cmd_asv(args) -> int:
    """asv helpers the workflows and asv.conf.json call (attnperf asv machine|fetch-assets)."""
    if args.asv_command == "machine":
        from ..asv.machine import main as machine_main
        return machine_main(args.rest)
    if args.asv_command == "fetch-assets":
        from ..site.fetch_assets import main as fetch_main
        return fetch_main(args.rest)
    if args.asv_command in ("env-build", "env-install"):  # asv.conf.json of `attnperf init`
        from ..asv.envinstall import outer_main
        return outer_main(args.asv_command, args.rest)
    raise UsageError("usage: attnperf asv {machine,fetch-assets,env-build,env-install} ...")


def cmd_ci(args) -> int:
    """The CI jobs as commands (attnperf ci bench ...)."""
    if args.ci_command == "bench":
        from ..ci.bench import main as bench_main
        return bench_main(args.rest)
    raise UsageError("usage: attnperf ci bench ...")
