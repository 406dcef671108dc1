"""A measurement on the roofline: its dtype's ceiling, the kernel's own work model,
and the last-level cache its timed calls ran warm in."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import UnknownNameError
from ..kernels import registry
from ..model import roofline
from ..model.peaks import Peak
from ..model.records import Measurement
from .device import tf32_enabled

log = logging.getLogger(__name__)

Work = tuple[int | None, int | None]  # a kernel's own (FLOPs, bytes); None: the model's


def cache_bytes(device: str) -> int | None:
    """The last-level cache that timed calls run warm in: the GPU's L2 (device
    time replays back to back), the CPU's largest data cache (calls back to back)."""
    if device != "cuda":
        return _cpu_cache_bytes()
    import torch
    return int(getattr(torch.cuda.get_device_properties(torch.cuda.current_device()),
                       "L2_cache_size", 0)) or None


def _cpu_cache_bytes() -> int | None:
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


def roofline_of(m: Measurement, ceiling_data: dict[str, Any] | None, peak: Peak | None,
                remeasured: bool = False, work: Work = (None, None)) -> roofline.Roofline | None:
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
                            cache_bytes=cache_bytes(m.device), work=work, remeasured=remeasured)


def kernel_work(m: Measurement) -> Work:
    """The kernel's own (FLOPs, bytes) model, when the registry knows the kernel."""
    try:
        return registry.get(m.kernel).work(m.problem)
    except UnknownNameError:
        return None, None
