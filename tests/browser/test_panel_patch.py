"""A step's panels are patched in place (static/app.js patchPanel), not replaced.

A step of the view drawn comes as its changed panels, out of band (templates/viz.html.jinja
step_update). Each differs from the one on the page in a few numbers, labels and links, so
the page makes the panel on the page what the server sent, node by node, instead of
swapping in new elements: what is unchanged keeps its elements (nothing to style or lay
out again, no htmx set-up again). What it shows must be what a new page shows for the same
view, and its controls must lead where the new view's do.
"""

from __future__ import annotations

from typing import Any

from tests.browser.test_visualizer import act, assert_no_console_errors, blur, query, wait_tree

VIEW = "/?v=1&scenario=teaching-small&skip=0"
# The panels a step sends out of band, but #tree-panel (app.js updatePanel) and the ones
# a step does not always send (#sp-details: only with a selection).
PANELS = ("share-row", "step-buttons", "slider-row", "jumps", "tour", "narration", "stats",
          "fixes", "boots-ref", "exports")

# Each panel as a tree of [tag, sorted attributes, children] (text trimmed), with the state
# of its form controls (value, checked): attribute order is not what a page shows.
_SHAPE_JS = """(ids) => {
  const shape = (n) => {
    if (n.nodeType === 3) return n.nodeValue.replace(/\\s+/g, " ").trim();
    if (n.nodeType !== 1) return null;
    const attrs = [...n.attributes].map((a) => [a.name, a.value]).sort();
    const state = n.tagName === "INPUT" || n.tagName === "SELECT"
      ? [n.value, !!n.checked] : null;
    return [n.tagName, attrs, state, [...n.childNodes].map(shape).filter((c) => c)];
  };
  return Object.fromEntries(ids.map((id) => [id, shape(document.getElementById(id))]));
}"""

# Marks every element of the panels (a JS property on the element object): an element
# replaced by a new one loses its mark.
_MARK_JS = """(ids) => { let n = 0;
  for (const id of ids) for (const el of [document.getElementById(id),
       ...document.getElementById(id).querySelectorAll("*")]) { el.__kept = ++n; }
  return n; }"""

_KEPT_JS = """(ids) => { let kept = 0, all = 0;
  for (const id of ids) for (const el of [document.getElementById(id),
       ...document.getElementById(id).querySelectorAll("*")]) { all++; if (el.__kept) kept++; }
  return [kept, all]; }"""


def test_a_step_patches_its_panels_to_what_a_new_page_shows(page: Any) -> None:
    """teaching-small, steps 3 to 9 one by one: each panel of the page keeps its element
    and most of the elements in it (the stats table's rows and header, say, are the same
    at every step), and after each step every panel is, tag for tag, attribute for
    attribute and text for text, what a new page at that step renders: the reference is
    the server's own full page of the same URL."""
    page.goto(f"{VIEW}&step=3")
    wait_tree(page, 3)
    fresh = page.context.new_page()
    for step in range(4, 10):
        marked = page.evaluate(_MARK_JS, list(PANELS))
        blur(page)
        act(page, lambda: page.keyboard.press("ArrowRight"), step)
        kept, total = page.evaluate(_KEPT_JS, list(PANELS))
        # The panels themselves and more than half of what is in them are the same
        # elements (a replaced panel keeps none: its elements are all new).
        assert page.evaluate(
            "(ids) => ids.every((id) => document.getElementById(id).__kept)", list(PANELS))
        assert kept > total // 2, (step, kept, total)
        assert kept <= marked, (step, kept, marked)
        fresh.goto(page.url)
        wait_tree(fresh, step)
        assert page.evaluate(_SHAPE_JS, list(PANELS)) == fresh.evaluate(_SHAPE_JS, list(PANELS))
    fresh.close()
    assert_no_console_errors(page)


def test_patched_controls_lead_where_the_new_view_says(page: Any) -> None:
    """After a step the patched buttons and links go to the new view's targets (htmx
    sets up again the elements whose URL changed): Next (#btn-next) from step 5 goes to 6, then
    to 7; the slider shows the step the view is at even after the user moved it without
    letting go (its value no longer follows its attribute then); Last (#btn-last) goes to the
    run's last step."""
    page.goto(f"{VIEW}&step=4")
    wait_tree(page, 4)
    blur(page)
    act(page, lambda: page.keyboard.press("ArrowRight"), 5)
    act(page, lambda: page.click("#btn-next"), 6)
    assert query(page.url)["step"] == "6"
    act(page, lambda: page.click("#btn-next"), 7)
    assert query(page.url)["step"] == "7"
    page.evaluate("() => { document.getElementById('step-slider').value = '1'; }")
    blur(page)
    act(page, lambda: page.keyboard.press("ArrowRight"), 8)
    assert page.locator("#step-slider").input_value() == "8"
    last = int(page.evaluate("() => document.getElementById('tree-panel').dataset.lastStep"))
    act(page, lambda: page.click("#btn-last"), last)
    assert query(page.url)["step"] == str(last)
    assert page.locator("#btn-next").is_disabled()
    assert_no_console_errors(page)


def test_the_focused_control_keeps_the_focus_across_steps(page: Any) -> None:
    """A keyboard user on the Next button (Enter steps) stays on it step after step: the
    patched panel keeps the button, or focuses the new one of the same id."""
    page.goto(f"{VIEW}&step=2")
    wait_tree(page, 2)
    page.focus("#btn-next")
    for step in (3, 4, 5):
        act(page, lambda: page.keyboard.press("Enter"), step)
        assert page.evaluate("() => document.activeElement.id") == "btn-next", step
    assert_no_console_errors(page)
