"""Tree views -> what plotly draws: a figure fixed per run, and each step's nodes as records.

The tree figure is split the way the browser updates it. The run's part (its traces, their
styles, the axes, and the position of every page: run_layout_json) is sent once, at its own
cacheable URL. A step is a TreeState: one record per drawn node, keyed by the node's stable
key, plus edges, rings and the selection; tree_delta() says what changed between two
states, and static/app.js applies that with Plotly.update on the traces of the run's figure.
tree_figure() builds the same figure in Python (for tests and schema checks).

Node state is drawn with colour AND marker shape (Okabe-Ito palette, colour-blind safe):
the leaked page (orphaned and unsync) is a big vermillion star with a black rim. Pages the
current step touched get a black ring; the selected page a square frame. Folded healthy
pages are open hexagons under their parent; folded leaks are their state's marker, sized by
count, in a per-boot strip of their level's row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.graph import CHANGED_KEEP_LIMIT, DETACHED, Layout, Node, TreeView
from mmu_model import BootStats

__all__ = [
    "STATUS_STYLES",
    "TRACE_METAS",
    "TreeState",
    "boots_figure",
    "figure_from_dict",
    "park",
    "run_layout_json",
    "tree_delta",
    "tree_figure",
    "tree_state",
]

# Okabe & Ito (2008) palette.
BLACK, ORANGE, SKY, GREEN, YELLOW, BLUE, VERMILLION, PURPLE = (
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
)
GREY = "#999999"
# Projector-proof: every state marker stands out from the white plot at 3:1 or more (WCAG
# 1.4.11 non-text contrast) by its fill, its outline, or a black rim of 1 px or more. Sky
# blue (2.3:1) and orange (2.2:1) do not on their own: former roots, drawn as an outline
# only, take a darker sky; unsync pages keep orange inside a 1 px black rim; an open
# (outline) summary of unsync pages takes a dark orange; a ghost is a mid grey at 0.8
# opacity (blended on white about #8b8b8b, 3.4:1) where it used to be #999 at 0.4 (1.5:1).
DARK_SKY, DARK_ORANGE, GHOST = "#2A7FBA", "#A66300", "#6E6E6E"
PLOT_BG = "#ffffff"
FONT_SIZE = 14  # every label of the tree and its notes: readable on a projector

# status -> (legend label, colour, symbol, size, opacity, rim width)
STATUS_STYLES: dict[str, tuple[str, str, str, int, float, float]] = {
    "root": ("root", BLUE, "diamond", 18, 1.0, 1.0),
    "ex-root": ("former root (no parent)", DARK_SKY, "diamond-open", 15, 1.0, 2.0),
    "synced": ("synced", GREEN, "circle", 10, 1.0, 0.5),
    "unsync": ("unsync", ORANGE, "triangle-up", 13, 1.0, 1.0),
    "orphan": ("orphan (no parent)", PURPLE, "square", 13, 1.0, 1.0),
    "orphan-unsync": ("LEAK: orphaned unsync page", VERMILLION, "star", 26, 1.0, 2.0),
    "zapped": ("zapped this step (ghost)", GHOST, "x", 12, 0.8, 0.0),
    "summary": ("folded healthy pages", GREEN, "hexagon-open", 16, 1.0, 2.0),
    "fold": ("folded subtrees (a range of pages and all below them)", GREEN, "hexagon", 16,
             1.0, 1.0),
}
# A summary node's colour by the state of the pages it folds (it is an outline: see above).
SUMMARY_COLOURS = {"synced": GREEN, "unsync": DARK_ORANGE, "zapped": GHOST}
# A fold node's fill: orange (inside its black rim) when any page it folds is unsync.
FOLD_COLOURS = {"synced": GREEN, "unsync": ORANGE}
# The page's legend is HTML above the plot (app/legend.py, #tree-legend), in a band of fixed
# height, so a step that brings a new kind of node (a leak, a ghost) never moves the tree and
# never asks Plotly to lay a legend out. An exported image draws Plotly's own legend in a band
# this high above the plot (static/app.js forImage: the layout's legend.maxheight).
LEGEND_BAND_PX = 76
STATUS_ORDER: tuple[str, ...] = tuple(STATUS_STYLES)
_GROUP_LABELS = {"orphan-unsync": "folded leaked pages, by boot", "orphan":
                 "folded orphans, by boot", "ex-root": "folded former roots, by boot"}
# Trace order of the tree figure (each trace's `meta`): the run's figure and every step's
# records use these indexes.
TRACE_METAS: tuple[str, ...] = (
    "edges", *STATUS_ORDER, *(f"group:{s}" for s in DETACHED), "changed", "selected",
    "differs",
)
# Compare mode: an outline around each page the other run does not hold in the same state
# (app/compare.py says which): (legend label, colour, symbol, size, line width).
DIFFERS_STYLE: tuple[str, str, str, int, float] = (
    "differs from the other run", "#882255", "octagon-open", 38, 3.0)
_OVERLAYS = ("changed", "selected", "differs")
_TRACE = {meta: i for i, meta in enumerate(TRACE_METAS)}
LEVEL_NAMES = {1: "l1 PT", 2: "l2 PD", 3: "l3 PDPT", 4: "l4 PML4", 5: "l5 PML5"}
GROUP_LABEL_MAX_BOOTS = 24  # leak groups show their count as text up to this many boots
# About the plot's width in pixels: a boot's leak group is never wider than its share of it,
# so 100 boots make a strip of 100 markers, not a wall.
GROUP_STRIP_PX = 1_100

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
_FOLD_HOVER = (
    "<b>%{text}</b><br>folded into one node (too many for the row); click to draw them one "
    "by one<extra></extra>"
)
_GROUP_HOVER = (
    "<b>%{customdata[1]} %{customdata[2]} level-%{customdata[4]} pages</b><br>detached in "
    "L2 boot %{customdata[3]}<br>folded into one node; click to draw them one by one"
    "<extra></extra>"
)


def _sp_customdata(node: Node) -> tuple[Any, ...]:
    sp = node.sp
    assert sp is not None
    return (
        sp.id, f"{sp.gfn:#x}", sp.role, sp.level, "yes" if sp.unsync else "no",
        sp.write_flooding_count, len(sp.parents), sp.leaf_sptes, sp.rmap_entries, node.status,
    )


_COUNT_SIZE_STEPS = 9  # a folded node's marker grows 2 px per bit of its count, 9 times
_FOLD_SIZE = 16  # a summary or fold node's marker, for a count of 0
_RING_SIZE, _RING_MARGIN = 30, 12  # the "changed" ring: its size, and how much it outgrows
# One count of each size a folded node can take (0, 1, 2, 4, ...: each bit length).
_COUNTS_BY_SIZE = tuple(1 << k >> 1 for k in range(_COUNT_SIZE_STEPS + 1))


def _count_size(count: int, base: int) -> int:
    return min(base + 2 * count.bit_length(), base + 2 * _COUNT_SIZE_STEPS)


def _ring_size(node: Node) -> int:
    """The "changed" ring goes around the marker: wider than a (big) summary node."""
    if node.status in ("summary", "fold"):
        return _count_size(node.count, _FOLD_SIZE) + _RING_MARGIN
    return _RING_SIZE


def _group_size(status: str, count: int, boots: int) -> int:
    """A leak group's marker: by its count, and never wider than its boot's share of the
    strip."""
    return min(_count_size(count, STATUS_STYLES[status][3] // 2),
               max(GROUP_STRIP_PX // boots, 7))


def park(boots: int) -> dict[str, Any]:
    """Where the browser's first draw of a run puts points off the plot (static/treepatch.js
    park): far left of the x range [-1, width], on the level-1 row; and, per trace whose
    markers are sized per node, every size a node of it can take at `boots` boots (a point
    goes in each empty trace and in each size a trace has not drawn, so a step bringing
    any kind or size is patched)."""
    fold_sizes = sorted({_count_size(c, _FOLD_SIZE) for c in _COUNTS_BY_SIZE})
    sizes: dict[str, list[int]] = {
        "summary": fold_sizes, "fold": fold_sizes,
        "changed": sorted({_RING_SIZE, *(size + _RING_MARGIN for size in fold_sizes)}),
    }
    for status in DETACHED:
        sizes[f"group:{status}"] = sorted({_group_size(status, c, boots)
                                           for c in _COUNTS_BY_SIZE})
    return {"x": -1_000_000, "y": 1, "sizes": sizes}


def _num(value: float) -> float | int:
    value = round(value, 3)
    return value if value % 1 else int(value)


# A record: (trace index, x, y, size, colour, text, customdata); x and y are None when the
# node sits where the run's layout puts its page, size and colour None for the trace's own.
Record = tuple[int, Any, Any, Any, Any, Any, tuple[Any, ...]]


@dataclass(frozen=True)
class TreeState:
    """Everything the tree shows at one step, keyed by stable node keys."""

    records: dict[str, Record]
    edges: frozenset[tuple[str, str]]
    rings: tuple[tuple[str, int], ...]
    selected: tuple[str, ...]
    note: str
    positions: dict[str, tuple[float, float]] = field(repr=False, compare=False)


def _record(node: Node, layout: Layout, boots: int) -> Record:
    fixed = layout.pos.get(node.id) if node.sp is not None else None
    x, y = (None, None) if fixed == (node.x, node.y) else (_num(node.x), _num(node.y))
    if node.status == "summary":
        colour = SUMMARY_COLOURS.get(node.fold_status, GREEN)
        return (_TRACE["summary"], x, y, _count_size(node.count, _FOLD_SIZE), colour,
                f"{node.count:,}", (node.id, node.count, node.fold_status, node.parent))
    if node.status == "fold":
        return (_TRACE["fold"], x, y, _count_size(node.count, _FOLD_SIZE),
                FOLD_COLOURS.get(node.fold_status, GREEN), fold_text(node),
                (node.id, node.count, node.fold_status, f"r{node.range}", node.level))
    if node.status == "group":
        size = _group_size(node.fold_status, node.count, boots)
        return (_TRACE[f"group:{node.fold_status}"], x, y, size, None,
                f"{node.count:,}" if boots <= GROUP_LABEL_MAX_BOOTS else None,
                (node.id, node.count, node.fold_status, node.boot, node.level))
    return (_TRACE[node.status], x, y, None, None, None, _sp_customdata(node))


def fold_text(node: Node) -> str:
    """What a fold node holds, level by level, and its parent (its hover text): '8 l2 PD
    pages, 4,096 l1 PT pages (12 unsync) under them<br>under sp #3'."""
    parts = []
    for level, pages, unsync in node.under:
        name = LEVEL_NAMES.get(level, f"l{level}")
        text = f"{pages:,} {name} page{'s' if pages != 1 else ''}"
        parts.append(text + (f" ({unsync:,} unsync)" if unsync else ""))
    text = ", ".join(parts) + (" under them" if len(parts) > 1 else "")
    return f"{text}<br>under sp #{node.parent}"


