"""Paired CPU timing of two commits: the CPU verdict's confirmation.

On a small shared CPU the speed of a vCPU changes over seconds, so two
*separate* processes of identical code -- what asv compares, one commit per
process -- can differ by tens of percent in their medians even when pinned to
one core on a quiet machine.  No per-thread clock removes that: the thread
runs slower, it is not preempted.  What does remove it is measuring the two
commits *at the same time*: two live worker processes
(:mod:`attnperf.measure.paired_worker`), one per commit, pinned to the same
core, asked for samples in turn -- base, head, head, base, ... -- so a slow
second falls on both sides alike.  The figure is the median of the per-pair
ratios head/base.

A confirmation at :data:`PAIRED_FACTOR` with a one-sided sign test (p <
:data:`P_PAIRED`) separates identical code from a 30 % slowdown under load,
where asv's separate processes cannot (the documentation's evidence page has
the readings).  Used by ``attnperf ci bench`` on a CPU (``--confirm
paired``).

Each worker leads a session of its own (Ctrl-C in a terminal reaches the
coordinator, which decides); when one ends or the runner closes, its whole
process group is killed, and what a kernel started outside it is swept as
:mod:`attnperf.measure.reaper` sweeps it for the isolated workers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import select
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import PairedWorkerError as WorkerError
from .reaper import REAPER, kill_group

PAIRED_FACTOR = 1.10
P_PAIRED = 0.01
PAIRS = 30
SAMPLE_S = 5e-3
WORKER = Path(__file__).with_name("paired_worker.py")


@dataclasses.dataclass(frozen=True)
class Paired:
    """Head against base for one (kernel, problem), from alternated samples."""

    ratio: float        # median of the per-pair ratios head/base
    p_slower: float     # one-sided sign test: head slower than base
    p_faster: float     # ... faster
    pairs: int
    base_s: float       # median thread CPU time per call
    head_s: float
    calls: int          # calls per sample

    def slower(self, factor: float = PAIRED_FACTOR, p: float = P_PAIRED) -> bool:
        return self.ratio > factor and self.p_slower < p

    def faster(self, factor: float = PAIRED_FACTOR, p: float = P_PAIRED) -> bool:
        return self.ratio * factor < 1 and self.p_faster < p

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def sign_test(wins: int, n: int) -> float:
    """P(X >= wins) for X ~ Binomial(n, 1/2): the one-sided sign test's p-value."""
    if n <= 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(max(wins, 0), n + 1)) / (1 << n)  # 2 ** n, as an int


