"""The folders a pull-request job writes: its output folder (``--out``), the result files
it keeps there, and asv folders of its own (``--asv-dir``).

``OUT`` is attnperf's by a marker (:class:`~attnperf.io.folders.OwnedDir`): ``ci bench`` and
``ci merge`` rewrite only what they wrote there, never the repository or its results.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import BenchInputError, BenchJobError, OutputPathError, ReportError, UsageError
from ..io.asv_results import read_asv_conf
from ..io.ceilings import FILE_NAME
from ..io.files import read_bytes, write_bytes
from ..io.folders import OwnedDir
from ..io.jsonfile import write_json
from ..render import prcomment
from . import github

# OUT's marker: the files an earlier `ci bench` wrote there (the only ones it rewrites).
OUT_MARKER = ".attnperf-ci-bench"
OUT_FILES = ("summary.md", "verdict.json", "asv-continuous.log", "paired.json")


def out_dir(text: str, conf_dir: Path | None = None,
            results_dir: Path | None = None) -> OwnedDir:
    """OUT (``--out``), checked: never the repository or the results folder (or a folder
    holding them, ``--out .``), never a link; inside it only what an earlier ``ci bench`` (or
    ``ci merge``) wrote is rewritten (:class:`~attnperf.io.folders.OwnedDir`).
    :class:`UsageError` otherwise, before any work."""
    out = Path(text)
    where = f"--out {text!r}"
    resolved = out.resolve()
    for folder, what in ((conf_dir, "the asv config's folder (the repository)"),
                         (results_dir, "the results folder")):
        if folder is not None and (resolved == folder or folder.is_relative_to(resolved)
                                   or (what == "the results folder"
                                       and resolved.is_relative_to(folder))):
            relation = ("it is, contains or is inside" if what == "the results folder"
                        else "it is or contains")
            raise UsageError(f"{where}: {relation} {what} {str(folder)!r}; give a folder of its "
                             "own (e.g. ci-artifacts/bench)")
    try:
        owned = OwnedDir(out, OUT_MARKER, where).open()
        owned.check([*OUT_FILES, "results"] if not owned.owned else OUT_FILES)
        if not owned.owned and os.path.lexists(out / "results"):
            raise UsageError(f"{where}: 'results' exists and attnperf did not write it")
        owned.save()
    except OutputPathError as exc:
        raise UsageError(str(exc)) from None
    return owned


def copy_results(results_dir: Path, machine: str, commits: list[str], dest: OwnedDir,
                 under: str = "results") -> list[str]:
    """Copy the machine's files and both commits' result files into ``dest/under`` (regular
    files only, through the file door); returns what was copied, relative to ``under``."""
    copied = []
    mdir = results_dir / machine
    names_ = ["machine.json", "attnperf-ceilings.json"]
    names_ += [p.name for c in commits for p in sorted(mdir.glob(f"{c[:8]}-*.json"))]
    for name in dict.fromkeys(names_):
        src = mdir / name
        if src.is_file() and not src.is_symlink():
            dest.copy_in(src, f"{under}/{machine}/{name}", "result file")
            copied.append(f"{machine}/{name}")
    src = results_dir / "benchmarks.json"
    if src.is_file() and not src.is_symlink():
        dest.copy_in(src, f"{under}/benchmarks.json", "benchmark list")
        copied.append("benchmarks.json")
    return copied


def own_asv_config(conf_path: Path, asv_dir: Path) -> Path:
    """``asv_dir/asv.conf.json``: the asv config with results, environments and pages in
    ``asv_dir`` (absolute: asv reads paths from the folder it runs in, the repository).
    :class:`BenchInputError` for a config that cannot be read."""
    try:
        conf = read_asv_conf(str(conf_path))
    except (OSError, ValueError, ReportError) as exc:
        raise BenchInputError(f"cannot read {conf_path}: {exc}") from None
    folder = asv_dir.resolve()
    conf.update(results_dir=str(folder / "results"), env_dir=str(folder / "env"),
                html_dir=str(folder / "html"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "asv.conf.json", conf)
    except (OSError, OutputPathError) as exc:
        raise BenchJobError(f"--asv-dir {str(asv_dir)!r}: cannot write asv's config there: "
                            f"{getattr(exc, 'strerror', None) or exc}") from None
    return folder / "asv.conf.json"


def record_error_in(folder: str, machine: str, message: str, code: int) -> None:
    """:func:`record_error` for the output folder ``folder`` of a job on ``machine``."""
    text = prcomment.render_unavailable(machine, message)
    out = Path(folder)
    try:
        # only into a new or empty folder, or one a job wrote before (never `--out .`)
        if not out.is_dir() or OwnedDir.listed(out, OUT_MARKER) is not None \
                or not any(out.iterdir()):
            OwnedDir(out, OUT_MARKER).open().write_text("summary.md", text)
    except (OSError, OutputPathError):
        pass
    try:
        github.publish(code, message, machine, text)
    except (OSError, OutputPathError):
        pass


def share_ceilings(results_dir: Path, dest: Path, machine: str) -> None:
    """The machine's measured ceilings (``attnperf asv machine``'s, in ``results_dir``) in
    the asv results folder ``dest`` of a job of its own: its summary and artifact show them,
    as one job's do."""
    src = results_dir / machine / FILE_NAME
    if not src.is_file() or src.is_symlink():
        return
    try:
        (dest / machine).mkdir(parents=True, exist_ok=True)
        target = dest / machine / FILE_NAME
        if target.is_symlink():
            raise BenchJobError(f"{target} is a symbolic link; attnperf follows none there")
        write_bytes(target, read_bytes(src, "ceilings", error=OutputPathError))
    except (OSError, OutputPathError) as exc:
        raise BenchJobError(f"cannot share the machine's ceilings with {dest}: {exc}") from None
