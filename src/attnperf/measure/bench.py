"""One (kernel, problem) in this process: bind it, check it, time it, place it.

:class:`Bench` binds a kernel to a problem on a device with fresh seeded
inputs and owns the calls that are checked and timed.  :func:`measure` is the
whole of one measurement in this process -- admission, the checked first
call, the timings, the check of a timed call, the roofline -- and records
every failure of the kernel as a status instead of raising.  The session runs
it here or, isolated, in a worker process (:mod:`attnperf.measure.isolation`).
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from typing import TYPE_CHECKING, Any

from ..errors import InsufficientMemoryError, KernelUnavailableError
from ..kernels import registry
from ..kernels.spec import KernelSpec
from ..model.peaks import Peak
from ..model.problem import Problem
from ..model.records import Correctness, Measurement, PeakMemory
from ..model.samples import Samples
from .correctness import modified_inputs, reference, reference_grads, verify, verify_grads
from .device import tf32_enabled
from .inputs import DEFAULT_SEED, make_grad_output, make_inputs
from .memory import check_fits, peak_memory
from .nvml import gpu_clock_state
from .options import MeasureOptions, options_of
from .placement import roofline_of
from .timing import Budget, time_cpu, time_cpu_thread, time_cuda_device, time_cuda_latency

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def now() -> str:
    """A measurement's timestamp (UTC, ISO 8601)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Bench:
    """A kernel bound to a problem on a device, with fresh seeded inputs.

    Raises KernelUnavailableError / InsufficientMemoryError on construction
    when the kernel cannot run here (nothing is allocated in that case).
    :meth:`check` computes the float64 reference *before* the kernel first
    sees the inputs and keeps copies of them; :meth:`recheck` judges the
    output of the last timed call against that reference, and the inputs
    against the copies.

    Training passes (``problem.mode`` ``bwd`` / ``fwd+bwd``): Q, K, V require
    grad and a seeded dO is drawn; the reference adds float64 dQ, dK, dV
    (autograd), and :attr:`gradients` holds their verdicts after each check.
    The timed call is ``torch.autograd.grad`` of a forward output made once
    (``bwd``: on a side stream on a GPU, see :mod:`attnperf.measure.cudalaunch`)
    or of a fresh forward (``fwd+bwd``).
    """

    def __init__(self, kernel: str | KernelSpec, problem: Problem, device: str,
                 seed: int = DEFAULT_SEED, tolerances: dict[str, float] | None = None) -> None:
        self.spec = registry.get(kernel) if isinstance(kernel, str) else kernel
        self.tolerances = tolerances or {}
        self.problem, self.device = problem, device
        ok, why = self.spec.check(problem, device)
        if not ok:
            raise KernelUnavailableError(why)
        check_fits(self.spec, problem, device)
        self.q, self.k, self.v = make_inputs(problem, device, seed)
        self.dout: torch.Tensor | None = None
        if problem.backward:
            self.dout = make_grad_output(problem, device, seed)
            for x in (self.q, self.k, self.v):
                x.requires_grad_(True)
        self.ref: torch.Tensor | None = None
        self.saved: list[torch.Tensor] | None = None
        self.last: Any = None  # the last call's output: whatever the kernel returned
        self.ref_grads: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.grads: tuple[torch.Tensor, ...] | None = None
        self.gradients: dict[str, Correctness] | None = None
        self._stream: torch.cuda.Stream | None = None

    @property
    def inputs(self) -> tuple[torch.Tensor, ...]:
        return (self.q, self.k, self.v) + ((self.dout,) if self.dout is not None else ())

    def forward(self) -> Any:
        """One forward call; in training passes its output must carry an autograd graph."""
        out = self.spec.run(self.q, self.k, self.v, self.problem)
        if (
            self.problem.backward
            and getattr(out, "grad_fn", None) is None
            and hasattr(out, "shape")
        ):
            raise KernelUnavailableError(
                f"{self.spec.name} has no backward: its output carries no autograd graph "
                f"(pass {self.problem.mode}; a kernel without one declares passes=['fwd'])")
        return out

    def call(self) -> Any:
        # Keeps the output (and gradients): inside a CUDA graph these are the last
        # captured call's buffers, which every replay rewrites, so recheck() sees a timed call.
        mode = self.problem.mode
        if mode != "bwd":
            self.last = self.forward()
        if mode == "fwd":
            return self.last
        import torch
        self.grads = torch.autograd.grad(self.last, (self.q, self.k, self.v), self.dout,
                                         retain_graph=mode == "bwd")
        return self.grads

    def check(self) -> Correctness:
        """The first call, judged (see the class doc)."""
        if self.problem.backward:
            assert self.dout is not None, "drawn in __init__ for every training pass"
            self.ref, self.ref_grads = reference_grads(
                self.q, self.k, self.v, self.dout, self.problem
            )
        else:
            self.ref = reference(self.q, self.k, self.v, self.problem)
        if self.device == "cuda":  # the float64 reference's scratch goes back to the driver:
            import torch  # on a large problem it would stay cached through the timings
            torch.cuda.empty_cache()
        self.saved = [x.detach().clone() for x in self.inputs]
        if self.problem.mode == "bwd":
            self.last = self.forward()
        self.call()
        return self.recheck()

    def recheck(self, out: Any = None) -> Correctness:
        """The output (and gradients) of the last call (default) and the inputs, judged again."""
        out = self.last if out is None else out
        assert self.saved is not None and self.ref is not None, "check() comes first"
        changed = modified_inputs(self.inputs, self.saved)
        c = verify(out, self.ref, self.problem, tf32=self.tf32, modified=changed,
                   tolerances=self.tolerances)
        if self.problem.backward:
            assert self.grads is not None and self.ref_grads is not None, "check() comes first"
            self.gradients = verify_grads(self.grads, self.ref_grads, self.problem,
                                          tf32=self.tf32, modified=changed)
        return c

    def wrong(self, c: Correctness, when: str = "") -> str | None:
        """Why the last check failed (output, then dQ, dK, dV), or None when it passed."""
        if not c.passed:
            return _wrong(c, when)
        for name, g in (self.gradients or {}).items():
            if not g.passed:
                return _wrong(g, when, f" {name}")
        return None

    def _timing_stream(self) -> contextlib.AbstractContextManager[object]:
        """``bwd`` on a GPU: a side stream, current while timing, where a fresh
        forward runs first (its backward must be captured where it ran)."""
        if self.device != "cuda" or self.problem.mode != "bwd":
            return contextlib.nullcontext()
        import torch
        if self._stream is None:
            self._stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]  # torch: untyped
        self._stream.wait_stream(torch.cuda.current_stream())
        return torch.cuda.stream(self._stream)

    @property
    def tf32(self) -> bool:
        return self.problem.dtype == "float32" and tf32_enabled(self.device)

    def time_samples(self, budget: Budget = Budget(), capture: bool = True) -> Samples:
        """The primary time: device time on a GPU (``capture=False``: eager calls
        between events instead of graph replays); on a CPU the measuring thread's
        CPU time (with the speed-normalised figure) at 1 PyTorch thread, else wall time."""
        with self._timing_stream():
            if self.problem.mode == "bwd":
                self.last = self.forward()
            if self.device == "cuda":
                return time_cuda_device(self.call, budget, capture=capture)
            import torch
            if torch.get_num_threads() == 1:
                return time_cpu_thread(self.call, budget)
            return time_cpu(self.call, budget)

    def latency_samples(self, budget: Budget = Budget(), l2_flush: bool = True) -> Samples:
        with self._timing_stream():
            if self.device == "cuda":
                return time_cuda_latency(self.call, budget, l2_flush=l2_flush)
            return time_cpu(self.call, budget)

    def peak_memory(self) -> PeakMemory:
        """What one more call allocates at its peak (:mod:`attnperf.measure.memory`)."""
        return peak_memory(self.call, self.device)

    def dispatch(self) -> str | None:
        return self.spec.backend(self.q, self.k, self.v, self.problem)

    def release(self) -> None:
        # A released bench is not used again: its inputs go with the rest.
        self.q = self.k = self.v = None  # type: ignore[assignment]
        self.ref = self.saved = self.last = None
        self.dout = self.ref_grads = self.grads = self._stream = None
        if self.device == "cuda":
            import torch
            try:
                torch.cuda.empty_cache()
            except RuntimeError:  # a CUDA error poisoned the context: keep the kernel's error
                log.debug("empty_cache failed after a CUDA error", exc_info=True)


