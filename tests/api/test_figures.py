"""Graph layout and figures: stable positions, folding of large trees, valid plotly figures."""

from __future__ import annotations

import functools
import itertools
import json
from typing import Any

import networkx as nx
import pytest

import mmu_model
from app.figures import (
    STATUS_STYLES,
    TRACE_METAS,
    boots_figure,
    figure_from_dict,
    park,
    run_layout_json,
    tree_delta,
    tree_figure,
    tree_state,
)
from app.graph import (
    CHANGED_KEEP_LIMIT,
    COLLAPSE_THRESHOLD,
    DETACHED,
    LEAK_FOLD_THRESHOLD,
    LeakFolding,
    _resort_pages,
    build_layout,
    detached_boots,
    layout_for_run,
    tree_view,
)
from mmu_model import Run, ScenarioSpec

# About 2,050 shadow pages: 4 PDs fully populated with PT pages (more than COLLAPSE_THRESHOLD).
WIDE = ScenarioSpec(l2_mem_gib=4, pdes_per_pd=512, ptes_per_pt=1, root_zaps_per_boot=1,
                    boots=1, mode="exclusive", ept_levels=4)


@functools.cache
def teaching() -> Run:
    return mmu_model.run_named("teaching-small")


@functools.cache
def wide() -> Run:
    return mmu_model.run_scenario(WIDE)


def positions(run: Run, step: int) -> dict[int, tuple[float, float]]:
    snap = run.snapshot(step)
    view = tree_view(snap, layout_for_run(run))
    return {n.id: (n.x, n.y) for n in view.nodes if n.sp is not None}


def test_positions_do_not_move_between_steps() -> None:
    """A page keeps its x (and level) at every step it exists in."""
    run = teaching()
    seen: dict[int, tuple[float, int]] = {}
    for step in range(run.n_actions + 1):
        for sp_id, (x, y) in positions(run, step).items():
            key = (x, round(y + 0.5))  # stacked duplicates sit just below their level
            assert seen.setdefault(sp_id, key) == key, (sp_id, step)


def test_orphans_keep_the_place_they_had_while_linked() -> None:
    """An orphaned page is drawn exactly where it was before it lost its parent."""
    run = teaching()
    step = next(s for s in range(run.n_actions + 1) if run.snapshot(s).orphans.unsync)
    orphan = next(p.id for p in run.snapshot(step).pages if p.status == "orphan-unsync")
    before = positions(run, step - 1)
    assert orphan in before
    assert positions(run, step)[orphan] == before[orphan]


def test_parents_sit_above_their_children_in_guest_physical_order() -> None:
    """Level is the y axis (root on top) and children are ordered by their L2 range."""
    run = teaching()
    snap = run.snapshot(run.default_step)
    pos = positions(run, run.default_step)
    by_id = {p.id: p for p in snap.pages}
    for page in snap.pages:
        for parent_id, _ in page.parents:
            assert pos[parent_id][1] > pos[page.id][1]
    leaves = sorted((p for p in snap.pages if p.level == 1), key=lambda p: p.l2_gfn)
    xs = [pos[p.id][0] for p in leaves]
    assert xs == sorted(xs)
    assert len(set(xs)) == len(xs)
    assert by_id


def test_layout_centres_a_parent_over_its_slots() -> None:
    """build_layout gives level-1 ranges consecutive slots and centres the PD above them."""
    layout = build_layout([(2, 0), (1, 512 * 3), (1, 512 * 10), (1, 512 * 11)])
    assert [layout.x(1, 512 * i) for i in (3, 10, 11)] == [0, 1, 2]
    assert layout.x(2, 0) == 1


