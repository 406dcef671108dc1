"""THE markdown escaping of attnperf: every piece of untrusted text written into markdown
(kernel, machine and problem names, notes, anything read from a result file) goes
through :func:`text` or :func:`code`.

GitHub-flavoured markdown is rendered with raw HTML, autolinks, ``@mentions``
and tables; a name such as ``<img src=x onerror=...>``, ``@org/team``,
``[x](javascript:...)`` or ``a|b`` must come out as the characters it is made
of, in one table cell, pinging nobody.
"""

from __future__ import annotations

import re

from .escape import terminal

_ZWSP = "\u200b"  # breaks @mention and #ref matching without showing
# Markup characters escaped with a backslash; "_" only where it could open or
# close emphasis (GFM never reads an underscore inside a word as emphasis, so
# kernel names such as sdpa_flash stay readable in the raw markdown).
_MD_SPECIAL = re.compile(r"([\\`*\[\]|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def _one_line(s: str) -> str:
    # line breaks become spaces; any other control character (ESC of an ANSI sequence,
    # a bidi override) is written as its escape, visible and inert
    return terminal(re.sub(r"[\r\n\t\v\f\u2028\u2029]+", " ", s))


def text(value: object) -> str:
    """Plain markdown text: markup characters backslash-escaped, ``<``/``>``/``&`` as HTML
    entities, ``@``/``#`` references broken, one line (safe in a table cell)."""
    s = _one_line(str(value))
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    # "@org/team" pings, "#12" / "org/repo#12" link (and notify) issues, "# x" is a heading.
    return s.replace("@", "@" + _ZWSP).replace("#", "#" + _ZWSP)


def code(value: object) -> str:
    """A code span holding ``value`` verbatim: a backtick fence longer than any run of
    backticks inside, ``|`` escaped for tables (GFM reads ``\\|`` in a cell as ``|``),
    one line.  Nothing inside a code span is HTML, a link or a mention."""
    s = _one_line(str(value)).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
    return f"{fence}{pad}{s}{pad}{fence}"
