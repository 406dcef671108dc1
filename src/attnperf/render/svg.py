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
from collections.abc import Sequence

from markupsafe import Markup

from .html import render

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


def _decades(lo: float, hi: float) -> tuple[int, int]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    return (a, b) if b > a else (a, a + 1)


def _tick(e: int) -> str:
    return f"{10.0 ** e:g}"


def colours(groups: Sequence[str]) -> dict[str, str]:
    return {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}


def roofline_svg(points: list[ChartPoint], roofs: list[Roof], groups: list[str] | None = None,
                 width: int = 820, height: int = 500, caption: str = "") -> Markup:
    """The chart (``templates/roofline.svg``); with neither points nor roofs, a labelled
    empty frame.  Geometry is computed here, markup and escaping are the template's."""
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

    def sx(x: float) -> str:
        return f"{left + pw * (math.log10(x) - x0) / (x1 - x0):.1f}"

    def sy(y: float) -> str:
        return f"{top + ph * (1 - (math.log10(y) - y0) / (y1 - y0)):.1f}"

    def shift(pos: str, by: float) -> str:
        return f"{float(pos) + by:.1f}"

    xmin, xmax, ymin = 10.0 ** x0, 10.0 ** x1, 10.0 ** y0
    lx, ly = left + pw + 16, top + 8
    roof_rows = []
    y = ly + 16 * (len(groups) + 2)
    for i, r in enumerate(roofs):
        xa = max(xmin, ymin * 1e3 / r.bandwidth_gb_s)
        ridge = min(max(r.ridge, xmin), xmax)
        rx, ry = sx(ridge), sy(r.tflops)
        roof_rows.append({
            "path": (f"M{sx(xa)},{sy(r.bandwidth_gb_s * xa / 1e3)} L{rx},{ry} "
                     f"L{sx(xmax)},{ry}"),
            "dash": ROOF_DASH[i % len(ROOF_DASH)],
            "tip": (f"{r.label}: {r.tflops:.4g} TFLOP/s, {r.bandwidth_gb_s:.4g} GB/s, ridge "
                    f"{r.ridge:.3g} FLOP/B ({r.source})"),
            "rx": rx, "ry": ry, "rx_box": shift(rx, -4), "ry_box": shift(ry, -4),
            "label": f"{r.label} {r.tflops:.3g} TFLOP/s", "label_x": shift(sx(xmax), -4),
            "label_y": shift(ry, -5 - 12 * i), "ridge_x": shift(rx, 6), "ridge_y": shift(ry, 14),
            "ridge": f"{r.ridge:.3g}", "legend_y": y + 16 * (i + 1)})
    legend_roofs = [dict(row, label=r.label) for row, r in zip(roof_rows, roofs, strict=False)]
    return Markup(render(
        "roofline.svg", width=width, height=height, caption=caption, left=left, top=top,
        pw=pw, ph=ph,
        xticks=[{"pos": sx(10.0 ** e), "label": _tick(e)} for e in range(x0, x1 + 1)],
        yticks=[{"pos": sy(10.0 ** e), "label_pos": shift(sy(10.0 ** e), 4), "label": _tick(e)}
                for e in range(y0, y1 + 1)],
        roofs=roof_rows, legend_roofs=legend_roofs,
        points=[{"cx": sx(p.x), "cy": sy(p.y), "colour": col.get(p.group, "#000"),
                 "group": p.group, "problem": p.problem, "title": p.title} for p in pts],
        lx=lx, ly=ly, legend=[{"y": ly + 16 * (i + 1), "colour": col[g], "name": g}
                              for i, g in enumerate(groups)],
        roof_legend_y=y))
