"""The narration of a step at action grain: a short list of its kernel operations, the rest
one link away at op grain, and the notes of every operation the model recorded.

A step's narration is swapped in on every step, so it lists MAX_OPS_LISTED operations, not
all of a 2,049-op action: the list must say how many it leaves out and link to the first of
them, and a note (the patch, a commit) on an operation it leaves out must still show.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

import mmu_model
from app.kernel_links import link_of
from app.panels import MAX_OPS_LISTED
from tests.api.conftest import HX
from tests.api.test_views import query

# kvm_mmu_prepare_zap_page() run by mmu_page_zap_pte() under kvm_mmu_page_unlink_children():
# the recursive zap of a guest_mode child left with no parent SPTE (mmu.c), which commit
# 2de4085cccea added; app/kernel_links.py notes it on that operation.
RECURSION_PATH = ("kvm_mmu_page_unlink_children", "mmu_page_zap_pte")


def _is_recursive_zap(ev: mmu_model.EventView) -> bool:
    return ev.kind == "kvm_mmu_prepare_zap_page" and ev.call_path[-2:] == RECURSION_PATH


def test_a_long_action_lists_its_first_ops_and_links_the_rest_at_op_grain(
        shared_client: Any) -> None:
    """large-10k opens on an action with thousands of ops. The page lists the first
    MAX_OPS_LISTED of them in order; "... and N more" counts the others (n_ops minus the
    listed) and links to the first one left out: event index i is op step i + 1, so that
    is op step action.ops[MAX_OPS_LISTED].index + 1."""
    run = mmu_model.run_named("large-10k")
    action = run.action(run.default_step - 1)
    assert action.n_ops > MAX_OPS_LISTED
    response = shared_client.get("/?scenario=large-10k", headers=HX)
    narration = response.context["narration"]
    assert [op["kind"] for op in narration["ops"]] == [
        ev.kind for ev in action.ops[:MAX_OPS_LISTED]]
    assert narration["more_ops"] == action.n_ops - MAX_OPS_LISTED
    target = query(narration["more_url"])
    assert target["grain"] == "op"
    assert target["step"] == str(action.ops[MAX_OPS_LISTED].index + 1)
    section = re.search(r'<section id="narration".*?</section>', response.text, re.S)
    assert section is not None
    assert section.group(0).count("<li>") == MAX_OPS_LISTED
    assert f"and {narration['more_ops']:,} more" in section.group(0)
    assert f'id="more-ops" href="{narration["more_url"]}"'.replace("&", "&amp;") \
        in section.group(0)
    # The link opens that op: its narration is the op's own.
    op_view = shared_client.get(narration["more_url"]).context["narration"]
    assert op_view["event"]["index"] == action.ops[MAX_OPS_LISTED].index


def test_a_short_action_lists_every_op_and_no_more_link(shared_client: Any) -> None:
    """teaching-small's step 7 has 3 ops (a track write, its zap and the TLB flush)."""
    action = mmu_model.run_named("teaching-small").action(6)
    assert action.n_ops <= MAX_OPS_LISTED
    narration = shared_client.get("/?step=7").context["narration"]
    assert len(narration["ops"]) == action.n_ops
    assert narration["more_ops"] == 0
    assert narration["more_url"] is None


def test_the_note_of_an_op_past_the_listed_ones_still_shows(
        shared_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """No built-in action has its only noted op past the first MAX_OPS_LISTED, so the list
    is cut shorter here: seed-bottom-up's first action with a recursive zap (2de4085cccea)
    whose first two ops are not one (they are the track write and its flood check, which
    precede any zap). Listing two ops leaves every recursive zap out; the note is about
    what the step did, so it is still there."""
    import app.panels

    run = mmu_model.run_named("seed-bottom-up")
    step = next(k + 1 for k in range(run.n_actions)
                if any(_is_recursive_zap(ev) for ev in run.action(k).ops)
                and not any(_is_recursive_zap(ev) for ev in run.action(k).ops[:2]))
    monkeypatch.setattr(app.panels, "MAX_OPS_LISTED", 2)
    response = shared_client.get(f"/?scenario=seed-bottom-up&step={step}")
    narration = response.context["narration"]
    assert len(narration["ops"]) == 2
    assert not any(op["kind"] == "kvm_mmu_prepare_zap_page" for op in narration["ops"])
    assert "2de4085cccea" in [note["key"] for note in narration["notes"]]
    assert 'data-note="2de4085cccea"' in response.text


def test_kernel_links_carry_a_title_only_where_it_says_more_than_the_name() -> None:
    """An identifier opens at the release named under the narration: no title. FNAME(x) is
    not an identifier but a function paging_tmpl.h generates: its title says so."""
    assert link_of("mmu_page_zap_pte")["title"] is None
    fname = link_of("FNAME(sync_spte)")
    assert fname["url"] is not None
    assert "paging_tmpl.h" in fname["title"]


def test_no_kernel_link_sets_hx_boost(shared_client: Any) -> None:
    """Kernel links open another site in a new tab, which htmx 2 never boosts (see
    tests/browser/test_stepping.py for the check in Chromium): the attribute is not sent,
    once per link, on every step."""
    text = shared_client.get("/?scenario=large-10k", headers=HX).text
    section = re.search(r'<section id="narration".*?</section>', text, re.S)
    assert section is not None
    assert 'class="kernel' in section.group(0)
    assert "hx-boost" not in section.group(0)
