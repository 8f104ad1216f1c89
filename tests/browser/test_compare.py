"""Compare mode in Chromium (issue 14, defect 4): labels, one legend, marks, both narrations.

The expectations come from the model: mmu_model.FIXES says which fixes mainline had before
the series (default=True) and which patch of the series a fix is (`patch`), and the two
runs' snapshots say which pages differ. Pages are matched across the runs by (gfn, role),
the key KVM finds a shadow page by (kvm_mmu_find_shadow_page() hashes the gfn and compares
the role), since each run numbers its pages in its own allocation order.
"""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path
from typing import Any

from mmu_model import DEFAULT_FIXES, FIXES, Snapshot
from tests.browser.test_visualizer import (
    PNG_MAGIC,
    act,
    assert_no_console_errors,
    named_run,
    query,
    wait_tree,
)

TRACK_WRITE_ZAP = "track-write-zap"
WITH_PATCH = DEFAULT_FIXES | {TRACK_WRITE_ZAP}
# The orphaning step of teaching-small (issue 14: "orphans one at steps 7 and 8"): the
# mainline run orphans an unsync PT there, the run with patch 1/2 zaps it instead.
ORPHAN_STEP = 7
# The mainline fix set compared with itself: the page must compare it with patch 1/2.
SELF_COMPARE = f"/?v=1&scenario=teaching-small&step={ORPHAN_STEP + 1}&compare=1"

# Each pane's plot area in viewport pixels, whether it draws a legend, and the positions of
# the points of its "differs" outline trace and of its page markers (id -> [x, y]).
_PANE_JS = """(id) => {
  const el = document.getElementById(id);
  if (!el || !el._fullLayout) return null;
  const box = el.getBoundingClientRect(), size = el._fullLayout._size;
  const outlined = [], pages = {};
  for (const t of el.data) {
    if (t.meta === "differs") {
      for (let i = 0; i < t.x.length; i++) outlined.push([t.x[i], t.y[i]]);
    } else if (Array.isArray(t.customdata) && t.meta !== "summary") {
      for (let i = 0; i < t.customdata.length; i++) {
        const cd = t.customdata[i];
        if (Array.isArray(cd) && Number.isInteger(cd[0]) && cd[0] >= 0) {
          pages[cd[0]] = [t.x[i], t.y[i]];
        }
      }
    }
  }
  return {top: box.top + size.t, height: size.h, width: size.w,
          legend: el._fullLayout.showlegend, outlined, pages};
}"""


def names_in_order(fixes: frozenset[str]) -> list[str]:
    return [name for name in FIXES if name in fixes]


def differing_ids(mine: Snapshot, other: Snapshot) -> set[int]:
    """Ids of the pages of `mine` whose (gfn, role) the two snapshots hold in different
    multisets of states (present in one only, or in another state)."""
    def states(snap: Snapshot) -> dict[tuple[int, int], Counter[str]]:
        out: dict[tuple[int, int], Counter[str]] = {}
        for sp in (*snap.pages, *snap.ghosts):
            out.setdefault((sp.gfn, sp.role_word), Counter())[sp.status] += 1
        return out

    a, b = states(mine), states(other)
    return {sp.id for sp in (*mine.pages, *mine.ghosts)
            if a.get((sp.gfn, sp.role_word)) != b.get((sp.gfn, sp.role_word))}


def pane(page: Any, tree_id: str) -> dict[str, Any]:
    state = page.evaluate(_PANE_JS, tree_id)
    assert state is not None, f"#{tree_id} is not drawn"
    return state


def outlined_ids(state: dict[str, Any]) -> set[int]:
    spots = {tuple(p) for p in state["outlined"]}
    return {int(i) for i, xy in state["pages"].items() if tuple(xy) in spots}


def open_compare(page: Any, url: str = SELF_COMPARE) -> None:
    page.goto(url)
    wait_tree(page)
    wait_tree(page, tree_id="tree-base")


