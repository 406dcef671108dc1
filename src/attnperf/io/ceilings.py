"""THE ceilings file format: measured copy bandwidth and matmul rates of one machine.

Written to the per-machine cache (``$XDG_CACHE_HOME/attnperf/ceilings/``) by
``attnperf ceilings`` and beside asv results as
``results/<machine>/attnperf-ceilings.json`` (``attnperf asv machine``).

Format history (``schema_version``):

* 1 -- median of ``copy_`` samples.
* 2 -- the fastest sample, and an elementwise-kernel copy beside ``copy_``
  (same fields).  Both are read; only 2 is reused from the cache (a version-1
  cache is measured again).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ReportError
from .jsonfile import finite_number, load_json, write_json

SCHEMA_VERSION = 2
KNOWN_VERSIONS = (1, 2)
FILE_NAME = "attnperf-ceilings.json"


# Plausible roofs, far outside anything measured (a loaded 2-vCPU box: fp16 matmul
# ~0.001 TF/s; an H100: 3000 GB/s, 780 TF/s).  Outside these a figure is damage.
BANDWIDTH_GB_S_RANGE = (0.01, 1e5)
TFLOPS_RANGE = (1e-6, 1e5)


def _plausible(x: object, bounds: tuple[float, float]) -> bool:
    f = finite_number(x)
    return f is not None and bounds[0] <= f <= bounds[1]


def problem_with(data: object) -> str | None:
    """Why ``data`` is not a usable ceilings record (None when it is)."""
    if not isinstance(data, dict):
        return f"holds a JSON {type(data).__name__}, expected an object"
    version = data.get("schema_version")
    if isinstance(version, bool) or version not in KNOWN_VERSIONS:
        return (f"ceilings schema_version {version!r} is not one this attnperf reads "
                f"({', '.join(map(str, KNOWN_VERSIONS))})")
    if not _plausible(data.get("bandwidth_gb_s"), BANDWIDTH_GB_S_RANGE):
        return (f"ceilings bandwidth_gb_s {str(data.get('bandwidth_gb_s'))[:30]!r} is not a number "
                f"in {BANDWIDTH_GB_S_RANGE[0]}..{BANDWIDTH_GB_S_RANGE[1]:g}")
    rates = data.get("matmul_tflops")
    if not isinstance(rates, dict) or not rates:
        return "ceilings lack a matmul_tflops object"
    for k, v in rates.items():
        if not _plausible(v, TFLOPS_RANGE):
            return (f"ceilings matmul_tflops[{str(k)[:20]!r}] = {str(v)[:30]!r} is not a number in "
                    f"{TFLOPS_RANGE[0]:g}..{TFLOPS_RANGE[1]:g}")
    return None


def missing_rates(data: dict[str, Any], dtypes: Iterable[str]) -> list[str]:
    """Which of ``dtypes`` have no matmul rate in ``data`` (an accepted record)."""
    return [dt for dt in dtypes if dt not in data["matmul_tflops"]]


def normalise(data: dict[str, Any]) -> dict[str, Any]:
    """Plain floats (a record :func:`problem_with` accepted)."""
    out = dict(data)
    out["bandwidth_gb_s"] = float(data["bandwidth_gb_s"])
    out["matmul_tflops"] = {str(k): float(v) for k, v in data["matmul_tflops"].items()}
    return out


def read(path: Path, notes: list[str]) -> dict[str, Any] | None:
    """A ceilings file validated just enough to draw roofs from; None (with a note) if
    absent or bad."""
    if not path.exists():
        return None
    try:
        data = load_json(str(path), "ceilings")
    except ReportError as exc:
        notes.append(f"{exc}; ignored")
        return None
    why = problem_with(data)
    if why is not None:
        notes.append(f"{path}: {why}; ignored")
        return None
    return normalise(data)


def write(path: Path, data: dict[str, Any]) -> None:
    write_json(str(path), {k: v for k, v in data.items() if k not in ("cache_path", "cached")})


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "attnperf"


def cache_path(device: str, machine_key: str) -> Path:
    return cache_dir() / "ceilings" / f"{device}-{machine_key}.json"
