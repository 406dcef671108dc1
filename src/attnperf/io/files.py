"""THE door for every file attnperf reads or writes.

Reading (:func:`read_bytes`, :func:`read_text`): regular files only -- a FIFO,
a device, a socket or a directory is refused without blocking (opened with
``O_NONBLOCK``, checked with ``fstat``) -- and at most :data:`MAX_READ_BYTES`
(a file of that size is no file attnperf or asv wrote; ``/dev/zero`` would
otherwise grow a process until the machine runs out of memory).  Parsers on
top bound the nesting (:data:`MAX_DEPTH`, :func:`check_depth`).

Writing (:func:`write_text`, :func:`write_bytes`): atomic replace (a temporary
file in the same folder, then a rename); never through a symbolic link, never
over a device, FIFO, socket or folder, never over an input of the same command
(a folder given as input covers every file in it); one writer per file at a
time (:func:`output_lock`, an ``fcntl`` lock: a second writer fails with one
line naming the first, instead of both saying "wrote" while one's results are
lost).

Appending (:func:`append_stream`, :func:`append_text`: asv's output kept in a log): a
regular file or a new one, opened without following a link (``O_NOFOLLOW``) and checked
after opening (``fstat``), never a FIFO, a device or a folder; under a lock on the opened
file (appenders wait for each other; none is refused).

Folders attnperf fills (``ci bench --out``, ``site build --out``) are
:mod:`attnperf.io.folders`'s, on top of this module.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from ..errors import AttnperfError, OutputPathError, ReportError

# What the doors accept as a path: a string or any os.PathLike of one (pathlib.Path).
StrPath = str | os.PathLike[str]

# The largest file any reader takes: ~200x the largest report a full GPU sweep with raw
# samples writes.  Larger is damage or a device, and is refused with one line.
MAX_READ_BYTES = 64 << 20
# The deepest nesting of a JSON or TOML file attnperf reads (its own files nest ~6 deep).
MAX_DEPTH = 64
# Fallback when the file system does not say (POSIX's NAME_MAX on Linux file systems).
_NAME_MAX = 255


# ------------------------------------------------------------------- reading -----
def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.3g} MiB"


def read_bytes(path: StrPath, what: str = "file", limit: int = MAX_READ_BYTES,
               error: type[AttnperfError] = ReportError) -> bytes:
    """The bytes of the regular file ``path``; every failure is one ``error`` naming
    ``what``, the path and why (missing, not a regular file, over ``limit`` bytes)."""
    text = os.fspath(path)
    if not text:
        raise error(f"{what}: the path is empty; give a file")
    try:
        # stat first: a device or FIFO is never even opened.
        mode = os.stat(text).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{what} {text!r} is {_kind(mode)}, expected a regular file")
        fd = os.open(text, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise error(f"{what} {text!r} does not exist") from None
    except OSError as exc:
        raise error(f"{what} {text!r} cannot be read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)  # what was opened (the path may have changed since the stat)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{what} {text!r} is {_kind(st.st_mode)}, expected a regular file")
        too_large = error(f"{what} {text!r} is larger than {_mib(limit)}, the most attnperf "
                          "reads; not a file of this kind")
        if st.st_size > limit:
            raise too_large
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # grew while being read
                raise too_large
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"{what} {text!r} cannot be read: {exc.strerror or exc}") from None
    except MemoryError:
        raise error(f"{what} {text!r} cannot be read: out of memory") from None
    finally:
        os.close(fd)


def read_text(path: StrPath, what: str = "file", limit: int = MAX_READ_BYTES,
              error: type[AttnperfError] = ReportError) -> str:
    """:func:`read_bytes` decoded as UTF-8 (a file that is not: one ``error``)."""
    data = read_bytes(path, what, limit, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {os.fspath(path)!r} cannot be read: not UTF-8 text "
                    f"(byte {exc.start})") from None


def depth_of(data: object, limit: int = MAX_DEPTH) -> int:
    """The nesting depth of parsed JSON/TOML ``data`` (lists and objects), counted up to
    ``limit + 1`` at most; iterative, so no depth exhausts the stack."""
    deepest = 0
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        x, depth = stack.pop()
        children: Iterable[object]
        if isinstance(x, dict):
            children = x.values()
        elif isinstance(x, list):
            children = x
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def check_depth(data: object, path: StrPath, what: str,
                error: type[AttnperfError] = ReportError) -> None:
    """Refuse parsed data nested deeper than :data:`MAX_DEPTH` (later recursive code --
    schema validation, rendering -- must never meet it)."""
    if depth_of(data) > MAX_DEPTH:
        raise error(f"{what} {os.fspath(path)!r} is nested more than {MAX_DEPTH} levels deep; "
                    "not a file of this kind")


# ------------------------------------------------------------------- writing -----
def _name_max(folder: str) -> int:
    try:
        return int(os.pathconf(folder or ".", "PC_NAME_MAX"))
    except (OSError, ValueError):
        return _NAME_MAX


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def _inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies below it (both resolved)."""
    p, f = os.path.realpath(path), os.path.realpath(folder)
    return p == f or p.startswith(f.rstrip(os.sep) + os.sep)


