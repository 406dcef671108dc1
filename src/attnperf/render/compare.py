"""``attnperf compare``'s text and markdown output (the verdicts come from analysis.compare).

Text keeps the legacy per-config block (``Time (ms)``, ``Speedup``, verdict);
markdown is one table (tabulate's ``pipe`` format).  Names from the reports are
untrusted: escaped for the terminal (:func:`attnperf.render.escape.terminal`) or
markdown (:mod:`attnperf.render.markdown`).  Untimed values print as
``n/a``; configs of the baseline missing from the current report are listed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tabulate import tabulate

from ..analysis.compare import verdict_of
from . import fmt as numfmt
from . import markdown as md
from .escape import terminal


def render(result: dict[str, Any], fmt: str = "text") -> str:
    rows = result["comparisons"]
    if fmt == "markdown":
        table = tabulate(
            [[md.code(r["id"]), _f(r["baseline_time_ms"], ".4f"), _f(r["current_time_ms"], ".4f"),
              _f(r["speedup"], ".4f", "x"), _f(r["improvement_pct"], "+.2f", " %"), verdict_of(r)]
             for r in rows],
            headers=["kernel/config", "baseline ms", "current ms", "speedup", "change", "verdict"],
            tablefmt="pipe", colalign=("left", "right", "right", "right", "right", "left"),
            disable_numparse=True)
        lines = [f"**attnperf compare** (threshold {result['threshold']:+.1f} %): "
                 f"{'REGRESSION' if result['is_regression'] else 'no regression'}", "", table]
        lines += _unmatched_lines(result, "- ", md.code)
        return "\n".join(lines) + "\n"
    lines = []
    for r in rows:
        # names come from the reports: escaped for the terminal (no ANSI sequence acts)
        lines.append(f"Kernel: {terminal(r['kernel_name'])}  Config: {terminal(r['config_id'])}")
        if r["speedup"] is None:
            lines += [f"  Time (ms):  n/a (baseline {r['baseline_status']}, "
                      f"current {r['current_status']})",
                      "  Speedup:    n/a"]
        else:
            lines += [f"  Time (ms):  {r['baseline_time_ms']:.4f} -> {r['current_time_ms']:.4f} "
                      f"({r['improvement_pct']:+.2f}%, {r['statistic']})",
                      f"  Speedup:    {r['speedup']:.4f}x"]
        lines.append(f"  {verdict_of(r)}")
    lines += _unmatched_lines(result, "  ", terminal)
    lines.append(_overall(result))
    return "\n".join(lines) + "\n"


def _overall(result: dict[str, Any]) -> str:
    rows, missing = result["comparisons"], result.get("missing") or []
    text = (
        f"Overall: {'REGRESSION' if result['is_regression'] else 'OK'} "
        f"({len(result['regressions'])} of {len(rows)} configs past {result['threshold']:+.1f} %"
    )
    if result.get("coverage_lost"):
        text += (f"; {len(missing)} config(s) of the baseline missing from the current report: "
                 "lost coverage, pass --allow-missing if they were left out on purpose")
    elif missing:
        text += f"; {len(missing)} config(s) of the baseline not compared (--allow-missing)"
    return text + ")"


def _unmatched_lines(result: dict[str, Any], prefix: str,
                     quote: Callable[[str], str] = str) -> list[str]:
    out = []
    labels = {"baseline_only": "missing from the current report (in the baseline only)",
              "current_only": "new in the current report (not in the baseline)"}
    for side, ids in result["unmatched"].items():
        if ids:
            out.append(f"{prefix}{labels.get(side, side)}: {', '.join(quote(i) for i in ids)}")
    return out


def _f(v: float | None, spec: str, unit: str = "") -> str:
    text = numfmt.num(v, spec, none="n/a")
    return text if v is None else text + unit
