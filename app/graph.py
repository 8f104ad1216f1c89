"""Snapshot -> networkx DiGraph of what is drawn, with positions stable across steps.

Layout: level on the y axis (the root on top, at y = level), L2 guest-physical order on the
x axis. Every page ever created in the run gets a slot: the x axis is the rank of
guest-physical "slots" (the L2 gfn where a level-1 page's range starts, plus the start of any
higher-level page with no level-1 page under it), and a page is centred over the slots its
range covers. Positions depend only on the run, never on the step, so a page does not move
while the tree grows or shrinks around it; an orphan keeps its place, detached. Pages of the
same level and range alive at the same time (an orphan and the page that replaced it) are
stacked just below one another, oldest on top.

Large trees, busy steps: past COLLAPSE_THRESHOLD pages, or when the step touched more than
CHANGED_KEEP_LIMIT pages (building or tearing down a whole table or tree), healthy level-1
pages (synced or unsync and linked, or on a busy step also zapped; never the selected one)
are folded into one summary node per parent and state. On a quiet step the pages the step
touched stay individual, each with its "changed" ring; on a busy step they fold too, and
their summary node carries the ring. Orphans and upper-level pages always stay individual;
if more than CHANGED_KEEP_LIMIT of those were touched, only summaries keep rings and the
figure says how many pages changed, so no step rings more than CHANGED_KEEP_LIMIT pages one
by one.

Shadow page "trees" are DAGs (a page can have several parent SPTEs): check
nx.is_directed_acyclic_graph, not nx.is_arborescence.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field

import networkx as nx

from mmu_model import Run, Snapshot, SpView

__all__ = [
    "CHANGED_KEEP_LIMIT",
    "COLLAPSE_THRESHOLD",
    "Layout",
    "Node",
    "TreeView",
    "build_layout",
    "layout_for_run",
    "tree_view",
]

COLLAPSE_THRESHOLD = 1_500
# A step touching more pages than this (a whole-table build, an INVEPT that syncs the whole
# tree, a teardown) folds its touched pages too; the summary node then carries their ring.
CHANGED_KEEP_LIMIT = 200
STACK_DY = 0.28  # vertical offset between stacked pages of the same slot
_FOLDABLE = frozenset({"synced", "unsync"})
_FOLDABLE_WHEN_BUSY = frozenset({"synced", "unsync", "zapped"})


def span(level: int) -> int:
    """Guest frames a page of `level` covers: 512 for a level-1 table, 512**2 for a PD, ..."""
    return 512**level


@dataclass(frozen=True, slots=True)
class Layout:
    """Stable x positions: sorted slot starts (L2 gfns) of every page of the run."""

    slots: tuple[int, ...]
    # (level, l2_gfn) -> x, filled on use: a run's positions never change, and a 100k-page
    # step asks for 100k of them.
    _xs: dict[tuple[int, int], float] = field(default_factory=dict, compare=False, repr=False)

    def x(self, level: int, l2_gfn: int) -> float:
        key = (level, l2_gfn)
        x = self._xs.get(key)
        if x is None:
            lo = bisect_left(self.slots, l2_gfn)
            hi = bisect_left(self.slots, l2_gfn + span(level)) - 1
            x = (lo + hi) / 2 if hi >= lo else lo - 0.5
            self._xs[key] = x
        return x

    @property
    def width(self) -> int:
        return max(len(self.slots), 1)


def build_layout(pages: Iterable[tuple[int, int]]) -> Layout:
    """Layout from (level, l2_gfn) of every page that ever exists in the run."""
    level1: set[int] = set()
    upper: list[tuple[int, int]] = []
    for level, l2_gfn in pages:
        if level <= 1:
            level1.add(l2_gfn)
        else:
            upper.append((level, l2_gfn))
    ordered = sorted(level1)
    extra: set[int] = set()
    for level, start in upper:
        i = bisect_left(ordered, start)
        if i == len(ordered) or ordered[i] >= start + span(level):
            extra.add(start)
    return Layout(tuple(sorted(level1 | extra)))


def layout_for_run(run: Run) -> Layout:
    """The run's layout, from every page it ever created."""
    return build_layout((level, l2_gfn) for _id, level, l2_gfn in run.all_pages())


@dataclass(slots=True)
class Node:
    id: int  # sp id; summary nodes have negative ids
    x: float
    y: float
    status: str  # SpView.status, or "summary" for folded pages
    level: int
    sp: SpView | None = None
    count: int = 1
    fold_status: str = ""  # for summary nodes: the state of the folded pages
    parent: int | None = None  # for summary nodes: the parent they hang under
    changed: bool = False
    created: bool = False
    selected: bool = False