@pytest.mark.parametrize("step", [0, 5, 7, 20, 48])
def test_small_tree_figure_draws_every_page_and_is_valid_plotly(step: int) -> None:
    """Below the fold threshold every page (and ghost) is one point; plotly accepts the figure."""
    run = teaching()
    snap = run.snapshot(step)
    layout = layout_for_run(run)
    view = tree_view(snap, layout)
    fig = tree_figure(view, layout, max_level=4, uirevision="t")
    figure_from_dict(fig)
    drawn = {cd[0]: cd[9] for t in fig["data"] if t["meta"] in STATUS_STYLES
             and t["meta"] != "summary" for cd in t["customdata"]}
    assert drawn == {p.id: p.status for p in (*snap.pages, *snap.ghosts)}
    changed = next(t for t in fig["data"] if t["meta"] == "changed")
    assert len(changed["x"]) == len(snap.changed & {p.id for p in (*snap.pages, *snap.ghosts)})
    assert all(t["type"] == "scatter" for t in fig["data"])


def test_leak_is_drawn_big_distinct_in_colour_and_shape() -> None:
    """The orphaned unsync page differs from every other state in colour and marker shape."""
    _, colour, symbol, size, _, _ = STATUS_STYLES["orphan-unsync"]
    for status, (_, other_colour, other_symbol, other_size, _, _) in STATUS_STYLES.items():
        if status != "orphan-unsync":
            assert (colour, symbol) != (other_colour, other_symbol)
            assert size > other_size


def test_large_tree_folds_healthy_pages_but_keeps_orphans_and_changes() -> None:
    """Past the threshold, synced/unsync leaves fold into summaries; orphans stay individual."""
    run = wide()
    # An eighth of the way through the teardown: still past the threshold, some orphans.
    step = run.n_actions // 8
    snap = run.snapshot(step)
    assert snap.orphans.unsync > 0
    assert len(snap.pages) > COLLAPSE_THRESHOLD
    layout = layout_for_run(run)
    view = tree_view(snap, layout)
    individual = {n.id for n in view.nodes if n.sp is not None}
    folded = sum(n.count for n in view.nodes if n.status == "summary")
    assert folded == view.folded > 0
    assert len(individual) + folded == len(snap.pages) + len(snap.ghosts)
    for page in snap.pages:
        if page.orphan or page.id in snap.changed or page.root_count:
            assert page.id in individual
    assert view.n_nodes < len(snap.pages) / 10
    assert nx.is_directed_acyclic_graph(view.graph)
    assert view.graph.number_of_nodes() == view.n_nodes


def test_busy_steps_fold_their_touched_pages_and_ring_the_summaries() -> None:
    """A step touching more than CHANGED_KEEP_LIMIT pages never rings them one by one.

    WIDE's build steps each add a PD with 512 PT pages (the first while the tree is still
    below COLLAPSE_THRESHOLD), and its opening step (an INVEPT) touches every page.
    """
    run = wide()
    layout = layout_for_run(run)
    busy_steps = 0
    for step in range(run.default_step + 3):
        snap = run.snapshot(step)
        view = tree_view(snap, layout)
        singles = [n for n in view.nodes if n.changed and n.sp is not None]
        assert len(singles) <= CHANGED_KEEP_LIMIT, step
        if view.n_changed <= CHANGED_KEEP_LIMIT:
            continue
        busy_steps += 1
        assert view.folded > 0, step
        touched_leaves = {p.id for p in (*snap.pages, *snap.ghosts)
                          if p.id in snap.changed and p.level == 1 and p.parents}
        assert touched_leaves.isdisjoint(n.id for n in view.nodes), step
        assert any(n.changed for n in view.nodes if n.status == "summary"), step
        fig = tree_figure(view, layout, max_level=4, uirevision="w")
        assert f"this step touched {view.n_changed:,} pages" in fig["layout"]["annotations"][0][
            "text"]
        ring = next(t for t in fig["data"] if t["meta"] == "changed")
        assert len(ring["x"]) <= view.n_nodes < 100
    assert len(run.snapshot(2).pages) < COLLAPSE_THRESHOLD  # folded although small
    assert tree_view(run.snapshot(2), layout).n_changed > CHANGED_KEEP_LIMIT
    assert busy_steps >= 4


