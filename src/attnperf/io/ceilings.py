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

import math
import os
from pathlib import Path
from typing import List, Optional

from .jsonfile import load_json, write_json
from ..errors import ReportError

SCHEMA_VERSION = 2
KNOWN_VERSIONS = (1, 2)
FILE_NAME = "attnperf-ceilings.json"


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def problem_with(data) -> Optional[str]:
    """Why ``data`` is not a usable ceilings record (None when it is)."""
    if not isinstance(data, dict):
        return f"holds a JSON {type(data).__name__}, expected an object"
    version = data.get("schema_version")
    if isinstance(version, bool) or version not in KNOWN_VERSIONS:
        return (f"ceilings schema_version {version!r} is not one this attnperf reads "
                f"({', '.join(map(str, KNOWN_VERSIONS))})")
    if not _positive(data.get("bandwidth_gb_s")) or not isinstance(data.get("matmul_tflops"), dict):
        return "ceilings lack a positive bandwidth_gb_s or a matmul_tflops object"
    return None


def normalise(data: dict) -> dict:
    """Keep only positive finite matmul rates (a record :func:`problem_with` accepted)."""
    out = dict(data)
    out["matmul_tflops"] = {str(k): float(v) for k, v in data["matmul_tflops"].items() if _positive(v)}
    return out


def read(path: Path, notes: List[str]) -> Optional[dict]:
    """A ceilings file validated just enough to draw roofs from; None (with a note) if absent/bad."""
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


def write(path: Path, data: dict) -> None:
    write_json(str(path), {k: v for k, v in data.items() if k not in ("cache_path", "cached")})


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "attnperf"


def cache_path(device: str, machine_key: str) -> Path:
    return cache_dir() / "ceilings" / f"{device}-{machine_key}.json"