def _notes(view: TreeView) -> str:
    notes = []
    if view.ranges_folded:
        folds = sum(1 for node in view.nodes if node.status == "fold")
        notes.append(f"{view.ranges_folded:,} healthy pages folded with their subtrees into "
                     f"{folds:,} range nodes (filled hexagons; click one to open it)")
    if view.folded:
        notes.append(f"{view.folded:,} healthy level-1 pages folded into summary nodes")
    if view.leaks_folded:
        notes.append(f"{view.leaks_folded:,} detached pages folded by the L2 boot that "
                     "detached them (left: boot 1); click a group to open it")
    if view.rings_dropped:
        notes.append(f"this step touched {view.n_changed:,} pages: too many to ring one by one")
    elif view.n_changed > CHANGED_KEEP_LIMIT:
        notes.append(f"this step touched {view.n_changed:,} pages: "
                     "rings mark the nodes they are folded into")
    return "; ".join(notes)


def tree_state(view: TreeView, layout: Layout, *, boots: int = 1) -> TreeState:
    """The records, edges, rings and selection of a tree view."""
    keys = {node.id: node.key for node in view.nodes}
    records = {node.key: _record(node, layout, boots) for node in view.nodes}
    return TreeState(
        records=records,
        edges=frozenset((keys[p], keys[c]) for p, c in view.edges),
        rings=tuple((n.key, _ring_size(n)) for n in view.nodes if n.changed),
        selected=tuple(n.key for n in view.nodes if n.selected),
        note=_notes(view),
        positions={node.key: (node.x, node.y) for node in view.nodes},
    )


