"""Level of detail in the browser: a folded range opens on a click, and steps keep folding.

The tree is tests/api/test_tree_lod.py's: one PDPT over 60 PDs of 32 PT pages each, whose
PD row folds into ROW_RANGES (24) range nodes at step 62 (the module docstring there gives
the arithmetic). Expected members come from the model and the written range sum of each PD,
never from the page; the tree is read from the plotly div's data, never from pixels.
"""

from __future__ import annotations

from typing import Any

from app.graph import ROW_RANGES
from mmu_model import Run
from tests.api.test_tree_lod import BUILT, LOD_QUERY, pds_by_order, range_of_pd, wide_run
from tests.browser.test_visualizer import (
    _POINTS_JS,
    act,
    assert_no_console_errors,
    blur,
    point_on_page,
    query,
    wait_tree,
)


def ranges_of_pds(run: Run, step: int) -> dict[int, int]:
    """PD id -> its range in the PD row: the k-th PD in guest-physical order lies in range
    range_of_pd(k) (tests/api/test_tree_lod.py's docstring gives the sum)."""
    return {sp.id: range_of_pd(k) for k, sp in enumerate(pds_by_order(run.snapshot(step)))}


def folds_drawn(page: Any) -> list[dict[str, Any]]:
    return [p for p in page.evaluate(_POINTS_JS) if p["meta"] == "fold"]


def pages_drawn(page: Any) -> dict[int, str]:
    """id -> trace (the page's state) of every shadow page drawn one by one."""
    return {p["cd"][0]: p["meta"] for p in page.evaluate(_POINTS_JS)
            if isinstance(p["cd"], list) and len(p["cd"]) >= 10}


def click_point(page: Any, x: float, y: float) -> None:
    page.mouse.click(*point_on_page(page, x, y))


def test_a_folded_range_opens_into_its_pages(page: Any) -> None:
    """At step 62 the PD row is 24 folds under the PDPT and no PD is drawn. Clicking the
    fold of range 7 adds `open=r7:2` to the URL and draws that range's PDs one by one (in
    their state, synced: nothing is unsync yet), each over its summary of 32 PTs; the
    other 23 ranges stay folded. Clicking the fold of range 8 then opens it too."""
    run = wide_run()
    page.goto(f"/?v=1&{LOD_QUERY}&step={BUILT}", timeout=120_000)
    wait_tree(page, BUILT, timeout_ms=120_000)
    folds = folds_drawn(page)
    assert sorted(int(f["cd"][3][1:]) for f in folds) == list(range(ROW_RANGES))
    ranges = ranges_of_pds(run, BUILT)
    assert not set(ranges) & set(pages_drawn(page))

    target = next(f for f in folds if f["cd"][3] == "r7")
    members = {sp_id for sp_id, rng in ranges.items() if rng == 7}
    assert target["cd"][1] == len(members) * 33  # each PD with its 32 PTs
    act(page, lambda: click_point(page, target["x"], target["y"]), BUILT, timeout_ms=60_000)
    assert query(page.url).get("open") == "r7:2", page.url
    drawn = pages_drawn(page)
    assert {i: drawn.get(i) for i in members} == dict.fromkeys(members, "synced")
    summaries = [p for p in page.evaluate(_POINTS_JS) if p["meta"] == "summary"]
    assert sorted(p["cd"][3] for p in summaries) == sorted(members)
    assert all(p["cd"][1] == 32 for p in summaries)
    assert sorted(int(f["cd"][3][1:]) for f in folds_drawn(page)) == [
        r for r in range(ROW_RANGES) if r != 7]

    other = next(f for f in folds_drawn(page) if f["cd"][3] == "r8")
    act(page, lambda: click_point(page, other["x"], other["y"]), BUILT, timeout_ms=60_000)
    assert set(query(page.url).get("open", "").split(",")) == {"r7:2", "r8:2"}, page.url
    assert {i for i, rng in ranges.items() if rng in (7, 8)} <= set(pages_drawn(page))
    assert_no_console_errors(page)


def test_stepping_keeps_the_written_pd_out_of_its_fold(page: Any) -> None:
    """From step 62, each ArrowRight is an L1 write (l1_zap_4k) to one PD's range: the PD
    the step touched is drawn one by one (with its PTs, touched, now unsync), and every PD
    the model holds is drawn, in a fold, or under the touched one's range neighbours; the
    step comes as a delta (its base is the view drawn before)."""
    run = wide_run()
    page.goto(f"/?v=1&{LOD_QUERY}&step={BUILT}&skip=0", timeout=120_000)
    wait_tree(page, BUILT, timeout_ms=120_000)
    for step in (BUILT + 1, BUILT + 2):
        before = page.evaluate("() => document.getElementById('tree').dataset.drawnUrl")
        blur(page)
        act(page, lambda: page.keyboard.press("ArrowRight"), step, timeout_ms=60_000)
        delta = page.evaluate(
            "() => JSON.parse(document.getElementById('tree-delta').textContent)")
        assert delta["base"] == before, "the step was not sent as a delta"
        snap = run.snapshot(step)
        written = [sp.id for sp in snap.pages if sp.level == 2 and sp.id in snap.changed]
        assert len(written) == 1
        drawn = pages_drawn(page)
        assert drawn.get(written[0]) == "synced"
        pts = [sp.id for sp in snap.pages if sp.parents and sp.parents[0][0] == written[0]]
        assert {drawn.get(i) for i in pts} == {"unsync"}
        pds = {sp.id for sp in snap.pages if sp.level == 2}
        in_folds = sum(f["cd"][1] for f in folds_drawn(page))
        alone = pds & set(drawn)
        # Every PD is drawn or folded with its 32 PTs (33 pages a PD).
        assert in_folds == (len(pds) - len(alone)) * 33
    assert_no_console_errors(page)
