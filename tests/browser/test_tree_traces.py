"""The tree's traces in Chromium: every kind of node has its trace, and the legend is the
page's own.

The run's figure has one trace per kind of node (every page state, each leak group, the
overlays: static/app.js fillTraces, app/figures.py _run_figure), sixteen in all, and at a
step most are empty. Every trace stays visible, empty or not: Plotly draws nothing of an
empty one, and making a trace visible or invisible would have it redraw the whole figure
where a kind of node appearing is otherwise drawn by patching (static/treepatch.js). The
first draw of a run parks one point off the plot in each empty trace, so that Plotly draws
every kind once, and patches it away: no parked point is left in the data.

The legend is HTML above the plot (#tree-legend, app/legend.py), not Plotly's: it shows an
entry for each kind with points at the step, in the figure's order; its button hides that
kind (Plotly 'legendonly'), and the kind stays hidden while the steps change its points.
"""

from __future__ import annotations

from itertools import pairwise
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
    legend: [...document.querySelectorAll("#tree-legend li:not([hidden])")]
      .map((e) => e.textContent.trim()),
    pressed: [...document.querySelectorAll("#tree-legend li:not([hidden]) button")]
      .map((e) => e.getAttribute("aria-pressed")),
    plotlyLegend: gd.querySelectorAll(".legend").length,
    // Per drawn group: its trace's meta and the points and labels it shows.
    drawn: [...gd.querySelectorAll(".scatterlayer .trace.scatter")].map((g) => [
      g.__data__[0].trace.meta, g.querySelectorAll("path.point").length,
      [...g.querySelectorAll(".textpoint text")].map((e) => e.textContent)]),
    parked: gd.data.some((t) => (t.x || []).some((x) => x !== null && x < -1000)),
  };
}"""


def _check(shown: dict[str, Any], step: int) -> list[str]:
    """The invariants at one step; the metas of the traces with points."""
    traces = shown["traces"]
    assert len(traces) == 16, step  # the run's figure: all its traces, filled or not
    assert not shown["parked"], step
    full = [t for t in traces if t["n"] > 0]
    for t in traces:
        assert t["visible"] is True, (step, t)  # see the module's docstring
    # What is drawn: each marker trace with points, point for point (the links are lines);
    # a group left by an emptied trace draws nothing.
    drawn = {meta: n for meta, n, _labels in shown["drawn"] if n}
    assert drawn == {t["meta"]: t["n"] for t in full if t["meta"] != "edges"}, (step, shown)
    # The page's legend names each kind with points, in the figure's order; the SPTE
    # links have none; Plotly draws no legend of its own.
    assert shown["legend"] == [t["name"] for t in full if t["meta"] != "edges"], (step, shown)
    assert shown["plotlyLegend"] == 0, step
    return [t["meta"] for t in full]


def test_every_kind_drawn_is_the_traces_points_and_the_legend_lists_them(page: Any) -> None:
    """teaching-small, steps 0 to 40 one by one (skip=0): at every step Plotly's SVG shows
    exactly the points of the traces with points, none parked, and the page's legend lists
    those kinds (edges aside). Over these steps the set of kinds drawn changes (the tree
    starts empty at step 0 and gains pages and states; a ghost appears the step a page is
    zapped and goes the next), so kinds appear after the first draw, and go."""
    page.goto(f"{VIEW}&step=0")
    wait_tree(page, 0)
    seen = [tuple(_check(page.evaluate(_DRAWN_JS), 0))]
    for step in range(1, 41):
        blur(page)
        act(page, lambda: page.keyboard.press("ArrowRight"), step)
        seen.append(tuple(_check(page.evaluate(_DRAWN_JS), step)))
    assert len(set(seen)) > 2, seen  # the set of kinds drawn changed from step to step
    went = [m for a, b in pairwise(seen) for m in a if m not in b]
    came = [m for a, b in pairwise(seen) for m in b if m not in a]
    assert went, seen
    assert came, seen
    assert_no_console_errors(page)


def test_a_kind_hidden_from_the_legend_stays_hidden_while_steps_change_it(page: Any) -> None:
    """A click on the legend's "synced" button hides that trace (Plotly: visible
    'legendonly') and unpresses the button; the steps after it that change the synced
    pages keep it hidden, with their points, and its legend entry stays, unpressed. A
    second click shows it again."""
    page.goto(f"{VIEW}&step=7")
    wait_tree(page, 7)
    index = [t["meta"] for t in page.evaluate(_DRAWN_JS)["traces"]].index("synced")
    synced = page.evaluate(_DRAWN_JS)["traces"][index]
    assert synced["n"] > 0, synced
    button = page.locator("#tree-legend li[data-meta=synced] button")
    assert button.get_attribute("aria-pressed") == "true"
    button.click()
    page.wait_for_function(
        "(i) => document.getElementById('tree').data[i].visible === 'legendonly'", arg=index)
    counts, step = {synced["n"]}, 7
    while len(counts) < 3 and step < 40:
        step += 1
        blur(page)
        act(page, lambda: page.keyboard.press("ArrowRight"), step)
        shown = page.evaluate(_DRAWN_JS)
        now = shown["traces"][index]
        assert now["visible"] == "legendonly", (step, now)
        assert synced["meta"] not in [m for m, n, _ in shown["drawn"] if n], (step, shown)
        if now["n"] == 0:
            assert synced["name"] not in shown["legend"], (step, shown)
            continue
        counts.add(now["n"])
        assert synced["name"] in shown["legend"], (step, shown)
        assert button.get_attribute("aria-pressed") == "false", step
    assert len(counts) >= 3, counts  # the synced pages changed twice while hidden
    assert page.evaluate("() => document.querySelectorAll('#tree .trace.scatter .point')"
                         ".length") > 0  # the other kinds are still drawn
    button.click()
    page.wait_for_function(
        "(i) => document.getElementById('tree').data[i].visible === true", arg=index)
    assert button.get_attribute("aria-pressed") == "true"
    assert_no_console_errors(page)