def tree_delta(old: TreeState | None, new: TreeState) -> dict[str, Any]:
    """What the browser needs to go from `old` (None: nothing drawn) to `new`."""
    if old is None:
        old = TreeState({}, frozenset(), (), (), "", {})
    return {
        "set": {k: r for k, r in new.records.items() if old.records.get(k) != r},
        "drop": sorted(k for k in old.records if k not in new.records),
        "edges_add": sorted(new.edges - old.edges),
        "edges_cut": sorted(old.edges - new.edges),
        "rings": new.rings,
        "selected": new.selected,
        "note": new.note,
    }


def tree_traces() -> list[dict[str, Any]]:
    """The run figure's traces, every one empty, in TRACE_METAS order: names and styles
    of the nodes, links and overlays (the page's legend is made from them: app/legend.py)."""
    data: list[dict[str, Any]] = [{
        "type": "scatter", "mode": "lines", "name": "SPTE links", "x": [], "y": [],
        "line": {"color": "#7f7f7f", "width": 1}, "hoverinfo": "skip", "showlegend": False,
        "meta": "edges",
    }]
    for meta in TRACE_METAS[1:-len(_OVERLAYS)]:
        status = meta.removeprefix("group:")
        label, colour, symbol, size, opacity, rim = STATUS_STYLES[status]
        trace: dict[str, Any] = {
            "type": "scatter", "mode": "markers", "name": label, "meta": meta,
            "x": [], "y": [], "customdata": [],
            "marker": {"color": colour, "symbol": symbol, "size": size, "opacity": opacity,
                       "line": {"color": BLACK, "width": rim}},
            "hovertemplate": _SP_HOVER, "showlegend": False,
        }
        if status == "summary":
            trace |= {"mode": "markers+text", "textposition": "bottom center",
                      "hovertemplate": _SUMMARY_HOVER}
        elif status == "fold":  # its text is for the hover only: labels cost every redraw
            trace |= {"hovertemplate": _FOLD_HOVER}
        elif meta.startswith("group:"):
            trace |= {"mode": "markers+text", "textposition": "middle right",
                      "name": _GROUP_LABELS[status], "hovertemplate": _GROUP_HOVER}
        data.append(trace)
    data.append({
        "type": "scatter", "mode": "markers", "name": "changed this step", "meta": "changed",
        "x": [], "y": [], "marker": {"symbol": "circle-open", "size": 30, "color": BLACK,
                                     "line": {"color": BLACK, "width": 2.5}},
        "hoverinfo": "skip", "showlegend": False,
    })
    data.append({
        "type": "scatter", "mode": "markers", "name": "selected", "meta": "selected",
        "x": [], "y": [], "marker": {"symbol": "square-open", "size": 36, "color": BLUE,
                                     "line": {"color": BLUE, "width": 3}},
        "hoverinfo": "skip", "showlegend": False,
    })
    label, colour, symbol, size, width = DIFFERS_STYLE
    data.append({
        "type": "scatter", "mode": "markers", "name": label, "meta": "differs",
        "x": [], "y": [], "marker": {"symbol": symbol, "size": size, "color": colour,
                                     "line": {"color": colour, "width": width}},
        "hoverinfo": "skip", "showlegend": False,
    })
    return data


