"""GPU clock readings: NVML's clock-event reasons by name, and one reading per sample.

Pure data, so that readers of results (render, analysis) can decode a recorded
bit mask without importing NVML (:mod:`attnperf.measure.nvml` reads them).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

# NVML's clock-event ("throttle") reason bits (nvmlClocksEventReason*), by the
# names attnperf records.
CLOCK_EVENT_REASONS: dict[int, str] = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap",
    0x8: "hw_slowdown", 0x10: "sync_boost", 0x20: "sw_thermal", 0x40: "hw_thermal",
    0x80: "hw_power_brake", 0x100: "display_clock_setting",
}
# The reasons that slow a sample down (power or thermal slowdown): a GPU sample
# seen under one of these (and slow) is retaken (measure/power.py).
SLOWDOWN_REASONS: dict[int, str] = {bit: CLOCK_EVENT_REASONS[bit]
                                    for bit in (0x4, 0x8, 0x20, 0x40, 0x80)}
SLOWDOWN_MASK = sum(SLOWDOWN_REASONS)
NVML = "nvml"                # clock_source of samples whose clocks NVML read
UNAVAILABLE = "unavailable"  # what a clock field says when NVML could not be read


def reason_names(bits: int) -> list[str]:
    """Names of the bits set in an NVML clock-event mask, lowest bit first
    (bits this table does not know are kept, as one hex value)."""
    names = [name for bit, name in sorted(CLOCK_EVENT_REASONS.items()) if bits & bit]
    unknown = bits & ~sum(CLOCK_EVENT_REASONS)
    return names + ([hex(unknown)] if unknown else [])


def reason_bits(names: Sequence[str]) -> int:
    """Inverse of :func:`reason_names`: the mask of known names and hex values."""
    bits = {name: bit for bit, name in CLOCK_EVENT_REASONS.items()}
    return sum(bits[n] if n in bits else int(n, 16) for n in names)


@dataclasses.dataclass(frozen=True)
class ClockReading:
    """The GPU's SM clock and clock-event reasons, read right after one sample."""

    sm_clock_mhz: int | None
    event_bits: int = 0

    @property
    def slowdown_bits(self) -> int:
        return self.event_bits & SLOWDOWN_MASK

    @property
    def events(self) -> list[str]:
        return reason_names(self.event_bits)


def slowdown_summary(clocks: Sequence[ClockReading | None]) -> str:
    """'hw_thermal in 1 of 5 samples, sw_power_cap in 3 of 5 samples' (empty when none)."""
    counts: Counter[str] = Counter()
    for c in clocks:
        for name in reason_names(c.slowdown_bits) if c is not None else []:
            counts[name] += 1
    n = len(clocks)
    return ", ".join(f"{name} in {k} of {n} samples" for name, k in sorted(counts.items()))
