"""Snapshot -> what the tree draws: nodes with stable keys and positions fixed for the run.

Layout: level on the y axis (the root on top, at y = level), L2 guest-physical order on the
x axis. Every page ever created in the run gets a slot: the x axis is the rank of
guest-physical "slots" (the L2 gfn where a level-1 page's range starts, plus the start of any
higher-level page with no level-1 page under it), and a page is centred over the slots its
range covers. Pages of the same level and range (an orphan and the page that replaced it,
the ex-roots of every root zap) are stacked on a diagonal, oldest on top and left, each
newer one STACK_DY lower and STACK_DX to the right, inside their level's row: a straight
stack would put the new root on the old root's link to its child (so it looked like the
old tree's parent) and the new PDPT's link right through the orphaned one. Positions
depend only on the run, never on the step: the browser gets them once (run_layout_json)
and each step only says what changed.

Large trees, busy steps: past COLLAPSE_THRESHOLD pages, or when the step touched more than
CHANGED_KEEP_LIMIT pages (building or tearing down a whole table or tree), healthy level-1
pages (synced or unsync and linked, or on a busy step also zapped; never the selected one)
are folded into one summary node per parent and state, drawn below the parent. On a quiet
step the pages the step touched stay individual, each with its "changed" ring; on a busy
step they fold too, and their summary node carries the ring. If more than
CHANGED_KEEP_LIMIT pages drawn one by one were touched, only summaries keep rings and the
figure says how many pages changed.

Crowded rows: whatever the tree's size, a level's row draws about ROW_BUDGET nodes at most
(a plotly redraw costs what is drawn, not what changed, and 195 PD columns 7 px apart say
no more than 24 nodes do). When a row, or the row below it, holds more, the row's healthy
pages (synced or unsync, linked under a root) fold with everything under them into range
nodes: the x axis is cut into ROW_RANGES equal ranges, fixed for the run, and each range
holds one node per parent, which says how many pages of each level it folds. A fold's
place follows from the run's layout (its range and its parent), never from its members.
The pages the step touched, the selected page, anything with one of those (or a zapped or
detached page) under it, the roots and the detached pages stay individual, as do the pages
of an opened range (ViewState.open, "r<range>:<level>"). Folding works on the sorted
pages each step (_fold_ranges, in _assemble), so a step moved from its neighbour's sorting
folds exactly as one sorted from scratch.

Leaks: past LEAK_FOLD_THRESHOLD detached pages (orphans, orphaned unsync pages, ex-roots),
they fold too, into one group per L2 boot in which they were detached, level and state. A
group sits on its level's row, in a strip ordered by boot (left: boot 1, right: the last
boot), so the pile grows boot by boot. The pages the current step touched, the selected page
and the pages of an opened group (ViewState.open) stay individual.

Shadow page "trees" are DAGs (a page can have several parent SPTEs): check
nx.is_directed_acyclic_graph, not nx.is_arborescence.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import NamedTuple, Protocol

import networkx as nx

from mmu_model import Run, Snapshot, SpView
from mmu_model.snapshot import PageChanges, StepSummary

__all__ = [
    "CHANGED_KEEP_LIMIT",
    "COLLAPSE_THRESHOLD",
    "DETACHED",
    "LEAK_FOLD_THRESHOLD",
    "ROW_BUDGET",
    "ROW_RANGES",
    "Layout",
    "LeakFolding",
    "Node",
    "TreeView",
    "build_layout",
    "detached_boots",
    "layout_for_run",
    "resort_also",
    "tree_view",
    "tree_view_of",
]

COLLAPSE_THRESHOLD = 1_500
# A step touching more pages than this (a whole-table build, an INVEPT that syncs the whole
# tree, a teardown) folds its touched pages too; the summary node then carries their ring.
CHANGED_KEEP_LIMIT = 200
# Detached pages drawn one by one at most; past it they fold into per-boot groups.
LEAK_FOLD_THRESHOLD = 150
# Level of detail: a level's row draws at most about ROW_BUDGET nodes of the tree (pages and
# summary nodes; leak groups have their strip). Past it, the healthy pages of the row fold,
# with everything under them, into range nodes: the x axis is cut into ROW_RANGES equal
# ranges, fixed for the run, and each range holds one node per parent (and kind).
ROW_BUDGET = 48
ROW_RANGES = 24
STACK_DY = 0.28  # vertical offset between stacked pages of the same slot...
ROW_DEPTH = 0.42  # ...squeezed so a stack never leaves its level's row
# ...and horizontal (in slots): a newer page sits down and to the right of the one it
# replaced, off the vertical line an old page's SPTE link to its old child would draw.
# A stack spreads at most STACK_WIDTH right, however many pages it holds, or half the slots
# its pages cover if that is more: an upper-level page (a root over the whole tree) has
# room, and its links to its children run straight down, where the next page must not be.
STACK_DX = 0.5
STACK_WIDTH = 0.75
_FOLDABLE = frozenset({"synced", "unsync"})
_FOLDABLE_WHEN_BUSY = frozenset({"synced", "unsync", "zapped"})
# Pages no root reaches: what a leak is made of (SpView.status values).
DETACHED: tuple[str, ...] = ("orphan-unsync", "orphan", "ex-root")
# Summary nodes hang below their parent, one row per folded state.
_SUMMARY_DY = {"synced": 0.0, "unsync": 0.16, "zapped": 0.32}
# Leak groups sit in a band of their level's row, one line per state.
_GROUP_DY = {"ex-root": 0.12, "orphan": 0.24, "orphan-unsync": 0.36}


def span(level: int) -> int:
    """Guest frames a page of `level` covers: 512 for a level-1 table, 512**2 for a PD, ..."""
    return 512**level


@dataclass(frozen=True, slots=True)
class Layout:
    """Stable positions: sorted slot starts (L2 gfns), and (x, y) of every page of the run."""

    slots: tuple[int, ...]
    pos: dict[int, tuple[float, float]] = field(default_factory=dict, compare=False)
    # (level, l2_gfn) -> x, filled on use: a run's positions never change.
    _xs: dict[tuple[int, int], float] = field(default_factory=dict, compare=False, repr=False)
    # (level, l2_gfn) -> which of the ROW_RANGES ranges of its row (_range_of), filled on use.
    _ranges: dict[tuple[int, int], int] = field(default_factory=dict, compare=False,
                                                repr=False)

    def x(self, level: int, l2_gfn: int) -> float:
        x = self._xs.get((level, l2_gfn))
        if x is None:
            x = self.place(level, l2_gfn)[0]
        return x

    def place(self, level: int, l2_gfn: int) -> tuple[float, int]:
        """x of a page's range (centred over the slots it covers; half a slot left of the
        next one if it covers none) and how many slots it covers; x is kept for x()."""
        lo = bisect_left(self.slots, l2_gfn)
        hi = bisect_left(self.slots, l2_gfn + span(level)) - 1
        x = (lo + hi) / 2 if hi >= lo else lo - 0.5
        self._xs[(level, l2_gfn)] = x
        return x, hi - lo + 1

    @property
    def width(self) -> int:
        return max(len(self.slots), 1)


def build_layout(pages: Iterable[tuple[int, int]] | Iterable[tuple[int, int, int]]) -> Layout:
    """Layout from (level, l2_gfn), or (id, level, l2_gfn), of every page of the run.

    Given ids, every page also gets its fixed (x, y): pages sharing a slot are stacked in id
    (creation) order, STACK_DY apart, or closer when more than fit in ROW_DEPTH.

    Ids are unique (sp ids). Each column of the pages is one comprehension, zip or map over
    C-level built-ins (a 100k-page run is laid out in less than half the CPU time a loop
    per page took); only the pages that share an x with another page get a loop of their
    own.
    """
    items = [tuple(p) for p in pages]
    triples = sorted(t for t in items if len(t) == 3)
    ranges_of_all = {(t[-2], t[-1]) for t in items} if len(triples) < len(items) else None
    keys = list(map(itemgetter(1, 2), triples))  # a page's (level, l2_gfn): its range
    ranges = list(dict.fromkeys(keys))  # each range once, in the order of its first page
    level1 = {g for level, g in (ranges if ranges_of_all is None else ranges_of_all)
              if level <= 1}
    ordered = sorted(level1)
    extra: set[int] = set()
    for level, start in (ranges if ranges_of_all is None else ranges_of_all):
        if level <= 1:
            continue
        i = bisect_left(ordered, start)
        if i == len(ordered) or ordered[i] >= start + span(level):
            extra.add(start)
    layout = Layout(tuple(sorted(level1 | extra)) if extra else tuple(ordered))
    if not triples:
        return layout
    ids = list(map(itemgetter(0), triples))
    levels = list(map(itemgetter(1), triples))
    # Each range placed as Layout.place() places it: x centred over the slots the range
    # covers (half a slot left of the next one if it covers none).
    slots = layout.slots
    spans = {level: span(level) for level in set(levels)}
    # A range that starts at a slot (every level-1 range does) starts at that slot's rank,
    # and one that ends where a slot starts ends at that one's rank, less one.
    rank = dict(zip(slots, range(len(slots)), strict=True))
    starts = [g for _, g in ranges]
    los = [rank[g] if g in rank else bisect_left(slots, g) for g in starts]
    ends = [g + spans[level] for level, g in ranges]
    his = [(rank[g] if g in rank else bisect_left(slots, g)) - 1 for g in ends]
    xs = [(lo + hi) / 2 if hi >= lo else lo - 0.5 for lo, hi in zip(los, his, strict=True)]
    layout._xs.update(zip(ranges, xs, strict=True))
    x_of = layout._xs
    page_x = [x_of[key] for key in keys]
    pos = layout.pos
    pos.update(zip(ids, zip(page_x, levels, strict=True), strict=True))
    # Pages of one level at one x (one range, or ranges of one level that start at other
    # gfns but share an x) stack, in id order, spread as wide as the range of the first
    # (lowest id) of them covers.
    at = list(zip(levels, page_x, strict=True))
    shared = {a for a, n in Counter(at).items() if n > 1}
    if not shared:
        return layout
    cover_of = {key: hi - lo + 1 for key, lo, hi in zip(ranges, los, his, strict=True)}
    stacks: dict[tuple[int, float], list[int]] = {}
    cover_at: dict[tuple[int, float], int] = {}
    for sp_id, a, key in zip(ids, at, keys, strict=True):
        if a in shared:
            stack = stacks.get(a)
            if stack is None:
                stacks[a] = [sp_id]
                cover_at[a] = cover_of[key]
            else:
                stack.append(sp_id)
    for (level, x), stack in stacks.items():
        dy = min(STACK_DY, ROW_DEPTH / (len(stack) - 1))
        width = max(STACK_WIDTH, cover_at[(level, x)] / 2)
        dx = min(STACK_DX, width / (len(stack) - 1))
        for k, sp_id in enumerate(stack):
            pos[sp_id] = (x + dx * k, level - dy * k)
    return layout


def layout_for_run(run: Run) -> Layout:
    """The run's layout, from every page it ever created."""
    return build_layout(run.all_pages())


