"""THE HTML renderer: Jinja2 templates (``render/templates/``) with autoescaping.

Every page and the SVG chart go through :func:`render`; text from result
files (kernel, machine, problem names, notes) is escaped by the template
engine, never by hand.  :func:`json_block` is the one way data is put inside
a ``<script>`` element.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import jinja2
from markupsafe import Markup

from . import fmt

# Inside <script> the HTML parser ends the element at "</script" and changes
# state at "<!--" and "<script"; JSON never needs a raw "<", ">" or "&", so
# writing them as \u escapes makes every such sequence impossible.  U+2028/9
# are line terminators for older JavaScript parsers.
SCRIPT_SAFE = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                0x2028: "\\u2028", 0x2029: "\\u2029"}


def json_block(data: Any) -> Markup:
    """``data`` as JSON that is safe verbatim inside ``<script type="application/json">``."""
    text = json.dumps(data, sort_keys=True, allow_nan=False, default=str)
    return Markup(text.translate(SCRIPT_SAFE))


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("attnperf.render", "templates"),
        autoescape=jinja2.select_autoescape(["html", "svg"], default_for_string=True,
                                            default=True),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)
    env.filters.update(num=fmt.num, seconds=fmt.seconds, pct=fmt.pct, json_block=json_block)
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
