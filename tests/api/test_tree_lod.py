"""Level of detail of the tree (app/graph.py): crowded rows fold into range nodes.

The tree used here is populated-16g cut down to the shape of the browser benchmark's 100k
spec (one PDPT over many PDs, each PD full of PT pages), small enough to run in a test:
l2_mem_gib=60 gives 60 PD pages (one per GiB of L2 memory), pdes_per_pd=32 gives 32 PT
pages under each, ptes_per_pt=1 one leaf SPTE per PT. After the build (62 actions: the
vCPU entry, then one l2_touch per PD building it and its 32 PTs, step 62 the L1 INVEPT)
the run holds 1 root + 1 PDPT + 60 PD + 1,920 PT = 1,982 pages, more than
COLLAPSE_THRESHOLD, so the PTs fold into one summary node per PD; that still leaves 60
PDs and 60 summaries, each row past ROW_BUDGET (48).

Geometry (graph.build_layout): each PT page covers its own slot, so the layout is 1,920
slots wide and PD k (in guest-physical order) is centred at slot 32k + 15.5. The x axis
is cut into ROW_RANGES (24) ranges of 1,920 / 24 = 80 slots, range r covering x from
80r - 0.5 to 80r + 79.5; PD k lies in range floor((32k + 16) / 80), so ranges hold 2 or
3 PDs (2.5 on average) and every range holds at least two.
"""

from __future__ import annotations

import functools

import pytest

import mmu_model
from app.figures import TRACE_METAS, figure_from_dict, tree_figure, tree_state
from app.graph import (
    DETACHED,
    ROW_BUDGET,
    ROW_RANGES,
    Layout,
    Node,
    TreeView,
    layout_for_run,
    tree_view,
)
from app.viewstate import ViewError, open_param, parse_open
from mmu_model import Run, Snapshot, SpView

PDS, PTS_PER_PD = 60, 32
SLOTS = PDS * PTS_PER_PD
RANGE_SLOTS = SLOTS // ROW_RANGES  # 80
BUILT = 62  # the step after the build: the L1 INVEPT, which touches the root only
LOD_QUERY = ("scenario=populated-16g&l2_mem_gib=60&pdes_per_pd=32&ptes_per_pt=1&boots=1"
             "&root_zaps_per_boot=1&mode=exclusive&huge_share=0&ept_levels=4")


@functools.cache
def wide_run() -> Run:
    base = mmu_model.get_scenario("populated-16g").spec
    assert base is not None
    return mmu_model.run_scenario(base.replace(
        l2_mem_gib=PDS, pdes_per_pd=PTS_PER_PD, ptes_per_pt=1, boots=1,
        root_zaps_per_boot=1, mode="exclusive", huge_share=0, ept_levels=4))


@functools.cache
def wide_layout() -> Layout:
    return layout_for_run(wide_run())


def pds_by_order(snap: Snapshot) -> list[SpView]:
    return sorted((sp for sp in snap.pages if sp.level == 2), key=lambda sp: sp.l2_gfn)


