"""Paired CPU timing of two commits: the CPU verdict's confirmation.

On a small shared CPU the speed of a vCPU changes over seconds, so two
*separate* processes of identical code -- what asv compares, one commit per
process -- can differ by tens of percent in their medians even when pinned to
one core on a quiet machine.  No per-thread clock removes that: the thread
runs slower, it is not preempted.  What does remove it is measuring the two
commits *at the same time*: two live worker processes
(:mod:`attnperf.measure.paired_worker`), one per commit, pinned to the same
core, asked for samples in turn -- base, head, head, base, ... -- so a slow
second falls on both sides alike.

Two orders still tilt the figure, and are balanced out.  Within a pair, the
second sample reads slower (5 % for a 35 ms call, up to 30 % for a 1.5 ms one
in 5 ms samples; hence samples of ~20 ms, whole calls), so each base-first pair
is taken with the next, head-first one: their geometric mean (a quad, base head
head base) is the unit.  And what stays with a process for its whole life --
where its heap and tensors landed -- pairing cannot remove: of two workers of
identical code, the one set up second read 2-4 % faster throughout, and a pair
of workers under load read 1.12x with every pair agreeing, which a sign test
over their pairs alone calls significant.  So the pairs are split over
:data:`RUNS` fresh pairs of workers, half of them started and set up base
first, half head first; each run begins with one pair that is not kept (the
first samples after the other side's set-up read 0.5-1.6x of the rest); the figure
is the median of the runs' ratios (each run's: the median of its quads), so one
process pair's luck is outvoted by the others.

A row is slower when that figure is above :data:`PAIRED_FACTOR`, a one-sided
sign test over all pairs gives p < :data:`P_PAIRED`, and every run read head
slower: this separates identical code from a 30 % slowdown under load, where
asv's separate processes cannot (the documentation's evidence page has the
readings).  Used by ``attnperf ci bench`` and ``attnperf bisect`` on a CPU
(``--confirm paired``).

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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import PairedWorkerError as WorkerError
from .reaper import REAPER, kill_group

PAIRED_FACTOR = 1.10
P_PAIRED = 0.01
PAIRS = 32          # in all, split evenly over the runs (an even number each)
RUNS = 4            # fresh pairs of worker processes: each side starts first in half
SAMPLE_S = 20e-3    # a sample's length: whole calls, at least one
WORKER = Path(__file__).with_name("paired_worker.py")


@dataclasses.dataclass(frozen=True)
class Paired:
    """Head against base for one (kernel, problem), from alternated samples."""

    ratio: float        # median over the runs of each run's median quad ratio head/base
    p_slower: float     # one-sided sign test over all pairs: head slower than base
    p_faster: float     # ... faster
    pairs: int
    base_s: float       # median thread CPU time per call
    head_s: float
    calls: int          # calls per sample
    runs: tuple[float, ...] = ()  # each fresh worker pair's median ratio, in order

    def slower(self, factor: float = PAIRED_FACTOR, p: float = P_PAIRED) -> bool:
        """Head slower beyond ``factor``: the ratio above it, the sign test below ``p``,
        and every run (each fresh pair of workers) reading head slower."""
        return self.ratio > factor and self.p_slower < p and all(r > 1 for r in self.runs)

    def faster(self, factor: float = PAIRED_FACTOR, p: float = P_PAIRED) -> bool:
        """Head faster beyond ``factor``: the mirror of :meth:`slower`."""
        return self.ratio * factor < 1 and self.p_faster < p and all(r < 1 for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "runs": list(self.runs)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Paired:
        """Inverse of :meth:`to_dict` (other keys ignored; ``runs`` may be absent: files
        written before runs were kept).  KeyError, TypeError or ValueError on a bad entry."""
        counts = ("pairs", "calls", "runs")
        return cls(**{f.name: float(d[f.name]) for f in dataclasses.fields(cls)
                      if f.name not in counts},
                   pairs=int(d["pairs"]), calls=int(d["calls"]),
                   runs=tuple(float(x) for x in d.get("runs", ())))


def sign_test(wins: int, n: int) -> float:
    """P(X >= wins) for X ~ Binomial(n, 1/2): the one-sided sign test's p-value."""
    if n <= 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(max(wins, 0), n + 1)) / (1 << n)  # 2 ** n, as an int


def _quads(ratios: list[float]) -> list[float]:
    """One figure per two consecutive pairs (base-first, then head-first): their geometric
    mean, in which a sample's place in its pair cancels; a last lone pair stays as it is."""
    return [math.sqrt(ratios[i] * ratios[i + 1]) if i + 1 < len(ratios) else ratios[i]
            for i in range(0, len(ratios), 2)]


