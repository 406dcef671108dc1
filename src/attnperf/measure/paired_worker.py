"""One side of a paired CPU comparison (:mod:`attnperf.measure.paired`): run as a script.

    cd CHECKOUT && python paired_worker.py [SRC_DIR]

It imports the commit being measured from the commit's own code, never from what
is installed: its import roots go first on ``sys.path`` -- ``SRC_DIR`` when given,
else the checkout's ``src/`` (a src layout) and then the checkout itself (a flat
layout).  A package installed in editable mode (a ``.pth`` path to the working
copy, or an import hook behind Python's path finder, as setuptools installs them)
comes after them, so a repository's kernels, and attnperf itself in a checkout of
attnperf, are those of the commit.  attnperf may
come from the checkout and be older than this file, so only long-standing API is
used (``Bench``, ``catalog.resolve``, ``ATTNPERF_KERNEL_MODULES``).  The kernels the
commit declares in its ``pyproject.toml`` are registered even when it is not installed
(:func:`declared_kernels`).  The worker answers JSON lines on stdin, one
per line on stdout:

    {"op": "setup", "kernel": K, "problem": ID} -> {"per_call_s": S} or {"error": WHY}
    {"op": "sample", "calls": N}                 -> {"s": thread CPU seconds per call}

Samples are the measuring thread's CPU time (``time.thread_time``) of N calls,
at one PyTorch thread, like the CPU suite's gated figure.  The process pins
itself to ``ATTNPERF_PAIRED_CPU`` when set, once its imports are done (both sides
of a pair share one core: which vCPU a process lands on changes the speed of
identical code; the two import side by side, each run starting a fresh pair).

It ignores SIGINT (the coordinator decides), dies of SIGTERM at its default,
and exits quietly, without a traceback, when the coordinator is gone (a broken
pipe on stdout, end of stdin).  A kernel's ``os.fork()`` copy that returns into
the loop exits at once.
"""

import json
import os
import signal
import sys
import time


def import_roots(src: str, checkout: str) -> list[str]:
    """Where the commit's code is imported from, in order: ``src`` when given, else
    ``checkout``'s ``src/`` (when it is a folder) and ``checkout``."""
    if src:
        return [src]
    layout = os.path.join(checkout, "src")
    return [layout, checkout] if os.path.isdir(layout) else [checkout]


KERNEL_MODULES = "ATTNPERF_KERNEL_MODULES"  # attnperf's registry reads it in every process


def declared_kernels(checkout: str) -> list[str]:
    """The ``module:attribute`` references the commit itself declares for its kernels: the
    ``attnperf.kernels`` entry points and ``[tool.attnperf] kernel-modules`` of its
    ``pyproject.toml``.  A repository's kernels are found through its installed entry points;
    a commit that is not installed (or adds a kernel) is measured all the same.  attnperf's own
    references are left out (its built-ins are always there)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        try:
            import tomli as tomllib
        except ImportError:
            return []
    try:
        with open(os.path.join(checkout, "pyproject.toml"), "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, ValueError):
        return []
    project, tool = data.get("project"), data.get("tool")
    eps = project.get("entry-points", {}) if isinstance(project, dict) else {}
    group = eps.get("attnperf.kernels", {}) if isinstance(eps, dict) else {}
    extra = tool.get("attnperf", {}).get("kernel-modules", []) if isinstance(tool, dict) else []
    refs = [r for r in [*(group.values() if isinstance(group, dict) else []),
                        *(extra if isinstance(extra, list) else [])] if isinstance(r, str)]
    return [r for r in dict.fromkeys(refs) if r.split(".")[0].split(":")[0] != "attnperf"]


def _main() -> None:
    src = sys.argv[1] if len(sys.argv) > 1 else ""
    sys.path[0:1] = import_roots(src, os.getcwd())  # first; never this file's own directory
    from importlib.metadata import entry_points
    installed = {ep.value for ep in entry_points(group="attnperf.kernels")}
    refs = [r for r in declared_kernels(os.getcwd()) if r not in installed]
    if refs:  # the commit's own kernels, found without an install
        os.environ[KERNEL_MODULES] = ",".join(filter(None, [os.environ.get(KERNEL_MODULES), *refs]))
    import torch

    torch.set_num_threads(1)
    from attnperf.measure.session import Bench
    from attnperf.model.catalog import resolve
    try:
        from attnperf.measure.timing import fix_malloc_thresholds
        fix_malloc_thresholds()
    except ImportError:  # an attnperf from before the fix
        pass
    cpu = os.environ.get("ATTNPERF_PAIRED_CPU")
    if cpu:  # once the imports are done: the two workers of a pair import side by side
        os.sched_setaffinity(0, {int(cpu)})
    out = sys.stdout
    sys.stdout = sys.stderr  # a kernel's prints must not corrupt the protocol
    bench = None
    me = os.getpid()
    for line in sys.stdin:
        msg = json.loads(line)
        reply: dict[str, float | str]
        try:
            if msg["op"] == "setup":
                if bench is not None:
                    bench.release()
                bench = Bench(msg["kernel"], resolve(msg["problem"]), "cpu")
                correct = bench.check()
                why = bench.wrong(correct) if hasattr(bench, "wrong") else None
                if why:
                    raise RuntimeError(why)
                for _ in range(3):
                    bench.call()
                t0 = time.thread_time()
                bench.call()
                reply = {"per_call_s": time.thread_time() - t0}
            else:
                if bench is None:
                    raise RuntimeError("a sample before any setup")
                n = int(msg["calls"])
                t0 = time.thread_time()
                for _ in range(n):
                    bench.call()
                reply = {"s": (time.thread_time() - t0) / n}
        except Exception as exc:  # noqa: BLE001 - the coordinator records it and goes on
            first = str(exc).splitlines()[0] if str(exc) else ""
            reply = {"error": f"{type(exc).__name__}: {first}"}
        if os.getpid() != me:  # a kernel's fork() copy came back here: it never answers
            os._exit(0)
        try:
            out.write(json.dumps(reply) + "\n")
            out.flush()
        except (BrokenPipeError, OSError, ValueError):  # the coordinator is gone
            break


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # first: import torch takes seconds
    try:
        _main()
    except (BrokenPipeError, EOFError, KeyboardInterrupt):
        pass
    os._exit(0)  # no flush at exit: a broken stdout must not print a second error
