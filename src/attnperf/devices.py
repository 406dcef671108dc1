"""Devices: detection, the environment fingerprint, THE peak table, and
measured ceilings (cached per machine).

The fingerprint is built from an allowlist of facts; environment variables
and host names are never read into it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import re
import subprocess
import time
from pathlib import Path
from typing import Dict, Optional

from . import __version__
from .errors import DeviceUnavailableError

log = logging.getLogger(__name__)

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
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); use --device cpu or auto")
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    return requested


# --------------------------------------------------------------- peaks ------
@dataclasses.dataclass(frozen=True)
class Peak:
    """Datasheet peaks: dense tensor-core TFLOP/s per dtype, memory TB/s."""

    name: str
    tflops: Dict[str, float]
    bandwidth_tb_s: float
    source: str


# One cited table.  Dense (no structured sparsity) figures; "float32" is the
# non-tensor-core FP32 rate (PyTorch's default: TF32 off for matmul).
PEAKS = [
    Peak("H100 SXM", {"float16": 989.4, "bfloat16": 989.4, "tf32": 494.7, "float32": 66.9}, 3.35,
         "NVIDIA H100 Tensor Core GPU datasheet (SXM5), 2023"),
    Peak("H100 NVL", {"float16": 835.0, "bfloat16": 835.0, "tf32": 417.5, "float32": 60.0}, 3.9,
         "NVIDIA H100 Tensor Core GPU datasheet (NVL), 2023"),
    Peak("H100 PCIe", {"float16": 756.5, "bfloat16": 756.5, "tf32": 378.0, "float32": 51.2}, 2.0,
         "NVIDIA H100 Tensor Core GPU datasheet (PCIe), 2023"),
    Peak("H200 NVL", {"float16": 835.0, "bfloat16": 835.0, "tf32": 417.5, "float32": 60.0}, 4.8,
         "NVIDIA H200 Tensor Core GPU datasheet (NVL), 2024"),
    Peak("H200", {"float16": 989.4, "bfloat16": 989.4, "tf32": 494.7, "float32": 66.9}, 4.8,
         "NVIDIA H200 Tensor Core GPU datasheet (SXM), 2024"),
    Peak("A100 SXM 80GB", {"float16": 312.0, "bfloat16": 312.0, "tf32": 156.0, "float32": 19.5}, 2.039,
         "NVIDIA A100 Tensor Core GPU datasheet, 2021"),
    Peak("A100 PCIe 80GB", {"float16": 312.0, "bfloat16": 312.0, "tf32": 156.0, "float32": 19.5}, 1.935,
         "NVIDIA A100 Tensor Core GPU datasheet, 2021"),
    Peak("A100 40GB", {"float16": 312.0, "bfloat16": 312.0, "tf32": 156.0, "float32": 19.5}, 1.555,
         "NVIDIA A100 Tensor Core GPU datasheet, 2021"),
    Peak("L4", {"float16": 121.0, "bfloat16": 121.0, "tf32": 60.0, "float32": 30.3}, 0.300,
         "NVIDIA L4 Tensor Core GPU datasheet, 2023"),
    Peak("A10G", {"float16": 125.0, "bfloat16": 125.0, "tf32": 62.5, "float32": 31.2}, 0.600,
         "NVIDIA A10 datasheet, 2021 (A10G, AWS's variant, has no public datasheet; A10 figures)"),
    Peak("A10", {"float16": 125.0, "bfloat16": 125.0, "tf32": 62.5, "float32": 31.2}, 0.600,
         "NVIDIA A10 datasheet, 2021"),
]
CPU_PEAK = Peak("CPU", {}, 0.0, "no datasheet: CPU ceilings are measured (attnperf ceilings)")

# Ordered rules: real names look like "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe",
# "NVIDIA H100 NVL", "NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe",
# "NVIDIA A100-PCIE-40GB", "NVIDIA L4", "NVIDIA A10G", "NVIDIA H200".
_MATCH_RULES = [
    (r"\bH200\b.*\bNVL\b", "H200 NVL"),
    (r"\bH200\b", "H200"),
    (r"\bH100\b.*\bNVL\b", "H100 NVL"),
    (r"\bH100\b.*\bPCIE\b", "H100 PCIe"),
    (r"\bH100\b", "H100 SXM"),  # "H100 80GB HBM3" and "H100 SXM5" are the SXM part
    (r"\bA100\b.*\b80\s*GB\b.*\bPCIE\b", "A100 PCIe 80GB"),
    (r"\bA100\b.*\b80\s*GB\b", "A100 SXM 80GB"),
    (r"\bA100\b", "A100 40GB"),
    (r"\bL4\b", "L4"),
    (r"\bA10G\b", "A10G"),
    (r"\bA10\b", "A10"),
]


def match_peak(device_name: str) -> Optional[Peak]:
    """Find the datasheet entry for a device name as CUDA reports it."""
    norm = re.sub(r"[-_]", " ", device_name.upper())
    by_name = {p.name: p for p in PEAKS}
    for pattern, name in _MATCH_RULES:
        if re.search(pattern, norm):
            return by_name[name]
    return None


# --------------------------------------------------------- fingerprint ------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> Optional[str]:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", commit) else None


def _nvml():
    try:
        import pynvml  # from nvidia-ml-py
        pynvml.nvmlInit()
        return pynvml
    except Exception:  # noqa: BLE001 - NVML is optional; any failure means "absent"
        return None


def driver_version() -> Optional[str]:
    nv = _nvml()
    if nv is not None:
        v = nv.nvmlSystemGetDriverVersion()
        return v.decode() if isinstance(v, bytes) else str(v)
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def gpu_clock_state(index: int = 0) -> Optional[dict]:
    """SM clock and throttle reasons via NVML (None when NVML is absent)."""
    nv = _nvml()
    if nv is None:
        return None
    try:
        h = nv.nvmlDeviceGetHandleByIndex(index)
        state = {"sm_clock_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
                 "sm_clock_max_mhz": nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM),
                 "temperature_c": nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)}
        reasons = nv.nvmlDeviceGetCurrentClocksEventReasons(h) if hasattr(
            nv, "nvmlDeviceGetCurrentClocksEventReasons") else nv.nvmlDeviceGetCurrentClocksThrottleReasons(h)
        names = {0x4: "sw_power_cap", 0x8: "hw_slowdown", 0x20: "sw_thermal", 0x40: "hw_thermal",
                 0x80: "hw_power_brake"}
        state["throttle_reasons"] = [n for bit, n in names.items() if reasons & bit]
        return state
    except Exception:  # noqa: BLE001 - a field NVML cannot read is simply left out
        return None


def fingerprint(device: str) -> dict:
    """Allowlisted facts about this machine, for reports and asv machine.json."""
    import torch

    env = {
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
        env.update({
            "gpu_name": props.name,
            "gpu_count": torch.cuda.device_count(),
            "sm_count": props.multi_processor_count,
            "compute_capability": f"{props.major}.{props.minor}",
            "gpu_memory_gb": round(props.total_memory / 2**30, 1),
            "driver": driver_version(),
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        })
    return env


def machine_key(env: dict) -> str:
    """Short stable key of the hardware+software that ceilings depend on."""
    parts = [env.get("device"), env.get("gpu_name"), env.get("cpu_model"), env.get("torch"),
             str(env.get("torch_threads")), env.get("driver"), f"tf32={_tf32_enabled()}"]
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def _tf32_enabled() -> bool:
    """Whether float32 matmuls run as TF32 (changes the float32 ceiling)."""
    import torch
    return bool(torch.backends.cuda.matmul.allow_tf32)


# ------------------------------------------------------------ ceilings ------
CEILINGS_SCHEMA_VERSION = 2  # 2: best sample, kernel copy too (1: median of copy_)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "attnperf"


def measure_ceilings(device: str, quick: bool = False) -> dict:
    """Measure the memory-copy bandwidth and matmul rate per dtype on ``device``.

    Copy: a large device-to-device (or RAM) copy of initialised data, counting
    bytes read + bytes written.  Matmul: an n^3 product of random operands.
    Each figure is the fastest of timed repetitions (timing.py's loop).
    """
    import torch

    from .timing import Budget, time_cpu, time_cuda_device

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
    result = {"schema_version": CEILINGS_SCHEMA_VERSION, "device": device,
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
    if cuda and torch.backends.cuda.matmul.allow_tf32:
        result["matmul_tflops"]["tf32"] = result["matmul_tflops"]["float32"]
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return result


def load_or_measure_ceilings(device: str, env: dict, refresh: bool = False,
                             quick: bool = False) -> dict:
    """Cached ceilings for this machine key; measured (and cached) when missing."""
    path = cache_dir() / "ceilings" / f"{device}-{machine_key(env)}.json"
    if not refresh and path.exists():
        try:
            data = json.loads(path.read_text())
            if data.get("schema_version") == CEILINGS_SCHEMA_VERSION:
                data["cached"] = True
                data["cache_path"] = str(path)
                return data
        except (OSError, ValueError):
            log.warning("ignoring unreadable ceilings cache %s", path)
    data = measure_ceilings(device, quick=quick)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not cache ceilings at %s: %s", path, exc)
    data["cached"] = False
    data["cache_path"] = str(path)
    return data

