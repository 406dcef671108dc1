"""mkdocs hook: the CLI reference page is rendered from ``attnperf.cli.build_parser()``.

The page ``cli.md`` holds the marker ``<!-- attnperf-cli-reference -->``; at build time it is
replaced by every command's and sub-command's usage, help and arguments, walked from the
parser itself, so the reference never disagrees with the command it describes.  Arguments
that take the rest of the line unparsed (``argparse.REMAINDER``) are shown as such: the
parser knows no more about them.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

MARKER = "<!-- attnperf-cli-reference -->"
USAGE_WIDTH = 96


def walk(parser: argparse.ArgumentParser, depth: int = 0,
         summary: str | None = None) -> Iterator[tuple[argparse.ArgumentParser, int, str | None]]:
    """The parser, then each sub-parser (depth first), with the help line its parent gives it."""
    yield parser, depth, summary
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield from walk(sub, depth + 1, helps.get(name))


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = parser.formatter_class(prog=parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


_CODE = re.compile(r"(`[^`]*`)")


def inline(text: str) -> str:
    """Help text as one markdown table cell: code spans kept, everything else literal."""
    out = []
    for part in _CODE.split(" ".join(text.split())):
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(part.replace("|", "\\|"))
        else:
            out.append(re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", part))
    return "".join(out)


def _argument(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser.formatter_class(prog=parser.prog, width=USAGE_WIDTH)
    if action.nargs == argparse.REMAINDER:
        return f"{action.metavar or action.dest} ..."
    if not action.option_strings:
        return formatter._metavar_formatter(action, action.dest)(1)[0]
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    value = formatter._format_args(action, action.dest.upper())
    return ", ".join(f"{opt} {value}" for opt in action.option_strings)


def _description(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser.formatter_class(prog=parser.prog, width=USAGE_WIDTH)
    parts: list[str] = []
    if action.help:
        parts.append(inline(formatter._expand_help(action)))
    elif action.nargs == argparse.REMAINDER:
        parts.append("the rest of the command line, passed on unparsed")
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        parts.append("one of: " + ", ".join(f"`{c}`" for c in action.choices))
    if action.required and action.option_strings:
        parts.append("**required**")
    default = action.default
    if (default not in (None, False, argparse.SUPPRESS, [])
            and action.nargs != 0 and "default" not in (action.help or "")):
        parts.append(f"default: `{default}`")
    return "; ".join(parts) or "&nbsp;"


def render(parser: argparse.ArgumentParser) -> str:
    """Markdown for every command of ``parser``: a heading, its help, usage and arguments."""
    top_epilog = parser.epilog
    lines: list[str] = []
    for sub, depth, summary in walk(parser):
        if depth > 0:
            lines += [f"{'#' * min(depth + 1, 4)} `{sub.prog}`", ""]
        text = sub.description if depth == 0 else (summary or sub.description)
        if text:
            lines += [inline(text), ""]
        lines += ["```text", _usage(sub), "```", ""]
        rows = [a for a in sub._actions
                if a.help != argparse.SUPPRESS
                and not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]
        if rows:
            lines += ["| argument | description |", "|---|---|"]
            lines += [f"| `{_argument(sub, a)}` | {_description(sub, a)} |" for a in rows]
            lines.append("")
        if depth == 0 and top_epilog:
            lines += ["### Exit codes", "", "```text", top_epilog.strip("\n"), "```", ""]
        elif sub.epilog == top_epilog and top_epilog:
            lines += ["Exit codes: [as for every command](#exit-codes).", ""]
        elif sub.epilog:
            lines += ["```text", sub.epilog.strip("\n"), "```", ""]
    return "\n".join(lines)


def reference() -> str:
    from attnperf.cli import build_parser
    return render(build_parser())


def on_page_markdown(markdown: str, page, **kwargs) -> str:  # mkdocs hook
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, reference())
