"""``attnperf compare``'s text and markdown output (the verdicts come from analysis.compare)."""

from __future__ import annotations

from typing import List

from ..analysis.compare import verdict_of
from . import fmt
from . import markdown as md


def render(result: dict, fmt: str = "text") -> str:
    rows = result["comparisons"]
    if fmt == "markdown":
        lines = [f"**attnperf compare** (threshold {result['threshold']:+.1f} %): "
                 f"{'REGRESSION' if result['is_regression'] else 'no regression'}", "",
                 "| kernel/config | baseline ms | current ms | speedup | change | verdict |",
                 "|---|---:|---:|---:|---:|---|"]
        for r in rows:
            lines.append(f"| {md.code(r['id'])} | {_f(r['baseline_time_ms'], '.4f')} | "
                         f"{_f(r['current_time_ms'], '.4f')} | {_f(r['speedup'], '.4f')}x | "
                         f"{_f(r['improvement_pct'], '+.2f')} % | "
                         f"{verdict_of(r)} |")
        lines += _unmatched_lines(result, "- ", md.code)
        return "\n".join(lines) + "\n"
    lines = []
    for r in rows:
        lines += [f"Kernel: {r['kernel_name']}  Config: {r['config_id']}",
                  f"  Time (ms):  {_f(r['baseline_time_ms'], '.4f')} -> {_f(r['current_time_ms'], '.4f')} "
                  f"({_f(r['improvement_pct'], '+.2f')}%, {r['statistic'] or 'n/a'})",
                  f"  Speedup:    {_f(r['speedup'], '.4f')}x",
                  f"  {verdict_of(r)}"]
    lines += _unmatched_lines(result, "  ")
    lines.append(f"Overall: {'REGRESSION' if result['is_regression'] else 'OK'} "
                 f"({len(result['regressions'])} of {len(rows)} configs past {result['threshold']:+.1f} %)")
    return "\n".join(lines) + "\n"


def _unmatched_lines(result: dict, prefix: str, quote=str) -> List[str]:
    out = []
    for side, ids in result["unmatched"].items():
        if ids:
            out.append(f"{prefix}unmatched ({side.replace('_', ' ')}): "
                       f"{', '.join(quote(i) for i in ids)}")
    return out


def _f(v, spec: str) -> str:
    return fmt.num(v, spec, none="n/a")