def detached_boots(run: Run, upto_boot: int, known: dict[int, int]) -> dict[int, int]:
    """sp id -> first L2 boot at whose end the page was detached, for boots < `upto_boot`.

    `known` holds what earlier calls found (boots are scanned once, in order); a page not
    in the result was detached during `upto_boot` itself.
    """
    done = known.get(-1, 0)
    for boot in run.per_boot[done : max(upto_boot - 1, 0)]:
        for sp in run.snapshot(boot.action_step).pages:
            if sp.id not in known and sp.status in DETACHED:
                known[sp.id] = boot.boot
        known[-1] = boot.boot
    return known


@dataclass(slots=True)
class Node:
    id: int  # sp id; summary and group nodes have negative ids
    key: str  # stable across steps: "12" (a page), "s12:synced" (summary), "g3:4:orphan"
    x: float
    y: float
    # SpView.status; "summary" for folded healthy level-1 pages, "fold" for a range of
    # healthy pages folded with their subtrees, "group" for leaks
    status: str
    level: int
    sp: SpView | None = None
    count: int = 1  # pages folded into the node (a fold: at every level)
    # summary and group nodes: the state of the folded pages; a fold: "unsync" if any page
    # in it is, else "synced"
    fold_status: str = ""
    parent: int | None = None  # summary and fold nodes: the parent they hang under
    boot: int = 0  # group nodes: the L2 boot in which their pages were detached
    range: int = 0  # fold nodes: which of the ROW_RANGES ranges of its row
    # fold nodes: (level, pages, unsync pages) of what it folds, top level first
    under: tuple[tuple[int, int, int], ...] = ()
    links: tuple[int, ...] = ()  # fold nodes: every parent of its top pages
    changed: bool = False
    created: bool = False
    selected: bool = False


