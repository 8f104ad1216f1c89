"""Keyboard gaps (issue 14 defect 7).

- After toggling a fix with the keyboard the focus stays on its checkbox; the arrows must
  still step (a checkbox has no use for them).
- Pages can be selected without a mouse: ] and [ walk the drawn pages in reading order (the
  top level first, then left to right: the tree's own layout, level on y and L2
  guest-physical order on x; stacked pages of one slot oldest first, as app/graph.py stacks
  them); Escape clears the selection.
- N quick presses of an arrow move N steps (presses made while a step loads count from
  the step being loaded).
- A selected page's details show in the viewport, next to the tree.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.test_visualizer import (
    _MARK_STALE_JS,
    act,
    assert_no_console_errors,
    blur,
    named_run,
    node_position,
    query,
    wait_tree,
)

TRACK_WRITE_ZAP = "track-write-zap"

# The drawn shadow pages (not folded summaries or groups) as [id, x, y], from the figure.
_DRAWN_PAGES_JS = """() => {
  const gd = document.getElementById("tree"), out = [];
  for (const t of gd.data) {
    if (!Array.isArray(t.customdata) || t.meta === "summary" || String(t.meta).startsWith("group"))
      continue;
    t.customdata.forEach((cd, i) => {
      if (Array.isArray(cd) && Number.isInteger(cd[0]) && cd.length >= 10)
        out.push([cd[0], t.x[i], t.y[i]]);
    });
  }
  return out;
}"""

_DETAILS_IN_VIEW_JS = """() => {
  const d = document.getElementById("sp-details");
  if (!d) return null;
  const r = d.getBoundingClientRect();
  // 1 px of slack: layout boxes end at fractions of a pixel.
  return r.top >= -1 && r.bottom <= window.innerHeight + 1 && r.left >= -1 &&
         r.right <= window.innerWidth + 1;
}"""


def reading_order(page: Any) -> list[int]:
    pages = page.evaluate(_DRAWN_PAGES_JS)
    return [sp for sp, _x, _y in sorted(pages, key=lambda p: (-p[2], p[1], p[0]))]


def selected(page: Any) -> int | None:
    sp = query(page.url).get("sp")
    return int(sp) if sp else None


def test_arrows_still_step_after_toggling_a_fix_from_the_keyboard(page: Any) -> None:
    run = named_run("teaching-small")
    start = run.default_step
    page.goto("/")
    wait_tree(page, start)
    page.focus(f"#fix-{TRACK_WRITE_ZAP}")
    act(page, lambda: page.keyboard.press("Space"), start)  # ticks it: a new run, same step
    assert TRACK_WRITE_ZAP in query(page.url).get("fixes", ""), page.url
    assert page.evaluate("() => document.activeElement.id") == f"fix-{TRACK_WRITE_ZAP}"
    act(page, lambda: page.keyboard.press("ArrowRight"), start + 1)
    act(page, lambda: page.keyboard.press("ArrowLeft"), start)
    assert page.locator(f"#fix-{TRACK_WRITE_ZAP}").is_checked()
    assert_no_console_errors(page)


def test_brackets_walk_the_pages_in_reading_order_and_escape_deselects(page: Any) -> None:
    page.set_viewport_size({"width": 1024, "height": 768})
    page.goto("/?v=1&scenario=teaching-small&step=7")
    wait_tree(page, 7)
    order = reading_order(page)
    assert len(order) >= 3, order
    blur(page)
    act(page, lambda: page.keyboard.press("]"), 7)
    assert selected(page) == order[0]
    assert page.evaluate(_DETAILS_IN_VIEW_JS) is True
    assert f"Shadow page #{order[0]}" in page.locator("#sp-details h2").inner_text()
    blur(page)
    act(page, lambda: page.keyboard.press("]"), 7)
    assert selected(page) == order[1]
    blur(page)
    act(page, lambda: page.keyboard.press("]"), 7)
    assert selected(page) == order[2]
    blur(page)
    act(page, lambda: page.keyboard.press("["), 7)
    assert selected(page) == order[1]
    assert page.evaluate(_DETAILS_IN_VIEW_JS) is True
    blur(page)
    act(page, lambda: page.keyboard.press("Escape"), 7)
    assert selected(page) is None
    assert page.locator("#sp-details").count() == 0
    # The help line under the timeline names the keys.
    help_text = page.locator("#timeline .help").inner_text()
    for key in ("[", "]", "Esc"):
        assert key in help_text, help_text
    assert_no_console_errors(page)


def test_twenty_quick_presses_move_twenty_steps(page: Any) -> None:
    """Twenty presses sent back to back (no wait for the view in between) from step 0 land
    on step 20 and stay there: teaching-small has 48 action steps, so none is clipped.
    skip=0: every press is one step (with quiet steps skipped, the default, each press is
    one step that changes something; test_navigation covers that)."""
    run = named_run("teaching-small")
    assert run.last_step("action") > 20
    page.goto("/?v=1&scenario=teaching-small&step=0&skip=0")
    wait_tree(page, 0)
    blur(page)
    page.evaluate(_MARK_STALE_JS)
    for _ in range(20):
        page.keyboard.press("ArrowRight")
    wait_tree(page, 20)
    # Nothing still queued moves it further: a last round trip to the server settles here.
    page.wait_for_load_state("networkidle")
    assert wait_tree(page)["step"] == "20"
    assert query(page.url).get("step") == "20", page.url
    assert_no_console_errors(page)


@pytest.mark.parametrize("viewport", [{"width": 1400, "height": 900},
                                      {"width": 1024, "height": 768}],
                         ids=["1400x900", "1024x768"])
def test_a_clicked_page_shows_its_details_in_view(page: Any, viewport: dict[str, int]) -> None:
    """The details used to come about 1,900 px down the page, under the narration."""
    page.set_viewport_size(viewport)
    page.goto("/?v=1&scenario=teaching-small&step=7")
    wait_tree(page, 7)
    target = reading_order(page)[-1]  # a level-1 page at the right end of the tree
    x, y = node_position(page, target)
    act(page, lambda: page.mouse.click(x, y), 7)
    assert selected(page) == target
    assert page.evaluate(_DETAILS_IN_VIEW_JS) is True
    assert_no_console_errors(page)