def check_writable(path: StrPath, inputs: Sequence[StrPath] = ()) -> Path:
    """Fail early (before measuring) if ``path`` is not a file attnperf may (re)place.

    Refused, each with one line: an empty path; a path ending in ``/`` or naming a
    directory (``-o dir/`` must not write a file called ``dir``); a symbolic link
    or anything that is not a regular file (``/dev/null``, a FIFO: replacing it
    with a regular file would destroy it); one of ``inputs``, or a file already in
    an input folder (``compare X -o X``, ``pr-comment --results R -o R/m/x.json``
    must not overwrite what they read); a name longer than the file system allows;
    a missing or read-only directory.
    """
    text = os.fspath(path)
    if not text:
        raise OutputPathError("cannot write '': the path is empty; give a file name "
                              "(e.g. DIR/report.json)")
    out = Path(text)
    if os.path.isdir(text):
        raise OutputPathError(f"cannot write {text!r}: it is a directory; "
                              "give a file name (e.g. DIR/report.json)")
    if text.endswith(("/", os.sep)):
        raise OutputPathError(f"cannot write {text!r}: it names a directory (trailing "
                              "slash); give a file name (e.g. DIR/report.json)")
    if os.path.islink(text):
        raise OutputPathError(f"cannot write {text!r}: it is a symbolic link "
                              f"(to {os.readlink(text)!r}); give the target or another file")
    if os.path.lexists(text) and not stat.S_ISREG(os.lstat(text).st_mode):
        raise OutputPathError(f"cannot write {text!r}: it exists and is not a regular file "
                              "(a device, FIFO or socket is never replaced)")
    for other in inputs:
        other = os.fspath(other) if other else ""
        # a folder read as input: every file already in it is (or may be) read
        if other and (_same_file(text, other) or (os.path.isdir(other) and _inside(text, other)
                                                  and os.path.lexists(text))):
            raise OutputPathError(f"cannot write {text!r}: it is an input of this command "
                                  f"({other!r}); write the output elsewhere")
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise OutputPathError(f"cannot write {text!r}: {str(parent)!r} is not a directory")
    if not parent.is_dir():
        raise OutputPathError(f"cannot write {text!r}: directory {str(parent)!r} does not exist")
    longest = _name_max(str(parent))
    if len(os.fsencode(out.name)) > longest:
        raise OutputPathError(f"cannot write {text[:60]!r}...: the file name is "
                              f"{len(os.fsencode(out.name))} bytes; this file system allows "
                              f"{longest}")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise OutputPathError(f"cannot write {text!r}: permission denied")
    return out


def check_appendable(path: StrPath) -> Path:
    """A log ``path`` attnperf may append to: a regular file or none yet (never a link, a
    FIFO -- opening one for writing waits for a reader -- a device or a folder)."""
    text = os.fspath(path)
    if os.path.lexists(text):
        mode = os.lstat(text).st_mode
        if stat.S_ISLNK(mode) or not stat.S_ISREG(mode):
            raise OutputPathError(f"cannot append to {text!r}: it is "
                                  f"{'a symbolic link' if stat.S_ISLNK(mode) else _kind(mode)}; "
                                  "give a regular file")
        if not os.access(text, os.W_OK):
            raise OutputPathError(f"cannot append to {text!r}: permission denied")
        return Path(text)
    return check_writable(text)


@contextlib.contextmanager
def append_stream(path: StrPath) -> Iterator[IO[str]]:
    """A text stream appending to the log ``path`` (created when missing), holding an
    ``fcntl`` lock on the opened file until it is closed (another appender waits, so
    each one's lines stay together; appending loses nothing, so no writer is refused,
    and no lock file is made: a log in a folder the user cannot write stays usable).

    Checked by :func:`check_appendable`, then opened without following a link and
    without blocking, and checked once more on what was opened: a link, a FIFO, a
    device or a folder swapped in meanwhile is refused (:class:`OutputPathError`)
    and nothing is written."""
    text = os.fspath(path)
    check_appendable(text)
    flags = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
             | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        fd = os.open(text, flags, 0o666)
    except OSError as exc:
        why = ("it is a symbolic link" if exc.errno == errno.ELOOP else
               "it is a FIFO" if exc.errno == errno.ENXIO else exc.strerror or str(exc))
        raise OutputPathError(f"cannot append to {text!r}: {why}; give a regular file"
                              ) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OutputPathError(f"cannot append to {text!r}: it is {_kind(mode)}; "
                                  "give a regular file")
        os.set_blocking(fd, True)
        fcntl.flock(fd, fcntl.LOCK_EX)
        stream = os.fdopen(fd, "a", encoding="utf-8", errors="replace", buffering=1)
    except BaseException:
        os.close(fd)
        raise
    with stream:  # closing the file releases its lock
        yield stream