@dataclass(slots=True)
class TreeView:
    nodes: list[Node]
    edges: list[tuple[int, int]]
    n_pages: int
    folded: int = 0  # level-1 pages in summary nodes
    ranges_folded: int = 0  # pages (every level) in fold nodes
    leaks_folded: int = 0
    n_changed: int = 0  # pages (and ghosts) the step touched, drawn or folded
    rings_dropped: bool = False  # too many touched pages stayed individual to ring each
    parts: _Sorted | None = field(default=None, repr=False)  # for a neighbour's view

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def graph(self) -> nx.DiGraph:
        """The drawn nodes and edges as a DiGraph (built on demand: a step does not need it)."""
        graph = nx.DiGraph()
        graph.add_nodes_from(node.id for node in self.nodes)
        graph.add_edges_from(self.edges)
        return graph


@dataclass(frozen=True, slots=True)
class LeakFolding:
    """How to fold detached pages: where their boots strip lies and which groups are open."""

    boots: int  # L2 boots of the run (the strip's length)
    boot_of: Callable[[int], int]  # sp id -> boot in which it was detached
    open: Collection[tuple[int, int]] = ()  # (boot, level) groups drawn page by page


def _group_x(layout: Layout, boot: int, boots: int) -> float:
    return -0.5 + (boot - 0.5) * layout.width / max(boots, 1)


class PageReader(Protocol):
    """What the tree asks of a page given as its raw state (sp id, state word, parent
    code): mmu_model.timeline.LivePages and StateChanges."""

    def brief(self, sp_id: int, word: int, pcode: int) -> tuple[str, int, int, int]:
        """(status, level, first parent's id or -1, l2_gfn), as the page's view says."""
        ...

    def view(self, sp_id: int, word: int, pcode: int) -> SpView: ...


class LivePages(PageReader, Protocol):
    """Every live page of a step as its raw state (mmu_model.timeline.LivePages)."""

    states: list[tuple[int, int, int]]  # (sp id, state word, parent code), in id order


class StateChanges(PageReader, Protocol):
    """The pages whose state differs between two steps, as raw states
    (mmu_model.timeline.StateChanges)."""

    diff: dict[int, tuple[tuple[int, int], tuple[int, int]]]  # id -> (before, after)

    def sides(self) -> tuple[Sequence[tuple[int, tuple[int, str]]],
                             Sequence[tuple[int, int, int]]]:
        """In id order: (id, (first parent or -1, status)) before, (id, word, parent code)
        after, each of the pages live at that step."""
        ...


class _Folded(NamedTuple):
    """A level-1 page sorted into a summary node from its raw state: its view is built
    only if it is drawn alone (a summary of one page). A tuple: 100k of them are made at
    once."""

    id: int
    l2_gfn: int
    word: int
    pcode: int