def _run_figure(layout: Layout, *, max_level: int, uirevision: str, title: str = "",
                height: int | None = None) -> dict[str, Any]:
    """The run's tree figure with every trace empty (the browser fills them per step)."""
    data = tree_traces()
    levels = list(range(1, max_level + 1))
    fig_layout: dict[str, Any] = {
        "template": "none",
        "font": {"size": FONT_SIZE},
        "plot_bgcolor": PLOT_BG, "paper_bgcolor": PLOT_BG,
        "margin": {"l": 70, "r": 10, "t": 30 if title else 12, "b": 40},
        "uirevision": uirevision,
        "hovermode": "closest",
        "dragmode": "zoom",
        "showlegend": False,
        "legend": {"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom",
                   "maxheight": LEGEND_BAND_PX},
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
        "annotations": [],
    }
    if height is not None:  # else the page's CSS sizes the tree to the viewport
        fig_layout["height"] = height
    if title:
        fig_layout["title"] = {"text": title, "x": 0, "font": {"size": FONT_SIZE}}
    return {"data": data, "layout": fig_layout}


def note_annotations(note: str) -> list[dict[str, Any]]:
    """The note under the plot of a whole figure (tree_figure: the compare baseline). The
    page's own tree shows it as HTML instead (#tree-note), and its exports add it back
    as this annotation (static/app.js withNote)."""
    if not note:
        return []
    return [{"text": note, "xref": "paper", "yref": "paper", "x": 0, "y": 0, "yanchor": "top",
             "showarrow": False, "font": {"size": FONT_SIZE, "color": "#555555"}}]


