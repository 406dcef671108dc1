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
import warnings
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Tuple

from ..errors import AttnperfError, InsufficientMemoryError, KernelUnavailableError
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
    return roofline.bytes_moved(p) + spec.workspace_bytes(p) + ref


class Bench:
    """A kernel bound to a problem on a device, with fresh seeded inputs.

    Raises KernelUnavailableError / InsufficientMemoryError on construction
    when the kernel cannot run here (nothing is allocated in that case).
    """

    def __init__(self, kernel: str, problem: Problem, device: str, seed: int = DEFAULT_SEED):
        self.spec = registry.get(kernel)
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
        return self.spec.fn(self.q, self.k, self.v, self.problem)

    def check(self) -> Correctness:
        return check(self.spec.fn, self.q, self.k, self.v, self.problem, tf32=self.tf32)

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
        if self.spec.provenance is None:
            return None
        return self.spec.provenance(self.q, self.k, self.v, self.problem)

    def release(self) -> None:
        self.q = self.k = self.v = None
        if self.device == "cuda":
            import torch
            torch.cuda.empty_cache()


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


def roofline_of(m: Measurement, ceiling_data: Optional[dict], peak,
                remeasured: bool = False) -> Optional[roofline.Roofline]:
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
                            cache_bytes=_cache_bytes(m.device), remeasured=remeasured)


def _oom_types():
    import torch
    return tuple(t for t in (getattr(torch.cuda, "OutOfMemoryError", None),
                             getattr(torch, "OutOfMemoryError", None)) if t)


def measure(kernel: str, problem: Problem, device: str, ceiling_data: Optional[dict] = None,
            peak=None, budget: Budget = Budget(), latency: bool = True, l2_flush: bool = True,
            seed: int = DEFAULT_SEED) -> Measurement:
    """Check and time one (kernel, problem).  Never raises for a kernel failure:
    unavailability, OOM, exceptions and wrong results become a status."""
    m = Measurement(kernel, problem, device,
                    timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    with warnings.catch_warnings(record=True) as caught:
        # The kernel's own warnings (PyTorch's UserWarnings...) belong in the
        # report and in --verbose, not on the terminal between table rows.
        warnings.simplefilter("always")
        _measure_into(m, kernel, problem, device, ceiling_data, peak, budget, latency, l2_flush, seed)
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in m.warnings:
            m.warnings.append(text)
            log.info("%s/%s: %s", kernel, problem.id, text)
    return m


def _measure_into(m: Measurement, kernel: str, problem: Problem, device: str,
                  ceiling_data: Optional[dict], peak, budget: Budget, latency: bool,
                  l2_flush: bool, seed: int) -> None:
    bench = None
    oom = _oom_types()
    try:
        bench = Bench(kernel, problem, device, seed)
        m.correctness = bench.check()
        if not m.correctness.passed:
            m.status, m.reason = "failed", f"wrong result: {m.correctness.summary()}"
            return
        m.dispatch = bench.dispatch()
        if device == "cuda":
            m.clock_before = gpu_clock_state()
        m.device_time = bench.time_samples(budget)
        if device == "cuda" and latency:
            m.latency = bench.latency_samples(budget, l2_flush=l2_flush)
            m.clock_after = gpu_clock_state()
        m.roofline = roofline_of(m, ceiling_data, peak)
    except KernelUnavailableError as exc:
        m.status, m.reason = "unavailable", str(exc)
    except InsufficientMemoryError as exc:
        m.status, m.reason = "skipped", str(exc)
    except oom as exc:
        m.status, m.reason = "skipped", f"out of memory: {str(exc).splitlines()[0]}"
    except Exception as exc:  # noqa: BLE001 - kernel code is arbitrary; one crash must not lose the run
        if isinstance(exc, AttnperfError) and not isinstance(exc, KernelUnavailableError):
            raise
        m.status, m.reason = "error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
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


class Session:
    """The per-machine setup, done once: device, fingerprint, ceilings, peak."""

    def __init__(self, device: str = "auto", threads: Optional[int] = None,
                 refresh_ceilings: bool = False) -> None:
        self.device = resolve_device(device)
        if threads is not None and self.device == "cpu":  # PyTorch's CPU thread pool
            import torch
            torch.set_num_threads(threads)
        self.environment = fingerprint(self.device)
        self.ceilings = load_or_measure_ceilings(self.device, self.environment,
                                                 refresh=refresh_ceilings)
        gpu = self.environment["gpu_name"]
        self.peak: Optional[Peak] = match_peak(gpu) if gpu else None
        self._warm = False
        self.ceilings_remeasured = False

    def warm_up(self) -> None:
        if self.device == "cuda" and not self._warm:
            warm_up_gpu()
            self._warm = True

    def measure(self, kernel: str, problem: Problem, budget: Budget = Budget(),
                latency: bool = True, l2_flush: bool = True, seed: int = DEFAULT_SEED) -> Measurement:
        m = measure(kernel, problem, self.device, ceiling_data=self.ceilings, peak=self.peak,
                    budget=budget, latency=latency, l2_flush=l2_flush, seed=seed)
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
        m.roofline = roofline_of(m, self.ceilings, self.peak, remeasured=True)

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
        if self.ceilings_remeasured:  # the rows measured before: on the new roofs too
            for m in out:
                m.roofline = roofline_of(m, self.ceilings, self.peak, remeasured=True)
        return out
