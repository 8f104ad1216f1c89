"""Timeline markers, jump keys, the shortcut help, search by gfn, skipping quiet steps and
the walkthrough, in real Chromium.

Every expected step is derived from the model's snapshots (mmu_model), with the reason:
the story the issue tells for teaching-small is that 16 PTs are unsynced at step 6, one is
orphaned (unsync) at steps 7 and 8 and flood detection zaps the PD at step 9.
"""

from __future__ import annotations

from typing import Any

import mmu_model
from tests.browser.test_visualizer import (
    _MARK_STALE_JS,
    act,
    assert_no_console_errors,
    blur,
    named_run,
    next_changing_step,
    query,
    wait_tree,
)

TEACHING = "/?v=1&scenario=teaching-small"


def leak_steps(run: mmu_model.Run) -> list[int]:
    """Action steps over which the orphaned unsync count goes up."""
    snaps = [run.snapshot(k) for k in range(run.n_actions + 1)]
    return [k for k in range(1, run.n_actions + 1)
            if snaps[k].orphans.unsync > snaps[k - 1].orphans.unsync]


def marker_steps(page: Any, kind: str) -> list[int]:
    return [int(s) for s in page.evaluate(
        "(k) => [...document.querySelectorAll('.marker-row[data-kind=\"' + k + '\"] a')]"
        ".map((a) => a.dataset.step)", kind)]


def press(page: Any, key: str, step: int) -> None:
    blur(page)
    act(page, lambda: page.keyboard.press(key), step)


def test_leak_markers_and_the_next_leak_key_land_where_orphans_unsync_go_up(
        page: Any) -> None:
    """From step 0, n goes to each step where orphans_unsync increases, in order (the
    first is 7, as the issue's story says), N goes back; the leak markers under the slider
    sit on those steps, and a click on one opens its step."""
    run = named_run("teaching-small")
    leaks = leak_steps(run)
    assert leaks[:2] == [7, 8]
    page.goto(f"{TEACHING}&step=0")
    wait_tree(page, 0)
    assert marker_steps(page, "leak") == leaks
    # The strip is the same at every step of the view: sent once, then kept as it is.
    page.evaluate("() => { document.querySelector('.markers').dataset.qaKept = '1'; }")
    press(page, "n", leaks[0])
    assert page.evaluate("() => document.querySelector('.markers').dataset.qaKept") == "1"
    assert marker_steps(page, "leak") == leaks
    assert query(page.url)["step"] == str(leaks[0])
    assert int(page.locator("#tree-panel").get_attribute("data-orphans-unsync")) == (
        run.snapshot(leaks[0]).orphans.unsync)
    press(page, "n", leaks[1])
    press(page, "N", leaks[0])
    # The flood marker: the step where mmu_flooded goes up.
    flood = next(k for k in range(1, run.n_actions + 1)
                 if run.snapshot(k).stats["mmu_flooded"] > run.snapshot(k - 1).stats["mmu_flooded"])
    assert flood == 9
    act(page, lambda: page.click(f'.marker-row[data-kind="flood"] a[data-step="{flood}"]'),
        flood)
    assert query(page.url)["step"] == str(flood)
    assert_no_console_errors(page)


def test_question_mark_opens_the_shortcut_help_and_escape_closes_it(page: Any) -> None:
    page.goto(TEACHING)
    wait_tree(page)
    blur(page)
    page.keyboard.press("?")
    dialog = page.locator("#help-dialog")
    dialog.wait_for(state="visible")
    assert page.evaluate("() => document.getElementById('help-dialog').open") is True
    assert page.evaluate(
        "() => document.getElementById('help-dialog').contains(document.activeElement)")
    assert dialog.get_attribute("aria-labelledby") == "help-title"
    assert "next / previous leak" in dialog.inner_text()
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    # The button opens it too.
    page.click("#btn-help")
    dialog.wait_for(state="visible")
    page.click("#help-close")
    dialog.wait_for(state="hidden")
    assert_no_console_errors(page)


