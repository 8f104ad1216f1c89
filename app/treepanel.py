"""The tree panel of a resolved view: the run's layout (once per run) and each step's delta.

A run's layout and its figure are fixed, so they are served once at their own URL
(/api/layout, immutable while the run is cached under that hash) and every step sends only
what changed since the view the browser has drawn (the X-Mmu-Drawn request header names
that view's URL). Tree states are cached per run, a few steps deep, so the state the
browser has drawn is usually at hand.

A step's tree is built from the drawn step's when that is cached with its sorting, else
from the nearest cached one's (same selection and open groups, the same grain, at most
MOVE_LIMIT_EVENTS events away, forward or back): only the
pages whose state differs between the two steps (Run.changed_states, as raw states: a
page that folds into a summary node gets no view) and those either step touched are
sorted again, so a step costs what changed, not the tree's size. Otherwise it
is built from every page of the step, as raw states (Run.live_pages): a page folded into
a summary node gets no view (at 100k pages, all but a few hundred). Both give the same
tree state.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.figures import TreeState, run_layout_json, tree_delta, tree_figure, tree_state
from app.graph import (
    Layout,
    LeakFolding,
    TreeView,
    detached_boots,
    resort_also,
    tree_view,
    tree_view_of,
)
from app.run_parts import run_layout_of
from app.runs import MOVE_LIMIT_EVENTS, RunEntry
from app.viewstate import ViewState
from mmu_model import Run, Snapshot
from mmu_model.snapshot import StepSummary
from mmu_model.timeline import LivePages

__all__ = ["RunLayout", "run_layout", "tree_figure_at", "tree_panel", "tree_state_at"]

_STATES_PER_RUN = 8
_VIEWS_PER_RUN = 2
# What a cached tree weighs in its run's weight (RunEntry.weigh), from tracemalloc on the
# 100k-page spec: a view's sorting of every page of the step 13.7 MiB for 49,959 live pages
# (about 290 bytes a page); a tree state (what the browser is sent) 37 KB for 15 nodes.
_SORTED_BYTES_PER_PAGE = 300
_STATE_BYTES_PER_NODE = 2500
_lock = threading.Lock()


@dataclass(frozen=True)
class RunLayout:
    layout: Layout
    max_level: int
    body: bytes  # the JSON the browser gets
    hash: str

    def url(self, state: ViewState) -> str:
        return state.run_state().url("/api/layout") + f"&h={self.hash}"


def _max_level(run: Run, layout: Layout) -> int:
    if run.spec is not None:
        return run.spec.ept_levels
    return max((round(y + 0.5) for _x, y in layout.pos.values()), default=4)


def run_layout(entry: RunEntry, state: ViewState) -> RunLayout:
    def build() -> RunLayout:
        layout = run_layout_of(entry)  # kept with the run and weighed there
        max_level = _max_level(entry.run, layout)
        uirevision = f"{state.scenario_name}:{state.trace or ''}"
        body, digest = run_layout_json(layout, max_level=max_level, uirevision=uirevision,
                                       boots=max(len(entry.run.per_boot), 1))
        return RunLayout(layout, max_level, body, digest)

    value: RunLayout = entry.derive("run_layout", build, _layout_bytes)
    return value


def _layout_bytes(rl: RunLayout) -> int:
    return len(rl.body)  # its Layout is weighed where it is kept (app/run_parts.py)


def _leak_folding(entry: RunEntry, snap: Snapshot | StepSummary, state: ViewState
                  ) -> LeakFolding:
    run = entry.run
    boots = max(len(run.per_boot), 1)
    boot = min(max(snap.action.boot if snap.action is not None else 1, 1), boots)
    known: dict[int, int] = entry.derive("detached_boots", dict)
    scanned = False

    def boot_of(sp_id: int) -> int:
        nonlocal scanned
        if not scanned:  # only trees with enough detached pages to fold need the boots
            with _lock:
                detached_boots(run, boot, known)
            scanned = True
        return min(known.get(sp_id, boot), boot)

    return LeakFolding(boots=boots, boot_of=boot_of,
                       open=frozenset(pair for pair in state.open if pair[0] >= 0))


def _open_ranges(state: ViewState) -> frozenset[tuple[int, int]]:
    """The folded ranges the view opens, as (range, level): viewstate.parse_open writes
    "r<range>:<level>" as (-1 - range, level)."""
    return frozenset((-1 - key, level) for key, level in state.open if key < 0)


def _cache(entry: RunEntry) -> OrderedDict[Any, list[Any]]:
    cache: OrderedDict[Any, list[Any]] = entry.derive("tree_states", OrderedDict)
    return cache


def _key(state: ViewState, step: Snapshot | StepSummary) -> tuple[Any, ...]:
    return (step.step, step.grain, state.sp, state.open)


def _movable(state: ViewState, step: StepSummary, drawn: ViewState,
             drawn_step: StepSummary) -> bool:
    """Whether `step`'s tree can be built from the drawn one's by the pages that differ."""
    return (drawn_step.grain == step.grain and drawn.sp == state.sp
            and drawn.open == state.open
            and abs(drawn_step.op_step - step.op_step) <= MOVE_LIMIT_EVENTS)


def _nearest(cache: OrderedDict[Any, list[Any]], state: ViewState, step: StepSummary,
             drawn: tuple[ViewState, StepSummary] | None
             ) -> tuple[TreeView, StepSummary] | None:
    """A cached tree view (with its sorting) to move `step`'s from: the drawn one's when it
    is there, else the nearest one of the same selection, open groups and grain (a browser
    that sends steps faster than it draws them, a held arrow key, names a view whose
    sorting is gone, or one not cached at all); the caller holds the lock."""
    if drawn is not None and _movable(state, step, *drawn):
        item = cache.get(_key(*drawn))
        if item is not None and item[1] is not None:
            return item[1], item[2]
    best: tuple[TreeView, StepSummary] | None = None
    distance = MOVE_LIMIT_EVENTS + 1
    for view, other, (sp, opened) in ((item[1], item[2], item[3]) for item in cache.values()):
        if view is None or other.grain != step.grain or (sp, opened) != (state.sp, state.open):
            continue
        away = abs(other.op_step - step.op_step)
        if away < distance:
            best, distance = (view, other), away
    return best


def tree_state_at(entry: RunEntry, state: ViewState, step: StepSummary,
                  drawn: tuple[ViewState, StepSummary] | None = None) -> TreeState:
    """The tree state of `state` (at `step`), from the run's small cache when it is there.

    Else it is built from a cached tree view (the drawn one's, `drawn` being the view the
    browser has drawn, of the same run; else the nearest one: _nearest) by the pages that
    differ between the two steps, or failing that from every page of the step.
    """
    key = _key(state, step)
    cache = _cache(entry)
    with _lock:
        hit = cache.get(key)
        if hit is not None:
            cache.move_to_end(key)
            value: TreeState = hit[0]
            return value
        near = _nearest(cache, state, step, drawn)
    rl = run_layout(entry, state)
    run = entry.run

    def pages() -> LivePages:  # raw states: only pages drawn alone get a view
        return run.live_pages(step.step, step.grain)

    moved = None
    if near is not None:
        view, prev = near
        also = resort_also(view, prev, step)
        moved = (view, prev, run.changed_states(prev.step, step.step, step.grain, also))
    view = tree_view_of(step, rl.layout, pages=pages, moved=moved, selected=state.sp,
                        leaks=_leak_folding(entry, step, state),
                        open_ranges=_open_ranges(state))
    value = tree_state(view, rl.layout, boots=max(len(run.per_boot), 1))
    with _lock:
        change = 0
        if key not in cache:
            change += _state_bytes(value) + _view_bytes(view)
            # [state, view (its sorting) and its step (both None once dropped), selection
            # and open groups]
            cache[key] = [value, view, step, (state.sp, state.open)]
        while len(cache) > _STATES_PER_RUN:
            old_state, old_view, *_ = cache.popitem(last=False)[1]
            change -= _state_bytes(old_state) + _view_bytes(old_view)
        # Only the newest views keep their sorting of every page (a big tree's is large).
        for item in list(cache.values())[:-_VIEWS_PER_RUN]:
            change -= _view_bytes(item[1])
            item[1] = item[2] = None
    entry.weigh(change)
    return value


def _state_bytes(state: TreeState) -> int:
    return len(state.records) * _STATE_BYTES_PER_NODE


def _view_bytes(view: TreeView | None) -> int:
    return 0 if view is None else view.n_pages * _SORTED_BYTES_PER_PAGE


def tree_figure_at(entry: RunEntry, state: ViewState, snap: Snapshot,
                   differs: Sequence[str] = ()) -> dict[str, Any]:
    """The whole tree figure of `state` at `snap` (the compare baseline is drawn this way),
    with the nodes keyed in `differs` outlined."""
    rl = run_layout(entry, state)
    view = tree_view(snap, rl.layout, selected=state.sp,
                     leaks=_leak_folding(entry, snap, state), open_ranges=_open_ranges(state))
    return tree_figure(view, rl.layout, max_level=rl.max_level,
                       uirevision=f"{state.scenario_name}:{state.trace or ''}:base",
                       boots=max(len(entry.run.per_boot), 1), differs=differs)


def tree_panel(entry: RunEntry, state: ViewState, step: StepSummary,
               drawn: tuple[ViewState, StepSummary] | None) -> dict[str, Any]:
    """The delta from the drawn view (None: from nothing) to this one.

    `drawn` is of this run (resolve.drawn_view() returns None for another run's view)."""
    rl = run_layout(entry, state)
    old = None if drawn is None else tree_state_at(entry, drawn[0], drawn[1])
    new = tree_state_at(entry, state, step, drawn)
    return tree_delta(old, new) | {
        "url": state.url(), "base": None if drawn is None else drawn[0].url(),
        "layout": rl.url(state),
    }
