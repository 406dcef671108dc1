"""Measured ceilings: this machine's copy bandwidth and matmul rate per dtype.

The roofline's roofs.  Measured once per machine key (hardware + software that
the figures depend on) and cached through :mod:`attnperf.io.ceilings`.
"""

from __future__ import annotations

import logging
import time

from ..errors import OutputPathError
from ..io import ceilings as ceilings_file
from .device import machine_key, tf32_enabled
from .timing import Budget, time_cpu, time_cuda_device

log = logging.getLogger(__name__)


def measure_ceilings(device: str, quick: bool = False) -> dict:
    """Measure the memory-copy bandwidth and matmul rate per dtype on ``device``.

    Copy: a large device-to-device (or RAM) copy of initialised data, counting
    bytes read + bytes written.  Matmul: an n^3 product of random operands.
    Each figure is the fastest of timed repetitions (timing.py's loop).
    """
    import torch

    # A long warm-up: an idle GPU sits at low clocks (450 MHz seen on the H100).
    # A ceiling is the best the machine does, so each figure uses the fastest
    # sample (min time), not the median.
    budget = Budget(min_samples=5, max_samples=30, budget_s=0.3 if quick else 1.0,
                    warmup_s=0.1 if quick else 0.5)
    cuda = device == "cuda"
    timer = time_cuda_device if cuda else time_cpu
    copy_bytes = (1 << 30) if cuda else (256 << 20)
    if quick:
        copy_bytes //= 8
    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    src = torch.randn(copy_bytes // 4, generator=gen, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # touch the destination (never time untouched pages)
    # Two copies: copy_ (cudaMemcpy / memcpy) and an elementwise kernel
    # (what attention kernels themselves do); the faster one is the roof.
    copy_s = min(min(timer(lambda: dst.copy_(src), budget).samples_s),
                 min(timer(lambda: torch.mul(src, 1.0, out=dst), budget).samples_s))
    del src, dst
    result = {"schema_version": ceilings_file.SCHEMA_VERSION, "device": device,
              "bandwidth_gb_s": 2 * copy_bytes / copy_s / 1e9,
              "copy_bytes": copy_bytes, "matmul_tflops": {}, "matmul_n": {}, "measured_at": None}
    for name in ("float16", "bfloat16", "float32"):
        # Sizes that fill the device but keep each sample short: 8192^3 bf16 is
        # ~1.4 ms on an H100; CPU half-precision matmul is slow, so smaller there.
        if cuda:
            n = 4096 if name == "float32" else 8192
        else:
            n = {"float32": 2048, "bfloat16": 1024, "float16": 512}[name]
        n //= 2 if quick else 1
        dt = getattr(torch, name)
        a = torch.randn(n, n, generator=gen, device=device).to(dt)
        b = torch.randn(n, n, generator=gen, device=device).to(dt)
        t = min(timer(lambda: torch.matmul(a, b), budget).samples_s)
        result["matmul_tflops"][name] = 2 * n**3 / t / 1e12
        result["matmul_n"][name] = n
        del a, b
    if tf32_enabled(device):
        result["matmul_tflops"]["tf32"] = result["matmul_tflops"]["float32"]
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return result


def load_or_measure_ceilings(device: str, env: dict, refresh: bool = False,
                             quick: bool = False) -> dict:
    """Cached ceilings for this machine key; measured (and cached) when missing."""
    path = ceilings_file.cache_path(device, machine_key(env))
    if not refresh and path.exists():
        notes: list = []
        data = ceilings_file.read(path, notes)
        if data is not None and data.get("schema_version") == ceilings_file.SCHEMA_VERSION:
            data["cached"] = True
            data["cache_path"] = str(path)
            return data
        for note in notes:
            log.warning("%s (measuring again)", note)
    data = measure_ceilings(device, quick=quick)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ceilings_file.write(path, data)
    except (OSError, OutputPathError) as exc:
        log.warning("could not cache ceilings at %s: %s", path, exc)
    data["cached"] = False
    data["cache_path"] = str(path)
    return data