@dataclass(slots=True)
class _Sorted:
    """A step's pages sorted into what is drawn one by one, folded, or detached."""

    individual: dict[int, tuple[SpView, str]]
    # (parent, state) -> folded pages, each as its view or (sorted from raw states) _Folded
    groups: dict[tuple[int, str], dict[int, SpView | _Folded]]
    ringed_groups: set[tuple[int, str]]
    detached: dict[int, tuple[SpView, str]]
    n_changed: int
    busy: bool
    collapse: bool
    n_pages: int = 0  # live pages of the step (folded or not)
    # Builds the view of a _Folded page (its state is the same at every step it is kept).
    view_of: Callable[[int, int, int], SpView] | None = None


_STATE_INDEX = {status: i for i, status in enumerate(("synced", "unsync", "zapped", *DETACHED))}


def _group_key(sp: SpView, status: str) -> tuple[int, str]:
    return (sp.parents[0][0] if sp.parents else -1, status)


def _summarized(parts: _Sorted, status: str, level: int, linked: bool, touched: bool,
                selected: bool) -> bool:
    """Whether a page folds into its parent's summary node (see the module docstring)."""
    return (
        parts.collapse
        and status in (_FOLDABLE_WHEN_BUSY if parts.busy else _FOLDABLE)
        and level == 1
        and (linked or status == "zapped")
        and (parts.busy or not touched)
        and not selected
    )


def _add_to_group(parts: _Sorted, key: tuple[int, str], page: SpView | _Folded,
                  touched: bool) -> None:
    members = parts.groups.get(key)
    if members is None:
        parts.groups[key] = {page.id: page}
    else:
        members[page.id] = page
    if touched:
        parts.ringed_groups.add(key)


def _sort_page(parts: _Sorted, sp: SpView, status: str, touched: bool,
               selected: int | None) -> None:
    if _summarized(parts, status, sp.level, bool(sp.parents), touched, sp.id == selected):
        _add_to_group(parts, _group_key(sp, status), sp, touched)
    elif status in DETACHED and not touched and sp.id != selected:
        parts.detached[sp.id] = (sp, status)
    else:
        parts.individual[sp.id] = (sp, status)


def _sort_pages(snap: Snapshot, selected: int | None, collapse_threshold: int) -> _Sorted:
    return _sort(snap.pages, snap.ghosts, snap.changed, selected, collapse_threshold)


def _sort(live: Sequence[SpView], ghosts: Sequence[SpView], changed: Collection[int],
          selected: int | None, collapse_threshold: int) -> _Sorted:
    pages: list[SpView] = [*live, *ghosts]
    n_changed = sum(1 for sp in pages if sp.id in changed)
    busy = n_changed > CHANGED_KEEP_LIMIT
    parts = _Sorted({}, {}, set(), {}, n_changed, busy,
                    busy or len(live) > collapse_threshold, len(live))
    statuses: list[str] = [sp.status for sp in pages]
    for sp, status in zip(pages, statuses, strict=True):
        _sort_page(parts, sp, status, sp.id in changed, selected)
    return parts


def _sort_live(live: LivePages, ghosts: Sequence[SpView], changed: Collection[int],
               selected: int | None, collapse_threshold: int) -> _Sorted:
    """_sort() of the step's live pages given as raw states: a page that folds into a
    summary node is kept as its state (_Folded), and only the others get a view."""
    states = live.states
    n_changed = (sum(1 for sp_id, _w, _p in states if sp_id in changed)
                 + sum(1 for sp in ghosts if sp.id in changed))
    busy = n_changed > CHANGED_KEEP_LIMIT
    parts = _Sorted({}, {}, set(), {}, n_changed, busy,
                    busy or len(states) > collapse_threshold, len(states), live.view)
    # Sorted as _sort_page() would sort their views, without a call per page: this loop
    # sees every page of the step.
    brief, groups, ringed = live.brief, parts.groups, parts.ringed_groups
    new = tuple.__new__  # _Folded(...) without NamedTuple's Python-level __new__
    collapse, busy = parts.collapse, parts.busy
    foldable = _FOLDABLE_WHEN_BUSY if busy else _FOLDABLE
    for sp_id, word, pcode in states:
        status, level, first, l2_gfn = brief(sp_id, word, pcode)
        touched = sp_id in changed
        # _summarized(), inline: a call per page is a tenth of this loop at 100k pages.
        if (collapse and status in foldable and level == 1
                and (first >= 0 or status == "zapped") and (busy or not touched)
                and sp_id != selected):
            key = (first, status)
            members = groups.get(key)
            if members is None:
                groups[key] = members = {}
            members[sp_id] = new(_Folded, (sp_id, l2_gfn, word, pcode))
            if touched:
                ringed.add(key)
        else:
            _sort_page(parts, live.view(sp_id, word, pcode), status, touched, selected)
    for sp in ghosts:
        _sort_page(parts, sp, sp.status, sp.id in changed, selected)
    return parts


def _resort_pages(prev: _Sorted, prev_snap: Snapshot, snap: Snapshot,
                  selected: int | None, collapse_threshold: int) -> _Sorted | None:
    """`snap` sorted from the sorting of a neighbouring step, re-sorting only the pages either
    step touched or freed (every other page is the same, in the same place); None when the
    steps differ in more than that (a busy step, a change of folding)."""
    redo = (prev_snap.changed | snap.changed | {sp.id for sp in prev_snap.ghosts}
            | {sp.id for sp in snap.ghosts})
    views = [sp for sp in (*snap.pages, *snap.ghosts) if sp.id in redo]
    old = [_keyed(sp) for sp in (*prev_snap.pages, *prev_snap.ghosts) if sp.id in redo]
    return _resort(prev, old, views, snap.changed, len(snap.pages), selected,
                   collapse_threshold)


