"""One measuring session: kernels, inputs, correctness, timing and the roofline.

The one path both front ends use.  :class:`Session` does the per-machine setup
once (device, fingerprint, measured ceilings, datasheet peak, GPU warm-up);
:meth:`Session.measure` checks and times one (kernel, problem) and records
every failure instead of raising.  ``attnperf run`` iterates
:meth:`Session.iter_grid`; the asv suite calls :meth:`Session.measure_grid`
once per commit.  Both isolate each config in a worker process with a time
limit (``isolate=True``; see :mod:`attnperf.measure.worker`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import pickle
import time
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Tuple, Union

from ..errors import InsufficientMemoryError, KernelUnavailableError, UnknownNameError
from ..kernels import registry
from ..kernels.spec import KernelSpec
from ..model import roofline
from ..model.peaks import Peak, match_peak
from ..model.problem import Problem
from ..model.records import Correctness, Measurement, Samples
from .ceilings import load_or_measure_ceilings
from .correctness import modified_inputs, reference, reference_grads, verify, verify_grads
from .device import fingerprint, resolve_device, tf32_enabled
from .inputs import DEFAULT_SEED, make_grad_output, make_inputs
from .memory import peak_memory
from .nvml import gpu_clock_state
from .timing import Budget, time_cpu, time_cpu_thread, time_cuda_device, time_cuda_latency
from .worker import Crashed, Done, Worker

log = logging.getLogger(__name__)

MEMORY_HEADROOM = 0.85  # use at most this fraction of free memory


def available_memory(device: str) -> Optional[int]:
    """Free bytes on ``device`` (None if unknown).  On a GPU, what PyTorch's caching
    allocator holds but does not use counts as free: it hands those blocks out
    again, and releases them to the driver before it reports out-of-memory."""
    if device == "cuda":
        import torch
        cached = torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
        return int(torch.cuda.mem_get_info()[0]) + max(0, int(cached))
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def input_bytes(p: Problem) -> int:
    """Q, K and V (and dO): the saved copies that detect a kernel writing to its inputs."""
    q_like = p.batch * p.heads * p.seq_q * p.head_dim * (2 if p.backward else 1)
    return (q_like + 2 * p.batch * p.kv_heads * p.seq_kv * p.head_dim) * p.element_size


def memory_needed(spec: KernelSpec, p: Problem) -> int:
    """Inputs (and their saved copies), output (and gradients), kernel scratch, and
    the float64 reference (chunked to <= 1 GiB; with gradients in training passes)."""
    scores = min(1 << 30, (48 if p.backward else 24) * p.seq_q * p.seq_kv * p.heads)
    elements = p.batch * p.heads * p.seq_q * p.head_dim
    if p.backward:  # float64 O and dQ, dK, dV
        elements = 2 * elements + 2 * p.batch * p.kv_heads * p.seq_kv * p.head_dim
    return roofline.bytes_moved(p) + input_bytes(p) + spec.scratch_bytes(p) + 8 * elements + scores


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
    (``bwd``: on a side stream on a GPU, see :mod:`attnperf.measure.timing`)
    or of a fresh forward (``fwd+bwd``).
    """

    def __init__(self, kernel: Union[str, KernelSpec], problem: Problem, device: str,
                 seed: int = DEFAULT_SEED, tolerances: Optional[dict] = None):
        self.spec = registry.get(kernel) if isinstance(kernel, str) else kernel
        self.tolerances = tolerances or {}
        self.problem, self.device = problem, device
        ok, why = self.spec.check(problem, device)
        if not ok:
            raise KernelUnavailableError(why)
        need, free = memory_needed(self.spec, problem), available_memory(device)
        if free is not None and need > MEMORY_HEADROOM * free:
            raise InsufficientMemoryError(
                f"{problem.id} needs ~{need / 2**30:.2f} GiB on {device}, "
                f"{free / 2**30:.2f} GiB free")
        self.q, self.k, self.v = make_inputs(problem, device, seed)
        self.dout = None
        if problem.backward:
            self.dout = make_grad_output(problem, device, seed)
            for x in (self.q, self.k, self.v):
                x.requires_grad_(True)
        self.ref = self.saved = self.last = None
        self.ref_grads = self.grads = self.gradients = None
        self._stream = None

    @property
    def inputs(self) -> tuple:
        return (self.q, self.k, self.v) + ((self.dout,) if self.dout is not None else ())

    def forward(self):
        """One forward call; in training passes its output must carry an autograd graph."""
        out = self.spec.run(self.q, self.k, self.v, self.problem)
        if self.problem.backward and getattr(out, "grad_fn", None) is None and hasattr(out, "shape"):
            raise KernelUnavailableError(
                f"{self.spec.name} has no backward: its output carries no autograd graph "
                f"(pass {self.problem.mode}; a kernel without one declares passes=['fwd'])")
        return out

    def call(self):
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
            self.ref, self.ref_grads = reference_grads(self.q, self.k, self.v, self.dout, self.problem)
        else:
            self.ref = reference(self.q, self.k, self.v, self.problem)
        if self.device == "cuda":  # the float64 reference's scratch goes back to the driver:
            import torch           # at 2,32,8192,128 it left >100 GiB cached for the timings
            torch.cuda.empty_cache()
        self.saved = [x.detach().clone() for x in self.inputs]
        if self.problem.mode == "bwd":
            self.last = self.forward()
        self.call()
        return self.recheck()

    def recheck(self, out=None) -> Correctness:
        """The output (and gradients) of the last call (default) and the inputs, judged again."""
        out = self.last if out is None else out
        changed = modified_inputs(self.inputs, self.saved)
        c = verify(out, self.ref, self.problem, tf32=self.tf32, modified=changed,
                   tolerances=self.tolerances)
        if self.problem.backward:
            self.gradients = verify_grads(self.grads, self.ref_grads, self.problem,
                                          tf32=self.tf32, modified=changed)
        return c

    def wrong(self, c: Correctness, when: str = "") -> Optional[str]:
        """Why the last check failed (output, then dQ, dK, dV), or None when it passed."""
        if not c.passed:
            return _wrong(c, when)
        for name, g in (self.gradients or {}).items():
            if not g.passed:
                return _wrong(g, when, f" {name}")
        return None

    def _timing_stream(self):
        """``bwd`` on a GPU: a side stream, current while timing, where a fresh
        forward runs first (its backward must be captured where it ran)."""
        if self.device != "cuda" or self.problem.mode != "bwd":
            return contextlib.nullcontext()
        import torch
        if self._stream is None:
            self._stream = torch.cuda.Stream()
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

    def peak_memory(self):
        """What one more call allocates at its peak (:mod:`attnperf.measure.memory`)."""
        return peak_memory(self.call, self.device)

    def dispatch(self) -> Optional[str]:
        return self.spec.backend(self.q, self.k, self.v, self.problem)

    def release(self) -> None:
        self.q = self.k = self.v = self.ref = self.saved = self.last = None
        self.dout = self.ref_grads = self.grads = self._stream = None
        if self.device == "cuda":
            import torch
            try:
                torch.cuda.empty_cache()
            except RuntimeError:  # a CUDA error poisoned the context: keep the kernel's error
                log.debug("empty_cache failed after a CUDA error", exc_info=True)