def append_text(path: StrPath, text: str) -> None:
    """Append ``text`` to the log ``path``: see :func:`append_stream`."""
    try:
        with append_stream(path) as stream:
            stream.write(text)
    except OSError as exc:
        raise OutputPathError(f"cannot append to {os.fspath(path)!r}: "
                              f"{exc.strerror or exc}") from None


def _hidden_name(out: Path, suffix: str) -> str:
    """A short hidden sibling name for ``out`` (any length of ``out.name`` fits)."""
    return (
        f".{hashlib.sha256(out.name.encode('utf-8', 'surrogateescape')).hexdigest()[:16]}{suffix}"
    )


# Locks this process holds: resolved path -> count (a command that holds the lock for a
# whole run writes through the same door without locking itself out).
_HELD: dict[str, int] = {}
_HELD_GUARD = threading.Lock()


@contextlib.contextmanager
def output_lock(path: StrPath) -> Iterator[None]:
    """Hold the writer's lock of ``path`` (an ``fcntl`` lock on a hidden sibling file).

    A second process asking for it fails at once with :class:`OutputPathError`
    naming the holder's pid: two ``attnperf run -o same.json`` never both say
    "wrote".  Re-entrant within this process."""
    out = Path(os.fspath(path))
    key = os.path.realpath(out)
    with _HELD_GUARD:
        if _HELD.get(key):
            _HELD[key] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _HELD_GUARD:
                _HELD[key] -= 1
        return
    lock_path = (out.parent if str(out.parent) else Path(".")) / _hidden_name(out, ".lock")
    fd = _acquire(lock_path, os.fspath(path))
    with _HELD_GUARD:
        _HELD[key] = 1
    try:
        yield
    finally:
        with _HELD_GUARD:
            _HELD.pop(key, None)
        try:
            if os.path.samestat(os.fstat(fd), os.lstat(lock_path)):
                os.unlink(lock_path)
        except OSError:
            pass
        os.close(fd)


def _acquire(lock_path: Path, shown: str) -> int:
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise OutputPathError(f"cannot write {shown!r}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                try:
                    holder = os.read(fd, 32).decode("ascii", "replace").strip()
                except OSError:
                    pass
            os.close(fd)
            raise OutputPathError(
                f"cannot write {shown!r}: another attnperf process"
                f"{f' (pid {holder})' if holder.isdigit() else ''} is writing it; wait for it "
                "to finish or write elsewhere") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.lstat(lock_path))
        except OSError:
            same = False
        if same:  # else the previous holder removed the file between our open and lock
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            return fd
        os.close(fd)


def _write_atomic(path: StrPath, write: Callable[[int], None], inputs: Sequence[StrPath]) -> None:
    out = check_writable(path, inputs)
    folder = out.parent if str(out.parent) else Path(".")
    with output_lock(out):
        tmp = folder / _hidden_name(out, f".{os.getpid()}-{threading.get_ident()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                         0o666)  # an ordinary file: 0666 less the umask
        except OSError as exc:
            raise OutputPathError(
                f"cannot write {os.fspath(path)!r}: {exc.strerror or exc}"
            ) from None
        try:
            try:
                write(fd)
            finally:
                os.close(fd)
            if os.path.islink(out) or (
                os.path.lexists(out) and not stat.S_ISREG(os.lstat(out).st_mode)
            ):
                raise OutputPathError(f"cannot write {os.fspath(path)!r}: it became a link or "
                                      "a special file while being written; not replaced")
            os.replace(tmp, out)
        except OSError as exc:
            raise OutputPathError(
                f"cannot write {os.fspath(path)!r}: {exc.strerror or exc}"
            ) from None
        finally:
            # Never leave the temp file behind, whatever failed (disk full, a value
            # json cannot encode, Ctrl-C); after the rename it no longer exists.
            if os.path.lexists(tmp):
                try:
                    os.unlink(tmp)
                except OSError:
                    pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_bytes(path: StrPath, data: bytes, inputs: Sequence[StrPath] = ()) -> None:
    """Atomic write of ``data`` (checked first by :func:`check_writable`, under
    :func:`output_lock`)."""
    _write_atomic(path, lambda fd: _write_all(fd, data), inputs)


def write_text(path: StrPath, text: str, inputs: Sequence[StrPath] = ()) -> None:
    """Atomic write of ``text`` as UTF-8: see :func:`write_bytes`."""
    write_bytes(path, text.encode("utf-8"), inputs)