def _keyed(sp: SpView) -> tuple[int, tuple[int, str]]:
    """A page's id and the summary group it would sort into."""
    return sp.id, _group_key(sp, sp.status)


def _resort(prev: _Sorted, old: Sequence[tuple[int, tuple[int, str]]],
            views: Sequence[SpView | tuple[int, int, int]], changed: Collection[int],
            n_pages: int, selected: int | None, collapse_threshold: int,
            reader: PageReader | None = None) -> _Sorted | None:
    """_resort_pages() given every page whose sorting may differ (those whose state
    differs, those either step touched, and either step's ghosts): at the neighbour's step
    as (id, summary group key) (`old`), and at this one (`views`) as their views or their
    raw states (sp id, state word, parent code), which `reader` reads."""
    n_changed = sum(1 for page in views if (page[0] if isinstance(page, tuple) else page.id)
                    in changed)
    busy = n_changed > CHANGED_KEEP_LIMIT
    collapse = busy or n_pages > collapse_threshold
    # Which states fold depends on these two: an untouched page could move if either
    # differs. Past the collapse threshold, a change of `busy` moves only the untouched
    # zapped level-1 pages (they fold on a busy step alone; touched pages are re-sorted
    # anyway), so those are re-sorted too; a change of collapse moves every page.
    if collapse != prev.collapse:
        return None
    if busy != prev.busy:
        old, views = _flipped(prev, old, views, busy)
    # Group member sets are shared with the neighbour's sorting until one is written.
    groups = dict(prev.groups)
    copied: set[tuple[int, str]] = set()

    def own(key: tuple[int, str]) -> None:
        if key in groups and key not in copied:
            groups[key] = dict(groups[key])
            copied.add(key)

    view_of = prev.view_of or (reader.view if reader is not None else None)
    parts = _Sorted(dict(prev.individual), groups, set(), dict(prev.detached), n_changed,
                    busy, collapse, n_pages, view_of)
    individual, detached = parts.individual, parts.detached
    for sp_id, key in old:
        if individual.pop(sp_id, None) is None and detached.pop(sp_id, None) is None:
            members = groups.get(key)
            if members is not None and sp_id in members:
                if key not in copied:
                    own(key)
                    members = groups[key]
                del members[sp_id]
                if not members:
                    del groups[key]
    # Raw states are sorted as in _sort_live(), without a call per page: a step that
    # rewrites a whole table re-sorts its 512 pages here, most into one summary group.
    brief = reader.brief if reader is not None else None
    view = reader.view if reader is not None else None
    ringed = parts.ringed_groups
    foldable = _FOLDABLE_WHEN_BUSY if busy else _FOLDABLE
    new = tuple.__new__  # _Folded(...) without NamedTuple's Python-level __new__
    for page in views:
        if isinstance(page, tuple) and brief is not None:
            sp_id, word, pcode = page
            status, level, first, l2_gfn = brief(sp_id, word, pcode)
            key = (first, status)
            if key not in copied:
                own(key)
            touched = sp_id in changed
            if (collapse and status in foldable and level == 1
                    and (first >= 0 or status == "zapped") and (busy or not touched)
                    and sp_id != selected):
                members = groups.get(key)
                if members is None:
                    groups[key] = members = {}
                    copied.add(key)  # a new group is this sorting's own
                members[sp_id] = new(_Folded, (sp_id, l2_gfn, word, pcode))
                if touched:
                    ringed.add(key)
            else:
                assert view is not None
                _sort_page(parts, view(sp_id, word, pcode), status, touched, selected)
        else:
            if isinstance(page, tuple):  # a _Folded page of `prev`, whose view_of reads it
                assert view_of is not None
                page = view_of(*page)
            status = page.status
            own(_group_key(page, status))
            _sort_page(parts, page, status, page.id in changed, selected)
    return parts


def _flipped(prev: _Sorted, old: Sequence[tuple[int, tuple[int, str]]],
             views: Sequence[SpView | tuple[int, int, int]], busy: bool
             ) -> tuple[list[tuple[int, tuple[int, str]]], list[SpView | tuple[int, int, int]]]:
    """`old` and `views` with the untouched zapped level-1 pages of `prev` added (their
    state is the same at both steps): drawn one by one on a quiet step, folded into their
    parent's summary on a busy one (`busy`: this step is busy, `prev`'s is not)."""
    redo = {sp_id for sp_id, _key in old}
    redo.update(page[0] if isinstance(page, tuple) else page.id for page in views)
    more_old: list[tuple[int, tuple[int, str]]] = []
    more: list[SpView | tuple[int, int, int]] = []
    if busy:
        for sp_id, (sp, status) in sorted(prev.individual.items()):
            if status == "zapped" and sp.level == 1 and sp_id not in redo:
                more_old.append((sp_id, _group_key(sp, status)))
                more.append(sp)
    else:
        for key in sorted(prev.groups):
            if key[1] != "zapped":
                continue
            for sp_id, member in prev.groups[key].items():
                if sp_id not in redo:
                    more_old.append((sp_id, key))
                    more.append(member if isinstance(member, SpView) else
                                (member.id, member.word, member.pcode))
    return [*old, *more_old], [*views, *more]


