"""A log-log roofline chart as inline SVG (no JavaScript, no CDN: works from file://).

x = arithmetic intensity (FLOP/byte), y = achieved TFLOP/s.  Each roof is the
memory slope ``bandwidth x intensity`` up to the ridge point, then the flat
compute ceiling; the ridge point (where they meet) is marked.  Points are
``<circle class="point">`` elements with a ``<title>`` tooltip, so a reader
(or a test) can count them.
"""

from __future__ import annotations

import dataclasses
import math
from html import escape
from typing import Dict, List, Optional, Sequence, Tuple

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f")
ROOF_DASH = ("", "8 4", "3 3", "10 3 2 3")


@dataclasses.dataclass(frozen=True)
class Roof:
    label: str  # e.g. "bfloat16"
    tflops: float
    bandwidth_gb_s: float
    source: str

    @property
    def ridge(self) -> float:
        return self.tflops * 1e12 / (self.bandwidth_gb_s * 1e9)


@dataclasses.dataclass(frozen=True)
class ChartPoint:
    x: float  # FLOP/byte
    y: float  # TFLOP/s
    group: str  # colour key (kernel)
    title: str  # tooltip
    problem: str = ""


def _decades(lo: float, hi: float) -> Tuple[int, int]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    return (a, b) if b > a else (a, a + 1)


def _tick(e: int) -> str:
    return f"{10.0 ** e:g}"


def colours(groups: Sequence[str]) -> Dict[str, str]:
    return {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}


def roofline_svg(points: List[ChartPoint], roofs: List[Roof], groups: Optional[List[str]] = None,
                 width: int = 820, height: int = 500, caption: str = "") -> str:
    """The chart; with neither points nor roofs, a labelled empty frame."""
    groups = groups or sorted({p.group for p in points})
    col = colours(groups)
    left, right, top, bottom = 70, 190, 20, 60
    pw, ph = width - left - right, height - top - bottom
    pts = [p for p in points if p.x > 0 and p.y > 0 and math.isfinite(p.x) and math.isfinite(p.y)]
    xs = [p.x for p in pts] + [r.ridge for r in roofs]
    ys = [p.y for p in pts] + [r.tflops for r in roofs]
    if not xs:
        xs, ys = [0.1, 1000.0], [0.001, 1.0]
    x0, x1 = _decades(min(xs) / 3, max(xs) * 3)
    y0, y1 = _decades(min(ys) / 3, max(ys) * 2)

    def sx(x: float) -> float:
        return left + pw * (math.log10(x) - x0) / (x1 - x0)

    def sy(y: float) -> float:
        return top + ph * (1 - (math.log10(y) - y0) / (y1 - y0))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="roofline" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(caption or "roofline chart")}">',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#888"/>']
    for e in range(x0, x1 + 1):
        x = sx(10.0 ** e)
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" '
                   f'stroke="#e5e5e5"/><text x="{x:.1f}" y="{top + ph + 16}" '
                   f'text-anchor="middle" font-size="11">{_tick(e)}</text>')
    for e in range(y0, y1 + 1):
        y = sy(10.0 ** e)
        out.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" '
                   f'stroke="#e5e5e5"/><text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                   f'font-size="11">{_tick(e)}</text>')
    out.append(f'<text x="{left + pw / 2:.0f}" y="{height - 18}" text-anchor="middle" '
               f'font-size="13">arithmetic intensity (FLOP/byte)</text>')
    out.append(f'<text x="16" y="{top + ph / 2:.0f}" text-anchor="middle" font-size="13" '
               f'transform="rotate(-90 16 {top + ph / 2:.0f})">achieved TFLOP/s</text>')
    xmin, xmax, ymin = 10.0 ** x0, 10.0 ** x1, 10.0 ** y0
    for i, r in enumerate(roofs):
        dash = ROOF_DASH[i % len(ROOF_DASH)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        xa = max(xmin, ymin * 1e3 / r.bandwidth_gb_s)
        ridge = min(max(r.ridge, xmin), xmax)
        mem = (f'M{sx(xa):.1f},{sy(r.bandwidth_gb_s * xa / 1e3):.1f} '
               f'L{sx(ridge):.1f},{sy(r.tflops):.1f} L{sx(xmax):.1f},{sy(r.tflops):.1f}')
        tip = (f"{r.label}: {r.tflops:.4g} TFLOP/s, {r.bandwidth_gb_s:.4g} GB/s, ridge "
               f"{r.ridge:.3g} FLOP/B ({r.source})")
        out.append(f'<path class="roof" d="{mem}" fill="none" stroke="#333" stroke-width="2"'
                   f'{dash_attr}><title>{escape(tip)}</title></path>')
        out.append(f'<line class="ridge" x1="{sx(ridge):.1f}" y1="{top + ph}" x2="{sx(ridge):.1f}" '
                   f'y2="{sy(r.tflops):.1f}" stroke="#999" stroke-dasharray="2 3"/>')
        out.append(f'<rect class="ridge-point" x="{sx(ridge) - 4:.1f}" y="{sy(r.tflops) - 4:.1f}" '
                   f'width="8" height="8" fill="#333"><title>{escape(tip)}</title></rect>')
        out.append(f'<text x="{sx(xmax) - 4:.1f}" y="{sy(r.tflops) - 5 - 12 * i:.1f}" text-anchor="end" '
                   f'font-size="11">{escape(r.label)} {r.tflops:.3g} TFLOP/s</text>')
        out.append(f'<text x="{sx(ridge) + 6:.1f}" y="{sy(r.tflops) + 14:.1f}" font-size="10" '
                   f'fill="#555">ridge {r.ridge:.3g}</text>')
    for p in pts:
        out.append(f'<circle class="point" cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="5" '
                   f'fill="{col.get(p.group, "#000")}" fill-opacity="0.85" stroke="#000" '
                   f'stroke-width="0.6" data-kernel="{escape(p.group)}" '
                   f'data-problem="{escape(p.problem)}"><title>{escape(p.title)}</title></circle>')
    if not pts:
        out.append(f'<text class="empty" x="{left + pw / 2:.0f}" y="{top + ph / 2:.0f}" '
                   f'text-anchor="middle" font-size="14" fill="#a00">no measured points in the '
                   f'latest run</text>')
    lx, ly = left + pw + 16, top + 8
    out.append(f'<text x="{lx}" y="{ly}" font-size="12" font-weight="bold">kernel</text>')
    for i, g in enumerate(groups):
        y = ly + 16 * (i + 1)
        out.append(f'<rect class="legend" x="{lx}" y="{y - 9}" width="10" height="10" '
                   f'fill="{col[g]}"/><text x="{lx + 16}" y="{y}" font-size="12">{escape(g)}</text>')
    y = ly + 16 * (len(groups) + 2)
    if roofs:
        out.append(f'<text x="{lx}" y="{y}" font-size="12" font-weight="bold">roofs</text>')
        for i, r in enumerate(roofs):
            y += 16
            dash = ROOF_DASH[i % len(ROOF_DASH)]
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<line x1="{lx}" y1="{y - 4}" x2="{lx + 22}" y2="{y - 4}" stroke="#333" '
                       f'stroke-width="2"{dash_attr}/><text x="{lx + 28}" y="{y}" '
                       f'font-size="12">{escape(r.label)}</text>')
    else:
        out.append(f'<text x="{lx}" y="{y}" font-size="11" fill="#a00">no ceilings recorded</text>')
    out.append("</svg>")
    return "\n".join(out)
