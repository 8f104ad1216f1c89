"""Graph + positions -> plotly figure dicts (the only module that imports plotly).

Node state is drawn with colour AND marker shape (Okabe-Ito palette, colour-blind safe):
the leaked page (orphaned and unsync) is a big vermillion star with a black rim. Pages the
current step touched get a black ring; the selected page a square frame. The tree figure is
built as a plain dict (fast at 100,000 points); tests check it against plotly's schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.graph import CHANGED_KEEP_LIMIT, Layout, Node, TreeView
from mmu_model import BootStats

__all__ = [
    "GL_THRESHOLD",
    "STATUS_STYLES",
    "boots_figure",
    "figure_from_dict",
    "tree_figure",
]

GL_THRESHOLD = 2_000  # visible nodes past which the tree uses WebGL (scattergl)

# Okabe & Ito (2008) palette.
BLACK, ORANGE, SKY, GREEN, YELLOW, BLUE, VERMILLION, PURPLE = (
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
)
GREY = "#999999"

# status -> (legend label, colour, symbol, size, opacity, rim width)
STATUS_STYLES: dict[str, tuple[str, str, str, int, float, float]] = {
    "root": ("root", BLUE, "diamond", 18, 1.0, 1.0),
    "ex-root": ("former root (no parent)", SKY, "diamond-open", 15, 1.0, 2.0),
    "synced": ("synced", GREEN, "circle", 10, 1.0, 0.5),
    "unsync": ("unsync", ORANGE, "triangle-up", 13, 1.0, 0.5),
    "orphan": ("orphan (no parent)", PURPLE, "square", 13, 1.0, 1.0),
    "orphan-unsync": ("LEAK: orphaned unsync page", VERMILLION, "star", 26, 1.0, 2.0),
    "zapped": ("zapped this step (ghost)", GREY, "x", 12, 0.4, 0.0),
    "summary": ("folded healthy pages", GREEN, "hexagon-open", 16, 1.0, 2.0),
}
STATUS_ORDER: tuple[str, ...] = tuple(STATUS_STYLES)
LEVEL_NAMES = {1: "l1 PT", 2: "l2 PD", 3: "l3 PDPT", 4: "l4 PML4", 5: "l5 PML5"}

_SP_HOVER = (
    "<b>sp #%{customdata[0]}</b> (%{customdata[9]})<br>gfn %{customdata[1]}<br>"
    "role %{customdata[2]}<br>level %{customdata[3]}<br>unsync %{customdata[4]}<br>"
    "write flooding count %{customdata[5]}<br>parent SPTEs %{customdata[6]}<br>"
    "leaf SPTEs %{customdata[7]}<br>rmap entries %{customdata[8]}<extra></extra>"
)
_SUMMARY_HOVER = (
    "<b>%{customdata[1]} %{customdata[2]} level-1 pages</b><br>under sp #%{customdata[3]}"
    "<br>folded into one node; click to select their parent<extra></extra>"
)


def _sp_customdata(node: Node) -> list[Any]:
    sp = node.sp
    assert sp is not None
    return [
        sp.id, f"{sp.gfn:#x}", sp.role, sp.level, "yes" if sp.unsync else "no",
        sp.write_flooding_count, len(sp.parents), sp.leaf_sptes, sp.rmap_entries, node.status,
    ]


def _summary_size(node: Node) -> int:
    return min(16 + 2 * node.count.bit_length(), 34)


def _ring_size(node: Node) -> int:
    """The "changed" ring goes around the marker: wider than a (big) summary node."""
    return _summary_size(node) + 12 if node.status == "summary" else 30


def _num(value: float) -> float | int:
    return value if value % 1 else int(value)


def tree_figure(
    view: TreeView,
    layout: Layout,
    *,
    max_level: int,
    uirevision: str,
    title: str = "",
    height: int = 460,
) -> dict[str, Any]:
    """The shadow page tree as a plotly figure dict."""
    scatter = "scattergl" if view.n_nodes > GL_THRESHOLD else "scatter"
    pos = {node.id: (node.x, node.y) for node in view.nodes}

    ex: list[float | int | None] = []
    ey: list[float | int | None] = []
    for parent, child in view.edges:
        px, py = pos[parent]
        cx, cy = pos[child]
        ex += [_num(px), _num(cx), None]
        ey += [_num(py), _num(cy), None]
    data: list[dict[str, Any]] = [
        {
            "type": scatter, "mode": "lines", "name": "SPTE links", "x": ex, "y": ey,
            "line": {"color": "#7f7f7f", "width": 1}, "hoverinfo": "skip", "showlegend": False,
            "meta": "edges",
        }
    ]

    by_status: dict[str, list[Node]] = {status: [] for status in STATUS_ORDER}
    for node in view.nodes:
        by_status[node.status].append(node)
    for status in STATUS_ORDER:
        nodes = by_status[status]
        label, colour, symbol, size, opacity, rim = STATUS_STYLES[status]
        trace: dict[str, Any] = {
            "type": scatter, "mode": "markers", "name": label, "meta": status,
            "x": [_num(n.x) for n in nodes], "y": [_num(n.y) for n in nodes],
            "marker": {
                "color": colour, "symbol": symbol, "size": size, "opacity": opacity,
                "line": {"color": BLACK, "width": rim},
            },
            "showlegend": bool(nodes),
        }
        if status == "summary":
            trace["mode"] = "markers+text"
            trace["text"] = [f"{n.count:,}" for n in nodes]
            trace["textposition"] = "bottom center"
            trace["customdata"] = [[n.id, n.count, n.fold_status, n.parent] for n in nodes]
            trace["hovertemplate"] = _SUMMARY_HOVER
            trace["marker"]["color"] = [
                {"unsync": ORANGE, "zapped": GREY}.get(n.fold_status, GREEN) for n in nodes
            ]
            trace["marker"]["size"] = [_summary_size(n) for n in nodes]
        else:
            trace["customdata"] = [_sp_customdata(n) for n in nodes]
            trace["hovertemplate"] = _SP_HOVER
        data.append(trace)

    changed = [n for n in view.nodes if n.changed]
    data.append({
        "type": scatter, "mode": "markers", "name": "changed this step", "meta": "changed",
        "x": [_num(n.x) for n in changed], "y": [_num(n.y) for n in changed],
        "marker": {"symbol": "circle-open", "size": [_ring_size(n) for n in changed],
                   "color": BLACK,
                   "line": {"color": BLACK, "width": 2.5}},
        "hoverinfo": "skip", "showlegend": bool(changed),
    })
    chosen = [n for n in view.nodes if n.selected]
    data.append({
        "type": scatter, "mode": "markers", "name": "selected", "meta": "selected",
        "x": [_num(n.x) for n in chosen], "y": [_num(n.y) for n in chosen],
        "marker": {"symbol": "square-open", "size": 36, "color": BLUE,
                   "line": {"color": BLUE, "width": 3}},
        "hoverinfo": "skip", "showlegend": bool(chosen),
    })

    levels = list(range(1, max_level + 1))
    notes = []
    if view.folded:
        notes.append(f"{view.folded:,} healthy level-1 pages folded into summary nodes")
    if view.rings_dropped:
        notes.append(f"this step touched {view.n_changed:,} pages: too many to ring one by one")
    elif view.n_changed > CHANGED_KEEP_LIMIT:
        notes.append(f"this step touched {view.n_changed:,} pages: "
                     "rings mark the nodes they are folded into")
    annotations = []
    if notes:
        annotations.append({
            "text": "; ".join(notes),
            "xref": "paper", "yref": "paper", "x": 0, "y": 0, "yanchor": "top",
            "showarrow": False, "font": {"size": 11, "color": "#555555"},
        })
    fig_layout: dict[str, Any] = {
        "template": "none",
        "height": height,
        "margin": {"l": 70, "r": 10, "t": 30 if title else 10, "b": 40},
        "uirevision": uirevision,
        "hovermode": "closest",
        "dragmode": "zoom",
        "showlegend": True,
        "legend": {"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"},
        "xaxis": {
            "title": {"text": "L2 guest-physical order →"},
            "range": [-1, layout.width],
            "showgrid": False, "zeroline": False, "showticklabels": False,
        },
        "yaxis": {
            "tickvals": levels, "ticktext": [LEVEL_NAMES.get(lv, f"l{lv}") for lv in levels],
            "range": [0.2, max_level + 0.6], "fixedrange": True, "showgrid": True,
            "gridcolor": "#eeeeee", "zeroline": False,
        },
        "annotations": annotations,
    }
    if title:
        fig_layout["title"] = {"text": title, "x": 0, "font": {"size": 14}}
    return {"data": data, "layout": fig_layout}


_BOOT_SERIES = (
    ("shadow_pages", "shadow pages", BLUE),
    ("unsync", "unsync pages", ORANGE),
    ("orphans", "orphans", VERMILLION),
)


def boots_figure(
    variants: Sequence[tuple[str, Sequence[BootStats], bool]], *, current_boot: int | None = None
) -> dict[str, Any]:
    """Per-boot lines: pages, unsync, orphans (top) and hash-chain cost (bottom).

    `variants` are (label, per-boot stats, dashed) pairs, e.g. without and with the fix.
    """
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.62, 0.38],
        subplot_titles=("shadow MMU state at the end of each L2 boot",
                        "hash-chain entries walked per boot"),
    )
    for label, boots, dashed in variants:
        xs = [b.boot for b in boots]
        dash = "dash" if dashed else "solid"
        for attr, name, colour in _BOOT_SERIES:
            fig.add_trace(
                go.Scatter(
                    x=xs, y=[getattr(b, attr) for b in boots], mode="lines",
                    name=f"{name} ({label})", legendgroup=label,
                    line={"color": colour, "dash": dash},
                ),
                row=1, col=1,
            )
        fig.add_trace(
            go.Scatter(
                x=xs, y=[b.hash_walked for b in boots], mode="lines",
                name=f"hash-chain cost ({label})", legendgroup=label,
                line={"color": BLACK, "dash": dash},
            ),
            row=2, col=1,
        )
    if current_boot is not None:
        fig.add_vline(x=current_boot, line={"color": GREY, "width": 1, "dash": "dot"})
    fig.update_layout(
        template="none", height=420, margin={"l": 60, "r": 10, "t": 30, "b": 40},
        legend={"orientation": "h", "y": -0.12}, hovermode="x unified",
    )
    fig.update_xaxes(title_text="L2 boot", row=2, col=1)
    result: dict[str, Any] = fig.to_plotly_json()
    return result


def figure_from_dict(figure: dict[str, Any]) -> go.Figure:
    """Validate a figure dict against plotly's schema (raises ValueError if invalid)."""
    return go.Figure(figure)