def _oom_types() -> tuple[type[BaseException], ...]:
    import torch
    return tuple(t for t in (getattr(torch.cuda, "OutOfMemoryError", None),
                             getattr(torch, "OutOfMemoryError", None)) if t)


def _wrong(c: Correctness, when: str, what: str = "") -> str:
    if c.modified_inputs:
        return f"kernel modified its inputs ({', '.join(c.modified_inputs)}){when}"
    return f"wrong {'gradient' + what if what else 'result'}{when}: {c.summary()}"


def measure(kernel: str, problem: Problem, device: str,
            options: MeasureOptions | None = None, *,
            ceiling_data: dict[str, Any] | None = None, peak: Peak | None = None,
            spec: KernelSpec | None = None, tolerances: dict[str, float] | None = None,
            budget: Budget | None = None, latency: bool | None = None,
            l2_flush: bool | None = None, seed: int | None = None) -> Measurement:
    """Check and time one (kernel, problem) in this process.

    Never raises for a kernel failure: unavailability, OOM, exceptions (attnperf's
    own included) and wrong results become a status.  An unknown kernel name is
    the caller's mistake (UnknownNameError).  ``options`` say how to measure
    (``budget=``, ``latency=``, ``l2_flush=``, ``seed=`` given alone override
    them); ``ceiling_data`` and ``peak`` place the result on the roofline;
    ``spec`` overrides the registry's; ``tolerances`` (per precision key,
    ``TOLERANCES``' keys) override the defaults.
    """
    opts = options_of(options, budget=budget, latency=latency, l2_flush=l2_flush, seed=seed)
    m = Measurement(kernel, problem, device, timestamp=now())
    spec = spec if spec is not None else registry.get(kernel)
    with warnings.catch_warnings(record=True) as caught:
        # The kernel's own warnings (PyTorch's UserWarnings...) belong in the
        # report and in --verbose, not on the terminal between table rows.
        warnings.simplefilter("always")
        _measure_into(m, spec, opts, ceiling_data, peak, tolerances)
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in m.warnings:
            m.warnings.append(text)
            log.info("%s/%s: %s", kernel, problem.id, text)
    return m


