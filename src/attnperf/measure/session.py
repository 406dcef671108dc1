"""One measuring session: the per-machine setup done once, then each config.

The one path both front ends use.  :class:`Session` does the per-machine setup
once (device, fingerprint, measured ceilings, datasheet peak, GPU warm-up);
:meth:`Session.measure` checks and times one (kernel, problem) -- in this
process (:func:`attnperf.measure.bench.measure`) or in a supervised worker
process (:mod:`attnperf.measure.isolation`) -- and records every failure
instead of raising.  ``attnperf run`` iterates :meth:`Session.iter_grid`; the
asv suite does too, once per commit.  How each config is measured travels as
one :class:`~attnperf.measure.options.MeasureOptions`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..model.peaks import Peak, match_peak
from ..model.problem import Problem
from ..model.records import Measurement

# Names importable from here as they always were (Bench, measure, the memory estimate).
from .bench import Bench, measure, warm_up_gpu  # noqa: F401
from .budget import Budget
from .ceilings import load_or_measure_ceilings
from .device import fingerprint, resolve_device
from .isolation import Isolated, default_timeout_s  # noqa: F401
from .memory import available_memory, memory_needed  # noqa: F401
from .options import MeasureOptions, options_of
from .placement import kernel_work, roofline_of

log = logging.getLogger(__name__)

Skip = Callable[[Problem], str | None] | None
Progress = Callable[[str, Problem], None] | None


class Session:
    """The per-machine setup, done once: device, fingerprint, ceilings, peak.

    ``isolate=True`` measures every config in a supervised worker process
    (:mod:`attnperf.measure.isolation`): a kernel that crashes the process is
    recorded as ``crashed``, one that passes ``timeout_s`` (default:
    :func:`~attnperf.measure.isolation.default_timeout_s` of the budget) as
    ``timed_out``, and the next config gets a fresh worker.  Use it as a
    context manager, or :meth:`close`, to stop the worker.  ``isolate=False``
    measures in this process (debuggers, in-process kernels).

    ``threads`` sets PyTorch's CPU thread pool (CPU only); ``tolerances``
    ([tool.attnperf]) override the default tolerances per precision key.

    The measuring methods take one :class:`MeasureOptions`, or its fields as
    keyword arguments (``budget=``, ``latency=``, ``l2_flush=``, ``seed=``,
    ``timeout_s=``), which override it.
    """

    def __init__(self, device: str = "auto", threads: int | None = None,
                 refresh_ceilings: bool = False, tolerances: dict[str, float] | None = None,
                 isolate: bool = False, timeout_s: float | None = None) -> None:
        self.device = resolve_device(device)
        self.tolerances = dict(tolerances or {})  # [tool.attnperf] tolerances
        if threads is not None and self.device == "cpu":  # PyTorch's CPU thread pool
            import torch
            torch.set_num_threads(threads)
        self.environment = fingerprint(self.device)
        self.ceilings = load_or_measure_ceilings(self.device, self.environment,
                                                 refresh=refresh_ceilings)
        gpu = self.environment["gpu_name"]
        self.peak: Peak | None = match_peak(gpu) if gpu else None
        self.isolate, self.timeout_s = isolate, timeout_s
        if isolate and self.device == "cuda":
            import torch
            torch.cuda.empty_cache()  # what measuring ceilings cached belongs to the workers now
        self._warm = False
        self._isolated = Isolated(self.device, timeout_s) if isolate else None
        self.ceilings_remeasured = False

    def warm_up(self) -> None:
        if self.device == "cuda" and not self._warm:
            warm_up_gpu()
            self._warm = True

    def close(self) -> None:
        """Stop the worker process, if any (killed at once: it may be inside a kernel)."""
        if self._isolated is not None:
            self._isolated.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def measure(self, kernel: str, problem: Problem, options: MeasureOptions | None = None,
                *, budget: Budget | None = None, latency: bool | None = None,
                l2_flush: bool | None = None, seed: int | None = None,
                timeout_s: float | None = None) -> Measurement:
        """Check and time one (kernel, problem) (class doc); an unknown kernel name
        raises :class:`~attnperf.errors.UnknownNameError`."""
        opts = options_of(options, budget=budget, latency=latency, l2_flush=l2_flush, seed=seed,
                          timeout_s=timeout_s)
        where: dict[str, Any] = dict(ceiling_data=self.ceilings, peak=self.peak,
                                     tolerances=self.tolerances)
        if self._isolated is None:
            self.warm_up()
            m = measure(kernel, problem, self.device, opts, **where)
        else:
            m = self._isolated.measure(kernel, problem, opts, **where)
        if m.roofline is not None and m.roofline.ceiling_beaten:
            self.recheck_ceilings(m)
        return m

    def recheck_ceilings(self, m: Measurement) -> None:
        """A kernel beat the roofs: measure the ceilings again, once per session, and
        place ``m`` again; if it still beats them its roofline says so (ceiling_beaten)."""
        if not self.ceilings_remeasured:
            assert m.roofline is not None, "only a measurement on the roofline beats it"
            log.warning("%s/%s ran at %.0f%% of the ceilings; measuring them again",
                        m.kernel, m.problem.id, m.roofline.efficiency_pct)
            self.ceilings = load_or_measure_ceilings(self.device, self.environment, refresh=True)
            self.ceilings_remeasured = True
        m.roofline = roofline_of(m, self.ceilings, self.peak, remeasured=True, work=kernel_work(m))

    def iter_grid(self, jobs: Iterable[tuple[str, Problem]],
                  options: MeasureOptions | None = None, skip: Skip = None,
                  progress: Progress = None, *, budget: Budget | None = None,
                  latency: bool | None = None, l2_flush: bool | None = None,
                  seed: int | None = None, timeout_s: float | None = None
                  ) -> Iterator[Measurement]:
        """Measure each (kernel, problem) as the caller asks for the next one;
        ``skip(problem)`` may name a reason not to."""
        opts = options_of(options, budget=budget, latency=latency, l2_flush=l2_flush, seed=seed,
                          timeout_s=timeout_s)
        for kernel, problem in jobs:
            if progress is not None:
                progress(kernel, problem)
            why = skip(problem) if skip is not None else None
            if why:
                yield Measurement(kernel, problem, self.device, status="skipped", reason=why)
                continue
            yield self.measure(kernel, problem, opts)

    def measure_grid(self, jobs: Iterable[tuple[str, Problem]],
                     options: MeasureOptions | None = None, skip: Skip = None,
                     progress: Progress = None, *, budget: Budget | None = None,
                     latency: bool | None = None, l2_flush: bool | None = None,
                     seed: int | None = None, timeout_s: float | None = None
                     ) -> list[Measurement]:
        """Measure each (kernel, problem); ``skip(problem)`` may name a reason not to."""
        opts = options_of(options, budget=budget, latency=latency, l2_flush=l2_flush, seed=seed,
                          timeout_s=timeout_s)
        out = list(self.iter_grid(jobs, opts, skip=skip, progress=progress))
        if self.ceilings_remeasured:  # the rows measured before: on the new roofs too
            for m in out:
                m.roofline = roofline_of(m, self.ceilings, self.peak, remeasured=True,
                                         work=kernel_work(m))
        return out


__all__ = ["Session", "MeasureOptions", "Bench", "measure", "warm_up_gpu", "default_timeout_s",
           "available_memory", "memory_needed", "Budget"]
