"""THE rules for names attnperf puts into paths, files and code: checked where they enter.

A name a person or a file hands over -- an asv machine name, a git branch, a
project name, a URL -- ends up in a path (``results/<machine>/``), in JSON,
YAML, Python or a GitHub expression (``attnperf init``'s files) and on a
terminal.  Each is checked here once, where it enters, with one line naming
the value and what is allowed (:class:`~attnperf.errors.UsageError`); the
escaping for each target is :mod:`attnperf.render.escape`'s.

Also here: :func:`home_to_tilde`, the rule for exception texts that end up in
files (a path under the home directory is written ``~/...``).
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..errors import UsageError

# A machine name is a folder under results/ and a key of ~/.asv-machine.json: one path
# component of ordinary characters (host names, "cpu-ci", "gpu_h100.sxm").
MACHINE_MAX = 100
_MACHINE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
MACHINE_ALLOWED = (f"1-{MACHINE_MAX} letters, digits and . _ + -, starting with a letter or "
                   "digit (a folder under results/)")

# Branch names go into workflow branch filters, a GitHub expression and YAML: the
# characters of ordinary branch names, in git's own rules (git check-ref-format).
BRANCH_MAX = 200
_BRANCH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]*")
BRANCH_ALLOWED = ("letters, digits and . _ - /, as a git branch name (no '..', no leading '-' "
                  "or '/', no trailing '/', '.' or '.lock')")

# Project names and URLs go into JSON strings, comments and a docstring: any printable
# text on one line (escaped there), of a sane length.
TEXT_MAX = 200


def _printable_line(value: str) -> bool:
    return value.isprintable() and "\u2028" not in value and "\u2029" not in value


def machine(value: object, flag: str = "--machine") -> str:
    """``value`` as an asv machine name; :class:`UsageError` for anything that is not one
    path component of ordinary characters (``../x``, ``a/b``, ``''``, a control character)."""
    text = value if isinstance(value, str) else ""
    if (not isinstance(value, str) or len(text) > MACHINE_MAX or not _MACHINE.fullmatch(text)):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise UsageError(f"{flag + ' ' if flag else ''}{shown} is not a machine name; allowed: "
                         f"{MACHINE_ALLOWED}")
    return text


def is_machine(value: object) -> bool:
    try:
        machine(value)
    except UsageError:
        return False
    return True


def branch(value: object, flag: str = "--branch") -> str:
    """``value`` as the main branch's name (it goes into a workflow's branch filter and
    its main-only condition); :class:`UsageError` otherwise."""
    text = value if isinstance(value, str) else ""
    bad = (not isinstance(value, str) or len(text) > BRANCH_MAX or not _BRANCH.fullmatch(text)
           or ".." in text or "//" in text or text.endswith(("/", ".", ".lock"))
           or any(part.startswith(".") or part.endswith(".lock") for part in text.split("/")))
    if bad:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise UsageError(f"{flag} {shown} is not a branch name attnperf writes into workflows; "
                         f"allowed: {BRANCH_ALLOWED}")
    return text


def text_line(value: object, what: str) -> str:
    """``value`` as one printable line of at most :data:`TEXT_MAX` characters (a project
    name, a URL); :class:`UsageError` naming ``what`` otherwise."""
    if not isinstance(value, str) or not value or len(value) > TEXT_MAX \
            or not _printable_line(value):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise UsageError(f"{what} {shown} cannot be written into generated files; allowed: "
                         f"one line of 1-{TEXT_MAX} printable characters")
    return value


def url(value: object, what: str = "project URL") -> str:
    """An http(s) URL without spaces, quotes or control characters ('' stays '': none)."""
    if value == "":
        return ""
    text = text_line(value, what)
    if not re.fullmatch(r"https?://[^\s\"'<>\\`]+", text):
        raise UsageError(f"{what} {text!r} is not an http(s) URL attnperf writes into "
                         "generated files; allowed: https://host/path without spaces, quotes, "
                         "<, >, \\ or `")
    return text


def home_to_tilde(text: str, home: str | None = None) -> str:
    """``text`` with the home directory written ``~`` wherever it starts a path
    (``/home/ann/x`` -> ``~/x``): exception texts stored in files carry no user name."""
    home = (home if home is not None else os.path.expanduser("~")).rstrip("/")
    if not home or home == "~" or len(home) < 2 or home not in text:
        return text
    return re.sub(re.escape(home) + r"(?=$|[^\w.-])", "~", text)


def home_to_tilde_in(data: Any, home: str | None = None) -> Any:
    """``data`` (JSON-like: dicts, lists, strings) with :func:`home_to_tilde` applied to
    every string value."""
    if isinstance(data, str):
        return home_to_tilde(data, home)
    if isinstance(data, dict):
        return {k: home_to_tilde_in(v, home) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [home_to_tilde_in(v, home) for v in data]
    return data
