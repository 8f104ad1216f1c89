"""A step's tree sorted from its pages' raw states equals the one sorted from their views.

When no drawn view is at hand, app/treepanel.py builds a step's tree from every live page
as its raw state (Run.live_pages: sp id, state word, parent code) instead of a view per
page (Run.pages_at): a level-1 page that folds into its parent's summary node is kept as
its state, and only the pages the tree may draw alone get a view. The reference is
tree_view() of the step's Snapshot, which sorts the view of every page: both must give the
same nodes (each drawn page with the same view), edges and counts, on collapsed trees
(large-10k: quiet and busy steps), on crowded rows (range folds), with leak groups, with a
selected page, and on a small tree where nothing folds.
"""

from __future__ import annotations

import functools

import pytest

import mmu_model
from app.graph import (
    COLLAPSE_THRESHOLD,
    LeakFolding,
    TreeView,
    detached_boots,
    layout_for_run,
    tree_view,
    tree_view_of,
)
from mmu_model import Run
from tests.api.test_tree_lod import wide_run


@functools.cache
def runs() -> dict[str, Run]:
    spec = mmu_model.get_scenario("teaching-small").spec
    assert spec is not None
    return {
        "teaching-small": mmu_model.run_named("teaching-small"),
        "leaks": mmu_model.run_scenario(spec.replace(boots=60)),
        "large-10k": mmu_model.run_named("large-10k"),
        "wide": wide_run(),
    }


# (run, action step): large-10k's actions 36-79 each touch 514 pages (busy: touched pages
# fold too, and zapped ones), from 80 on a step touches few (so a move from 34 to 36, or
# from 78 to 80, crosses from quiet to busy or back); the wide tree's rows are crowded from step 62
# (range folds), with unsync orphaned PTs later; 60 boots of teaching-small have more than
# LEAK_FOLD_THRESHOLD detached pages from about boot 37 (step 2500 is past it).
CASES = [("teaching-small", 0), ("teaching-small", 20), ("large-10k", 36),
         ("large-10k", 43), ("large-10k", 80), ("large-10k", 100), ("large-10k", -1),
         ("wide", 62), ("wide", 63), ("wide", 1000), ("leaks", 2500)]


def _leaks(run: Run, boot: int) -> LeakFolding:
    known: dict[int, int] = {}
    boots = max(len(run.per_boot), 1)
    boot = min(max(boot, 1), boots)

    def boot_of(sp_id: int) -> int:
        detached_boots(run, boot, known)
        return min(known.get(sp_id, boot), boot)

    return LeakFolding(boots=boots, boot_of=boot_of)


def _drawn(view: TreeView) -> tuple[object, ...]:
    return (view.nodes, view.edges, view.n_pages, view.folded, view.ranges_folded,
            view.leaks_folded, view.n_changed, view.rings_dropped)


@pytest.mark.parametrize(("name", "step"), CASES)
@pytest.mark.parametrize("select", [False, True])
def test_the_tree_from_raw_states_is_the_tree_from_views(name: str, step: int,
                                                         select: bool) -> None:
    run = runs()[name]
    step = run.n_actions if step < 0 else step
    layout = layout_for_run(run)
    snap = run.snapshot(step)
    # Selecting a level-1 page keeps it out of its summary node (and its path drawn).
    level1 = [sp.id for sp in snap.pages if sp.level == 1]
    selected = level1[len(level1) // 2] if select and level1 else None
    boot = snap.action.boot if snap.action is not None else 1
    expected = tree_view(snap, layout, selected=selected, leaks=_leaks(run, boot))

    fresh = Run.from_bytes(run.to_bytes())  # no page view built yet
    summary = fresh.summary(step, "action", fresh.page_counts(step))
    got = tree_view_of(summary, layout, pages=lambda: fresh.live_pages(step),
                       selected=selected, leaks=_leaks(run, boot))
    assert _drawn(got) == _drawn(expected)
    # Only the pages not folded into a summary node of two or more got a view.
    assert fresh.timeline is not None
    assert fresh.timeline.n_views <= len(snap.pages) - got.folded
    if name in ("large-10k", "wide") and len(snap.pages) > COLLAPSE_THRESHOLD:
        # Nearly every page of these collapsed trees is a level-1 page in a summary (the
        # wide tree: 1,920 PTs under 60 PDs; large-10k: 512 PTs under each of 20 PDs).
        assert fresh.timeline.n_views < len(snap.pages) // 10


@pytest.mark.parametrize(("name", "step"), [c for c in CASES if c[1] != 0])
@pytest.mark.parametrize("delta", [-1, 2])
def test_a_tree_moved_by_raw_states_is_the_tree_from_views(name: str, step: int,
                                                           delta: int) -> None:
    """From the tree of a neighbouring step (one after, two before), re-sorting only the
    pages whose raw state differs (Run.changed_states, with the pages either step touched
    or freed, and on a move between a quiet and a busy step the zapped level-1 pages)
    gives the step's tree as tree_view() sorts it from every view."""
    run = runs()[name]
    step = run.n_actions if step < 0 else step
    drawn = min(max(step - delta, 0), run.n_actions)
    layout = layout_for_run(run)
    snap = run.snapshot(step)
    boot = snap.action.boot if snap.action is not None else 1
    expected = tree_view(snap, layout, leaks=_leaks(run, boot))

    fresh = Run.from_bytes(run.to_bytes())
    counts = fresh.page_counts(drawn)
    before = fresh.summary(drawn, "action", counts)
    near = tree_view_of(before, layout, pages=lambda: fresh.live_pages(drawn),
                        leaks=_leaks(run, boot))
    summary = fresh.summary(step, "action", counts)
    also = (before.changed | summary.changed | {sp.id for sp in before.ghosts}
            | {sp.id for sp in summary.ghosts})
    changes = fresh.changed_states(drawn, step, "action", also)
    got = tree_view_of(summary, layout, pages=lambda: pytest.fail("moved: no pages loaded"),
                       moved=(near, before, changes), leaks=_leaks(run, boot))
    assert _drawn(got) == _drawn(expected)