def tree_view(
    snap: Snapshot,
    layout: Layout,
    *,
    selected: int | None = None,
    collapse_threshold: int = COLLAPSE_THRESHOLD,
    leaks: LeakFolding | None = None,
    after: tuple[TreeView, Snapshot] | None = None,
    open_ranges: Collection[tuple[int, int]] = (),
) -> TreeView:
    """What to draw for `snap`: nodes (pages, summaries, folds, leak groups) and edges.

    `after`: the view of a neighbouring step (same selection), to re-sort only the pages that
    the two steps touched instead of every page. `open_ranges`: (range, level) pairs whose
    pages are drawn one by one instead of folded (fold nodes' `range` and `level`).
    """
    parts = None
    if after is not None and after[0].parts is not None:
        parts = _resort_pages(after[0].parts, after[1], snap, selected, collapse_threshold)
    if parts is None:
        parts = _sort_pages(snap, selected, collapse_threshold)
    return _assemble(snap, layout, parts, selected, leaks, open_ranges)


def resort_also(view: TreeView, prev: StepSummary, step: StepSummary) -> frozenset[int]:
    """The pages beyond those whose state differs that moving `view` (of step `prev`) to
    `step` sorts again (what tree_view_of() needs Run.changed_states() asked for "also").

    The pages `step` touched or either step freed, and of those only `prev` touched, the
    ones drawn one by one or detached there (being touched decides where those go:
    _sort_page). A page `prev` touched that sits in a summary group there (a busy step
    folds its touched pages: _summarized) is in the same state at `step`, untouched, so
    it stays in its group (a zapped page that folds only on a busy step is re-sorted by
    _flipped when `step` is not busy). A move from a step that touched a whole table
    then costs the pages of the step it goes to, not those of both.
    """
    ghosts = {sp.id for sp in prev.ghosts} | {sp.id for sp in step.ghosts}
    parts = view.parts
    if parts is None:
        return prev.changed | step.changed | ghosts
    individual, detached = parts.individual, parts.detached
    return step.changed | ghosts | {i for i in prev.changed if i in individual or i in detached}


def tree_view_of(
    step: StepSummary,
    layout: Layout,
    *,
    pages: Callable[[], Sequence[SpView] | LivePages],
    moved: tuple[TreeView, StepSummary, PageChanges | StateChanges] | None = None,
    selected: int | None = None,
    collapse_threshold: int = COLLAPSE_THRESHOLD,
    leaks: LeakFolding | None = None,
    open_ranges: Collection[tuple[int, int]] = (),
) -> TreeView:
    """tree_view() of a step given without its pages (mmu_model StepSummary).

    `moved`: the view of another step of the run (same selection), that step, and the
    pages whose state differs between the two (Run.changed_pages(), or as raw states
    Run.changed_states(), asked also for the pages either step touched or freed): only
    those are sorted again. Otherwise (or when
    the steps fold differently) every live page of the step (`pages()` loads them: their
    views, or their raw states, LivePages, of which only the pages not folded into
    summary nodes get a view) is sorted.
    """
    parts = None
    if moved is not None and moved[0].parts is not None:
        prev_parts, prev_step, changes = moved[0].parts, moved[1], moved[2]
        ghosts = {sp.id for sp in (*prev_step.ghosts, *step.ghosts)}
        ids = changes.ids if isinstance(changes, PageChanges) else frozenset(changes.diff)
        missing = resort_also(moved[0], prev_step, step) - ids - ghosts
        if missing:
            raise ValueError(f"changed_pages() was not asked for pages {sorted(missing)[:5]}")
        old: list[tuple[int, tuple[int, str]]]
        views: list[SpView | tuple[int, int, int]]
        reader = None
        if isinstance(changes, PageChanges):
            old = [_keyed(changes.before[i]) for i in sorted(changes.before)]
            views = [changes.after[i] for i in sorted(changes.after)]
        else:  # raw states: a page that folds into a summary node gets no view
            reader = changes
            before, after = changes.sides()
            old, views = list(before), list(after)
        old += [_keyed(sp) for sp in prev_step.ghosts]
        views += step.ghosts
        parts = _resort(prev_parts, old, views, step.changed, step.n_pages, selected,
                        collapse_threshold, reader)
    if parts is None:
        live = pages()
        if isinstance(live, Sequence):
            parts = _sort(live, step.ghosts, step.changed, selected, collapse_threshold)
        else:
            parts = _sort_live(live, step.ghosts, step.changed, selected, collapse_threshold)
    return _assemble(step, layout, parts, selected, leaks, open_ranges)


@dataclass(slots=True)
class _Range:
    """A fold being built: the top pages of one range and parent, and what they hold."""

    level: int
    range: int
    parent: int
    tops: list[SpView]
    counts: dict[int, list[int]] = field(default_factory=dict)  # level -> [pages, unsync]
    absorbed: bool = False  # folded in turn into a fold of the row above

    def add(self, level: int, pages: int, unsync: int) -> None:
        count = self.counts.setdefault(level, [0, 0])
        count[0] += pages
        count[1] += unsync


def _range_of(layout: Layout, level: int, l2_gfn: int) -> int:
    """Which of the ROW_RANGES equal parts of the x axis a page's slot centre lies in (kept
    in the layout: every step asks it of every page of the crowded rows)."""
    key = (level, l2_gfn)
    rng = layout._ranges.get(key)
    if rng is None:
        x = layout.x(level, l2_gfn)
        rng = min(max(int((x + 0.5) * ROW_RANGES / layout.width), 0), ROW_RANGES - 1)
        layout._ranges[key] = rng
    return rng