@dataclass(slots=True)
class TreeView:
    graph: nx.DiGraph
    nodes: list[Node]
    edges: list[tuple[int, int]]
    n_pages: int
    folded: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    n_changed: int = 0  # pages (and ghosts) the step touched, drawn or folded
    rings_dropped: bool = False  # too many touched pages stayed individual to ring each

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)


def tree_view(
    snap: Snapshot,
    layout: Layout,
    *,
    selected: int | None = None,
    collapse_threshold: int = COLLAPSE_THRESHOLD,
) -> TreeView:
    """What to draw for `snap`: nodes (pages and summaries), edges, and the DiGraph of both."""
    changed = snap.changed
    created = snap.created
    pages: list[SpView] = [*snap.pages, *snap.ghosts]
    n_changed = sum(1 for sp in pages if sp.id in changed)
    busy = n_changed > CHANGED_KEEP_LIMIT
    collapse = busy or len(snap.pages) > collapse_threshold
    foldable = _FOLDABLE_WHEN_BUSY if busy else _FOLDABLE

    by_status: dict[str, int] = {}
    individual: list[tuple[SpView, str]] = []
    status: str
    groups: dict[tuple[int, str], list[SpView]] = {}
    for sp in pages:
        status = sp.status
        by_status[status] = by_status.get(status, 0) + 1
        if (
            collapse
            and status in foldable
            and sp.level == 1
            and (sp.parents or status == "zapped")
            and (busy or sp.id not in changed)
            and sp.id != selected
        ):
            parent = sp.parents[0][0] if sp.parents else -1
            groups.setdefault((parent, status), []).append(sp)
        else:
            individual.append((sp, status))

    nodes: list[Node] = []
    stack: dict[tuple[int, float], int] = {}
    for sp, status in sorted(individual, key=lambda item: item[0].id):
        x = layout.x(sp.level, sp.l2_gfn)
        slot = (sp.level, x)
        k = stack.get(slot, 0)
        stack[slot] = k + 1
        nodes.append(
            Node(
                id=sp.id,
                x=x,
                y=sp.level - STACK_DY * k,
                status=status,
                level=sp.level,
                sp=sp,
                changed=sp.id in changed,
                created=sp.id in created,
                selected=sp.id == selected,
            )
        )
    folded = 0
    next_id = -1
    for (parent, status), members in sorted(groups.items()):
        if len(members) == 1:
            sp = members[0]
            nodes.append(
                Node(id=sp.id, x=layout.x(1, sp.l2_gfn), y=1.0, status=status, level=1, sp=sp,
                     changed=sp.id in changed, created=sp.id in created)
            )
            continue
        xs = [layout.x(1, m.l2_gfn) for m in members]
        nodes.append(
            Node(
                id=next_id,
                x=sum(xs) / len(xs),
                y=1.0,
                status="summary",
                level=1,
                count=len(members),
                fold_status=status,
                parent=parent if parent >= 0 else None,
                changed=any(m.id in changed for m in members),
            )
        )
        folded += len(members)
        next_id -= 1

    # Past the cap, pages drawn one by one lose their rings (summary nodes keep theirs).
    ringed = [node for node in nodes if node.changed and node.sp is not None]
    rings_dropped = len(ringed) > CHANGED_KEEP_LIMIT
    if rings_dropped:
        for node in ringed:
            node.changed = False

    drawn = {node.id for node in nodes}
    edges: list[tuple[int, int]] = []
    for node in nodes:
        if node.sp is not None:
            for parent_id, _index in node.sp.parents:
                if parent_id in drawn:
                    edges.append((parent_id, node.id))
        elif node.parent is not None and node.parent in drawn:
            edges.append((node.parent, node.id))
    graph = nx.DiGraph()
    graph.add_nodes_from(drawn)
    graph.add_edges_from(edges)
    return TreeView(
        graph=graph,
        nodes=nodes,
        edges=edges,
        n_pages=len(snap.pages),
        folded=folded,
        by_status=by_status,
        n_changed=n_changed,
        rings_dropped=rings_dropped,
    )


def children_of(snap: Snapshot, sp_id: int) -> list[tuple[int, int]]:
    """(child id, SPTE index in sp_id) of every live page linked under sp_id."""
    out = []
    for page in snap.pages:
        for parent_id, index in page.parents:
            if parent_id == sp_id:
                out.append((page.id, index))
    return sorted(out, key=lambda item: item[1])


def path_to_root(snap: Snapshot, sp_id: int) -> list[int]:
    """Ids from sp_id up through first parents to a page with no parent (a root or an orphan)."""
    by_id = {p.id: p for p in snap.pages}
    path = [sp_id]
    seen = {sp_id}
    current = by_id.get(sp_id)
    while current is not None and current.parents:
        parent = current.parents[0][0]
        if parent in seen:
            break
        path.append(parent)
        seen.add(parent)
        current = by_id.get(parent)
    return path
