"""Defect 3 of issue 14: no page is drawn on an SPTE link it is not an end of.

The layout fixes every page's (x, y) for the run; a page lying on another link reads as
that link's end (the landing step's new root looked like the old tree's parent, step 26's
orphaned PDPT looked attached to the new root). The check is geometric, in pixels: a node
is "on" a link when its centre is closer to the link's segment than its marker's radius
(half its plotly marker size, STATUS_STYLES) plus 2 px for the 1 px link line.

Pixel scale of the tree figure (app/figures.py _run_figure): 460 px high with 10 + 40 px
margins, so 410 px for the y range [0.2, levels + 0.6] (4 levels: 4.4 units, 93 px per
level); the x range [-1, width] over the plot's width. The narrowest plot the page draws
at 1400 px is a compare pane: (1400 - 32 body padding - 340 side column - 12 gap - 8 pane
gap) / 2 = 504 px, minus 80 px of margins: about 420; 400 px is used, a little narrower.
The widest (one tree at 1920 px) spreads x further, which only widens every gap.
"""

from __future__ import annotations

import functools
import math

import pytest

import mmu_model
from app.figures import STATUS_STYLES
from app.graph import TreeView, layout_for_run, tree_view
from mmu_model import Run

NARROW_PLOT_PX = 400
PLOT_HEIGHT_PX = 460 - 10 - 40
LINE_CLEARANCE_PX = 2


@functools.cache
def teaching() -> Run:
    return mmu_model.run_named("teaching-small")


def nodes_on_foreign_links(view: TreeView, width_units: float, levels: int,
                           plot_px: float = NARROW_PLOT_PX) -> list[tuple[int, tuple[int, int]]]:
    """(node id, link) of every node whose marker touches a link it is not an end of."""
    ux = plot_px / width_units
    uy = PLOT_HEIGHT_PX / (levels + 0.4)
    at = {n.id: (n.x * ux, n.y * uy) for n in view.nodes}
    out = []
    for node in view.nodes:
        radius = STATUS_STYLES[node.status][3] / 2 + LINE_CLEARANCE_PX
        px, py = at[node.id]
        for a, b in view.edges:
            if node.id in (a, b):
                continue
            (ax, ay), (bx, by) = at[a], at[b]
            dx, dy = bx - ax, by - ay
            t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
            if math.hypot(ax + t * dx - px, ay + t * dy - py) < radius:
                out.append((node.id, (a, b)))
    return out


@pytest.mark.parametrize("plot_px", [NARROW_PLOT_PX, 900])
def test_no_page_lies_on_a_link_it_is_not_an_end_of_at_any_step(plot_px: int) -> None:
    """teaching-small, every action step, in a compare pane's width and in a wide plot."""
    run = teaching()
    layout = layout_for_run(run)
    assert run.spec is not None
    width_units = layout.width + 1  # the x range is [-1, width]
    bad = {}
    for step in range(run.n_actions + 1):
        view = tree_view(run.snapshot(step), layout)
        hits = nodes_on_foreign_links(view, width_units, run.spec.ept_levels, plot_px)
        if hits:
            bad[step] = hits
    assert bad == {}


def test_the_landing_root_and_the_step_26_orphan_sit_off_the_other_trees_links() -> None:
    """The two cases of the issue, named: at step 5 (L1 replaced the root: kvm_mmu_new_pgd
    gets a fresh root, the old tree waits for its teardown) two roots of the same slot are
    live, the old one still linked to its PDPT; at step 26 the old PDPT is an orphan next to
    the new PDPT linked under the new root. In each, the newer page stands to the right of
    the older one (the diagonal stack), so neither sits on the other's vertical link."""
    run = teaching()
    layout = layout_for_run(run)
    for step, level, older_status in ((5, 4, "root"), (26, 3, "orphan")):
        snap = run.snapshot(step)
        view = tree_view(snap, layout)
        same_slot = sorted((n for n in view.nodes if n.level == level), key=lambda n: n.id)
        assert len(same_slot) == 2, (step, [(n.id, n.status) for n in same_slot])
        older, newer = same_slot
        assert older.status == older_status
        assert newer.x > older.x
        assert newer.y < older.y
        assert run.spec is not None
        assert nodes_on_foreign_links(view, layout.width + 1, run.spec.ept_levels) == []


def test_deep_stacks_of_upper_pages_keep_off_each_others_links() -> None:
    """Three boots of teaching-small leave six roots in one slot: each boot builds a root
    and, at its first root zap, replaces it (the landing step 5 of one boot); its second
    root zap is the teardown at the boot's end, which builds nothing. Upper-level links run
    straight down to the next level, so each newer page must stand a marker's width right
    of the older one's link: an upper-level stack spreads over half the slots its pages
    cover instead of being squeezed into one slot's width. Checked on the links between
    upper levels (level-1 rows are another matter, see the README)."""
    spec = mmu_model.get_scenario("teaching-small").spec
    assert spec is not None
    assert (spec.root_zaps_per_boot, spec.ept_levels) == (2, 4)
    run = mmu_model.run_scenario(spec.replace(boots=3))
    layout = layout_for_run(run)
    roots = [sp_id for sp_id, level, _gfn in run.all_pages() if level == 4]
    assert len(roots) == 3 * 2  # per boot: its first root and the one replacing it
    level_of = {sp_id: level for sp_id, level, _gfn in run.all_pages()}
    for step in range(run.n_actions + 1):
        view = tree_view(run.snapshot(step), layout)
        hits = [(node, (a, b)) for node, (a, b) in
                nodes_on_foreign_links(view, layout.width + 1, spec.ept_levels)
                if level_of[b] >= 2]
        assert hits == [], step
