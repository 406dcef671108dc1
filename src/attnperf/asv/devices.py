"""Which problems a device runs in the suite, and which device the suite runs on.

A CPU runs float32 problems small enough for a shared 2-core machine
(:func:`fits_device`); a GPU runs every problem.  ``attnperf run``'s default problems and
``attnperf kernels``' checks follow the same rule (:func:`device_problems`), and so do the
asv tables on a CPU (``attnperf.asv.suite.device_grid``).
"""

from __future__ import annotations

import os

from ..model import roofline
from ..model.catalog import sweep
from ..model.config import ProjectConfig
from ..model.problem import Problem

# What a 2-core CPU runs in the suite: float32 (CPU half-precision kernels are
# slow and rarely used: fp16 matmul ran at ~1 GFLOP/s here), a few hundred
# MFLOP per call at most.
CPU_MAX_FLOPS = 2e9
CPU_MAX_BYTES = 512 << 20


def fits_device(problem: Problem, device_name: str) -> tuple[bool, str]:
    """``(True, "")``, or ``(False, why)`` for a problem the device does not run in the suite."""
    if device_name != "cpu":
        return True, ""
    if problem.dtype != "float32":
        return False, (f"{problem.id}: the CPU suite runs float32 problems only "
                       "(cpu_* presets); half precision runs on GPUs")
    f, b = roofline.flops(problem), roofline.bytes_moved(problem)
    if f > CPU_MAX_FLOPS or b > CPU_MAX_BYTES:
        return False, (f"{problem.id} is too large for the CPU suite "
                       f"({f / 1e9:.1f} GFLOP > {CPU_MAX_FLOPS / 1e9:.0f} or "
                       f"{b / 2**20:.0f} MiB > {CPU_MAX_BYTES >> 20}); it runs on GPUs")
    return True, ""


def asv_device() -> str:
    """The device the suite measures on: ``ATTNPERF_ASV_DEVICE`` (cpu or cuda), else cuda
    when this machine has a GPU.  Counts GPUs as torch does (through NVML where it can), so
    a benchmark module may call it at import, before asv forks its benchmark processes."""
    requested = os.environ.get("ATTNPERF_ASV_DEVICE", "").strip() or "auto"
    if requested in ("cpu", "cuda"):
        return requested
    import torch

    return "cuda" if torch.cuda.device_count() > 0 else "cpu"


def device_problems(config: ProjectConfig | None, device: str) -> list[Problem]:
    """The problems a run on ``device`` uses by default: the repository's ``[tool.attnperf]``
    problems that ``device`` runs (:func:`fits_device`), else attnperf's default sweep for
    it (``gpu-default`` on a GPU, ``cpu-small`` on a CPU).  A repository whose problems all
    need another device keeps them all (each is then skipped with its reason)."""
    if config is not None and config.problems:
        kept = [p for p in config.problems if fits_device(p, device)[0]]
        return kept or list(config.problems)
    return sweep("gpu-default" if device == "cuda" else "cpu-small")