def test_search_by_gfn_selects_the_page_and_lists_the_steps_that_touched_it(
        page: Any) -> None:
    """The page orphaned unsync at the first leak step, found by its gfn: it becomes the
    selected page (sp=) and the steps listed are those whose snapshot has it changed."""
    run = named_run("teaching-small")
    leak = leak_steps(run)[0]
    before, after = run.snapshot(leak - 1), run.snapshot(leak)
    was = {p.id: p.status for p in before.pages}
    (sp,) = [p for p in after.pages if p.status == "orphan-unsync" and was.get(p.id) != p.status]
    shadowing = {p.id for k in range(run.n_actions + 1) for p in run.snapshot(k).pages
                 if p.gfn == sp.gfn}
    touched = sorted({k for k in range(1, run.n_actions + 1)
                      if run.snapshot(k).changed & shadowing})
    page.goto(f"{TEACHING}&step={leak}")
    wait_tree(page, leak)
    blur(page)
    page.keyboard.press("/")
    assert page.evaluate("() => document.activeElement.id") == "find"
    page.keyboard.type(f"{sp.gfn:#x}")
    act(page, lambda: page.keyboard.press("Enter"), leak)
    params = query(page.url)
    assert params["find"] == f"{sp.gfn:#x}"
    assert params["sp"] == str(sp.id)
    assert f"Shadow page #{sp.id}" in page.locator("#sp-details h2").inner_text()
    listed = [int(s) for s in page.evaluate(
        "() => [...document.querySelectorAll('#find-result .found-step')]"
        ".map((a) => a.dataset.step)")]
    assert listed == touched[:40]
    act(page, lambda: page.click(f'#find-result .found-step[data-step="{touched[0]}"]'),
        touched[0])
    assert query(page.url)["sp"] == str(sp.id)
    assert_no_console_errors(page)


def test_a_bad_search_names_the_field_in_place(page: Any) -> None:
    page.goto(TEACHING)
    wait_tree(page)
    page.fill("#find", "zz")
    page.press("#find", "Enter")
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert error.get_attribute("data-field") == "find"
    assert error.get_attribute("data-status") == "422"
    assert "gfn in hex" in error.inner_text()


def test_arrows_skip_steps_that_change_nothing_until_the_box_is_unticked(page: Any) -> None:
    """After the flood zap at step 9 the next steps change nothing (the PD's shadow page is
    gone, so L1's PDE zaps there are not trapped): Right from 9 goes to the next step that
    changes something; unticked, Right goes to 10. Step numbers in the URL stay exact."""
    run = named_run("teaching-small")
    target = next_changing_step(run, 9)
    assert target > 10
    page.goto(f"{TEACHING}&step=9")
    wait_tree(page, 9)
    assert page.locator("#skip-quiet").is_checked()
    press(page, "ArrowRight", target)
    assert query(page.url)["step"] == str(target)
    press(page, "ArrowLeft", 9)
    # Play goes through Next too: its first move from 9 lands on the same step.
    page.click("#btn-play")
    page.wait_for_function(
        "() => document.getElementById('tree-panel').dataset.step !== '9'", timeout=15_000)
    played = page.locator("#tree-panel").get_attribute("data-step")
    page.click("#btn-play")
    assert played == str(target)
    page.goto(f"{TEACHING}&step=9")
    wait_tree(page, 9)
    act(page, lambda: page.locator("#skip-quiet").uncheck(), 9)
    assert query(page.url)["skip"] == "0"
    press(page, "ArrowRight", 10)
    assert_no_console_errors(page)


def test_quick_arrow_presses_while_skipping_each_move_one_changing_step(page: Any) -> None:
    """With quiet steps skipped, presses sent back to back (no wait for the view in between)
    are queued while a step loads, not dropped: three Rights from 9 land three changing
    steps on, and stay there."""
    run = named_run("teaching-small")
    expected = 9
    for _ in range(3):
        expected = next_changing_step(run, expected)
    assert expected < run.last_step("action")
    page.goto(f"{TEACHING}&step=9")
    wait_tree(page, 9)
    assert page.locator("#skip-quiet").is_checked()
    blur(page)
    page.evaluate(_MARK_STALE_JS)
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    wait_tree(page, expected)
    page.wait_for_load_state("networkidle")
    assert wait_tree(page)["step"] == str(expected)
    assert query(page.url)["step"] == str(expected), page.url
    assert_no_console_errors(page)


