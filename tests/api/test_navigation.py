"""Markers, quiet-step skipping, search, walkthrough stops and kernel notes, through the app.

Expected steps come from the model itself (snapshots and actions of mmu_model.run_named),
each with the reason it is the right one; none is copied from the app's output.
"""

from __future__ import annotations

import functools
import re
from array import array
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import mmu_model
from app.markers import MAX_BUCKETS, RunIndex
from mmu_model import Run

from .conftest import HX

TEACHING = "/?v=1&scenario=teaching-small"


@functools.cache
def run_of(name: str, fixes: frozenset[str] | None = None) -> Run:
    return mmu_model.run_named(name, fixes=fixes)


def steps_where(run: Run, grew: Any) -> list[int]:
    """Action steps k where grew(snapshot k-1, snapshot k) holds."""
    snaps = [run.snapshot(k) for k in range(run.n_actions + 1)]
    return [k for k in range(1, run.n_actions + 1) if grew(snaps[k - 1], snaps[k])]


def changes_something(run: Run, step: int) -> bool:
    """A step changes something when it touches a page or moves a counter other than the
    hash-walk tally (a cost: it moves on every lookup)."""
    snap = run.snapshot(step)
    return bool(snap.changed) or any(k != "hash_walked" for k in snap.stat_deltas)


def markers(client: Any, url: str) -> dict[str, Any]:
    response = client.get(url.replace("/?", "/api/markers?", 1))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def step_of(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["step"][0])


def test_leak_orphan_and_flood_markers_are_the_steps_where_the_model_says_so(
        shared_client: Any) -> None:
    """leak: orphans_unsync goes up over the step; orphan: orphans goes up; flood:
    mmu_flooded goes up (detect_write_flooding() zapped a page). teaching-small: the issue's
    story says PTs are orphaned unsync at steps 7 and 8 and flood detection zaps the PD at
    9; the model's own snapshots give the full lists."""
    run = run_of("teaching-small")
    body = markers(shared_client, TEACHING)
    kinds = body["kinds"]
    leak = steps_where(run, lambda a, b: b.orphans.unsync > a.orphans.unsync)
    assert leak[:2] == [7, 8]
    assert kinds["leak"]["steps"] == leak
    assert kinds["orphan"]["steps"] == steps_where(
        run, lambda a, b: b.orphans.total > a.orphans.total)
    flood = steps_where(run, lambda a, b: b.stats["mmu_flooded"] > a.stats["mmu_flooded"])
    assert flood[0] == 9
    assert kinds["flood"]["steps"] == flood


def test_teardown_markers_start_each_run_of_l1_zap_actions(shared_client: Any) -> None:
    """A root teardown starts with L1's first zap action after other work (a 4 KiB pass
    first, bottom-up); teaching-small tears two roots down (root_zaps_per_boot=2)."""
    run = run_of("teaching-small")
    kinds = [run.action(i).kind for i in range(run.n_actions)]
    zap = {"l1_zap_4k", "l1_zap_entry", "l1_freeze_run", "l1_freeze_pt"}
    starts = [i + 1 for i, k in enumerate(kinds)
              if k in zap and (i == 0 or kinds[i - 1] not in zap | {"l2_activity"})]
    assert len(starts) == 2
    assert markers(shared_client, TEACHING)["kinds"]["teardown"]["steps"] == starts


def test_boot_markers_are_the_first_action_of_each_boot(shared_client: Any) -> None:
    """boots=3: three L2 boots, each starting where the action's boot number changes."""
    run = mmu_model.run_scenario(mmu_model.get_scenario("teaching-small").spec.replace(boots=3))
    boots = [i + 1 for i in range(run.n_actions)
             if i == 0 or run.action(i).boot != run.action(i - 1).boot]
    assert len(boots) == 3
    assert markers(shared_client, TEACHING + "&boots=3")["kinds"]["boot"]["steps"] == boots


def test_op_grain_markers_are_the_events_themselves(shared_client: Any) -> None:
    """At the kernel-operation grain a flood marker is the detect_write_flooding event
    (op step = event index + 1)."""
    run = run_of("teaching-small")
    want = [i + 1 for i in range(run.n_events) if run.event(i).kind == "detect_write_flooding"]
    body = markers(shared_client, TEACHING + "&grain=op")
    assert body["kinds"]["flood"]["steps"] == want


def test_the_strip_never_holds_more_than_max_buckets_per_kind() -> None:
    """A kind with a marker on each of 10,000 steps is drawn in at most MAX_BUCKETS
    buckets, whose counts add up to all of them; each bucket links its first step."""
    n = 10_000
    index = RunIndex(n_events=n, n_actions=n, action_first=array("q", range(n)),
                     events={"leak": array("q", range(n))}, action_marks={},
                     loud_actions=array("q"), touch_start=array("i"),
                     touch_events=array("i"), page_gfns=((), ()))
    buckets = index.buckets("leak", "op", n)
    assert len(buckets) <= MAX_BUCKETS
    assert sum(b["count"] for b in buckets) == n
    assert buckets[0]["step"] == 1


