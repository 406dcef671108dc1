"""The device this run measures and the environment fingerprint.

The fingerprint is built from an allowlist of facts; environment variables
and host names are never recorded in it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import DeviceUnavailableError
from .nvml import driver_version

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(requested: str = "auto") -> str:
    """Map ``auto|cpu|cuda`` to a device this machine has."""
    import torch

    if requested not in DEVICE_CHOICES:
        raise DeviceUnavailableError(
            f"unknown device {requested!r}; allowed: {', '.join(DEVICE_CHOICES)}")
    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise DeviceUnavailableError(
            "--device cuda was asked for but no CUDA GPU is available "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); "
            "use --device cpu or auto"
        )
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    return requested


# --------------------------------------------------------- fingerprint ------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_COMMIT = re.compile(r"[0-9a-f]{40}")


def _git_commit() -> str | None:
    """The attnperf commit this code was built from.

    Inside an asv benchmark environment that is the commit under test, which
    asv names in ``ASV_COMMIT`` (the one value read from the environment, and
    only when it is a full commit hash).  Otherwise git is asked only when this
    file is tracked by the repository around it (a source checkout or an
    editable install): an installed wheel that happens to live inside some work
    tree (``.asv/env`` does) must not report that work tree's HEAD.
    """
    asv_commit = os.environ.get("ASV_COMMIT", "")
    if _COMMIT.fullmatch(asv_commit):
        return asv_commit
    here = Path(__file__).resolve()
    try:
        tracked = subprocess.run(
            ["git", "-C", str(here.parent), "ls-files", "--error-unmatch", here.name],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if tracked.returncode != 0:
            return None
        out = subprocess.run(
            ["git", "-C", str(here.parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and _COMMIT.fullmatch(commit) else None


def fingerprint(device: str) -> dict[str, Any]:
    """Allowlisted facts about this machine, for reports and asv machine.json."""
    import torch

    env: dict[str, Any] = {
        "attnperf_version": __version__,
        "attnperf_commit": _git_commit(),
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "platform": f"{platform.system()}-{platform.machine()}",
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "gpu_name": None, "gpu_count": 0, "sm_count": None, "compute_capability": None,
        "gpu_memory_gb": None, "driver": None,
        "cuda": torch.version.cuda,
        "cudnn": None,
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        env.update(
            {
                "gpu_name": props.name,
                "gpu_count": torch.cuda.device_count(),
                "sm_count": props.multi_processor_count,
                "compute_capability": f"{props.major}.{props.minor}",
                "gpu_memory_gb": round(props.total_memory / 2**30, 1),
                "driver": driver_version(),
                # torch.backends.cudnn's functions carry no annotations
                "cudnn": torch.backends.cudnn.version()  # type: ignore[no-untyped-call]
                if torch.backends.cudnn.is_available()  # type: ignore[no-untyped-call]
                else None,
            }
        )
    return env


def machine_key(env: dict[str, Any]) -> str:
    """Short stable key of the hardware+software that ceilings depend on."""
    parts = [env.get("device"), env.get("gpu_name"), env.get("cpu_model"), env.get("torch"),
             str(env.get("torch_threads")), env.get("driver"),
             f"tf32={tf32_enabled('cuda')}"]  # the global TF32 switch (format kept: a cache key)
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def tf32_enabled(device: str = "cuda") -> bool:
    """Whether float32 matmuls on ``device`` run as TF32 (tolerance and ceiling key)."""
    if device != "cuda":
        return False
    import torch
    return bool(torch.backends.cuda.matmul.allow_tf32)
