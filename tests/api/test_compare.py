"""Compare mode and the export details of issue 14 (defects 4 and 10), server side.

Expected values come from the model's own tables and runs: mmu_model.FIXES (default=True:
mainline before the series; `patch`: its place in the series), and the runs' snapshots
and per-boot numbers.
"""

from __future__ import annotations

import csv
import functools
import io
from typing import Any

import pytest

import mmu_model
from app.compare import differing_pages
from app.fixsets import counterpart, history_name
from mmu_model import DEFAULT_FIXES, FIXES, Run
from tests.api.conftest import HX

TRACK_WRITE_ZAP = "track-write-zap"
WITH_PATCH = DEFAULT_FIXES | {TRACK_WRITE_ZAP}
MAINLINE = ",".join(name for name in FIXES if name in DEFAULT_FIXES)
PATCHED = ",".join(name for name in FIXES if name in WITH_PATCH)
ORPHAN_STEP = 7  # teaching-small orphans its first unsync PT here (issue 14)


@functools.cache
def teaching(fixes: frozenset[str] = DEFAULT_FIXES) -> Run:
    return mmu_model.run_named("teaching-small", fixes=fixes)


@pytest.mark.parametrize(("fixes", "name"), [
    (DEFAULT_FIXES, "mainline before the series"),  # the fixes on by default
    (WITH_PATCH, "with patch 1/2"),  # plus the fix whose patch is "1/2"
    (DEFAULT_FIXES - {"flood-detection"}, "custom fix set"),  # a mainline switch off
    (frozenset(), "custom fix set"),
    (frozenset({TRACK_WRITE_ZAP}), "custom fix set"),  # the patch without what it needs
])
def test_a_fix_set_is_named_by_its_place_in_the_kernels_history(
    fixes: frozenset[str], name: str
) -> None:
    assert FIXES[TRACK_WRITE_ZAP].patch == "1/2"
    assert not any(FIXES[n].patch for n in DEFAULT_FIXES)  # mainline had those already
    assert history_name(fixes) == name


def test_the_counterpart_toggles_patch_1_of_2() -> None:
    assert counterpart(DEFAULT_FIXES) == WITH_PATCH
    assert counterpart(WITH_PATCH) == DEFAULT_FIXES


def test_pages_differ_by_gfn_and_role_not_by_sp_id() -> None:
    """Before the orphaning step both runs hold the same pages in the same states (their
    KVM counters agree: Run.first_difference is the orphaning step). At it, mainline's
    kvm_mmu_track_write() passes no invalid_list to mmu_page_zap_pte(), so the PT whose
    last parent SPTE L1 zapped is orphaned and stays unsync; with patch 1/2 it is zapped
    (a ghost this step, state "zapped"). That (gfn, role) differs, and only it."""
    base, run = teaching(), teaching(WITH_PATCH)
    assert base.first_difference(run) == ORPHAN_STEP
    for step in range(ORPHAN_STEP):
        assert differing_pages(base.snapshot(step), run.snapshot(step)) == {}
    left, right = base.snapshot(ORPHAN_STEP), run.snapshot(ORPHAN_STEP)
    orphan = next(sp for sp in left.pages if sp.status == "orphan-unsync")
    ghost = next(sp for sp in right.ghosts if (sp.gfn, sp.role_word) == (orphan.gfn,
                                                                         orphan.role_word))
    assert ghost.status == "zapped"
    assert differing_pages(left, right) == {
        (orphan.gfn, orphan.role_word): (["orphan-unsync"], ["zapped"])}


def test_compare_with_itself_compares_with_the_patch_and_says_so(shared_client: Any) -> None:
    """compare=1 with the mainline set (no fixes, no base: both the defaults) would draw one
    run twice: the right pane runs mainline plus patch 1/2, the page says so, and the URL
    the view pushes names the sets it shows."""
    response = shared_client.get(f"/?v=1&scenario=teaching-small&step={ORPHAN_STEP}"
                                 "&compare=1", headers=HX)
    assert response.status_code == 200
    compare = response.context["compare"]
    assert compare["left"]["fixes"] == MAINLINE
    assert compare["right"]["fixes"] == PATCHED
    assert compare["left"]["history"] == "mainline before the series"
    assert compare["right"]["history"] == "with patch 1/2"
    assert "with itself" in compare["note"]
    assert f"fixes={PATCHED.replace(',', '%2C')}" in response.headers["HX-Push-Url"]
    assert compare["first_diff"] == ORPHAN_STEP
    # The differing page is marked in both trees: left by the orphan's id, right the ghost's.
    base, run = teaching(), teaching(WITH_PATCH)
    orphan = next(sp for sp in base.snapshot(ORPHAN_STEP).pages if sp.status == "orphan-unsync")
    ghost = next(sp for sp in run.snapshot(ORPHAN_STEP).ghosts if sp.gfn == orphan.gfn)
    assert compare["n_differ"] == 1
    assert response.context["tree"]["differs"] == [str(ghost.id)]
    assert compare["right_marks"] == [str(ghost.id)]
    outlined = next(t for t in compare["left"]["figure"]["data"] if t["meta"] == "differs")
    spot = {(x, y) for x, y in zip(outlined["x"], outlined["y"], strict=True)}
    at = {cd[0]: (x, y) for t in compare["left"]["figure"]["data"]
          if t["meta"] == "orphan-unsync"
          for x, y, cd in zip(t["x"], t["y"], t["customdata"], strict=True)}
    assert spot == {at[orphan.id]}


