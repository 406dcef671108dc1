"""THE JSON file reader and writer: atomic writes, one-line errors, no NaN.

Every file format attnperf writes (report, comparison, ceilings) goes through
:func:`write_json`; every JSON file a user hands over goes through
:func:`load_json`.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Callable, Optional, Sequence, Tuple

from ..errors import OutputPathError, ReportError


def finite(x):
    """JSON has no NaN/Inf: write them as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def check_writable(path: str, inputs: Sequence[str] = ()) -> Path:
    """Fail early (before measuring) if ``path`` is not a file attnperf may (re)place.

    Refused, each with one line: a path ending in ``/`` or naming a directory
    (``-o dir/`` must not write a file called ``dir``); a symbolic link or
    anything that is not a regular file (``/dev/null``, a FIFO: replacing it
    with a regular file would destroy it); one of ``inputs`` (``compare X -o X``
    must not overwrite what it reads); a missing or read-only directory.
    """
    text = os.fspath(path)
    out = Path(text)
    if os.path.isdir(text):
        raise OutputPathError(f"cannot write {text!r}: it is a directory; "
                              "give a file name (e.g. DIR/report.json)")
    if not text or text.endswith(("/", os.sep)):
        raise OutputPathError(f"cannot write {text!r}: it names a directory (trailing "
                              "slash); give a file name (e.g. DIR/report.json)")
    if os.path.islink(text):
        raise OutputPathError(f"cannot write {text!r}: it is a symbolic link "
                              f"(to {os.readlink(text)!r}); give the target or another file")
    if os.path.lexists(text) and not stat.S_ISREG(os.lstat(text).st_mode):
        raise OutputPathError(f"cannot write {text!r}: it exists and is not a regular file "
                              "(a device, FIFO or socket is never replaced)")
    for other in inputs:
        if other and _same_file(text, os.fspath(other)):
            raise OutputPathError(f"cannot write {text!r}: it is an input of this command "
                                  f"({os.fspath(other)!r}); write the output elsewhere")
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise OutputPathError(f"cannot write {text!r}: {str(parent)!r} is not a directory")
    if not parent.is_dir():
        raise OutputPathError(f"cannot write {text!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise OutputPathError(f"cannot write {text!r}: permission denied")
    return out


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def write_json(path: str, data: dict, inputs: Sequence[str] = ()) -> None:
    """Atomic write of ``data`` as JSON (NaN/Inf as null): see :func:`write_text`."""
    def dump(fh) -> None:
        json.dump(finite(data), fh, indent=2, allow_nan=False)
        fh.write("\n")
    _write_atomic(path, dump, inputs)


def write_text(path: str, text: str, inputs: Sequence[str] = ()) -> None:
    """Atomic write: a temp file in the same directory, then rename (checked first by
    :func:`check_writable`, so a link, a device or an input is never replaced)."""
    _write_atomic(path, lambda fh: fh.write(text), inputs)


def _write_atomic(path: str, write: Callable[[IO[str]], object], inputs: Sequence[str]) -> None:
    out = check_writable(path, inputs)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=str(out.parent or "."))
    try:
        # mkstemp creates 0600; a report is an ordinary file (0666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "w") as fh:
            write(fh)
        os.replace(tmp, out)
    except OSError as exc:
        raise OutputPathError(f"cannot write {path!r}: {exc.strerror or exc}") from None
    finally:
        # Never leave the temp file behind, whatever failed (disk full, a value
        # json cannot encode, Ctrl-C); after the rename it no longer exists.
        if os.path.lexists(tmp):
            try:
                os.unlink(tmp)
            except OSError:
                pass


def load_json(path: str, what: str = "report") -> dict:
    """The JSON object in ``path`` (NaN/Infinity literals accepted: asv writes NaN);
    every failure is a :class:`ReportError` naming the file and what is wrong."""
    p = Path(path)
    if not p.exists():
        raise ReportError(f"{what} {path!r} does not exist")
    if p.is_dir():
        raise ReportError(f"{what} {path!r} is a directory, expected a JSON file")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{what} {path!r} cannot be read: {exc}") from None
    if not text.strip():
        raise ReportError(f"{what} {path!r} is empty; expected a JSON object")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{what} {path!r} is not valid JSON ({exc.msg} at line {exc.lineno}); "
                          "truncated or not a JSON file of this kind") from None
    except RecursionError:
        raise ReportError(f"{what} {path!r} cannot be parsed as JSON: nested too deeply "
                          "to be a file of this kind") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ReportError(f"{what} {path!r} cannot be parsed as JSON ({str(exc)[:100]})") from None
    if not isinstance(data, dict):
        raise ReportError(f"{what} {path!r} holds a JSON {type(data).__name__}, expected an object")
    return data


# Numbers beyond this cannot be a time, a rate or a count; a crafted integer of
# thousands of digits would otherwise overflow the first float() that reads it.
_MAX_MAGNITUDE = 1e300


def finite_number(x) -> Optional[float]:
    """``x`` as a float when it is a JSON number that can be a measurement: not a
    bool, finite, and not absurdly large (a 400-digit integer overflows float())."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not abs(x) <= _MAX_MAGNITUDE:
        return None
    return float(x)


def json_path(parts) -> str:
    """``["results", 3, "performance"]`` -> ``results[3].performance`` (error messages)."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def first_bad_number(data) -> Optional[Tuple[str, str]]:
    """(path, why) of the first NaN, Infinity or absurdly large number in ``data``.

    Iterative, so a deeply nested (but parseable) file cannot exhaust the stack.
    """
    stack = [((), data)]
    while stack:
        path, x = stack.pop()
        if isinstance(x, bool):
            continue
        if isinstance(x, float) and not math.isfinite(x):
            return json_path(path), f"is {x!r} (a report holds finite numbers only)"
        if isinstance(x, (int, float)) and abs(x) > _MAX_MAGNITUDE:
            return json_path(path), "is a number too large to be a measurement"
        if isinstance(x, dict):
            stack.extend(((*path, k), v) for k, v in reversed(list(x.items())))
        elif isinstance(x, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(x))))
    return None