def _fold_position(layout: Layout, parent: SpView, level: int, rng: int) -> tuple[float, float]:
    """A fold's place, fixed for the run: on its level's row, centred over the part of its
    range that its parent covers, and shifted as the parent is shifted in its stack (so the
    folds under the pages of one slot stand apart as those pages do)."""
    lo = rng * layout.width / ROW_RANGES - 0.5
    hi = (rng + 1) * layout.width / ROW_RANGES - 0.5
    slots = layout.slots
    lo_parent = bisect_left(slots, parent.l2_gfn) - 0.5
    hi_parent = bisect_left(slots, parent.l2_gfn + span(parent.level)) - 0.5
    a, b = max(lo, lo_parent), min(hi, hi_parent)
    x = (a + b) / 2 if b > a else (lo + hi) / 2
    home = layout.x(parent.level, parent.l2_gfn)
    px, py = layout.pos.get(parent.id) or (home, float(parent.level))
    return x + (px - home), level - (parent.level - py)


def _fold_ranges(individual: dict[int, tuple[SpView, str]], parts: _Sorted, layout: Layout,
                 changed: Collection[int], selected: int | None,
                 open_ranges: frozenset[tuple[int, int]]
                 ) -> tuple[list[Node], set[tuple[int, str]]]:
    """Fold healthy pages of crowded rows, each with everything under it, into range nodes.

    A level's row is crowded when it, or the row below (which only folding its parents can
    thin), draws more than ROW_BUDGET nodes of the tree. A page of level 2 or more folds
    when it is synced or unsync, reached from a root through first parents, untouched, not
    selected, not in an opened range, and every node drawn under it folds with it: no page
    the step touched (nor a summary carrying their ring), no selected, zapped or
    other-parented page hangs under it. So the touched pages, the selected page and their
    ancestors, the roots and the detached pages (and whatever hangs under those) stay. The
    pages of a crowded row that may fold are grouped by range (_range_of) and first parent;
    a group of two or more becomes one fold node, which takes in the pages, summaries and
    folds under its pages. Removes what it folds from `individual`; returns the fold nodes
    and the keys of the summary groups (parts.groups) folded into them.
    """
    rows: dict[int, int] = {}
    by_level: dict[int, list[tuple[SpView, str]]] = {}
    for sp, status in individual.values():
        if status not in DETACHED:
            rows[sp.level] = rows.get(sp.level, 0) + 1
            by_level.setdefault(sp.level, []).append((sp, status))
    summaries: dict[int, list[tuple[int, str]]] = {}
    blocked: set[int] = set()  # pages with a node under them that may not fold
    for key in parts.groups:
        rows[1] = rows.get(1, 0) + 1
        summaries.setdefault(key[0], []).append(key)
        if key in parts.ringed_groups:
            blocked.add(key[0])
    if all(n <= ROW_BUDGET for n in rows.values()):
        return [], set()

    leaf_states = _FOLDABLE_WHEN_BUSY if parts.busy else _FOLDABLE
    reach: dict[int, bool] = {}

    def reachable(sp_id: int) -> bool:
        hit = reach.get(sp_id)
        if hit is None:
            item = individual.get(sp_id)
            hit = item is not None and (
                item[1] == "root"
                or (item[1] in _FOLDABLE and bool(item[0].parents)
                    and reachable(item[0].parents[0][0])))
            reach[sp_id] = hit
        return hit

    kids: dict[int, list[int]] = {}  # parent -> its first-parent children that may fold
    folds_under: dict[int, list[_Range]] = {}
    absorbed: set[tuple[int, str]] = set()
    made: list[_Range] = []

    def take_in(fold: _Range, parent: int) -> None:
        for child in kids.get(parent, ()):
            item = individual.pop(child, None)
            if item is None:  # already in a fold of its own row
                continue
            sp, status = item
            fold.add(sp.level, 1, status == "unsync")
            rows[sp.level] -= 1
            take_in(fold, child)
        for key in summaries.get(parent, ()):
            members = parts.groups[key]
            absorbed.add(key)
            fold.add(1, len(members), len(members) if key[1] == "unsync" else 0)
            rows[1] -= 1
        for below in folds_under.pop(parent, ()):
            below.absorbed = True
            for level, (pages, unsync) in below.counts.items():
                fold.add(level, pages, unsync)
            rows[below.level] -= 1

    for level in sorted(by_level):
        ranges: dict[tuple[int, int], list[SpView]] = {}
        for sp, status in sorted(by_level[level], key=lambda item: item[0].id):
            first = sp.parents[0][0] if sp.parents else -1
            rng = _range_of(layout, level, sp.l2_gfn) if level >= 2 else 0
            ok = (first >= 0 and sp.id not in changed and sp.id != selected
                  and sp.id not in blocked
                  and (status in leaf_states if level == 1 else
                       status in _FOLDABLE and (rng, level) not in open_ranges
                       and reachable(first)))
            for parent_id, _index in sp.parents:
                if not ok or parent_id != first:
                    blocked.add(parent_id)
            if ok:
                kids.setdefault(first, []).append(sp.id)
                if level >= 2:
                    ranges.setdefault((rng, first), []).append(sp)
        if rows.get(level, 0) <= ROW_BUDGET and rows.get(level - 1, 0) <= ROW_BUDGET:
            continue
        for (rng, parent), tops in sorted(ranges.items()):
            if len(tops) < 2:
                continue
            fold = _Range(level, rng, parent, tops)
            for sp in tops:
                fold.add(level, 1, individual.pop(sp.id)[1] == "unsync")
                take_in(fold, sp.id)
            rows[level] -= len(tops) - 1
            folds_under.setdefault(parent, []).append(fold)
            made.append(fold)

    nodes = []
    for fold in made:
        if fold.absorbed:
            continue
        x, y = _fold_position(layout, individual[fold.parent][0], fold.level, fold.range)
        under = tuple((lv, pages, unsync) for lv, (pages, unsync)
                      in sorted(fold.counts.items(), reverse=True))
        links = sorted({p for sp in fold.tops for p, _index in sp.parents})
        nodes.append(Node(
            id=-(1 << 42) - 4096 * (fold.parent + 1) - 256 * fold.level - fold.range,
            key=f"r{fold.level}:{fold.range}:{fold.parent}", x=x, y=y, status="fold",
            level=fold.level, count=sum(pages for _lv, pages, _u in under),
            fold_status="unsync" if any(u for _lv, _n, u in under) else "synced",
            parent=fold.parent, range=fold.range, under=under, links=tuple(links),
        ))
    return nodes, absorbed

