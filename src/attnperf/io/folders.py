"""Folders attnperf fills, and owns by a marker file: ``ci bench --out``, ``site build --out``.

:class:`OwnedDir` writes only below the folder it was given, follows no
symbolic link inside it, and rewrites only the files its marker says attnperf
wrote there; every other file is the user's and stays (:class:`OutputPathError`
names one it would have replaced).  Each file goes through the file door
(:mod:`attnperf.io.files`).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import OutputPathError
from .files import StrPath, _kind, read_bytes, read_text, write_bytes, write_text


class OwnedDir:
    """A folder attnperf fills, owned through a marker file listing what it wrote.

    Every write goes below ``root`` through no symbolic link; a file that exists
    and is not listed in the marker is the user's and is never replaced
    (:class:`OutputPathError` names it).  ``what`` names the folder in messages
    (``--out 'DIR'``).
    """

    def __init__(self, root: StrPath, marker: str, what: str | None = None) -> None:
        self.root = Path(os.fspath(root))
        self.marker = marker
        self.what = what or f"{os.fspath(root)!r}"
        self.written: set[str] = set()
        self.known: set[str] | None = None  # None: no marker (a new folder or a user's)

    # -- the folder itself --
    def _refuse(self, why: str) -> OutputPathError:
        return OutputPathError(f"{self.what}: {why}")

    def open(self) -> OwnedDir:
        """Create the folder when missing and read its marker; refuse a link or a file."""
        if os.path.islink(self.root):
            raise self._refuse("it is a symbolic link; give the folder itself")
        if os.path.lexists(self.root) and not self.root.is_dir():
            raise self._refuse("it exists and is not a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._refuse(f"cannot create it: {exc.strerror or exc}") from None
        self.known = self.listed(self.root, self.marker)
        return self

    @staticmethod
    def listed(root: Path, marker: str) -> set[str] | None:
        """The files the marker of ``root`` lists (None: no marker, or one without a list)."""
        path = root / marker
        if not os.path.lexists(path):
            return None
        try:
            data = json.loads(read_text(path, "marker", limit=4 << 20, error=OutputPathError))
        except (OutputPathError, ValueError, RecursionError):
            return None
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, list):
            return None
        return {f for f in files if isinstance(f, str) and _relative_ok(f)}

    @property
    def owned(self) -> bool:
        """The folder carries attnperf's marker."""
        return self.known is not None

    # -- files inside --
    def path(self, rel: str) -> Path:
        """``root/rel`` after checking it may be written: below ``root``, no link on the
        way, and not a file the user made."""
        if not _relative_ok(rel):
            raise self._refuse(f"{rel!r} is not a path inside the folder")
        here = self.root
        parts = Path(rel).parts
        for part in parts[:-1]:
            here = here / part
            if os.path.islink(here):
                raise self._refuse(f"{str(here.relative_to(self.root))!r} is a symbolic link; "
                                   "attnperf follows none inside its output folder")
            if os.path.lexists(here) and not here.is_dir():
                raise self._refuse(f"{str(here.relative_to(self.root))!r} is not a folder")
        target = self.root / rel
        if os.path.lexists(target) and not self.mine(rel):
            kind = ("a symbolic link" if os.path.islink(target) else
                    "a file" if stat.S_ISREG(os.lstat(target).st_mode) else
                    _kind(os.lstat(target).st_mode))
            raise self._refuse(f"{rel!r} exists ({kind}) and attnperf did not write it; "
                               "attnperf never replaces a file it did not write: give a new or "
                               "empty folder, or move it")
        return target

    def mine(self, rel: str) -> bool:
        return rel in self.written or (self.known is not None and rel in self.known)

    def check(self, rels: Sequence[str]) -> None:
        """Refuse now, before any work, if one of ``rels`` could not be written."""
        for rel in rels:
            self.path(rel)

    def _mkdirs(self, rel: str) -> None:
        here = self.root
        for part in Path(rel).parts[:-1]:
            here = here / part
            if not os.path.lexists(here):
                try:
                    here.mkdir()
                except OSError as exc:
                    raise self._refuse(
                        f"cannot create {str(here)!r}: {exc.strerror or exc}"
                    ) from None

    def write_bytes(self, rel: str, data: bytes) -> Path:
        target = self.path(rel)
        self._mkdirs(rel)
        self.path(rel)  # nothing swapped in while the folders were made
        write_bytes(target, data)
        self.written.add(rel)
        self.save()
        return target

    def write_text(self, rel: str, text: str) -> Path:
        return self.write_bytes(rel, text.encode("utf-8"))

    def copy_in(self, source: StrPath, rel: str, what: str = "file") -> Path:
        """A copy of the regular file ``source`` (read through the reading door)."""
        return self.write_bytes(rel, read_bytes(source, what, error=OutputPathError))

    def save(self) -> None:
        """Write the marker: what attnperf wrote here (kept: what it wrote before)."""
        files = sorted(self.written | (self.known or set()))
        write_text(self.root / self.marker, json.dumps(
            {"attnperf": "files attnperf wrote here; it rewrites only these", "files": files},
            indent=1) + "\n")
        self.known = set(files)


def _relative_ok(rel: str) -> bool:
    p = Path(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts and "\x00" not in rel


def regular_files(root: Path) -> Iterator[Path]:
    """Every regular file below ``root`` (links, FIFOs, devices and sockets skipped; no
    link to a folder followed)."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder)
        for name in sorted(files):
            p = base / name
            try:
                if stat.S_ISREG(os.lstat(p).st_mode):
                    yield p
            except OSError:
                continue
        dirs[:] = sorted(d for d in dirs if not os.path.islink(base / d))
