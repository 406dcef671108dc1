"""THE escaping of untrusted text for each target that is not markdown or HTML.

Markdown is :mod:`attnperf.render.markdown`'s, HTML the templates' autoescaping
(:mod:`attnperf.render.html`).  Here: the terminal (control characters, ANSI
escape sequences), and the literals ``attnperf init`` writes -- a JSON string,
a YAML double-quoted scalar, a Python string literal and docstring text, a
GitHub expression string, a comment.  Each function returns text that, put in
its place, reads back as exactly the value and can end nothing early: no quote
closes the literal, no newline starts a new line of code.
"""

from __future__ import annotations

import json


def _escape_char(ch: str) -> str:
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def terminal(value: object) -> str:
    """``value`` safe to print on a terminal, on one line: every character that is not
    printable (ESC of ANSI sequences, other control characters, newlines, bidi
    overrides) written as a ``\\xNN`` escape."""
    return "".join(ch if ch.isprintable() else _escape_char(ch) for ch in str(value))


def terminal_lines(value: object) -> str:
    """Like :func:`terminal`, keeping line breaks (a multi-line message)."""
    return "\n".join(terminal(line) for line in str(value).split("\n"))


def json_string(value: str) -> str:
    """A JSON string literal (quotes included) holding ``value``: non-printable characters
    of the BMP escaped (line separators included), every other character as itself --
    asv reads its config with json5, which does not join an escaped surrogate pair."""
    body = json.dumps(str(value), ensure_ascii=False)
    return "".join(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 and not ch.isprintable() else ch
                   for ch in body)


def _double_quoted(value: str) -> str:
    """JSON's escapes for quotes, backslashes and control characters; every other
    non-ASCII character as ``\\uXXXX`` or, beyond the BMP, ``\\UXXXXXXXX`` (YAML and TOML
    read those; neither reads a JSON surrogate pair)."""
    body = json.dumps(str(value), ensure_ascii=False)
    return "".join(ch if ord(ch) < 0x7f else  # DEL is no printable character of YAML or TOML
                   (f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
                   for ch in body)


def yaml_string(value: str) -> str:
    """A YAML double-quoted scalar holding ``value``: with every non-ASCII character
    escaped, no YAML 1.1 line break (NEL, LS, PS) is left raw."""
    return _double_quoted(value)


def toml_string(value: str) -> str:
    """A TOML basic string holding ``value``."""
    return _double_quoted(value)


def python_string(value: str) -> str:
    """A Python string literal (quotes included) holding ``value``."""
    return repr(str(value))


def docstring_text(value: str) -> str:
    """``value`` for the inside of a (non-raw) triple-quoted Python string: backslashes,
    quotes and every non-printable or non-ASCII character escaped, so it reads back as
    ``value`` and cannot close the string."""
    out = []
    for ch in str(value):
        if ch == "\\":
            out.append("\\\\")
        elif ch in "\"'":
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append(_escape_char(ch))
    return "".join(out)


def github_expression_string(value: str) -> str:
    """A GitHub Actions expression string literal (single quotes doubled)."""
    return "'" + str(value).replace("'", "''") + "'"


def comment_text(value: str) -> str:
    """``value`` for a ``#`` or ``//`` comment: one line, non-printable characters escaped."""
    return terminal(value)
