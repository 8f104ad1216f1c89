"""The tree's traces in Chromium: only those with points are drawn, and the legend is theirs.

The run's figure has one trace per kind of node (every page state, each leak group, the
overlays: static/app.js fillTraces, app/figures.py _run_figure), sixteen in all, and at a
step most are empty. Plotly computes and draws every visible trace on each redraw, empty or
not, so the page marks an empty trace invisible (visible: false): Plotly then skips it
(no <g class="trace"> in the plot), and it has no legend entry. A trace the user hid from
the legend ('legendonly') stays hidden while the steps change its points.
"""

from __future__ import annotations

from typing import Any

from tests.browser.test_visualizer import act, assert_no_console_errors, blur, wait_tree

VIEW = "/?v=1&scenario=teaching-small&skip=0"

# Per trace: its meta, name, point count and visible; the names the legend shows; the
# number of scatter traces Plotly drew (a <g class="trace scatter"> each).
_DRAWN_JS = """() => {
  const gd = document.getElementById("tree");
  return {
    traces: gd.data.map((t) => ({meta: t.meta, name: t.name, n: (t.x || []).length,
                                 visible: t.visible === undefined ? true : t.visible})),
    legend: [...gd.querySelectorAll(".legend .traces .legendtext")].map((e) => e.textContent),
    drawn: gd.querySelectorAll(".scatterlayer .trace.scatter").length,
  };
}"""


def _check(shown: dict[str, Any], step: int) -> list[str]:
    """The invariants at one step; the metas of the traces with points."""
    traces = shown["traces"]
    assert len(traces) == 16, step  # the run's figure: all its traces, filled or not
    full = [t for t in traces if t["n"] > 0]
    for t in traces:
        # Empty: not drawn. With points: drawn (true), unless hidden from the legend.
        assert (t["visible"] is False) == (t["n"] == 0), (step, t)
    assert shown["drawn"] == len(full), (step, shown)
    # The legend names each kind drawn, in the figure's order; the SPTE links have none.
    assert shown["legend"] == [t["name"] for t in full if t["meta"] != "edges"], (step, shown)
    return [t["meta"] for t in full]


def test_only_the_traces_with_points_are_drawn_and_the_legend_lists_them(page: Any) -> None:
    """teaching-small, steps 0 to 24 one by one (skip=0): at every step the traces without
    points are invisible, Plotly draws exactly the others, and the legend lists those
    (edges aside). Over these steps the set of kinds drawn changes (the tree starts empty
    at step 0 and gains pages and states), so traces go from empty to drawn by a step's
    restyle, not only on the first draw."""
    page.goto(f"{VIEW}&step=0")
    wait_tree(page, 0)
    kinds = {tuple(_check(page.evaluate(_DRAWN_JS), 0))}
    for step in range(1, 25):
        blur(page)
        act(page, lambda: page.keyboard.press("ArrowRight"), step)
        kinds.add(tuple(_check(page.evaluate(_DRAWN_JS), step)))
    assert len(kinds) > 2, kinds  # the set of kinds drawn changed from step to step
    assert_no_console_errors(page)


def test_a_kind_hidden_from_the_legend_stays_hidden_while_steps_change_it(page: Any) -> None:
    """A click on the legend's "synced" entry hides that trace (Plotly: visible
    'legendonly'); the steps after it that change the synced pages keep it hidden, with
    their points, and its legend entry stays."""
    page.goto(f"{VIEW}&step=7")
    wait_tree(page, 7)
    index = [t["meta"] for t in page.evaluate(_DRAWN_JS)["traces"]].index("synced")
    synced = page.evaluate(_DRAWN_JS)["traces"][index]
    assert synced["n"] > 0, synced
    page.locator("#tree .legend .traces", has_text=synced["name"]).first.click()
    page.wait_for_function(
        "(i) => document.getElementById('tree').data[i].visible === 'legendonly'", arg=index)
    counts, step = {synced["n"]}, 7
    while len(counts) < 3 and step < 40:
        step += 1
        blur(page)
        act(page, lambda: page.keyboard.press("ArrowRight"), step)
        shown = page.evaluate(_DRAWN_JS)
        now = shown["traces"][index]
        if now["n"] == 0:
            assert now["visible"] is False, (step, now)
            continue
        counts.add(now["n"])
        assert now["visible"] == "legendonly", (step, now)
        assert synced["name"] in shown["legend"], (step, shown)
    assert len(counts) >= 3, counts  # the synced pages changed twice while hidden
    assert_no_console_errors(page)
