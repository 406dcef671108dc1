"""Each config in a supervised worker process: what a job is, and what becomes of it.

:mod:`attnperf.measure.worker` knows processes only; this module is the glue
between it and a measuring session.  :class:`Isolated` sends one (kernel,
problem) with its :class:`~attnperf.measure.options.MeasureOptions` to a
worker, which runs :func:`attnperf.measure.bench.measure` there, and turns
what happened into a :class:`~attnperf.model.records.Measurement`: the
worker's result, ``crashed`` (the process died: signal or exit code in the
reason) or ``timed_out`` (no result within the limit).  Kernels reach the
worker by name (built-ins and ``module:attribute`` references) or, when
registered in the measuring process only, pickled.  A worker that measured an
error on a GPU retires (a CUDA error can poison its context for every later
kernel), and the next config gets a fresh one.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
from typing import Any

from ..errors import UnknownNameError
from ..kernels import registry
from ..kernels.spec import KernelSpec
from ..model.peaks import Peak
from ..model.problem import Problem
from ..model.records import Measurement
from .bench import measure, now, warm_up_gpu
from .budget import Budget
from .options import MeasureOptions
from .worker import Crashed, Done, Worker

# The per-config time limit when none is given: a config is up to two timings
# (device time, latency) of warm-up + budget each, one checked call and the
# reference; allow 20x that, never less than a minute.
MIN_TIMEOUT_S = 60.0
TIMEOUT_FACTOR = 20.0


def default_timeout_s(budget: Budget = Budget()) -> float:
    """The per-config time limit derived from the timing budget."""
    return max(MIN_TIMEOUT_S, TIMEOUT_FACTOR * 2 * (budget.budget_s + budget.warmup_s))


@dataclasses.dataclass(frozen=True)
class WorkerSetup:
    """What each worker process is set up with, once."""

    device: str
    threads: int
    references: tuple[str, ...]  # extra kernel references the supervisor loaded
    log_level: int | None


@dataclasses.dataclass(frozen=True)
class Job:
    """One config for a worker: the kernel by name (and pickled, when it can be),
    the problem, how to measure it, and where to place it (ceilings, peak)."""

    kernel: str
    problem: Problem
    spec_blob: bytes | None
    spec_note: str  # why the spec could not be pickled ("" when it could)
    options: MeasureOptions
    ceiling_data: dict[str, Any] | None
    peak: Peak | None
    tolerances: dict[str, float] | None


def set_up_worker(cfg: WorkerSetup) -> str:
    """Runs once in each worker process (see measure/worker.py)."""
    if cfg.log_level is not None:  # mirror the supervisor's logging (a process entry point)
        logging.basicConfig(level=cfg.log_level, format="%(levelname)s %(name)s: %(message)s")
    import torch
    torch.set_num_threads(cfg.threads)
    for ref in cfg.references:
        registry.REGISTRY.add_reference(ref)
    if cfg.device == "cuda":
        warm_up_gpu()
    return cfg.device


def measure_in_worker(device: str, job: Job) -> tuple[Measurement, bool]:
    """One config in the worker: (measurement, retire this worker)."""
    try:
        spec = pickle.loads(job.spec_blob) if job.spec_blob is not None else None
        m = measure(job.kernel, job.problem, device, job.options, ceiling_data=job.ceiling_data,
                    peak=job.peak, spec=spec, tolerances=job.tolerances)
    except UnknownNameError:
        m = Measurement(job.kernel, job.problem, device, status="error", timestamp=now(), reason=(
            f"kernel {job.kernel!r} is not known in the worker process: it was registered in the "
            f"measuring process and cannot be sent ({job.spec_note}); define it in a module and "
            f"load it by reference (module:attribute, {registry.ENV_MODULES})"))
    except Exception as exc:  # noqa: BLE001 - e.g. a spec that does not unpickle here
        m = Measurement(job.kernel, job.problem, device, status="error", timestamp=now(),
                        reason=f"{type(exc).__name__} in the worker process: {exc}")
    # A CUDA error can poison the context for every later kernel: any error on
    # a GPU retires this worker, and the next config gets a fresh one.
    return m, device == "cuda" and m.status == "error"


def spec_blob(spec: KernelSpec) -> tuple[bytes | None, str]:
    """The spec pickled for the worker, or None and why not (closures, lambdas)."""
    try:
        return pickle.dumps(spec), ""
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


class Isolated:
    """Measures configs in a supervised worker process on ``device``, started on
    first use; ``timeout_s`` is the default per-config limit (None: derived from
    each config's budget).  :meth:`close` stops the worker."""

    def __init__(self, device: str, timeout_s: float | None = None) -> None:
        self.device, self.timeout_s = device, timeout_s
        self._worker: Worker | None = None
        self._blobs: dict[str, tuple[bytes | None, str]] = {}

    def worker(self) -> Worker:
        if self._worker is None:
            import torch
            root = logging.getLogger()
            cfg = WorkerSetup(self.device, torch.get_num_threads(),
                              tuple(registry.REGISTRY.references()),
                              root.getEffectiveLevel() if root.handlers else None)
            self._worker = Worker(set_up_worker, cfg, measure_in_worker, preload=[__name__])
        return self._worker

    def measure(self, kernel: str, problem: Problem, options: MeasureOptions, *,
                ceiling_data: dict[str, Any] | None, peak: Peak | None,
                tolerances: dict[str, float] | None) -> Measurement:
        """One config in the worker (module doc); an unknown kernel name raises here."""
        spec = registry.get(kernel)  # an unknown name fails here, not in the worker
        if kernel not in self._blobs:
            self._blobs[kernel] = spec_blob(spec)
        blob, note = self._blobs[kernel]
        limit = options.timeout_s or self.timeout_s or default_timeout_s(options.budget)
        job = Job(kernel, problem, blob, note, options, ceiling_data, peak, tolerances)
        outcome = self.worker().run(job, limit)
        if isinstance(outcome, Done):
            m: Measurement = outcome.value  # measure_in_worker's measurement
            return m
        status = "crashed" if isinstance(outcome, Crashed) else "timed_out"
        return Measurement(kernel, problem, self.device, status=status, reason=outcome.reason,
                           timestamp=now())

    def close(self) -> None:
        """Stop the worker process, if any (killed at once: it may be inside a kernel)."""
        if self._worker is not None:
            self._worker.close(force=True)
