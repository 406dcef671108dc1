"""NVML (nvidia-ml-py): the GPU's clock and clock-event (throttle) state.

Optional: without ``pynvml`` or without a driver every function returns None
and callers record "unavailable" -- never a crash.  NVML is initialised at most
once per process; a failure is remembered, so a machine without NVML pays for
the attempt once, not once per sample.

:func:`clock_reader` is what the timing loop calls after every GPU sample: two
NVML queries (SM clock, clock-event reasons), no allocation beyond the result.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from typing import Any

from ..model.clocks import SLOWDOWN_MASK, ClockReading, reason_names

log = logging.getLogger(__name__)

_UNSET = object()
_state: Any = _UNSET  # the pynvml module once initialised, None once it failed


def _nvml() -> Any:
    """pynvml, initialised (once per process), or None when NVML is absent."""
    global _state
    if _state is _UNSET:
        _state = _init()
    return _state


def _init() -> Any:
    try:
        import pynvml  # type: ignore[import-untyped]  # nvidia-ml-py ships no types
    except ImportError:
        log.debug("nvidia-ml-py is not installed: GPU clocks unavailable")
        return None
    try:
        pynvml.nvmlInit()
    except (pynvml.NVMLError, OSError) as exc:
        log.debug("NVML cannot start (%s): GPU clocks unavailable", exc)
        return None
    return pynvml


def _reset() -> None:
    """Forget the cached NVML state (tests; a process never needs it)."""
    global _state
    _state = _UNSET


def _event_reasons_fn(nv: Any) -> Callable[[Any], int]:
    # nvidia-ml-py >= 12.535 names them "clocks event reasons"; older ones "throttle reasons".
    fn = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None)
    reasons: Callable[[Any], int] = (
        fn if fn is not None else nv.nvmlDeviceGetCurrentClocksThrottleReasons
    )
    return reasons


def _handle(nv: Any, uuid: str | None, index: int) -> Any:
    """The NVML handle of the GPU torch uses: by UUID when torch knows it (NVML's
    indices ignore CUDA_VISIBLE_DEVICES), else by index."""
    if uuid:
        try:
            return nv.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
        except nv.NVMLError:
            log.debug("NVML has no GPU with UUID %s; using index %d", uuid, index)
    return nv.nvmlDeviceGetHandleByIndex(index)


class ClockReader:
    """Reads the SM clock and clock-event reasons of one GPU; a call returns a
    :class:`ClockReading`, or None when NVML fails for this one reading."""

    def __init__(self, nv: Any, handle: Any) -> None:
        self._nv, self._handle = nv, handle
        self._reasons = _event_reasons_fn(nv)
        self._sm = nv.NVML_CLOCK_SM

    def __call__(self) -> ClockReading | None:
        try:
            mhz = self._nv.nvmlDeviceGetClockInfo(self._handle, self._sm)
            bits = self._reasons(self._handle)
        except self._nv.NVMLError as exc:
            log.debug("NVML reading failed: %s", exc)
            return None
        return ClockReading(int(mhz), int(bits))


def clock_reader(uuid: str | None = None, index: int = 0) -> ClockReader | None:
    """A reader for one GPU, or None when NVML is absent or does not know the GPU."""
    nv = _nvml()
    if nv is None:
        return None
    try:
        return ClockReader(nv, _handle(nv, uuid, index))
    except nv.NVMLError as exc:
        log.debug("NVML cannot open GPU %d: %s", index, exc)
        return None


def gpu_clock_state(index: int = 0) -> dict[str, Any] | None:
    """SM clock, its maximum, temperature and clock-event reasons via NVML
    (None when NVML is absent)."""
    nv = _nvml()
    if nv is None:
        return None
    try:
        h = nv.nvmlDeviceGetHandleByIndex(index)
        state = {"sm_clock_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
                 "sm_clock_max_mhz": nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM),
                 "temperature_c": nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)}
        bits = int(_event_reasons_fn(nv)(h))
    except nv.NVMLError as exc:
        log.debug("NVML clock state unreadable: %s", exc)
        return None
    state["throttle_reasons"] = reason_names(bits & SLOWDOWN_MASK)  # slowdowns only, as before
    return state


def gpu_identity(device: str = "0") -> dict[str, Any]:
    """Which GPU ``device`` is: CUDA_VISIBLE_DEVICES's way of naming one, an index (NVML's
    and nvidia-smi's PCI bus order; CUDA's too under ``CUDA_DEVICE_ORDER=PCI_BUS_ID``) or a
    ``GPU-...`` UUID.  ``{"index", "serial", "uuid", "name"}``: index as NVML numbers it
    (as given, without NVML), the rest from NVML; None where NVML is absent, does not know
    the GPU, or the board reports no serial."""
    text = device.strip()
    index: int | None = int(text) if text.isdigit() else None
    out: dict[str, Any] = {"index": index, "serial": None, "uuid": None, "name": None}
    nv = _nvml()
    if nv is None:
        return out
    try:
        h = (nv.nvmlDeviceGetHandleByIndex(index) if index is not None
             else nv.nvmlDeviceGetHandleByUUID(text))
    except nv.NVMLError as exc:
        log.debug("NVML does not know GPU %s: %s", text, exc)
        return out
    for key, fn in (("index", "nvmlDeviceGetIndex"), ("serial", "nvmlDeviceGetSerial"),
                    ("uuid", "nvmlDeviceGetUUID"), ("name", "nvmlDeviceGetName")):
        try:
            value = getattr(nv, fn)(h)
        except (nv.NVMLError, AttributeError):  # not supported by this board or binding
            continue
        out[key] = value.decode() if isinstance(value, bytes) else value
    return out


def driver_version() -> str | None:
    nv = _nvml()
    if nv is not None:
        try:
            v = nv.nvmlSystemGetDriverVersion()
            return v.decode() if isinstance(v, bytes) else str(v)
        except nv.NVMLError as exc:
            log.debug("NVML has no driver version: %s", exc)
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=False)
        return (
            out.stdout.strip().splitlines()[0]
            if out.returncode == 0 and out.stdout.strip()
            else None
        )
    except (OSError, subprocess.SubprocessError):
        return None