def range_of_pd(k: int) -> int:
    """The range of the k-th PD in guest-physical order (the module docstring's sum)."""
    return (PTS_PER_PD * k + PTS_PER_PD // 2) // RANGE_SLOTS


def folds(view: TreeView) -> list[Node]:
    return [n for n in view.nodes if n.status == "fold"]


def drawn_pages(view: TreeView) -> set[int]:
    return {n.id for n in view.nodes if n.sp is not None}


def test_the_built_tree_draws_one_fold_per_range_under_its_pdpt() -> None:
    """At step 62 nothing under the PDPT is touched: the 60 PDs fold, with their 1,920 PTs,
    into one node per range (24), hanging from the PDPT; root, PDPT and the 24 folds are
    all that is drawn (26 nodes, 25 edges), instead of 60 PDs, 60 summaries and 121
    edges. Each fold holds exactly the PDs of its range (range_of_pd) and their PTs."""
    run = wide_run()
    snap = run.snapshot(BUILT)
    assert snap.changed == {next(sp.id for sp in snap.pages if sp.level == 4)}
    assert len(snap.pages) == 1 + 1 + PDS + SLOTS
    view = tree_view(snap, wide_layout())
    assert wide_layout().width == SLOTS
    pdpt = next(sp.id for sp in snap.pages if sp.level == 3)
    assert sorted(n.status for n in view.nodes if n.sp is not None) == ["root", "synced"]
    got = {n.range: n for n in folds(view)}
    assert sorted(got) == list(range(ROW_RANGES))
    want: dict[int, int] = {}
    for k in range(PDS):
        want[range_of_pd(k)] = want.get(range_of_pd(k), 0) + 1
    assert set(want.values()) == {2, 3}
    for rng, node in got.items():
        assert node.under == ((2, want[rng], 0), (1, want[rng] * PTS_PER_PD, 0)), rng
        assert node.count == want[rng] * (1 + PTS_PER_PD)
        assert (node.parent, node.level, node.fold_status) == (pdpt, 2, "synced")
        # Centred over its range (the PDPT covers every slot), on the PD row.
        assert (node.x, node.y) == (RANGE_SLOTS * rng + (RANGE_SLOTS - 1) / 2, 2.0)
    assert view.n_nodes == 26
    assert len(view.edges) == 25
    assert all(a == pdpt for a, b in view.edges if b < 0)
    assert view.ranges_folded == PDS + SLOTS
    assert view.folded == 0  # every summary went into a fold


def test_the_pages_a_step_touched_stay_individual_with_their_ancestors() -> None:
    """Step 63 is an L1 write to one PD's range (l1_zap_4k): it touches the root, the
    PDPT, one PD and its 32 PTs (now unsync). Those stay drawn one by one (the PTs too:
    35 touched pages is a quiet step, below CHANGED_KEEP_LIMIT). The other PDs of that PD's
    range fold if two or more are left, else the one left is drawn with its summary; every
    other range is one fold as before."""
    run = wide_run()
    snap = run.snapshot(BUILT + 1)
    view = tree_view(snap, wide_layout())
    pds = pds_by_order(snap)
    touched = [k for k, sp in enumerate(pds) if sp.id in snap.changed]
    assert len(touched) == 1
    k = touched[0]
    pd = pds[k]
    pts = {sp.id for sp in snap.pages if sp.parents and sp.parents[0][0] == pd.id}
    assert len(pts) == PTS_PER_PD
    assert pts <= snap.changed
    ancestors = {sp.id for sp in snap.pages if sp.level >= 3}
    drawn = drawn_pages(view)
    assert {pd.id} | pts | ancestors <= drawn
    assert all(n.changed for n in view.nodes if n.id in {pd.id} | pts)
    rng = range_of_pd(k)
    left = [j for j in range(PDS) if range_of_pd(j) == rng and j != k]
    in_range = [n for n in folds(view) if n.range == rng]
    if len(left) >= 2:
        assert [n.under[0] for n in in_range] == [(2, len(left), 0)]
    else:
        assert in_range == []
        assert pds[left[0]].id in drawn
    assert sorted(n.range for n in folds(view) if n.range != rng) == [
        r for r in range(ROW_RANGES) if r != rng]


def test_the_selected_page_stays_with_its_ancestors_and_its_range_folds_around_it() -> None:
    """Selecting a PT of the 31st PD (k = 30) at step 62: that PT, its PD, the PDPT and the
    root are drawn; the PD's 31 other PTs fold into its summary node (the tree is past
    COLLAPSE_THRESHOLD). Its range (12: 32k + 16 = 976, and 976 // 80 = 12) holds PDs 30
    and 31 only (32 * 29 + 16 = 944 is in range 11, 32 * 32 + 16 = 1,040 in range 13), so
    PD 31 is left alone in it: drawn with its summary of 32 PTs, and range 12 has no fold."""
    run = wide_run()
    snap = run.snapshot(BUILT)
    k = 30
    assert [j for j in range(PDS) if range_of_pd(j) == 12] == [30, 31]
    pds = pds_by_order(snap)
    pt = min(sp.id for sp in snap.pages if sp.parents and sp.parents[0][0] == pds[k].id)
    view = tree_view(snap, wide_layout(), selected=pt)
    drawn = drawn_pages(view)
    assert {pt, pds[k].id, pds[31].id} | {sp.id for sp in snap.pages if sp.level >= 3} <= drawn
    assert sorted((n.parent, n.count) for n in view.nodes if n.status == "summary") == sorted(
        [(pds[k].id, PTS_PER_PD - 1), (pds[31].id, PTS_PER_PD)])
    assert [n.id for n in view.nodes if n.selected] == [pt]
    assert sorted(n.range for n in folds(view)) == [r for r in range(ROW_RANGES) if r != 12]


def test_opening_a_range_draws_its_pages_and_keeps_the_others_folded() -> None:
    """open_ranges={(5, 2)} (open=r5:2 in the URL) at step 62: the PDs of range 5 are drawn
    one by one, each over its summary of 32 PTs; the other 23 ranges stay folded."""
    run = wide_run()
    snap = run.snapshot(BUILT)
    view = tree_view(snap, wide_layout(), open_ranges={(5, 2)})
    pds = pds_by_order(snap)
    members = {pds[k].id for k in range(PDS) if range_of_pd(k) == 5}
    assert len(members) >= 2
    assert members <= drawn_pages(view)
    summaries = [n for n in view.nodes if n.status == "summary"]
    assert sorted(n.parent for n in summaries) == sorted(members)  # type: ignore[type-var]
    assert all(n.count == PTS_PER_PD for n in summaries)
    assert sorted(n.range for n in folds(view)) == [r for r in range(ROW_RANGES) if r != 5]


def test_fold_records_open_like_leak_groups_and_hover_with_their_counts() -> None:
    """A fold's record goes to the "fold" trace with the five customdata fields static/
    app.js reads on a click to open a folded group (id < 0, count, state, group, level):
    its group is "r<range>", so the click adds "r<range>:<level>" to `open`. Its text (the
    hover's, not drawn) says what it holds: 2 or 3 PDs and 32 PTs under each."""
    run = wide_run()
    state = tree_state(tree_view(run.snapshot(BUILT), wide_layout()), wide_layout())
    fold_trace = TRACE_METAS.index("fold")
    records = {k: r for k, r in state.records.items() if r[0] == fold_trace}
    assert len(records) == ROW_RANGES
    for key, (_trace, x, y, _size, _colour, text, customdata) in records.items():
        node_id, count, status, group, level = customdata
        assert node_id < 0
        assert (level, status, group[0]) == (2, "synced", "r")
        assert key.startswith(f"r2:{group[1:]}:")
        pds = count // (1 + PTS_PER_PD)
        assert text.startswith(f"{pds} l2 PD pages, {pds * PTS_PER_PD} l1 PT pages under them")
        assert None not in (x, y)  # not a page: its place is in the record


def test_the_pdpt_row_keeps_every_page_when_rows_are_within_budget() -> None:
    """Below the budget nothing folds into ranges: step 3 holds the root, the PDPT, two PDs
    and their 64 PTs (past ROW_BUDGET), but the untouched PD is alone in its range (range
    0 holds PDs 0 and 1, and PD 1 is the one step 3 built), so it stays with its PTs."""
    run = wide_run()
    snap = run.snapshot(3)
    assert len([sp for sp in snap.pages if sp.level == 1]) == 2 * PTS_PER_PD > ROW_BUDGET
    assert range_of_pd(0) == range_of_pd(1) == 0
    view = tree_view(snap, wide_layout())
    assert folds(view) == []
    assert drawn_pages(view) == {sp.id for sp in snap.pages}


@pytest.mark.parametrize("step", range(0, 2105, 47))
def test_every_page_is_drawn_once_and_rows_stay_bounded(step: int) -> None:
    """At every step: each live page (and ghost) is drawn one by one, in a summary, in a
    fold or in a leak group, exactly once; and the PD row draws at most ROW_BUDGET nodes
    (then nothing needs folding), or else at most ROW_RANGES folds (one parent here), plus
    at most one foldable page left alone in each range, plus the PDs the story needs: those
    the step touched or with a touched page under them. ROW_BUDGET is 2 * ROW_RANGES, so
    the row holds at most 2 * ROW_RANGES nodes besides those."""
    run = wide_run()
    snap = run.snapshot(step)
    view = tree_view(snap, wide_layout())
    individual = sum(1 for n in view.nodes if n.sp is not None)
    assert (individual + view.folded + view.ranges_folded + view.leaks_folded
            == len(snap.pages) + len(snap.ghosts))
    touched = {sp.id for sp in (*snap.pages, *snap.ghosts) if sp.id in snap.changed}
    every = (*snap.pages, *snap.ghosts)
    needed = {sp.id for sp in every if sp.level == 2 and (
        sp.id in touched or any(c.parents and c.parents[0][0] == sp.id and c.id in touched
                                for c in every))}
    row = [n for n in view.nodes if n.level == 2 and n.status not in DETACHED]
    assert ROW_BUDGET == 2 * ROW_RANGES
    assert len([n for n in row if n.sp is None or n.id not in needed]) <= ROW_BUDGET
    assert len([n for n in row if n.status == "fold"]) <= ROW_RANGES
    if folds(view):
        alone = [n for n in row if n.sp is not None and n.id not in needed]
        assert len({_range_key(n) for n in alone}) == len(alone), "two PDs left in a range"


def _range_key(node: Node) -> tuple[int, int]:
    """(range, first parent) of a PD node, the range by the module docstring's sum."""
    assert node.sp is not None
    # k: the PD's place among the 60 guest-physical GiBs the run's PDs cover (a PD that
    # replaced another covers the same GiB).
    gibs = sorted({l2_gfn for _id, level, l2_gfn in wide_run().all_pages() if level == 2})
    return (range_of_pd(gibs.index(node.sp.l2_gfn)), node.sp.parents[0][0])


def test_fold_positions_are_fixed_for_the_run() -> None:
    """A fold of (level, range, parent) stands at the same place at every step it is drawn,
    whatever pages it holds (it is computed from the layout, not from its members)."""
    run = wide_run()
    seen: dict[str, tuple[float, float]] = {}
    for step in range(BUILT - 10, BUILT + 30):
        for node in folds(tree_view(run.snapshot(step), wide_layout())):
            assert seen.setdefault(node.key, (node.x, node.y)) == (node.x, node.y), step


def test_open_names_folded_ranges_apart_from_leak_groups() -> None:
    """`open` takes leak groups (<boot>:<level>) and folded ranges (r<range>:<level>); a
    range is stored as (-1 - range, level), so it never matches a leak group of a boot, and
    the URL writer gives the same text back."""
    assert parse_open("r5:2,3:1,r0:3") == ((-6, 2), (-1, 3), (3, 1))
    assert open_param(parse_open("r5:2,3:1,r0:3")) == "3:1,r0:3,r5:2"
    with pytest.raises(ViewError) as err:
        parse_open("rx:2")
    assert err.value.field == "open"
    assert "r<range>:<level>" in str(err.value)


def test_a_figure_with_folds_is_valid_plotly_and_draws_no_fold_labels() -> None:
    """tree_figure() (what static/app.js builds from the records) with 24 folds passes
    plotly's schema; the fold trace draws markers only (its text is the hover's: a text
    label costs every redraw), and the figure has one edge per drawn link (25: root to
    PDPT, PDPT to each fold), three points each (two ends and the gap)."""
    run = wide_run()
    view = tree_view(run.snapshot(BUILT), wide_layout())
    fig = tree_figure(view, wide_layout(), max_level=4, uirevision="t")
    figure_from_dict(fig)
    trace = next(t for t in fig["data"] if t["meta"] == "fold")
    assert trace["mode"] == "markers"
    assert len(trace["x"]) == ROW_RANGES
    assert "%{text}" in trace["hovertemplate"]
    edges = next(t for t in fig["data"] if t["meta"] == "edges")
    assert len(edges["x"]) == 3 * 25
