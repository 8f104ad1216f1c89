"""The tree's legend as HTML: one entry per trace of the run's figure, drawn from its style.

The page draws the legend itself (templates/_legend.html.jinja), not Plotly: a step that
brings a new kind of node then only shows an entry (static/app.js showLegend), where Plotly
would lay its legend out and redraw the whole figure. Each entry is made from the trace it
names (app/figures.py tree_traces), so the legend and the tree cannot disagree.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

from app.figures import tree_traces

__all__ = ["tree_legend"]


def _polygon(sides: int, radius: float, rotate: float = -90.0, inner: float = 0.0) -> str:
    """SVG path of a regular polygon (or a star, with `inner`) centred in a 20 x 20 box."""
    points = []
    count = sides * 2 if inner else sides
    for k in range(count):
        r = inner if inner and k % 2 else radius
        angle = math.radians(rotate + 360.0 * k / count)
        points.append(f"{10 + r * math.cos(angle):.2f},{10 + r * math.sin(angle):.2f}")
    return "M" + "L".join(points) + "Z"


# Plotly marker symbols of the tree as SVG paths (20 x 20).
_SHAPES = {
    "circle": "M4,10a6,6 0 1,0 12,0a6,6 0 1,0 -12,0",
    "diamond": "M10,2L18,10L10,18L2,10Z",
    "triangle-up": "M10,3L17.5,16H2.5Z",
    "square": "M4,4H16V16H4Z",
    "star": _polygon(5, 8.5, inner=3.6),
    "x": "M4,7L7,4L10,7L13,4L16,7L13,10L16,13L13,16L10,13L7,16L4,13L7,10Z",
    "hexagon": _polygon(6, 7.5, rotate=0.0),
    "octagon": _polygon(8, 8, rotate=22.5),
}


def _entry(trace: dict[str, Any]) -> dict[str, Any]:
    marker = trace["marker"]
    symbol, colour = marker["symbol"], marker["color"]
    rim = marker["line"]["width"]
    open_ = symbol.endswith("-open")
    return {"meta": trace["meta"], "label": trace["name"],
            "d": _SHAPES[symbol.removesuffix("-open")],
            "fill": "none" if open_ else colour,
            "stroke": colour if open_ else marker["line"]["color"],
            "stroke_width": max(rim, 1.5) if open_ else rim,
            "opacity": marker.get("opacity", 1.0)}


@cache
def tree_legend() -> tuple[dict[str, Any], ...]:
    """Every mark the tree can draw, in the figure's trace order (the links aside).

    Built once (it depends on constants only); callers must not change it."""
    return tuple(_entry(t) for t in tree_traces() if t["meta"] != "edges")