def _view_of(parts: _Sorted, page: _Folded) -> SpView:
    assert parts.view_of is not None  # set by whatever sorted raw states
    return parts.view_of(page.id, page.word, page.pcode)


def _assemble(snap: Snapshot | StepSummary, layout: Layout, parts: _Sorted,
              selected: int | None, leaks: LeakFolding | None,
              open_ranges: Collection[tuple[int, int]] = ()) -> TreeView:
    changed = snap.changed
    created = snap.created
    individual = dict(parts.individual)
    leak_groups: dict[tuple[int, int, str], int] = {}
    if leaks is not None and len(parts.detached) > LEAK_FOLD_THRESHOLD:
        boot_of = leaks.boot_of
        for sp, status in parts.detached.values():
            boot = boot_of(sp.id)
            if (boot, sp.level) in leaks.open:
                individual[sp.id] = (sp, status)
            else:
                group = (boot, sp.level, status)
                leak_groups[group] = leak_groups.get(group, 0) + 1
    else:
        individual.update(parts.detached)
    folds, absorbed = _fold_ranges(individual, parts, layout, changed, selected,
                                   frozenset(open_ranges))

    nodes: list[Node] = []
    pos = layout.pos
    for sp_id in sorted(individual):
        sp, status = individual[sp_id]
        x, y = pos.get(sp.id) or (layout.x(sp.level, sp.l2_gfn), float(sp.level))
        nodes.append(
            Node(id=sp.id, key=str(sp.id), x=x, y=y, status=status, level=sp.level, sp=sp,
                 changed=sp.id in changed, created=sp.id in created, selected=sp.id == selected)
        )
    folded = 0
    for (parent, status), members in sorted(parts.groups.items()):
        if (parent, status) in absorbed:
            continue
        if len(members) == 1:
            (member,) = members.values()
            sp = member if isinstance(member, SpView) else _view_of(parts, member)
            x, y = pos.get(sp.id) or (layout.x(1, sp.l2_gfn), 1.0)
            nodes.append(
                Node(id=sp.id, key=str(sp.id), x=x, y=y, status=status, level=1, sp=sp,
                     changed=sp.id in changed, created=sp.id in created)
            )
            continue
        above = individual.get(parent)  # a parent of linked pages is never folded
        if above is not None:
            x = (pos.get(parent) or (layout.x(above[0].level, above[0].l2_gfn), 0.0))[0]
        else:
            x = sum(layout.x(1, m.l2_gfn) for m in members.values()) / len(members)
        nodes.append(
            Node(
                id=-8 * (parent + 2) - _STATE_INDEX[status], key=f"s{parent}:{status}", x=x,
                y=1.0 - _SUMMARY_DY[status], status="summary", level=1, count=len(members),
                fold_status=status, parent=parent if parent >= 0 else None,
                changed=(parent, status) in parts.ringed_groups,
            )
        )
        folded += len(members)
    nodes.extend(folds)
    leaks_folded = 0
    if leak_groups:
        assert leaks is not None
        for (boot, level, status), count in sorted(leak_groups.items()):
            nodes.append(
                Node(id=-(1 << 40) - 64 * boot - 8 * level - _STATE_INDEX[status],
                     key=f"g{boot}:{level}:{status}",
                     x=_group_x(layout, boot, leaks.boots), y=level - _GROUP_DY[status],
                     status="group", level=level, count=count, fold_status=status, boot=boot)
            )
            leaks_folded += count

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
        elif node.links:
            edges.extend((parent_id, node.id) for parent_id in node.links
                         if parent_id in drawn)
        elif node.parent is not None and node.parent in drawn:
            edges.append((node.parent, node.id))
    return TreeView(
        nodes=nodes,
        edges=edges,
        n_pages=parts.n_pages,
        folded=folded,
        ranges_folded=sum(node.count for node in folds),
        leaks_folded=leaks_folded,
        n_changed=parts.n_changed,
        rings_dropped=rings_dropped,
        parts=parts,
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