def run_layout_json(layout: Layout, *, max_level: int, uirevision: str, boots: int = 1
                    ) -> tuple[bytes, str]:
    """The run's part of the tree: its figure and every page's (x, y); and its hash."""
    pos = layout.pos
    top = max(pos, default=0)
    first = next(iter(pos), 0)
    in_order = len(pos) == top + 1 - first and all(map(int.__eq__, pos, range(first, top + 1)))
    columns: list[list[Any]] = []
    # _num() of every coordinate, one comprehension per axis (a 100k-page run has 200k),
    # indexed by sp id (None where no page has that id).
    for axis in (0, 1):
        values = [round(p[axis], 3) for p in pos.values()]
        values = [v if v % 1 else int(v) for v in values]
        if in_order:  # ids first..top, in order (a built run's)
            columns.append([None] * first + values)
            continue
        column: list[Any] = [None] * (top + 1)
        for sp_id, v in zip(pos, values, strict=True):
            column[sp_id] = v
        columns.append(column)
    xs, ys = columns
    body = {"figure": _run_figure(layout, max_level=max_level, uirevision=uirevision),
            "x": xs, "y": ys, "park": park(boots)}
    text = json.dumps(body, separators=(",", ":")).encode()
    return text, hashlib.sha256(text).hexdigest()[:16]


def tree_figure(
    view: TreeView,
    layout: Layout,
    *,
    max_level: int,
    uirevision: str,
    title: str = "",
    height: int | None = None,
    boots: int = 1,
    differs: Sequence[str] = (),
) -> dict[str, Any]:
    """The shadow page tree as one plotly figure dict: the run's figure filled with the step.

    Does in Python what static/app.js does with a delta (fillTraces there). `differs`: keys
    of the nodes to outline as differing from the other run of a comparison.
    """
    fig = _run_figure(layout, max_level=max_level, uirevision=uirevision, title=title,
                      height=height)
    state = tree_state(view, layout, boots=boots)
    data = fig["data"]

    def at(key: str) -> tuple[float | int, float | int]:
        x, y = state.positions[key]
        return _num(x), _num(y)

    for trace in data:
        if trace["meta"] not in ("edges", *_OVERLAYS):
            trace["marker"]["size"] = []
            trace["marker"]["color"] = []
            trace["text"] = []
    for key, (index, _x, _y, size, colour, text, customdata) in state.records.items():
        trace = data[index]
        x, y = at(key)
        trace["x"].append(x)
        trace["y"].append(y)
        trace["customdata"].append(list(customdata))
        trace["marker"]["size"].append(size if size is not None else
                                       STATUS_STYLES[trace["meta"].removeprefix("group:")][3])
        trace["marker"]["color"].append(colour if colour is not None else
                                        STATUS_STYLES[trace["meta"].removeprefix("group:")][1])
        trace["text"].append(text or "")
    edges = data[_TRACE["edges"]]
    for parent, child in sorted(state.edges):
        (px, py), (cx, cy) = at(parent), at(child)
        edges["x"] += [px, cx, None]
        edges["y"] += [py, cy, None]
    rings = data[_TRACE["changed"]]
    rings["marker"]["size"] = []
    for key, size in state.rings:
        x, y = at(key)
        rings["x"].append(x)
        rings["y"].append(y)
        rings["marker"]["size"].append(size)
    chosen = data[_TRACE["selected"]]
    for key in state.selected:
        x, y = at(key)
        chosen["x"].append(x)
        chosen["y"].append(y)
    outlined = data[_TRACE["differs"]]
    for key in differs:
        if key in state.positions:
            x, y = at(key)
            outlined["x"].append(x)
            outlined["y"].append(y)
    for trace in data:
        trace["visible"] = bool(trace["x"])  # an empty trace costs every redraw its share
    fig["layout"]["annotations"] = note_annotations(state.note)
    return fig


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
    # The legend is anchored to the bottom of the whole chart (yref "container"), where
    # plotly reserves its height, so it sits below the x axis title instead of on it.
    fig.update_layout(
        template="none", height=460, margin={"l": 60, "r": 10, "t": 30, "b": 10},
        font={"size": FONT_SIZE},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "yref": "container", "y": 0,
                "yanchor": "bottom"},
        hovermode="x unified",
    )
    fig.update_xaxes(title_text="L2 boot", row=2, col=1, automargin=True)
    result: dict[str, Any] = fig.to_plotly_json()
    return result


def figure_from_dict(figure: dict[str, Any]) -> go.Figure:
    """Validate a figure dict against plotly's schema (raises ValueError if invalid)."""
    return go.Figure(figure)