def test_next_and_prev_skip_the_steps_that_change_nothing_unless_skip_is_off(
        shared_client: Any) -> None:
    """teaching-small: after the flood zap at step 9 freed the PD's shadow page, L1's next
    PDE zaps are not trapped, so the steps after 9 change nothing until one does. Next from
    9 goes to the first step that changes something; with skip=0 it goes to 10. The URL
    keeps the exact step."""
    run = run_of("teaching-small")
    assert not changes_something(run, 10)
    target = next(k for k in range(10, run.n_actions + 1) if changes_something(run, k))
    page = shared_client.get(TEACHING + "&step=9", headers=HX).text
    nxt = re.search(r'id="btn-next" type="button" hx-get="([^"]+)"', page)
    assert nxt is not None
    assert step_of(nxt.group(1).replace("&amp;", "&")) == target
    back = shared_client.get(TEACHING + f"&step={target}", headers=HX).text
    prev = re.search(r'id="btn-prev" type="button" hx-get="([^"]+)"', back)
    assert prev is not None
    assert step_of(prev.group(1).replace("&amp;", "&")) == 9
    plain = shared_client.get(TEACHING + "&step=9&skip=0", headers=HX).text
    nxt = re.search(r'id="btn-next" type="button" hx-get="([^"]+)"', plain)
    assert nxt is not None
    assert step_of(nxt.group(1).replace("&amp;", "&")) == 10
    quiet = sum(1 for k in range(1, run.n_actions + 1) if not changes_something(run, k))
    assert quiet == 26  # the issue counts 26 of 48 steps that change nothing visible
    assert markers(shared_client, TEACHING)["quiet_steps"] == quiet


def test_search_by_sp_id_and_gfn_lists_the_steps_that_touched_the_page(
        shared_client: Any) -> None:
    """The page first orphaned unsync (the one step 7 detaches) was touched at every step
    whose snapshot lists it as changed; by gfn, every page that ever shadowed that gfn."""
    run = run_of("teaching-small")
    before, after = run.snapshot(6), run.snapshot(7)
    leaked = [p for p in after.pages if p.status == "orphan-unsync"]
    assert len(leaked) == 1
    assert all(p.status != "orphan-unsync" for p in before.pages)
    sp = leaked[0]
    touched = [k for k in range(1, run.n_actions + 1) if sp.id in run.snapshot(k).changed]
    body = markers(shared_client, TEACHING + f"&find=%23{sp.id}")
    assert body["search"]["pages"] == [sp.id]
    assert body["search"]["steps"] == touched
    # By gfn: every page that shadowed it at some step (all levels and roles), this one too.
    same_gfn = {v.id for k in range(run.n_actions + 1) for v in run.snapshot(k).pages
                if v.gfn == sp.gfn}
    body = markers(shared_client, TEACHING + f"&find={sp.gfn:#x}")
    assert sp.id in same_gfn
    assert same_gfn <= set(body["search"]["pages"])
    # The page view selects the page found (sp=) and links each step.
    page = shared_client.get(TEACHING + f"&step=7&find={sp.gfn:#x}", headers=HX)
    assert page.status_code == 200
    assert f"Shadow page #{sp.id}" in page.text
    assert f"sp={sp.id}" in page.headers["HX-Push-Url"]
    shown = re.findall(r'class="found-step" href="[^"]*" data-step="(\d+)"', page.text)
    assert [int(s) for s in shown] == touched


@pytest.mark.parametrize("value", ["zz", "#", "0x", "#-1", "0x12g", "12 34", "<script>"])
def test_bad_find_is_a_4xx_naming_the_field_never_a_500(shared_client: Any, value: str) -> None:
    for url in ("/api/markers?scenario=teaching-small", TEACHING):
        response = shared_client.get(url, params={"find": value}, headers=HX)
        assert response.status_code == 422, (url, response.status_code)
        assert "find" in response.text
        if not url.startswith("/api/"):  # HTML: escaped; JSON quotes it as data
            assert "<script>" not in response.text


def test_a_gfn_no_page_shadows_says_so_in_the_panel(shared_client: Any) -> None:
    """gfn 0 is never an L1 table page here (L1 allocates tables away from gfn 0)."""
    run = run_of("teaching-small")
    assert all(gfn != 0 for gfn in {v.gfn for k in range(run.n_actions + 1)
                                    for v in run.snapshot(k).pages})
    page = shared_client.get(TEACHING + "&find=0x0", headers=HX)
    assert page.status_code == 200
    assert "No shadow page of this run has gfn 0x0" in page.text


@pytest.mark.parametrize(("query", "field"), [("&stop=0", "stop"), ("&stop=99", "stop"),
                                              ("&skip=maybe", "skip")])
def test_bad_stop_or_skip_is_a_4xx_naming_the_field(shared_client: Any, query: str,
                                                    field: str) -> None:
    response = shared_client.get(TEACHING + query, headers=HX)
    assert response.status_code == 422
    assert f'data-field="{field}"' in response.text


