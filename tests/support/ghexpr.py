"""GitHub Actions expressions, evaluated (tests/test_workflows.py, tests/test_packaging.py).

A small evaluator for the expressions attnperf's workflows use (property paths, ``.*.`` list
projections, string literals, ``== != && || !``, parentheses, ``contains()``, ``format()``), so
the tests check what a condition decides for an event rather than how it is spelled.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+)|(?P<op>==|!=|&&|\|\||[!(),])"
                    r"|(?P<name>[A-Za-z_][\w-]*(?:\.(?:\*|[\w-]+))*))")


def evaluate(expr: str, ctx: dict):
    """Evaluate one GitHub Actions expression (without ${{ }}) against ``ctx``."""
    py, pos, expr = [], 0, expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        assert m and m.end() > pos, f"cannot read {expr[pos:]!r}"
        pos = m.end()
        if m["str"]:
            py.append(repr(m["str"][1:-1].replace("''", "'")))
        elif m["num"]:
            py.append(m["num"])
        elif m["op"]:
            py.append({"&&": " and ", "||": " or ", "!": " not "}.get(m["op"], m["op"]))
        elif m["name"] in ("contains", "format", "true", "false", "null"):
            py.append({"true": "True", "false": "False", "null": "None"}.get(m["name"], m["name"]))
        else:
            py.append(f"_get({m['name']!r})")

    def _get(path):
        value = ctx
        parts = path.split(".")
        for i, part in enumerate(parts):
            if part == "*":
                return [_lookup(item, parts[i + 1:]) for item in value]
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def _lookup(value, parts):
        for part in parts:
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def contains(haystack, needle):
        return needle in haystack if isinstance(haystack, (list, str)) else False

    def format(fmt, *args):  # noqa: A001 - GitHub's name
        return re.sub(r"\{(\d+)\}", lambda m: str(args[int(m.group(1))]), fmt)

    return eval("".join(py), {"_get": _get, "contains": contains, "format": format})  # noqa: S307


def interpolate(text: str, ctx: dict) -> str:
    """``text`` with every ``${{ expression }}`` replaced by its value for ``ctx``."""
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(evaluate(m.group(1), ctx)), text, flags=re.S)


def condition(text: str) -> str:
    """The expression of an ``if:``, written with or without ``${{ }}``."""
    text = text.strip()
    return text[3:-2] if text.startswith("${{") else text