def test_each_pane_names_its_exact_fix_set_and_its_place_in_history(page: Any) -> None:
    """compare=1 with the mainline set would show one run twice; the page compares mainline
    (left, FIXES' default=True fixes) with mainline plus patch 1/2 (right: the fix whose
    `patch` is "1/2"), names both, and says why the right pane is not what the URL asked."""
    assert FIXES[TRACK_WRITE_ZAP].patch == "1/2"
    open_compare(page)
    left, right = page.locator("#compare-left"), page.locator("#compare-right")
    assert left.get_attribute("data-fixes") == ",".join(names_in_order(DEFAULT_FIXES))
    assert right.get_attribute("data-fixes") == ",".join(names_in_order(WITH_PATCH))
    left_title = " ".join(page.locator("#compare-left-title").inner_text().split())
    right_title = " ".join(page.locator("#compare-right-title").inner_text().split())
    assert "mainline before the series" in left_title
    assert "with patch 1/2" in right_title
    assert "Without" not in left_title  # the old heading listed fixes that were on
    # Each title lists exactly the fixes its run has on, by name.
    assert page.locator("#compare-left-title code").all_inner_texts() == names_in_order(
        DEFAULT_FIXES)
    assert page.locator("#compare-right-title code").all_inner_texts() == names_in_order(
        WITH_PATCH)
    note = " ".join(page.locator("#compare-note").inner_text().split())
    assert "with itself" in note
    assert "track-write-zap" in note
    # The link to share names the two different sets.
    shared = query(page.locator("#share-url").input_value())
    assert shared.get("compare") == "1"
    assert frozenset(shared["fixes"].split(",")) == WITH_PATCH
    assert_no_console_errors(page)


def test_the_panes_line_up_under_one_shared_legend(page: Any, artifacts_dir: Path) -> None:
    """Neither plot draws its own legend (they differed and shifted one tree down); one
    legend above both lists every state either can show; both plot areas start at the same
    height and have the same size."""
    open_compare(page)
    left, right = pane(page, "tree-base"), pane(page, "tree")
    assert left["legend"] is False
    assert right["legend"] is False
    assert abs(left["top"] - right["top"]) <= 1, (left["top"], right["top"])
    assert left["height"] == right["height"]
    assert abs(left["width"] - right["width"]) <= 2
    legend = page.locator("#compare-legend li").all_inner_texts()
    from app.figures import DIFFERS_STYLE, STATUS_STYLES

    for label, *_ in STATUS_STYLES.values():
        assert label in legend, (label, legend)
    assert DIFFERS_STYLE[0] in legend
    assert page.locator("#compare-legend").count() == 1
    page.screenshot(path=str(artifacts_dir / "compare-aligned.png"), full_page=False)
    assert_no_console_errors(page)


def test_pages_that_differ_are_outlined_in_both_panes(page: Any) -> None:
    """At the orphaning step the mainline run holds an orphaned unsync PT that the run with
    patch 1/2 zapped (a ghost, state "zapped"): that (gfn, role) differs, outlined in both
    panes; the step before, both runs hold the same pages and nothing is outlined."""
    base, run = named_run("teaching-small"), named_run("teaching-small", WITH_PATCH)
    url = f"/?v=1&scenario=teaching-small&fixes={','.join(sorted(WITH_PATCH))}&compare=1"
    open_compare(page, url + f"&step={ORPHAN_STEP - 1}")
    assert differing_ids(base.snapshot(ORPHAN_STEP - 1), run.snapshot(ORPHAN_STEP - 1)) == set()
    assert outlined_ids(pane(page, "tree-base")) == set()
    assert outlined_ids(pane(page, "tree")) == set()
    assert page.locator("#compare-panel").get_attribute("data-differ") == "0"

    act(page, lambda: page.click("#btn-next"), ORPHAN_STEP)
    wait_tree(page, ORPHAN_STEP, tree_id="tree-base")
    left_snap, right_snap = base.snapshot(ORPHAN_STEP), run.snapshot(ORPHAN_STEP)
    expect_left = differing_ids(left_snap, right_snap)
    expect_right = differing_ids(right_snap, left_snap)
    orphaned = {sp.id for sp in left_snap.pages if sp.status == "orphan-unsync"}
    assert orphaned  # the leak the series is about...
    assert orphaned <= expect_left  # ...differs: the patched run zapped that page
    assert right_snap.orphans.unsync == 0
    assert outlined_ids(pane(page, "tree-base")) == expect_left
    assert outlined_ids(pane(page, "tree")) == expect_right
    keys = {(sp.gfn, sp.role_word) for sp in (*left_snap.pages, *left_snap.ghosts)
            if sp.id in expect_left}
    assert page.locator("#compare-differs tbody tr").count() == len(keys)
    assert page.locator("#compare-panel").get_attribute("data-differ") == str(len(keys))
    assert_no_console_errors(page)


