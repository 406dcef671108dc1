"""NVML (nvidia-ml-py): the GPU's clock and clock-event (throttle) state.

Optional: without ``pynvml`` or without a driver every function returns None
and callers record "unavailable" -- never a crash.
"""

from __future__ import annotations

import subprocess
from typing import Optional


def _nvml():
    try:
        import pynvml  # from nvidia-ml-py
        pynvml.nvmlInit()
        return pynvml
    except Exception:  # noqa: BLE001 - NVML is optional; any failure means "absent"
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
