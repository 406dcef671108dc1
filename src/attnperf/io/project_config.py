"""Reading a repository's ``[tool.attnperf]`` from its pyproject.toml.

The data model and validation live in :mod:`attnperf.model.config`; this
module finds and reads the file (``tomllib`` from Python 3.11, ``tomli`` before)
through the file door (:mod:`attnperf.io.files`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..model.config import ProjectConfig, default_factor, parse
from .files import check_depth, read_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10
    import tomli as tomllib

PYPROJECT = "pyproject.toml"


def find(start: str | Path | None = None) -> Path | None:
    """The nearest pyproject.toml at or above ``start`` (default: the current directory);
    one that is not a regular file (a FIFO, a folder) is returned too, and refused on read."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        candidate = d / PYPROJECT
        if os.path.lexists(candidate):
            return candidate
    return None


# A pyproject.toml larger than this is no project's configuration.
MAX_TOML_BYTES = 4 << 20


def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML document in ``path``, read through the file door (a regular file of at most
    4 MiB, nested at most :data:`~attnperf.io.files.MAX_DEPTH` levels); every failure is
    one :class:`ConfigError`."""
    path = Path(path)
    text = read_text(path, "project file", MAX_TOML_BYTES, ConfigError)
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply to be a project file") from None
    except MemoryError:
        raise ConfigError(f"{path}: cannot be parsed: out of memory") from None
    check_depth(data, path, "project file", ConfigError)
    return data


def load(path: str | Path) -> ProjectConfig | None:
    """``[tool.attnperf]`` of this pyproject.toml; None when the table is absent."""
    data = read_toml(path)
    table = data.get("tool", {}).get("attnperf") if isinstance(data.get("tool"), dict) else None
    if table is None:
        return None
    return parse(table, source=str(path))


def load_nearest(start: str | Path | None = None) -> ProjectConfig | None:
    """The configuration of the repository around ``start`` (None: attnperf's defaults)."""
    path = find(start)
    return load(path) if path else None


def regression_factor(folder: str | Path, device: str) -> float:
    """The regression factor on ``device`` of the repository in ``folder``: ``[tool.attnperf]``
    regression-factor of its pyproject.toml, else attnperf's default for the device
    (:func:`attnperf.model.config.default_factor`); :class:`ConfigError` for a file or table
    that cannot be read."""
    path = Path(folder) / PYPROJECT
    config = load(path) if os.path.lexists(path) else None
    return config.factor(device) if config else default_factor(device)