def test_a_stop_on_a_source_without_walkthrough_is_refused(shared_client: Any) -> None:
    response = shared_client.get("/?v=1&scenario=large-10k&stop=1", headers=HX)
    assert response.status_code == 422
    assert 'data-field="stop"' in response.text


def test_patch_note_is_on_the_step_where_track_write_zap_changes_the_outcome(
        shared_client: Any) -> None:
    """Without track-write-zap the first leak step's mmu_page_zap_pte() (called by
    kvm_mmu_track_write()) orphans its child; with it, the same call zaps the child (the
    model says so: orphans_unsync stays 0 there). The note names patch 1/2 by its subject
    and is absent at the step before, whose operations cut no parent SPTE."""
    run = run_of("teaching-small")
    leak = steps_where(run, lambda a, b: b.orphans.unsync > a.orphans.unsync)[0]
    fixed = run_of("teaching-small", frozenset(mmu_model.FIXES))
    assert fixed.snapshot(leak).orphans.unsync == 0
    page = shared_client.get(TEACHING + f"&step={leak}", headers=HX).text
    assert 'id="patch-note"' in page
    assert "Recursively zap orphaned nested TDP shadow pages on emulated writes" in page
    assert "would be zapped at once instead of orphaned" in page
    assert "https://lore.kernel.org/kvm/?q=" in page
    on = shared_client.get(TEACHING + f"&step={leak}&fixes=" + ",".join(mmu_model.FIXES),
                           headers=HX).text
    assert 'id="patch-note"' in on
    assert "is zapped in the same call" in on
    before = shared_client.get(TEACHING + f"&step={leak - 1}", headers=HX).text
    assert 'id="patch-note"' not in before


@pytest.mark.parametrize("name", ["teaching-small", "seed-bottom-up", "seed-top-down"])
def test_the_walkthrough_end_caption_holds_for_its_run(shared_client: Any, name: str) -> None:
    """The last stop says the run leaves orphaned unsync pages and that with
    track-write-zap the same steps leave none: both must be what the model does."""
    run = run_of(name)
    patched = run_of(name, frozenset(mmu_model.FIXES))
    assert run.snapshot(run.n_actions).orphans.unsync > 0
    assert patched.snapshot(patched.n_actions).orphans.unsync == 0
    page = shared_client.get(f"/?v=1&scenario={name}", headers=HX).text
    start = re.search(r'id="tour-start" href="([^"]+)"', page)
    assert start is not None
    last_stop = len(re.findall(r"<li><a href=[^>]*>[^<]*</a> <span class=\"help\">\(step",
                               shared_client.get(start.group(1).replace("&amp;", "&"),
                                                 headers=HX).text))
    end = shared_client.get(f"/?v=1&scenario={name}&stop={last_stop}&step={run.n_actions}",
                            headers=HX).text
    final = run.snapshot(run.n_actions).orphans.unsync
    assert f"At the end, {final} orphaned unsync pages are left" in end


def test_a_strip_the_browser_has_drawn_is_not_sent_again(client: Any) -> None:
    """Stepping within a view (X-Mmu-Drawn: the same view at another step) sends the strip's
    empty placeholder under the same id, with none of its marker links; a step from
    nothing sends the whole strip."""
    first = client.get(TEACHING + "&step=5", headers=HX)
    assert re.search(r'<a class="marker leak" href="[^"]*&amp;step=\d+"', first.text)
    strip_id = re.search(r'<div id="(markers-[0-9a-f]{12})"', first.text)
    assert strip_id
    again = client.get(TEACHING + "&step=6",
                       headers={**HX, "X-Mmu-Drawn": first.headers["HX-Push-Url"]})
    assert again.status_code == 200
    # The step's changed panels come out of band (tests/api/test_step_fragment.py): the
    # strip, unchanged, is left out altogether and stays on the page.
    assert again.headers["HX-Reswap"] == "none"
    assert strip_id.group(1) not in again.text
    assert '<a class="marker ' not in again.text


def test_a_views_strip_is_the_same_at_every_step_and_another_views_is_its_own(
        client: Any) -> None:
    """Two steps of one view, each from nothing, send the same strip (the run keeps it
    rendered: RunEntry.kept_html, tested in test_run_cache.py); the op grain's strip has
    other steps and other links."""
    strip = re.compile(r'<div id="markers-[0-9a-f]{12}" class="markers" hx-preserve="true" '
                       r'role="group".*?\n</div>', re.S)
    first = client.get(TEACHING + "&step=5", headers=HX)
    second = client.get(TEACHING + "&step=9", headers=HX)
    op = client.get(TEACHING + "&step=5&grain=op", headers=HX)
    a, b, c = (strip.search(r.text) for r in (first, second, op))
    assert a
    assert b
    assert c
    assert a.group(0) == b.group(0)
    assert c.group(0) != a.group(0)