def test_both_sides_narrate_the_current_step(page: Any) -> None:
    """Each pane's narration lists its own run's kernel operations for the step, in order
    (mainline's kvm_mmu_track_write() orphans the PT; the patched one zaps it)."""
    base, run = named_run("teaching-small"), named_run("teaching-small", WITH_PATCH)
    open_compare(page, SELF_COMPARE.replace(f"step={ORPHAN_STEP + 1}", f"step={ORPHAN_STEP}"))
    for side, snap in (("left", base.snapshot(ORPHAN_STEP)),
                       ("right", run.snapshot(ORPHAN_STEP))):
        assert snap.action is not None
        shown = page.locator(f"#compare-{side}-narration ol.ops > li > code").all_inner_texts()
        assert shown == [ev.kind for ev in snap.action.ops], side
        text = " ".join(page.locator(f"#compare-{side}-narration").inner_text().split())
        assert " ".join(snap.action.ops[-1].narration.split()) in text
    left_action, right_action = base.snapshot(ORPHAN_STEP).action, run.snapshot(ORPHAN_STEP).action
    assert left_action is not None
    assert right_action is not None
    # The two sides tell different stories at this step.
    assert [ev.narration for ev in left_action.ops] != [ev.narration for ev in right_action.ops]
    assert_no_console_errors(page)


def test_jump_to_first_difference_lands_on_the_models_step(page: Any) -> None:
    """The button goes to Run.first_difference() of the two runs, and both panes follow."""
    base, run = named_run("teaching-small"), named_run("teaching-small", WITH_PATCH)
    first = base.first_difference(run)
    assert first == ORPHAN_STEP  # the first step whose KVM counters differ: the orphaning
    open_compare(page, SELF_COMPARE.replace(f"step={ORPHAN_STEP + 1}", "step=2"))
    act(page, lambda: page.click("#btn-first-diff"), first)
    wait_tree(page, first, tree_id="tree-base")
    assert query(page.url).get("compare") == "1"
    assert_no_console_errors(page)


def test_compare_exports_both_trees_in_one_image(page: Any, artifacts_dir: Path) -> None:
    """PNG and SVG of a comparison hold both panes side by side under their titles, and the
    file is named after the scenario, both fix sets and the step; each run's DAG has its
    own GraphML link."""
    open_compare(page)
    step = ORPHAN_STEP + 1
    for fmt in ("png", "svg"):
        with page.expect_download(timeout=30_000) as info:
            page.click(f"#export-{fmt}")
        download = info.value
        name = download.suggested_filename
        assert name.startswith("teaching-small_"), name
        assert "_vs_" in name
        assert name.endswith(f"_action-step{step}.{fmt}"), name
        data = Path(download.path()).read_bytes()
        (artifacts_dir / f"compare-export.{fmt}").write_bytes(data)
        if fmt == "png":
            assert data.startswith(PNG_MAGIC)
            width, height = struct.unpack(">II", data[16:24])
            pane_w, pane_h = page.evaluate(
                """() => ["clientWidth", "clientHeight"].map((k) => Math.max(
                     document.getElementById("tree-base")[k],
                     document.getElementById("tree")[k]))""")
            assert width == 2 * pane_w, (width, pane_w)  # two panes side by side...
            assert height == pane_h + 28, (height, pane_h)  # ...under a 28 px title line
        else:
            text = data.decode("utf-8")
            assert text.count("<svg") >= 3  # the whole image, and each pane's own figure
            assert "mainline before the series" in text
            assert "with patch 1/2" in text
    left_link = page.locator("#export-graphml-left").get_attribute("href")
    assert left_link is not None
    assert frozenset(query(left_link)["fixes"].split(",")) == DEFAULT_FIXES
    assert "compare" not in query(left_link)
    assert_no_console_errors(page)
