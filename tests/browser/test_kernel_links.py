"""Kernel-source links on each operation, and the patch note where the fix changes the
outcome, in real Chromium.

Which step is which comes from the model (mmu_model), with the kernel path it stands for:
kvm_mmu_track_write() -> mmu_page_zap_pte() with no invalid_list leaves a child with no
parent SPTE (child_orphaned); patch 1/2 passes the invalid_list there.
"""

from __future__ import annotations

from typing import Any

import mmu_model
from tests.browser.test_visualizer import act, assert_no_console_errors, named_run, wait_tree

TEACHING = "/?v=1&scenario=teaching-small"
PATCH_SUBJECT = "KVM: x86/mmu: Recursively zap orphaned nested TDP shadow pages on emulated writes"
SERIES_SUBJECT = "KVM: x86/mmu: Plug an unsync shadow page leak"


def orphaning_zap_event(run: mmu_model.Run) -> int:
    """The first mmu_page_zap_pte event of kvm_mmu_track_write() that orphaned a child."""
    return next(i for i in range(run.n_events)
                if run.event(i).kind == "mmu_page_zap_pte"
                and "kvm_mmu_track_write" in run.event(i).call_path
                and run.event(i).args.get("child_orphaned"))


def hrefs(page: Any, selector: str) -> list[tuple[str, str]]:
    """(text, href) of each link `selector` matches, in document order."""
    pairs = page.evaluate(
        "(sel) => [...document.querySelectorAll(sel)].map((a) => [a.textContent.trim(), "
        "a.getAttribute('href')])", selector)
    return [(text, href) for text, href in pairs]


def test_each_kernel_name_of_an_operation_opens_it_at_the_release_the_page_shows(
        page: Any) -> None:
    """At the op step of that mmu_page_zap_pte event: its kind, every function of its call
    path and the function names in its narration link to Elixir's identifier search at the
    one release the page names; nothing else in the narration does."""
    run = named_run("teaching-small")
    op_step = orphaning_zap_event(run) + 1
    page.goto(f"{TEACHING}&grain=op&step={op_step}")
    wait_tree(page, op_step)
    release = page.locator("#kernel-release").inner_text().strip()
    assert release.startswith("v")
    base = f"https://elixir.bootlin.com/linux/{release}/A/ident/"
    kind = hrefs(page, "#narration h3 a.kernel")
    assert kind == [("mmu_page_zap_pte", base + "mmu_page_zap_pte")]
    path = hrefs(page, "#narration .call-path a.kernel")
    assert [name for name, _ in path] == list(run.event(op_step - 1).call_path)
    assert all(href == base + name for name, href in path), path
    text = hrefs(page, "#narration p.text a.kernel")
    assert ("mmu_page_zap_pte", base + "mmu_page_zap_pte") in text
    for a in page.locator("#narration a.kernel").all():
        assert a.get_attribute("target") == "_blank"
        assert a.get_attribute("rel") == "noopener"
    assert_no_console_errors(page)


def test_patch_note_and_links_at_the_step_where_the_fix_changes_the_outcome(page: Any) -> None:
    """The first action step where orphans_unsync goes up holds that orphaning zap; with
    track-write-zap the model orphans nothing there. The note appears there (reached by
    Next, through a swap), names patch 1/2 and its series by subject, links the series
    on lore.kernel.org and mmu_page_zap_pte in Elixir, and is absent the step before."""
    run = named_run("teaching-small")
    leak = next(k for k in range(1, run.n_actions + 1)
                if run.snapshot(k).orphans.unsync > run.snapshot(k - 1).orphans.unsync)
    assert run.convert_step(orphaning_zap_event(run) + 1, "op", "action") == leak
    fixed = named_run("teaching-small", frozenset(mmu_model.FIXES))
    assert fixed.snapshot(leak).orphans.unsync == 0
    page.goto(f"{TEACHING}&step={leak - 1}&skip=0")
    wait_tree(page, leak - 1)
    assert page.locator("#patch-note").count() == 0
    act(page, lambda: page.click("#btn-next"), leak)
    note = page.locator("#patch-note")
    assert note.is_visible()
    text = " ".join(note.inner_text().split())
    assert PATCH_SUBJECT in text
    assert SERIES_SUBJECT in text
    assert "instead of NULL" in text
    links = dict(hrefs(page, "#patch-note a"))
    assert links["the series on lore.kernel.org"].startswith("https://lore.kernel.org/kvm/?q=")
    assert "Plug+an+unsync+shadow+page+leak" in links["the series on lore.kernel.org"]
    release = page.locator("#kernel-release").inner_text().strip()
    assert links[f"mmu_page_zap_pte() in {release}"] == (
        f"https://elixir.bootlin.com/linux/{release}/A/ident/mmu_page_zap_pte")
    # With the patch on, the same step's note says the child is zapped in that call.
    page.goto(f"{TEACHING}&step={leak}&fixes=" + ",".join(mmu_model.FIXES))
    wait_tree(page, leak)
    assert "zapped in the same call" in page.locator("#patch-note").inner_text()
    assert_no_console_errors(page)


def assert_commit_note(page: Any, commit: str, subject: str) -> None:
    """The narration's note for `commit` quotes its subject and links only to the commit on
    git.kernel.org."""
    selector = f'#narration .kernel-note[data-note="{commit}"]'
    assert subject in page.locator(selector).inner_text()
    assert dict(hrefs(page, selector + " a")) == {
        f"commit {commit}": f"https://git.kernel.org/torvalds/c/{commit}"}


def test_commit_notes_name_2de4085cccea_and_8ca983631f3c_with_links(page: Any) -> None:
    """seed-bottom-up: the first step with a kvm_mmu_prepare_zap_page() run inside
    mmu_page_zap_pte() called by kvm_mmu_page_unlink_children() is 2de4085cccea's recursive
    zap (mmu.c: a guest_mode child left with no parent SPTE, given an invalid_list);
    teaching-small's 4 KiB pass (l1_zap_4k) exists because of 8ca983631f3c's bottom-up
    order."""
    run = named_run("seed-bottom-up")
    recursion = next(
        i for i in range(run.n_events)
        if run.event(i).kind == "kvm_mmu_prepare_zap_page"
        and run.event(i).call_path[-2:] == ("kvm_mmu_page_unlink_children", "mmu_page_zap_pte"))
    step = run.convert_step(recursion + 1, "op", "action")
    page.goto(f"/?v=1&scenario=seed-bottom-up&step={step}")
    wait_tree(page, step)
    assert_commit_note(page, "2de4085cccea",
                       "Recursively zap nested TDP SPs when zapping last/only parent")
    teaching = named_run("teaching-small")
    zap_4k = next(i + 1 for i in range(teaching.n_actions)
                  if teaching.action(i).kind == "l1_zap_4k")
    page.goto(f"{TEACHING}&step={zap_4k}")
    wait_tree(page, zap_4k)
    assert_commit_note(page, "8ca983631f3c", "Zap invalidated TDP MMU roots at 4KiB granularity")
    assert_no_console_errors(page)