def test_a_compare_of_two_different_sets_keeps_them(shared_client: Any) -> None:
    response = shared_client.get(f"/?v=1&scenario=teaching-small&fixes=none&compare=1"
                                 f"&step={ORPHAN_STEP}", headers=HX)
    compare = response.context["compare"]
    assert compare["left"]["fixes"] == MAINLINE
    assert compare["right"]["fixes"] == "none"
    assert compare["right"]["history"] == "custom fix set"
    assert compare["note"] is None


def test_downloads_are_named_after_the_scenario_fixes_grain_and_step(shared_client: Any) -> None:
    stem = f"teaching-small_{MAINLINE.replace(',', '+')}"
    for path, suffix in (("/api/graph.graphml", "graphml"), ("/api/graph.dot", "dot")):
        for grain in ("action", "op"):
            response = shared_client.get(f"{path}?v=1&scenario=teaching-small&grain={grain}"
                                         "&step=7")
            assert response.status_code == 200
            assert response.headers["content-disposition"] == (
                f'attachment; filename="{stem}_{grain}-step7.{suffix}"')
    # The page's images of a comparison hold both trees: both sets are in the name...
    page = shared_client.get("/?v=1&scenario=teaching-small&step=7&compare=1&fixes=none")
    assert page.context["urls"]["export_name"] == (
        f"teaching-small_{MAINLINE.replace(',', '+')}_vs_none_action-step7")
    # ...but a DAG holds one run: the right one's, asked from the compare view, is its own.
    dag = shared_client.get(page.context["urls"]["graphml"])
    assert dag.headers["content-disposition"] == (
        'attachment; filename="teaching-small_none_action-step7.graphml"')
    left = shared_client.get(page.context["compare"]["left"]["graphml"])
    assert left.headers["content-disposition"] == (
        f'attachment; filename="{stem}_action-step7.graphml"')



def test_per_boot_csv_has_both_lines_of_the_chart(shared_client: Any) -> None:
    """The chart draws the run with and without track-write-zap; the CSV holds both, the
    view's own run first, each row's numbers the model's per_boot of its run."""
    spec = mmu_model.get_scenario("teaching-small").spec
    assert spec is not None
    response = shared_client.get("/api/boots.csv?v=1&scenario=teaching-small&boots=3")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        f'attachment; filename="teaching-small-custom_{MAINLINE.replace(",", "+")}'
        '-boots.csv"')
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["fixes"] for r in rows] == [MAINLINE] * 3 + [PATCHED] * 3
    for fixes, part in ((DEFAULT_FIXES, rows[:3]), (WITH_PATCH, rows[3:])):
        run = mmu_model.run_scenario(spec.replace(boots=3, fixes=fixes), record=False)
        assert [int(r["orphans_unsync"]) for r in part] == [b.orphans_unsync
                                                           for b in run.per_boot]
        assert [int(r["shadow_pages"]) for r in part] == [b.shadow_pages for b in run.per_boot]
    # Patch 1/2 zaps the page kvm_mmu_track_write() would orphan: no boot leaks one.
    assert all(r["orphans_unsync"] == "0" for r in rows[3:])


def test_a_changed_scenario_describes_its_changes(shared_client: Any) -> None:
    own = mmu_model.get_scenario("teaching-small").description
    plain = shared_client.get("/?v=1&scenario=teaching-small&step=1")
    assert plain.context["source"]["description"] == own
    changed = shared_client.get("/?v=1&scenario=teaching-small&boots=3&step=1")
    description = changed.context["source"]["description"]
    assert description.startswith("custom: boots = 3")
    assert own not in description
    # A field set to the built-in's own value is no change (the canonical URL drops it).
    assert mmu_model.get_scenario("teaching-small").spec.boots == 1  # type: ignore[union-attr]
    same = shared_client.get("/?v=1&scenario=teaching-small&boots=1&step=1")
    assert same.context["source"]["description"] == own


def test_the_fragment_carries_the_tab_title_of_its_step(shared_client: Any) -> None:
    response = shared_client.get("/?v=1&scenario=teaching-small&step=9", headers=HX)
    assert 'data-title="Teaching: one PD, bottom-up · step 9 · ' in response.text
    assert "<title>" not in response.text  # the fragment is #view alone