def walk(page: Any, start_url: str) -> list[tuple[int, int, str]]:
    """Open the view, start its walkthrough and click Next stop to the end: (stop, step,
    caption) of each stop."""
    page.goto(start_url)
    wait_tree(page)
    act(page, lambda: page.click("#tour-start"))
    stops = []
    while True:
        params = query(page.url)
        stops.append((int(params["stop"]), int(params["step"]),
                      " ".join(page.locator("#tour-caption").inner_text().split())))
        if page.locator("#tour-next").count() == 0:
            break
        act(page, lambda: page.click("#tour-next"))
    return stops


def test_teaching_walkthrough_goes_from_its_first_stop_to_its_last(page: Any) -> None:
    """Stops 1..n in step order, 5 to 8 of them: the start, the first leak (the step where
    orphans_unsync first goes up), the first flood zap, and the run's last step, whose
    caption carries the model's final leak count."""
    run = named_run("teaching-small")
    stops = walk(page, TEACHING)
    assert [k for k, _, _ in stops] == list(range(1, len(stops) + 1))
    assert 5 <= len(stops) <= 8
    steps = [s for _, s, _ in stops]
    assert steps == sorted(steps)
    assert steps[0] == 1
    assert leak_steps(run)[0] in steps
    assert 9 in steps  # the flood zap
    assert steps[-1] == run.n_actions
    final = run.snapshot(run.n_actions).orphans.unsync
    assert f"{final} orphaned unsync pages are left" in stops[-1][2]
    assert all(caption for _, _, caption in stops)
    assert page.locator("#tour-done").is_visible()
    # Each stop is a plain URL: reopening one shows the same stop.
    page.goto(page.url)
    wait_tree(page, run.n_actions)
    assert page.locator("#tour-k").inner_text() == str(len(stops))
    assert_no_console_errors(page)


def test_seed_trace_walkthroughs_reach_the_end_of_the_trace(page: Any) -> None:
    for name in ("seed-bottom-up", "seed-top-down"):
        run = named_run(name)
        stops = walk(page, f"/?v=1&scenario={name}")
        steps = [s for _, s, _ in stops]
        assert 5 <= len(stops) <= 8, name
        assert steps[0] == 1
        assert steps[-1] == run.n_actions
        assert leak_steps(run)[0] in steps, name
    assert_no_console_errors(page)


def test_compare_marks_the_first_divergence_and_d_jumps_to_it(page: Any) -> None:
    """teaching-small with and without track-write-zap: the patch only changes what a
    track-write zap does when it cuts a child's last parent, so the runs first differ at
    the first leak step (mainline orphans the PT there, the patch zaps it). The marker sits
    there and d goes there."""
    run = named_run("teaching-small")
    fixed = named_run("teaching-small", frozenset(mmu_model.DEFAULT_FIXES | {"track-write-zap"}))

    def state(r: mmu_model.Run, k: int) -> tuple[Any, ...]:
        snap = r.snapshot(k)
        stats = {n: v for n, v in snap.stats.items() if n != "hash_walked"}
        return stats, snap.orphans.total, snap.orphans.unsync

    first = next(k for k in range(1, run.n_actions + 1) if state(run, k) != state(fixed, k))
    assert first == leak_steps(run)[0]
    fixes = ",".join(sorted(mmu_model.DEFAULT_FIXES | {"track-write-zap"}))
    page.goto(f"{TEACHING}&step=0&compare=1&fixes={fixes}")
    wait_tree(page, 0)
    assert page.locator("#marker-diff").get_attribute("data-step") == str(first)
    press(page, "d", first)
    assert query(page.url)["step"] == str(first)
    assert_no_console_errors(page)