def judge(base: list[float], head: list[float], calls: int,
          runs: list[int] | None = None) -> Paired:
    """The paired figures of alternated samples (``base[i]`` and ``head[i]`` taken together,
    pair ``i`` base-first when ``i`` is even within its run, head-first when odd).

    ``runs``: how many consecutive pairs each fresh pair of workers took (default: all
    from one).  A run's ratio is the median of its quads (:func:`_quads`); the figure is
    the median of the runs'.  The sign test counts the pairs."""
    sizes = runs if runs else [len(base)]
    per_run, start = [], 0
    for size in sizes:
        part = [h / b for b, h in zip(base[start:start + size], head[start:start + size],
                                      strict=False) if b > 0 and h > 0]
        start += size
        if part:
            per_run.append(statistics.median(_quads(part)))
    ratios = [h / b for b, h in zip(base, head, strict=False) if b > 0]
    n = len(ratios)
    slower = sum(r > 1 for r in ratios)
    faster = sum(r < 1 for r in ratios)
    ties = n - slower - faster  # a tie counts for neither side: half to each is the usual
    return Paired(ratio=statistics.median(per_run) if per_run else float("nan"),
                  p_slower=sign_test(slower + ties // 2, n),
                  p_faster=sign_test(faster + ties // 2, n),
                  pairs=n, base_s=statistics.median(base), head_s=statistics.median(head),
                  calls=calls, runs=tuple(per_run))


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

    def _restart(self, first: int) -> tuple[_Worker, _Worker]:
        """A fresh pair of workers (any live ones closed first), side ``first`` started
        first; returned as (base, head)."""
        self._stop_workers()
        for i in (first, 1 - first):
            self._worker(i)
        return self._worker(0), self._worker(1)

    def measure(self, kernel: str, problem: str, pairs: int = PAIRS,
                sample_s: float = SAMPLE_S, runs: int = RUNS) -> Paired | str:
        """The paired figures, or why they could not be taken (one line)."""
        return self.measure_all([(kernel, problem)], pairs, sample_s, runs)[(kernel, problem)]

    def measure_all(self, keys: Sequence[tuple[str, str]], pairs: int = PAIRS,
                    sample_s: float = SAMPLE_S, runs: int = RUNS,
                    done: Callable[[tuple[str, str], Paired | str], None] | None = None,
                    ) -> dict[tuple[str, str], Paired | str]:
        """Every (kernel, problem id) of ``keys`` measured over ``runs`` fresh pairs of
        workers (started and set up base first in even runs, head first in odd ones),
        ``pairs`` pairs in all (split evenly, rounded up to whole quads of base head head
        base): the paired figures, or why they
        could not be taken (one line; a key that fails in one run is not measured again).
        ``done(key, result)`` is called as each key's last run ends."""
        runs = max(1, runs)
        per_run = max(2, -(-pairs // runs))
        per_run += per_run % 2  # whole quads: base-first and head-first pairs alike
        samples: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
        calls: dict[tuple[str, str], int] = {}
        out: dict[tuple[str, str], Paired | str] = {}
        for run in range(runs):
            fresh = True  # the run's first key starts its pair of workers
            for key in keys:
                if key in out:
                    continue
                try:
                    if fresh:
                        fresh = False
                        base, head = self._restart(first=run % 2)
                    else:  # kept for the run; one that died since is replaced
                        base, head = self._worker(0), self._worker(1)
                    tb, th = samples.setdefault(key, ([], []))
                    one = max(w.ask({"op": "setup", "kernel": key[0], "problem": key[1]}
                                    )["per_call_s"] for w in ((base, head) if run % 2 == 0
                                                              else (head, base)))
                    n = calls.setdefault(key, max(1, int(sample_s / max(one, 1e-7))))
                    # base head | head base | ...: neither always first; pair -1 (head base,
                    # as if a quad came before) is the set-up's warm-up and is not kept
                    for i in range(-1, per_run):
                        for w in ((base, head) if i % 2 == 0 else (head, base)):
                            s = w.ask({"op": "sample", "calls": n})["s"]
                            if i >= 0:
                                (tb if w is base else th).append(s)
                except WorkerError as exc:
                    self._drop_dead()
                    out[key] = str(exc)
                else:
                    if run == runs - 1:
                        out[key] = judge(tb, th, n, [per_run] * runs)
                if key in out and done is not None:
                    done(key, out[key])
        return out

    def _drop_dead(self) -> None:
        """A failed worker is replaced for the next key."""
        for i, side in enumerate(self._workers):
            if side is not None and side.proc.poll() is not None:
                self._end(side)
                self._workers[i] = None

    def _stop_workers(self) -> None:
        """Close both workers (any that live) and sweep what they left."""
        for i, w in enumerate(self._workers):
            if w is not None:
                self._end(w)
                self._workers[i] = None

    def close(self) -> None:
        """Kill both workers' process groups and sweep what they left."""
        try:
            self._stop_workers()
        finally:
            self._workers = [None, None]
            if self._reaping:
                self._reaping = False
                REAPER.release()

    def __enter__(self) -> PairedRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