def test_too_many_touched_individual_pages_lose_their_rings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the cap, pages that stay individual (upper levels) are not ringed; summaries are."""
    import app.graph

    monkeypatch.setattr(app.graph, "CHANGED_KEEP_LIMIT", 2)
    run = wide()
    snap = run.snapshot(2)  # the first PD built: its 512 PTs, the PD, the PDPT and the root
    layout = layout_for_run(run)
    view = tree_view(snap, layout)
    assert view.rings_dropped
    assert not any(n.changed for n in view.nodes if n.sp is not None)
    assert any(n.changed for n in view.nodes if n.status == "summary")
    fig = tree_figure(view, layout, max_level=4, uirevision="w")
    assert "too many to ring one by one" in fig["layout"]["annotations"][0]["text"]


def test_tree_uses_only_traces_the_served_plotly_bundle_draws() -> None:
    """The page serves plotly.js-basic (scatter, bar, pie): a tree of 2,000+ pages is scatter.

    Folding keeps the points few enough for SVG, so the tree never needs scattergl.
    """
    run = wide()
    layout = layout_for_run(run)
    view = tree_view(run.snapshot(run.default_step), layout)
    fig = tree_figure(view, layout, max_level=4, uirevision="w")
    assert {t["type"] for t in fig["data"]} == {"scatter"}
    figure_from_dict(fig)


def test_delta_applied_to_the_previous_step_gives_the_next_step() -> None:
    """Records of step s, with step s+1's delta applied (set, drop), are step s+1's records.

    Edges likewise (added, cut). Positions are the run's: a page's record leaves x, y to the
    layout (None) when it sits where the layout puts it.
    """
    run = teaching()
    layout = layout_for_run(run)
    states = [tree_state(tree_view(run.snapshot(s), layout), layout)
              for s in range(run.n_actions + 1)]
    for old, new in itertools.pairwise(states):
        delta = tree_delta(old, new)
        records = {k: r for k, r in old.records.items() if k not in delta["drop"]}
        records |= delta["set"]
        assert records == new.records
        edges = (old.edges - set(delta["edges_cut"])) | set(delta["edges_add"])
        assert edges == new.edges
        # A step re-sends only the nodes it changed: never more than it touched, plus the
        # nodes it dropped or added (the touched pages of teaching-small stay individual).
        assert len(delta["set"]) <= len(new.records)
        assert set(delta["set"]) == {k for k, r in new.records.items()
                                     if old.records.get(k) != r}
    full = tree_delta(None, states[5])
    assert full["set"] == states[5].records
    assert full["drop"] == []
    assert all(r[1] is None for k, r in full["set"].items() if k.isdigit())


def test_stacked_pages_stay_inside_their_level_row() -> None:
    """However many pages share a slot (100 boots of ex-roots), they stay in their row.

    Row of level L: (L - 1, L]; stacks go down from L by at most ROW_DEPTH (0.42).
    """
    layout = build_layout([(i, 4, 0) for i in range(1, 101)] + [(200, 1, 0)])
    ys = [layout.pos[i][1] for i in range(1, 101)]
    assert ys[0] == 4
    assert ys == sorted(ys, reverse=True)
    assert len(set(ys)) == 100  # each page its own place in the stack, none on another
    assert min(ys) >= 4 - 0.42 - 1e-9
    assert layout.pos[200] == (layout.x(1, 0), 1)


def test_leaks_fold_by_boot_and_level_past_the_threshold() -> None:
    """At the end of boot-loop (8 boots) every page is detached: they fold per boot and level.

    Each page lands in the group of the first boot at whose end it was detached (from the
    boot-end snapshots); the groups' counts add up to the detached pages not drawn one by
    one, and an opened group's pages are drawn one by one.
    """
    spec = mmu_model.get_scenario("boot-loop-bottom-up").spec
    assert spec is not None
    run = mmu_model.run_scenario(spec.replace(boots=8))
    snap = run.snapshot(run.n_actions)
    detached = [p for p in snap.pages if p.status in DETACHED]
    assert len(detached) > LEAK_FOLD_THRESHOLD
    first_boot: dict[int, int] = {}
    for b in run.per_boot:
        for p in run.snapshot(b.action_step).pages:
            if p.status in DETACHED:
                first_boot.setdefault(p.id, b.boot)
    known = detached_boots(run, 8, {})
    assert {k: v for k, v in known.items() if k >= 0} == {
        k: v for k, v in first_boot.items() if v < 8}
    layout = layout_for_run(run)

    def boot_of(i: int) -> int:
        return first_boot.get(i, 8)

    view = tree_view(snap, layout, leaks=LeakFolding(8, boot_of))
    groups = [n for n in view.nodes if n.status == "group"]
    expected: dict[tuple[int, int, str], int] = {}
    for p in detached:
        if p.id not in snap.changed:
            key = (boot_of(p.id), p.level, p.status)
            expected[key] = expected.get(key, 0) + 1
    assert {(n.boot, n.level, n.fold_status): n.count for n in groups} == expected
    assert len({n.boot for n in groups}) == 8  # one strip entry per boot: the pile by boot
    for n in groups:  # on its level's row, left to right by boot
        assert n.level - 0.5 < n.y < n.level
    xs = {n.boot: n.x for n in groups}
    assert [xs[b] for b in sorted(xs)] == sorted(xs.values())

    boot, level = groups[0].boot, groups[0].level
    opened = tree_view(snap, layout, leaks=LeakFolding(8, boot_of, open={(boot, level)}))
    members = {p.id for p in detached
               if boot_of(p.id) == boot and p.level == level and p.id not in snap.changed}
    assert members <= {n.id for n in opened.nodes if n.sp is not None}
    assert not any(n.boot == boot and n.level == level for n in opened.nodes
                   if n.status == "group")


def test_boots_figure_has_both_variants() -> None:
    """The per-boot figure has four series per variant and marks the current boot."""
    spec = ScenarioSpec(l2_mem_gib=1, pdes_per_pd=4, ptes_per_pt=4, boots=3, ept_levels=4)
    runs: list[Any] = [mmu_model.run_scenario(spec.replace(fixes=f), record=False)
                       for f in (mmu_model.DEFAULT_FIXES,
                                 mmu_model.DEFAULT_FIXES | {"track-write-zap"})]
    fig = boots_figure([("without", runs[0].per_boot, True), ("with", runs[1].per_boot, False)],
                       current_boot=2)
    assert len(fig["data"]) == 8
    assert {t["line"]["dash"] for t in fig["data"]} == {"dash", "solid"}
    figure_from_dict(fig)


def _drawn(view: Any) -> tuple[Any, ...]:
    nodes = sorted((n.key, n.x, n.y, n.status, n.count, n.changed, n.selected)
                   for n in view.nodes)
    return (tuple(nodes), frozenset(view.edges), view.folded, view.n_changed,
            view.rings_dropped)


@pytest.mark.parametrize("name", ["wide", "large-10k"])
def test_a_step_sorted_from_its_neighbour_draws_what_a_full_sort_draws(name: str) -> None:
    """Re-sorting only the pages two neighbouring steps touched (forwards and backwards)
    gives exactly the nodes, edges and rings of sorting every page of the step.

    Only the pages in either step's `changed` (and the pages either step freed) can change
    state between neighbouring steps, so every other page keeps its place.
    """
    run = wide() if name == "wide" else mmu_model.run_named("large-10k")
    layout = layout_for_run(run)
    lo = run.default_step - 3
    steps = range(max(lo, 0), min(run.default_step + 12, run.n_actions) + 1)
    full = {s: tree_view(run.snapshot(s), layout) for s in steps}
    reused = 0
    for s in steps:
        for t in (s - 1, s + 1):
            if t not in full:
                continue
            view = tree_view(run.snapshot(t), layout, after=(full[s], run.snapshot(s)))
            assert _drawn(view) == _drawn(full[t]), (s, t)
            reused += _resort_pages(full[s].parts, run.snapshot(s), run.snapshot(t),  # type: ignore[arg-type]
                                    None, COLLAPSE_THRESHOLD) is not None
    assert reused > len(steps)  # most neighbours were sorted the quick way


@pytest.mark.parametrize("ids", [(1, 2, 3, 4), (0, 1, 2, 3), (2, 5, 9, 10)])
def test_the_run_layout_places_each_page_at_its_id(ids: tuple[int, ...]) -> None:
    """run_layout_json's x and y are indexed by sp id (None where no page has the id), each
    rounded to 3 places and an int when whole: whether the ids run on from the first or
    have gaps. Three level-1 pages of one slot stack (x 0, 0.375, 0.75 and y 1, 0.79,
    0.58: STACK_WIDTH 0.75 over two steps gives dx 0.375, under STACK_DX 0.5; ROW_DEPTH
    0.42 over two gives dy 0.21, under STACK_DY 0.28; 1 - 2 * 0.21 is 0.5800000000000001
    in floats, rounded), beside a PD over them at slot 0's x and its level, 2."""
    pages = [(ids[0], 2, 0), (ids[1], 1, 0), (ids[2], 1, 0), (ids[3], 1, 0)]
    layout = build_layout(pages)
    body = json.loads(run_layout_json(layout, max_level=4, uirevision="u")[0])
    expected_x: list[Any] = [None] * (ids[-1] + 1)
    expected_y: list[Any] = [None] * (ids[-1] + 1)
    for sp_id, x, y in zip(ids, (0, 0, 0.375, 0.75), (2, 1, 0.79, 0.58), strict=True):
        expected_x[sp_id], expected_y[sp_id] = x, y
    assert body["x"] == expected_x
    assert body["y"] == expected_y
    assert [type(v) for v in body["y"] if v is not None] == [int, int, float, float]


