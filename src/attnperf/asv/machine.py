"""Describe this machine to asv, with the GPU facts asv does not collect
(``attnperf asv machine NAME``).

Writes NAME into ~/.asv-machine.json (asv's own fields: os, arch, cpu,
num_cpu, ram; plus gpu, gpu_count, driver, cuda, cudnn, torch from
attnperf's allowlisted fingerprint) and measures this machine's ceilings
into RESULTS_DIR/NAME/attnperf-ceilings.json for the site's roofline chart.
`asv machine --yes --machine NAME` would save the name alone (asv bug), hence this;
and `asv machine --yes` measures no ceilings, so the site would have no roofs and no
regimes.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from ..errors import OutputPathError
from ..io import ceilings as ceilings_file
from ..io.files import check_writable, write_text
from ..io.jsonfile import load_json
from ..measure.session import Session
from ..model import names
from .suite import CPU_THREADS


def default_name() -> str:
    """The machine name asv uses when it is given none: this host's network name."""
    return platform.node()


def _ram_bytes() -> str:
    try:
        return str(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        return ""


def describe(name: str, results_dir: str | Path = "results", device: str = "auto"
             ) -> dict[str, str]:
    """Write ``name``'s description into ~/.asv-machine.json and its measured ceilings into
    ``results_dir/name/attnperf-ceilings.json``; returns the description.

    ``name`` must be a machine name (:func:`attnperf.model.names.machine`: one path
    component, so the ceilings stay inside ``results_dir``); both files are checked
    before anything is measured and written through the file door."""
    name = names.machine(name, "NAME")
    path = Path.home() / ".asv-machine.json"
    data: dict[str, Any] = (
        load_json(str(path), "asv machine file") if os.path.lexists(path) else {"version": 1}
    )
    check_writable(path)
    out = Path(results_dir) / name
    ceilings_path = out / ceilings_file.FILE_NAME
    if os.path.islink(out) or os.path.islink(results_dir):
        raise OutputPathError(f"cannot write {str(ceilings_path)!r}: "
                              f"{str(out if os.path.islink(out) else results_dir)!r} is a "
                              "symbolic link; attnperf writes results through none")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"cannot create {str(out)!r}: {exc.strerror or exc}") from None
    check_writable(ceilings_path)
    # On a CPU: the ceilings the suite's single-threaded runs are held to.
    session = Session(device, threads=CPU_THREADS)
    env = session.environment
    info = {
        "machine": name, "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(), "cpu": env["cpu_model"], "num_cpu": str(env["cpu_count"]),
        "ram": _ram_bytes(),
        "gpu": env["gpu_name"] or "none", "gpu_count": str(env["gpu_count"]),
        "driver": env["driver"] or "none", "cuda": env["cuda"] or "none",
        "cudnn": str(env["cudnn"] or "none"), "torch": env["torch"],
    }
    data[name] = info
    write_text(path, json.dumps(data, indent=4))
    ceilings_file.write(ceilings_path, session.ceilings)
    return info