def _measure_into(m: Measurement, spec: KernelSpec, opts: MeasureOptions,
                  ceiling_data: dict[str, Any] | None, peak: Peak | None,
                  tolerances: dict[str, float] | None) -> None:
    kernel, problem, device = m.kernel, m.problem, m.device
    bench = None
    oom = _oom_types()
    try:
        bench = Bench(spec, problem, device, opts.seed, tolerances=tolerances)
        m.correctness = bench.check()
        m.gradients = bench.gradients
        why = bench.wrong(m.correctness)
        if why:
            m.status, m.reason = "failed", why
            return
        m.dispatch = bench.dispatch()
        m.peak_memory = bench.peak_memory()
        if device == "cuda":
            m.clock_before = gpu_clock_state()
        m.device_time = bench.time_samples(opts.budget)
        timed = bench.recheck()  # the output of the last timed call
        if not bench.wrong(timed) and device == "cuda" and opts.latency:
            m.latency = bench.latency_samples(opts.budget, l2_flush=opts.l2_flush)
            m.clock_after = gpu_clock_state()
            timed = bench.recheck()
        why = bench.wrong(timed, " in a timed call")
        if why:
            m.correctness, m.gradients, m.device_time, m.latency = (
                timed,
                bench.gradients,
                None,
                None,
            )
            m.status, m.reason = "failed", why
            return
        m.roofline = roofline_of(m, ceiling_data, peak, work=bench.spec.work(problem))
    except KernelUnavailableError as exc:
        m.status, m.reason = "unavailable", str(exc)
    except InsufficientMemoryError as exc:
        m.status, m.reason = "skipped", str(exc)
    except oom as exc:
        m.status, m.reason = "skipped", f"out of memory: {str(exc).splitlines()[0]}"
    except Exception as exc:  # noqa: BLE001 - kernel code is arbitrary; one crash must not lose the run
        # attnperf's own exceptions too: raised inside a kernel they are the
        # kernel's failure, not a reason to abort the sweep.
        m.status, m.reason = (
            "error",
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        )
        m.device_time = m.latency = m.roofline = m.peak_memory = None
        log.debug("kernel %s on %s raised", kernel, problem.id, exc_info=True)
    finally:
        if bench is not None:
            bench.release()


def warm_up_gpu(seconds: float = 1.0) -> None:
    """Bring an idle GPU to its working clocks before the first measurement.

    An idle GPU sits at a low clock, and the first configs of a fresh process
    can run far slower than the rest despite each timing's own warm-up.
    """
    import torch

    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(10):
            torch.matmul(a, a)
        torch.cuda.synchronize()
    del a
    torch.cuda.empty_cache()