def _cache_bytes(device: str) -> Optional[int]:
    """The last-level cache that timed calls run warm in: the GPU's L2 (device
    time replays back to back), the CPU's largest data cache (calls back to back)."""
    if device != "cuda":
        return _cpu_cache_bytes()
    import torch
    return int(getattr(torch.cuda.get_device_properties(torch.cuda.current_device()),
                       "L2_cache_size", 0)) or None


def _cpu_cache_bytes() -> Optional[int]:
    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            size = (index / "size").read_text().strip()
            sizes.append(int(size.rstrip("KMG")) * {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
                         .get(size[-1:], 1))
        except (OSError, ValueError):
            continue
    return max(sizes) if sizes else None


def roofline_of(m: Measurement, ceiling_data: Optional[dict], peak, remeasured: bool = False,
                work: Tuple[Optional[int], Optional[int]] = (None, None)
                ) -> Optional[roofline.Roofline]:
    """``m``'s median time on the roofline of its dtype; None (with a warning) without a ceiling."""
    if m.device_time is None:
        return None
    tf32 = m.problem.dtype == "float32" and tf32_enabled(m.device)
    ceiling = roofline.ceiling_for(m.problem, ceiling_data, peak, tf32=tf32)
    if ceiling is None:
        log.warning("%s/%s: no %s ceiling for this %s (measured or datasheet); no roofline",
                    m.kernel, m.problem.id, m.problem.dtype, m.device)
        return None
    return roofline.analyze(m.problem, m.device_time.median_s, ceiling, m.device,
                            cache_bytes=_cache_bytes(m.device), work=work, remeasured=remeasured)


def _work(m: Measurement) -> Tuple[Optional[int], Optional[int]]:
    """The kernel's own (FLOPs, bytes) model, when the registry knows the kernel."""
    try:
        return registry.get(m.kernel).work(m.problem)
    except UnknownNameError:
        return None, None


def _oom_types():
    import torch
    return tuple(t for t in (getattr(torch.cuda, "OutOfMemoryError", None),
                             getattr(torch, "OutOfMemoryError", None)) if t)


def _wrong(c: Correctness, when: str, what: str = "") -> str:
    if c.modified_inputs:
        return f"kernel modified its inputs ({', '.join(c.modified_inputs)}){when}"
    return f"wrong {'gradient' + what if what else 'result'}{when}: {c.summary()}"


def measure(kernel: str, problem: Problem, device: str, ceiling_data: Optional[dict] = None,
            peak=None, budget: Budget = Budget(), latency: bool = True, l2_flush: bool = True,
            seed: int = DEFAULT_SEED, spec: Optional[KernelSpec] = None,
            tolerances: Optional[dict] = None) -> Measurement:
    """Check and time one (kernel, problem) in this process.

    Never raises for a kernel failure: unavailability, OOM, exceptions (attnperf's
    own included) and wrong results become a status.  An unknown kernel name is
    the caller's mistake (UnknownNameError).  ``spec`` overrides the registry's;
    ``tolerances`` (per precision key, ``TOLERANCES``' keys) override the defaults.
    """
    m = Measurement(kernel, problem, device, timestamp=_now())
    spec = spec if spec is not None else registry.get(kernel)
    with warnings.catch_warnings(record=True) as caught:
        # The kernel's own warnings (PyTorch's UserWarnings...) belong in the
        # report and in --verbose, not on the terminal between table rows.
        warnings.simplefilter("always")
        _measure_into(m, spec, problem, device, ceiling_data, peak, budget, latency, l2_flush,
                      seed, tolerances)
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in m.warnings:
            m.warnings.append(text)
            log.info("%s/%s: %s", kernel, problem.id, text)
    return m


def _measure_into(m: Measurement, spec: KernelSpec, problem: Problem, device: str,
                  ceiling_data: Optional[dict], peak, budget: Budget, latency: bool,
                  l2_flush: bool, seed: int, tolerances: Optional[dict]) -> None:
    kernel = m.kernel
    bench = None
    oom = _oom_types()
    try:
        bench = Bench(spec, problem, device, seed, tolerances=tolerances)
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
        m.device_time = bench.time_samples(budget)
        timed = bench.recheck()  # the output of the last timed call
        if not bench.wrong(timed) and device == "cuda" and latency:
            m.latency = bench.latency_samples(budget, l2_flush=l2_flush)
            m.clock_after = gpu_clock_state()
            timed = bench.recheck()
        why = bench.wrong(timed, " in a timed call")
        if why:
            m.correctness, m.gradients, m.device_time, m.latency = timed, bench.gradients, None, None
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
        m.status, m.reason = "error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        m.device_time = m.latency = m.roofline = m.peak_memory = None
        log.debug("kernel %s on %s raised", kernel, problem.id, exc_info=True)
    finally:
        if bench is not None:
            bench.release()


def warm_up_gpu(seconds: float = 1.0) -> None:
    """Bring an idle GPU to its working clocks before the first measurement.

    Measured on the H100: the first combinations of a fresh process (GPU idle
    at 450 MHz before) ran up to 45 % slow despite the per-measurement warm-up.
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


# ------------------------------------------------------- isolation ------
# Defaults for the per-config time limit when none is given: a config is up to
# two timings (device time, latency) of warm-up + budget each, one checked call
# and the reference; allow 20x that, never less than a minute.
MIN_TIMEOUT_S = 60.0
TIMEOUT_FACTOR = 20.0


def default_timeout_s(budget: Budget = Budget()) -> float:
    """The per-config time limit derived from the timing budget."""
    return max(MIN_TIMEOUT_S, TIMEOUT_FACTOR * 2 * (budget.budget_s + budget.warmup_s))


@dataclasses.dataclass(frozen=True)
class _WorkerSetup:
    device: str
    threads: int
    references: Tuple[str, ...]  # extra kernel references the supervisor loaded
    log_level: Optional[int]


def _worker_setup(cfg: _WorkerSetup) -> str:
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


def _worker_measure(device: str, job: tuple) -> Tuple[Measurement, bool]:
    """One config in the worker: (measurement, retire this worker)."""
    kernel, problem, spec_blob, spec_note, kw = job
    try:
        spec = pickle.loads(spec_blob) if spec_blob is not None else None
        m = measure(kernel, problem, device, spec=spec, **kw)
    except UnknownNameError:
        m = Measurement(kernel, problem, device, status="error", timestamp=_now(), reason=(
            f"kernel {kernel!r} is not known in the worker process: it was registered in the "
            f"measuring process and cannot be sent ({spec_note}); define it in a module and "
            f"load it by reference (module:attribute, {registry.ENV_MODULES})"))
    except Exception as exc:  # noqa: BLE001 - e.g. a spec that does not unpickle here
        m = Measurement(kernel, problem, device, status="error", timestamp=_now(),
                        reason=f"{type(exc).__name__} in the worker process: {exc}")
    # A CUDA error can poison the context for every later kernel: any error on
    # a GPU retires this worker, and the next config gets a fresh one.
    return m, device == "cuda" and m.status == "error"


def _spec_blob(spec: KernelSpec) -> Tuple[Optional[bytes], str]:
    """The spec pickled for the worker, or None and why not (closures, lambdas)."""
    try:
        return pickle.dumps(spec), ""
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Session:
    """The per-machine setup, done once: device, fingerprint, ceilings, peak.

    ``isolate=True`` measures every config in a supervised worker process
    (:mod:`attnperf.measure.worker`): a kernel that crashes the process is
    recorded as ``crashed``, one that passes ``timeout_s`` (default:
    :func:`default_timeout_s` of the budget) as ``timed_out``, and the next
    config gets a fresh worker.  Kernels reach the worker by name (built-ins
    and ``module:attribute`` references) or, registered here, pickled.  Use it
    as a context manager, or :meth:`close`, to stop the worker.
    ``isolate=False`` measures in this process (debuggers, in-process kernels).
    """

    def __init__(self, device: str = "auto", threads: Optional[int] = None,
                 refresh_ceilings: bool = False, tolerances: Optional[dict] = None,
                 isolate: bool = False, timeout_s: Optional[float] = None) -> None:
        self.device = resolve_device(device)
        self.tolerances = dict(tolerances or {})  # [tool.attnperf] tolerances
        if threads is not None and self.device == "cpu":  # PyTorch's CPU thread pool
            import torch
            torch.set_num_threads(threads)
        self.environment = fingerprint(self.device)
        self.ceilings = load_or_measure_ceilings(self.device, self.environment,
                                                 refresh=refresh_ceilings)
        gpu = self.environment["gpu_name"]
        self.peak: Optional[Peak] = match_peak(gpu) if gpu else None
        self.isolate, self.timeout_s = isolate, timeout_s
        if isolate and self.device == "cuda":
            import torch
            torch.cuda.empty_cache()  # what measuring ceilings cached belongs to the workers now
        self._warm = False
        self._worker: Optional[Worker] = None
        self._blobs: dict = {}
        self.ceilings_remeasured = False

    def warm_up(self) -> None:
        if self.device == "cuda" and not self._warm:
            warm_up_gpu()
            self._warm = True

    def worker(self) -> Worker:
        if self._worker is None:
            import torch
            root = logging.getLogger()
            cfg = _WorkerSetup(self.device, torch.get_num_threads(),
                               tuple(registry.REGISTRY.references()),
                               root.getEffectiveLevel() if root.handlers else None)
            self._worker = Worker(_worker_setup, cfg, _worker_measure, preload=[__name__])
        return self._worker

    def close(self) -> None:
        """Stop the worker process, if any (killed at once: it may be inside a kernel)."""
        if self._worker is not None:
            self._worker.close(force=True)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def measure(self, kernel: str, problem: Problem, budget: Budget = Budget(),
                latency: bool = True, l2_flush: bool = True, seed: int = DEFAULT_SEED,
                timeout_s: Optional[float] = None) -> Measurement:
        kw = dict(ceiling_data=self.ceilings, peak=self.peak, budget=budget, latency=latency,
                  l2_flush=l2_flush, seed=seed, tolerances=self.tolerances)
        if not self.isolate:
            self.warm_up()
            return self._placed(measure(kernel, problem, self.device, **kw))
        spec = registry.get(kernel)  # an unknown name fails here, not in the worker
        if kernel not in self._blobs:
            self._blobs[kernel] = _spec_blob(spec)
        blob, note = self._blobs[kernel]
        limit = timeout_s or self.timeout_s or default_timeout_s(budget)
        outcome = self.worker().run((kernel, problem, blob, note, kw), limit)
        if isinstance(outcome, Done):
            return self._placed(outcome.value)
        status = "crashed" if isinstance(outcome, Crashed) else "timed_out"
        return Measurement(kernel, problem, self.device, status=status, reason=outcome.reason,
                           timestamp=_now())

    def _placed(self, m: Measurement) -> Measurement:
        if m.roofline is not None and m.roofline.ceiling_beaten:
            self.recheck_ceilings(m)
        return m

    def recheck_ceilings(self, m: Measurement) -> None:
        """A kernel beat the roofs: measure the ceilings again, once per session, and
        place ``m`` again; if it still beats them its roofline says so (ceiling_beaten)."""
        if not self.ceilings_remeasured:
            log.warning("%s/%s ran at %.0f%% of the ceilings; measuring them again",
                        m.kernel, m.problem.id, m.roofline.efficiency_pct)
            self.ceilings = load_or_measure_ceilings(self.device, self.environment, refresh=True)
            self.ceilings_remeasured = True
        m.roofline = roofline_of(m, self.ceilings, self.peak, remeasured=True, work=_work(m))

    def iter_grid(self, jobs: Iterable[Tuple[str, Problem]], budget: Budget = Budget(),
                  latency: bool = True, l2_flush: bool = True, seed: int = DEFAULT_SEED,
                  skip: Optional[Callable[[Problem], Optional[str]]] = None,
                  progress: Optional[Callable[[str, Problem], None]] = None
                  ) -> Iterator[Measurement]:
        """Measure each (kernel, problem) as the caller asks for the next one;
        ``skip(problem)`` may name a reason not to."""
        for kernel, problem in jobs:
            if progress is not None:
                progress(kernel, problem)
            why = skip(problem) if skip is not None else None
            if why:
                yield Measurement(kernel, problem, self.device, status="skipped", reason=why)
                continue
            yield self.measure(kernel, problem, budget=budget, latency=latency,
                               l2_flush=l2_flush, seed=seed)

    def measure_grid(self, jobs: Iterable[Tuple[str, Problem]], budget: Budget = Budget(),
                     latency: bool = True, l2_flush: bool = True, seed: int = DEFAULT_SEED,
                     skip: Optional[Callable[[Problem], Optional[str]]] = None,
                     progress: Optional[Callable[[str, Problem], None]] = None) -> List[Measurement]:
        """Measure each (kernel, problem); ``skip(problem)`` may name a reason not to."""
        out = list(self.iter_grid(jobs, budget=budget, latency=latency, l2_flush=l2_flush,
                                  seed=seed, skip=skip, progress=progress))
        if self.ceilings_remeasured:  # the rows measured before: on the new roofs too
            for m in out:
                m.roofline = roofline_of(m, self.ceilings, self.peak, remeasured=True, work=_work(m))
        return out
