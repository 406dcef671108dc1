"""One measuring session: kernels, inputs, correctness, timing and the roofline.

The one path both front ends use.  :class:`Session` does the per-machine setup
once (device, fingerprint, measured ceilings, datasheet peak, GPU warm-up);
:meth:`Session.measure` checks and times one (kernel, problem) and records
every failure instead of raising.  ``attnperf run`` calls it per config; the
asv suite calls :meth:`Session.measure_grid` once per commit.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterable, List, Optional, Tuple

from ..errors import AttnperfError, InsufficientMemoryError, KernelUnavailableError, PluginError
from ..kernels import registry
from ..kernels.spec import KernelSpec
from ..model import roofline
from ..model.peaks import Peak, match_peak
from ..model.problem import Problem
from ..model.records import Correctness, Measurement, Samples
from .ceilings import load_or_measure_ceilings
from .correctness import check
from .device import fingerprint, resolve_device, tf32_enabled
from .inputs import DEFAULT_SEED, make_inputs
from .nvml import gpu_clock_state
from .timing import Budget, time_cpu, time_cuda_device, time_cuda_latency

log = logging.getLogger(__name__)

MEMORY_HEADROOM = 0.85  # use at most this fraction of free memory


def available_memory(device: str) -> Optional[int]:
    """Free bytes on ``device`` (None if unknown)."""
    if device == "cuda":
        import torch
        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def memory_needed(spec: KernelSpec, p: Problem) -> int:
    """Inputs, output, kernel scratch, and the float64 reference (chunked to <= 1 GiB)."""
    ref = 8 * p.batch * p.heads * p.seq_q * p.head_dim + min(1 << 30, 24 * p.seq_q * p.seq_kv * p.heads)
    return roofline.bytes_moved(p) + spec.scratch_bytes(p) + ref


class Bench:
    """A kernel bound to a problem on a device, with fresh seeded inputs.

    Raises KernelUnavailableError / InsufficientMemoryError on construction
    when the kernel cannot run here (nothing is allocated in that case).
    """

    def __init__(self, kernel: str, problem: Problem, device: str, seed: int = DEFAULT_SEED,
                 tolerances: Optional[dict] = None):
        self.spec = registry.get(kernel)
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

    def call(self):
        return self.spec.run(self.q, self.k, self.v, self.problem)

    def check(self) -> Correctness:
        return check(self.spec.run, self.q, self.k, self.v, self.problem, tf32=self.tf32,
                     tolerances=self.tolerances)

    @property
    def tf32(self) -> bool:
        return self.problem.dtype == "float32" and tf32_enabled(self.device)

    def time_samples(self, budget: Budget = Budget()) -> Samples:
        """The primary time: device time on a GPU, wall time on a CPU."""
        if self.device == "cuda":
            return time_cuda_device(self.call, budget)
        return time_cpu(self.call, budget)

    def latency_samples(self, budget: Budget = Budget(), l2_flush: bool = True) -> Samples:
        if self.device == "cuda":
            return time_cuda_latency(self.call, budget, l2_flush=l2_flush)
        return time_cpu(self.call, budget)

    def dispatch(self) -> Optional[str]:
        return self.spec.backend(self.q, self.k, self.v, self.problem)

    def release(self) -> None:
        self.q = self.k = self.v = None
        if self.device == "cuda":
            import torch
            torch.cuda.empty_cache()


def _l2_bytes(device: str) -> Optional[int]:
    """The GPU's L2 size (device time is taken with a warm L2); None on a CPU."""
    if device != "cuda":
        return None
    import torch
    return int(getattr(torch.cuda.get_device_properties(torch.cuda.current_device()),
                       "L2_cache_size", 0)) or None


def _oom_types():
    import torch
    return tuple(t for t in (getattr(torch.cuda, "OutOfMemoryError", None),
                             getattr(torch, "OutOfMemoryError", None)) if t)


