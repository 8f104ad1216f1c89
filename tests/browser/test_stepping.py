"""One step in Chromium: what the tree's redraw asks of Plotly, and links htmx leaves alone.

Plotly recomputes and redraws the whole figure on any restyle or relayout, so a step sends
it only the traces whose points changed, relayouts only when the note or the legend
changed, and calls nothing when the step changes nothing drawn. What is drawn after a run
of such partial redraws must be what a fresh page draws for the same view.
"""

from __future__ import annotations

from typing import Any

from tests.browser.test_visualizer import act, assert_no_console_errors, blur, wait_tree

START = 1
STEPS = 24
VIEW = "/?v=1&scenario=teaching-small&skip=0"

# Wraps Plotly's drawing calls on #tree, recording each: its name, the traces it was given
# and the layout keys it changed.
_RECORD_JS = """() => {
  window.__calls = [];
  for (const name of ["react", "restyle", "update", "relayout"]) {
    const real = Plotly[name];
    Plotly[name] = function (gd, ...args) {
      const el = typeof gd === "string" ? document.getElementById(gd) : gd;
      if (el && el.id === "tree") {
        let traces = null, layout = [];
        if (name === "restyle") traces = args[1];
        if (name === "update") { traces = args[2]; layout = Object.keys(args[1] || {}); }
        if (name === "relayout") layout = Object.keys(args[0] || {});
        window.__calls.push({name, traces: traces === undefined ? null : traces, layout});
      }
      return real.call(this, gd, ...args);
    };
  }
}"""

# Each trace of the drawn tree as what a point shows: position, data, label, size, colour.
_TRACES_JS = """() => document.getElementById("tree").data.map((t) => JSON.stringify([
  t.x, t.y, t.customdata ?? null, t.text ?? null, (t.marker || {}).size ?? null,
  (t.marker || {}).color ?? null, t.showlegend ?? null]))"""

_NOTE_JS = """() => JSON.stringify((document.getElementById("tree").layout.annotations || [])
  .map((a) => a.text))"""


def test_a_step_redraws_only_the_traces_that_changed(page: Any) -> None:
    """teaching-small, every step from START on (skip=0, so quiet steps too): the traces a
    step hands Plotly are exactly those whose drawn points differ before and after it; no
    step draws a new figure (react) or relayouts while the note stays the same; a step
    whose drawn traces do not change makes no call. After the steps the figure equals the
    one a new page draws for the same view."""
    page.goto(f"{VIEW}&step={START}")
    wait_tree(page, START)
    page.evaluate(_RECORD_JS)
    quiet = 0
    for step in range(START + 1, START + 1 + STEPS):
        before, note = page.evaluate(_TRACES_JS), page.evaluate(_NOTE_JS)
        page.evaluate("() => { window.__calls = []; }")
        blur(page)
        act(page, lambda: page.keyboard.press("ArrowRight"), step)
        after, calls = page.evaluate(_TRACES_JS), page.evaluate("() => window.__calls")
        changed = {i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b}
        assert [c["name"] for c in calls if c["name"] == "react"] == [], step
        sent = {i for c in calls for i in (c["traces"] or [])}
        assert sent == changed, (step, calls)
        if page.evaluate(_NOTE_JS) == note:
            assert not [c for c in calls if c["layout"]], (step, calls)
        if not changed:
            quiet += 1
            assert calls == [], (step, calls)
    assert quiet > 0, "no step left the tree as it was: the no-call case went untested"
    drawn = page.evaluate(_TRACES_JS)
    fresh = page.context.new_page()
    fresh.goto(f"{VIEW}&step={START + STEPS}")
    wait_tree(fresh, START + STEPS)
    assert fresh.evaluate(_TRACES_JS) == drawn
    fresh.close()
    assert_no_console_errors(page)


def test_kernel_links_are_left_to_the_browser_and_view_links_are_boosted(page: Any) -> None:
    """htmx 2 boosts a link only to this host with no target (htmx.js boostElement): the
    narration's kernel links (Elixir, new tab) carry no hx-boost="false" and are still
    not boosted; its links to other steps of the view are."""
    page.goto("/?v=1&scenario=large-10k")
    wait_tree(page)
    boosted = page.evaluate("""() => [...document.querySelectorAll("#narration a")].map(
      (a) => [a.className, a.getAttribute("href").startsWith("/?"),
              !!(a["htmx-internal-data"] && a["htmx-internal-data"].boosted),
              a.hasAttribute("hx-boost")])""")
    kernel = [b for b in boosted if "kernel" in b[0]]
    views = [b for b in boosted if b[1]]
    assert kernel and views
    assert all(not is_boosted and not attr for _, _, is_boosted, attr in kernel), kernel
    assert all(is_boosted for _, _, is_boosted, _ in views), views
    assert_no_console_errors(page)
