"""Measured ceilings: this machine's copy bandwidth and matmul rate per dtype.

The roofline's roofs.  Measured once per machine key (hardware + software that
the figures depend on) and cached through :mod:`attnperf.io.ceilings`.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from ..errors import OutputPathError
from ..io import ceilings as ceilings_file
from ..model.samples import Samples
from .device import machine_key, tf32_enabled
from .timing import Budget, time_cpu, time_cuda_device

log = logging.getLogger(__name__)


DTYPES = ("float16", "bfloat16", "float32")
# Each figure is the best of this many rounds, taken one after the other across
# all figures: a burst of load from another process slows one round, not the
# roof.  A single round measured under load can read a roof far too low and
# make kernels appear to run at many times 100 % of it.
ROUNDS = 3


def measure_ceilings(device: str, quick: bool = False, rounds: int = ROUNDS,
                     timer: Callable[[Callable[[], object], Budget], Samples] | None = None,
                     ) -> dict[str, Any]:
    """Measure the memory-copy bandwidth and matmul rate per dtype on ``device``.

    Copy: a large device-to-device (or RAM) copy of initialised data, counting
    bytes read + bytes written.  Matmul: an n^3 product of random operands.
    Each figure is the fastest sample over ``rounds`` rounds of timing.py's
    loop (``timer(fn, budget) -> Samples``; injectable for tests).
    """
    import torch

    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    # A warm-up per timing: an idle GPU sits at low clocks.  A ceiling is the
    # best the machine does: the fastest sample counts.
    budget = Budget(min_samples=3, max_samples=20, budget_s=0.15 if quick else 0.4,
                    warmup_s=0.05 if quick else 0.2)
    cuda = device == "cuda"
    timer = timer or (time_cuda_device if cuda else time_cpu)
    copy_bytes = (1 << 30) if cuda else (256 << 20)
    if quick:
        copy_bytes //= 8
    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    src = torch.randn(copy_bytes // 4, generator=gen, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # touch the destination (never time untouched pages)
    operands, sizes = {}, {}
    for name in DTYPES:
        # Sizes that fill the device but keep each call to milliseconds.  CPU
        # half precision is so much slower than fp32 (seconds for 1024^3) that
        # 256^3 is plenty -- and its roof is rarely the binding one
        # (roofline.ceiling_for: a kernel may compute in fp32).
        if cuda:
            n = 4096 if name == "float32" else 8192
        else:
            n = 1024 if name == "float32" else 256
        n //= 2 if quick else 1
        dt = getattr(torch, name)
        operands[name] = (torch.randn(n, n, generator=gen, device=device).to(dt),
                          torch.randn(n, n, generator=gen, device=device).to(dt))
        sizes[name] = n

    def fastest(fn: Callable[[], object]) -> float:
        return min(timer(fn, budget).samples_s)

    copy_s = math.inf
    matmul_s = {name: math.inf for name in DTYPES}
    for _ in range(rounds):
        # Two copies: copy_ (cudaMemcpy / memcpy) and an elementwise kernel
        # (what attention kernels themselves do); the faster one is the roof.
        copy_s = min(copy_s, fastest(functools.partial(dst.copy_, src)),
                     fastest(functools.partial(torch.mul, src, 1.0, out=dst)))
        for name, (a, b) in operands.items():
            matmul_s[name] = min(matmul_s[name], fastest(functools.partial(torch.matmul, a, b)))
    del src, dst, operands
    result: dict[str, Any] = {
        "schema_version": ceilings_file.SCHEMA_VERSION,
        "device": device,
        "bandwidth_gb_s": 2 * copy_bytes / copy_s / 1e9,
        "copy_bytes": copy_bytes,
        "matmul_tflops": {name: 2 * sizes[name] ** 3 / matmul_s[name] / 1e12 for name in DTYPES},
        "matmul_n": sizes,
        "rounds": rounds,
        "measured_at": None,
    }
    if tf32_enabled(device):
        result["matmul_tflops"]["tf32"] = result["matmul_tflops"]["float32"]
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return result


def load_or_measure_ceilings(device: str, env: dict[str, Any], refresh: bool = False,
                             quick: bool = False) -> dict[str, Any]:
    """Cached ceilings for this machine key; measured (and cached) when missing."""
    path = ceilings_file.cache_path(device, machine_key(env))
    if not refresh and path.exists():
        notes: list[str] = []
        data = ceilings_file.read(path, notes)
        if data is not None and data.get("schema_version") != ceilings_file.SCHEMA_VERSION:
            notes.append(f"{path}: ceilings of format version {data.get('schema_version')} "
                         f"(this attnperf writes {ceilings_file.SCHEMA_VERSION})")
        elif data is not None and ceilings_file.missing_rates(data, DTYPES):
            notes.append(f"{path}: no matmul rate for "
                         f"{', '.join(ceilings_file.missing_rates(data, DTYPES))}")
        elif data is not None:
            data["cached"] = True
            data["cache_path"] = str(path)
            return data
        # A damaged cache is never a reason to drop the roofline: say so, measure again.
        for note in notes:
            log.warning("cached ceilings unusable: %s; measuring them again", note)
    data = measure_ceilings(device, quick=quick)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ceilings_file.write(path, data)
    except (OSError, OutputPathError) as exc:
        log.warning("could not cache ceilings at %s: %s", path, exc)
    data["cached"] = False
    data["cache_path"] = str(path)
    return data