def judge(base: list[float], head: list[float], calls: int) -> Paired:
    """The paired figures of alternated samples (``base[i]`` and ``head[i]`` taken together)."""
    ratios = [h / b for b, h in zip(base, head, strict=False) if b > 0]
    n = len(ratios)
    slower = sum(r > 1 for r in ratios)
    faster = sum(r < 1 for r in ratios)
    ties = n - slower - faster  # a tie counts for neither side: half to each is the usual
    return Paired(ratio=statistics.median(ratios) if ratios else float("nan"),
                  p_slower=sign_test(slower + ties // 2, n),
                  p_faster=sign_test(faster + ties // 2, n),
                  pairs=n, base_s=statistics.median(base), head_s=statistics.median(head),
                  calls=calls)


class _Worker:
    def __init__(self, src: str | None, cwd: str | None, cpu: int | None,
                 python: str, timeout_s: float) -> None:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)  # the commit's import roots: the worker's (its cwd, src)
        if cpu is not None:
            env["ATTNPERF_PAIRED_CPU"] = str(cpu)
        self.timeout_s = timeout_s
        self.proc = subprocess.Popen([python, str(WORKER), src or ""], cwd=cwd, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=hasattr(os, "setsid"))
        REAPER.keep(self.proc.pid)
        self.closed = False
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both PIPE above
        self._stdin, self._stdout = self.proc.stdin, self.proc.stdout

    def ask(self, msg: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        try:
            self._stdin.write(json.dumps(msg) + "\n")
            self._stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerError(f"worker exited ({self.proc.poll()})") from None
        ready, _, _ = select.select([self._stdout], [], [], timeout_s or self.timeout_s)
        line = self._stdout.readline() if ready else ""
        if not line:
            self.close()
            raise WorkerError("no answer in time" if not ready
                              else f"worker exited ({self.proc.poll()})")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise WorkerError(reply["error"])
        return reply

    def close(self) -> None:
        """Kill the worker's process group (it, and what it started that stayed
        there), and reap it."""
        if self.closed:
            return
        self.closed = True
        kill_group(self.proc.pid)  # also what it started, where it ended on its own
        if self.proc.poll() is None:  # no group of its own
            self.proc.kill()
        self.proc.wait()
        REAPER.forget(self.proc.pid)
        for pipe in (self._stdin, self._stdout):
            try:
                pipe.close()
            except OSError:
                pass


def pinned_cpu() -> int | None:
    """The core both workers share: the highest this process may use (None where
    affinity is not available)."""
    try:
        return max(os.sched_getaffinity(0))
    except (AttributeError, OSError, ValueError):
        return None


class PairedRunner:
    """Two live workers, base and head, for any number of (kernel, problem) pairs.

    ``base_cwd`` / ``head_cwd``: each commit's checkout, which its worker runs in and
    imports from first (its ``src/``, then its root:
    :func:`attnperf.measure.paired_worker.import_roots`), before anything installed;
    ``base_src`` / ``head_src``: an import root to use instead (a source tree that is
    no checkout)."""

    def __init__(self, base_src: str | None, head_src: str | None,
                 base_cwd: str | None = None, head_cwd: str | None = None,
                 cpu: int | None = None, python: str = sys.executable,
                 timeout_s: float = 300.0) -> None:
        cpu = pinned_cpu() if cpu is None else cpu
        self.cpu = cpu
        self._args = [(base_src, base_cwd), (head_src, head_cwd)]
        self._python, self._timeout = python, timeout_s
        self._workers: list[_Worker | None] = [None, None]
        self._reaping = False  # holds REAPER while workers live

    def _worker(self, i: int) -> _Worker:
        w = self._workers[i]
        if w is None or w.proc.poll() is not None:
            if w is not None:
                self._end(w)
            if not self._reaping:
                REAPER.acquire()
                self._reaping = True
            src, cwd = self._args[i]
            w = self._workers[i] = _Worker(src, cwd, self.cpu, self._python, self._timeout)
        return w

    @staticmethod
    def _end(w: _Worker) -> None:
        """Close a worker and sweep what it left."""
        w.close()
        REAPER.sweep()

    def measure(self, kernel: str, problem: str, pairs: int = PAIRS,
                sample_s: float = SAMPLE_S) -> Paired | str:
        """The paired figures, or why they could not be taken (one line)."""
        try:
            base, head = self._worker(0), self._worker(1)
            one = max(w.ask({"op": "setup", "kernel": kernel, "problem": problem})["per_call_s"]
                      for w in (base, head))
            calls = max(1, int(sample_s / max(one, 1e-7)))
            tb: list[float] = []
            th: list[float] = []
            for i in range(pairs):  # base head | head base | ...: neither side always first
                for w in ((base, head) if i % 2 == 0 else (head, base)):
                    (tb if w is base else th).append(w.ask({"op": "sample", "calls": calls})["s"])
            return judge(tb, th, calls)
        except WorkerError as exc:
            for i, side in enumerate(self._workers):  # a failed one is replaced for the next pair
                if side is not None and side.proc.poll() is not None:
                    self._end(side)
                    self._workers[i] = None
            return str(exc)

    def close(self) -> None:
        """Kill both workers' process groups and sweep what they left."""
        try:
            for w in self._workers:
                if w is not None:
                    w.close()
        finally:
            self._workers = [None, None]
            if self._reaping:
                self._reaping = False
                REAPER.release()

    def __enter__(self) -> PairedRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