def test_park_lists_every_size_a_folded_node_can_take() -> None:
    """The sizes the browser's first draw parks (app/figures.py park). A summary or fold
    node's marker is 16 px plus 2 px per bit of its count, at most 9 bits' worth: 16, 18,
    ..., 34. The "changed" ring is 30 around a page and 12 more than a folded node's
    marker around one: 28 ... 46 and 30. A leak group's marker starts at half its state's
    (the leak star's 26: 13) and grows the same way to 31, but is never wider than its
    boot's share of the 1,100 px strip, nor narrower than 7: at 100 boots 11, so 11 alone
    (every count is capped); at 1 boot 13 ... 31."""
    folded = list(range(16, 35, 2))
    one = park(1)["sizes"]
    assert one["summary"] == folded
    assert one["fold"] == folded
    assert one["changed"] == sorted({30, *range(28, 47, 2)})
    assert one["group:orphan-unsync"] == list(range(13, 32, 2))
    assert park(100)["sizes"]["group:orphan-unsync"] == [11]
    assert park(1000)["sizes"]["group:orphan-unsync"] == [7]  # 1,100 // 1,000 = 1: 7
    assert park(1)["x"] < -1  # left of the x range, [-1, width]


def test_every_size_a_step_draws_is_parked() -> None:
    """Every marker size the records of wide()'s steps give a folded node or a ring (its
    summary nodes fold a few hundred pages each, so their counts span many bit lengths) is
    among the sizes parked for its trace, so the first draw has drawn each once."""
    run = wide()
    layout = layout_for_run(run)
    sizes = park(1)["sizes"]
    seen: dict[str, set[int]] = {}
    for step in range(0, run.n_actions + 1, max(run.n_actions // 12, 1)):
        state = tree_state(tree_view(run.snapshot(step), layout), layout)
        for index, _x, _y, size, *_ in state.records.values():
            if size is not None:
                seen.setdefault(TRACE_METAS[index], set()).add(size)
        seen.setdefault("changed", set()).update(size for _key, size in state.rings)
    assert seen.get("summary"), seen  # the case this is about: folded nodes drawn
    for meta, drawn in seen.items():
        assert drawn <= set(sizes[meta]), (meta, drawn, sizes[meta])