def measure(kernel: str, problem: Problem, device: str, ceiling_data: Optional[dict] = None,
            peak=None, budget: Budget = Budget(), latency: bool = True, l2_flush: bool = True,
            seed: int = DEFAULT_SEED, tolerances: Optional[dict] = None) -> Measurement:
    """Check and time one (kernel, problem).  Never raises for a kernel failure:
    unavailability, OOM, exceptions and wrong results become a status.
    ``tolerances``: per precision key (``TOLERANCES``' keys), overriding the defaults."""
    m = Measurement(kernel, problem, device,
                    timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    bench = None
    oom = _oom_types()
    try:
        bench = Bench(kernel, problem, device, seed, tolerances=tolerances)
        m.correctness = bench.check()
        if not m.correctness.passed:
            m.status, m.reason = "failed", f"wrong result: {m.correctness.summary()}"
            return m
        m.dispatch = bench.dispatch()
        if device == "cuda":
            m.clock_before = gpu_clock_state()
        m.device_time = bench.time_samples(budget)
        if device == "cuda" and latency:
            m.latency = bench.latency_samples(budget, l2_flush=l2_flush)
            m.clock_after = gpu_clock_state()
        ceiling = roofline.ceiling_for(problem, ceiling_data, peak, tf32=bench.tf32)
        if ceiling is not None:
            m.roofline = roofline.analyze(problem, m.device_time.median_s, ceiling, device,
                                          cache_bytes=_l2_bytes(device),
                                          work=bench.spec.work(problem))
    except KernelUnavailableError as exc:
        m.status, m.reason = "unavailable", str(exc)
    except InsufficientMemoryError as exc:
        m.status, m.reason = "skipped", str(exc)
    except oom as exc:
        m.status, m.reason = "skipped", f"out of memory: {str(exc).splitlines()[0]}"
    except Exception as exc:  # noqa: BLE001 - kernel code is arbitrary; one crash must not lose the run
        if isinstance(exc, AttnperfError) and not isinstance(exc, (KernelUnavailableError,
                                                                  PluginError)):
            raise
        m.status, m.reason = "error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        log.debug("kernel %s on %s raised", kernel, problem.id, exc_info=True)
    finally:
        if bench is not None:
            bench.release()
    return m


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


class Session:
    """The per-machine setup, done once: device, fingerprint, ceilings, peak."""

    def __init__(self, device: str = "auto", threads: Optional[int] = None,
                 refresh_ceilings: bool = False, tolerances: Optional[dict] = None) -> None:
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
        self._warm = False

    def warm_up(self) -> None:
        if self.device == "cuda" and not self._warm:
            warm_up_gpu()
            self._warm = True

    def measure(self, kernel: str, problem: Problem, budget: Budget = Budget(),
                latency: bool = True, l2_flush: bool = True, seed: int = DEFAULT_SEED) -> Measurement:
        return measure(kernel, problem, self.device, ceiling_data=self.ceilings, peak=self.peak,
                       budget=budget, latency=latency, l2_flush=l2_flush, seed=seed,
                       tolerances=self.tolerances)

    def measure_grid(self, jobs: Iterable[Tuple[str, Problem]], budget: Budget = Budget(),
                     latency: bool = True, l2_flush: bool = True, seed: int = DEFAULT_SEED,
                     skip: Optional[Callable[[Problem], Optional[str]]] = None,
                     progress: Optional[Callable[[str, Problem], None]] = None) -> List[Measurement]:
        """Measure each (kernel, problem); ``skip(problem)`` may name a reason not to."""
        self.warm_up()
        out: List[Measurement] = []
        for kernel, problem in jobs:
            if progress is not None:
                progress(kernel, problem)
            why = skip(problem) if skip is not None else None
            if why:
                out.append(Measurement(kernel, problem, self.device, status="skipped", reason=why))
                continue
            out.append(self.measure(kernel, problem, budget=budget, latency=latency,
                                    l2_flush=l2_flush, seed=seed))
        return out
