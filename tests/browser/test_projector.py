"""Projector mode (issue 14 defect 9) and no layout shift between steps (defect 8).

At 1024x768 the tree and the step controls are in view without scrolling; every label of
the tree is 14 px or more; every state marker stands out from the plot's background at 3:1
or more (WCAG 2.x non-text contrast, 1.4.11), computed here from the colours the drawn
figure uses (plotly's _fullData and _fullLayout); the per-boot chart's x axis title and its
legend do not overlap. Between steps, neither the step buttons nor the tree's plot area
move: a leak appearing (the banner) or a new kind of node (a legend entry) must not push
them.
"""

from __future__ import annotations

from typing import Any

import pytest

import mmu_model
from app.figures import SUMMARY_COLOURS
from tests.browser.test_visualizer import (
    act,
    assert_no_console_errors,
    blur,
    named_run,
    wait_tree,
)

PROJECTOR = {"width": 1024, "height": 768}
WCAG_NON_TEXT = 3.0
MIN_LABEL_PX = 14.0


def _channel(c: float) -> float:
    c /= 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG relative luminance of an sRGB colour (0-255 channels)."""
    r, g, b = (_channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def parse_colour(text: str) -> tuple[tuple[float, float, float], float]:
    """'#rrggbb', '#rgb', 'rgb(r, g, b)' or 'rgba(r, g, b, a)' -> ((r, g, b), alpha)."""
    text = text.strip().lower()
    if text.startswith("#") and len(text) == 4:
        text = "#" + "".join(c * 2 for c in text[1:])
    if text.startswith("#") and len(text) == 7:
        return (int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)), 1.0
    if text.startswith("rgb"):
        parts = [float(p) for p in text[text.index("(") + 1:-1].split(",")]
        return (parts[0], parts[1], parts[2]), parts[3] if len(parts) == 4 else 1.0
    raise AssertionError(f"unexpected colour {text!r}")


def on_background(colour: str, opacity: float, background: str) -> tuple[float, ...]:
    """What the eye sees: `colour` at `opacity` (and its own alpha) over `background`."""
    rgb, alpha = parse_colour(colour)
    bg, _ = parse_colour(background)
    a = alpha * opacity
    return tuple(a * c + (1 - a) * b for c, b in zip(rgb, bg, strict=True))


def marker_contrast(marker: dict[str, Any], colour: str, background: str) -> float:
    """A marker's contrast: its fill, or for an open symbol its outline, which plotly strokes
    in the marker colour; a rim of 1 px or more counts too (WCAG's technique of a
    contrasting border around a low-contrast shape)."""
    opacity = float(marker.get("opacity", 1))
    best = contrast(on_background(colour, opacity, background), parse_colour(background)[0])
    line = marker.get("line") or {}
    if not str(marker.get("symbol", "")).endswith("-open") and float(line.get("width", 0)) >= 1:
        rim = on_background(str(line.get("color")), opacity, background)
        best = max(best, contrast(rim, parse_colour(background)[0]))
    return best


def _open(page: Any, url: str, step: int, viewport: dict[str, int] = PROJECTOR) -> None:
    page.set_viewport_size(viewport)
    page.goto(url)
    wait_tree(page, step)


def test_tree_and_step_controls_fit_a_1024x768_projector(page: Any) -> None:
    """Step 7 of teaching-small has the leak banner too: everything fits, at scrollY 0."""
    run = named_run("teaching-small")
    assert run.snapshot(7).orphans.unsync > 0
    _open(page, "/?v=1&scenario=teaching-small&step=7", 7)
    boxes = page.evaluate("""() => Object.fromEntries(
        ["#tree", "#timeline", "#btn-next", "#step-slider", ".leak-banner"].map((s) => {
          const r = document.querySelector(s).getBoundingClientRect();
          return [s, [r.left, r.top, r.right, r.bottom]];
        }))""")
    assert page.evaluate("() => window.scrollY") == 0
    for selector, (left, top, right, bottom) in boxes.items():
        assert left >= 0, (selector, boxes)
        assert top >= 0, (selector, boxes)
        assert right <= PROJECTOR["width"], (selector, boxes)
        assert bottom <= PROJECTOR["height"], (selector, boxes)
    assert_no_console_errors(page)


def test_tree_labels_are_at_least_14px(page: Any) -> None:
    """Every text the tree's SVG draws (axis labels, legend, notes, node counts)."""
    _open(page, "/?v=1&scenario=teaching-small&step=7", 7)
    sizes = page.evaluate("""() => [...document.querySelectorAll("#tree svg text")]
        .filter((t) => t.textContent.trim() !== "")
        .map((t) => [t.textContent.trim(), parseFloat(getComputedStyle(t).fontSize)])""")
    assert len(sizes) >= 5, sizes  # the level names and the legend at least
    small = [(text, px) for text, px in sizes if px < MIN_LABEL_PX]
    assert small == [], small


def test_every_state_marker_has_3_to_1_contrast_against_the_plot(page: Any) -> None:
    """Each marker trace of the drawn tree (every page state, folded groups, the changed
    ring and the selection frame), at the colour, opacity and symbol plotly drew it with;
    and the colours summary nodes take per point (app.figures.SUMMARY_COLOURS). The trace
    data is the page's (the run's figure filled by static/app.js), before plotly's defaults:
    a missing opacity is 1, a missing rim 0 px."""
    _open(page, "/?v=1&scenario=teaching-small&step=7", 7)
    traces = page.evaluate("""async () => {
        const gd = document.getElementById("tree");
        const delta = JSON.parse(document.getElementById("tree-delta").textContent);
        const run = await (await fetch(delta.layout)).json();  // the run's figure
        return {bg: gd._fullLayout.plot_bgcolor,
                traces: run.figure.data.map((base, i) => {
                  const m = base.marker || {}, line = m.line || {};
                  const drawn = (gd.data[i].marker || {}).color;
                  return {meta: base.meta, name: base.name, marker: {
                    color: Array.isArray(drawn) && drawn.length ? [m.color, ...drawn] : m.color,
                    opacity: m.opacity ?? 1, symbol: m.symbol ?? "circle",
                    line: {color: line.color ?? "#444444", width: line.width ?? 0}}};
                }).filter((t) => t.meta !== "edges")};
    }""")
    background = traces["bg"]
    seen = []
    for trace in traces["traces"]:
        marker = trace["marker"]
        colour_of = marker["color"]
        colours = colour_of if isinstance(colour_of, list) else [colour_of]
        if trace["meta"] == "summary":
            colours = [*colours, *SUMMARY_COLOURS.values()]
        for colour in set(colours):
            ratio = marker_contrast(marker, colour, background)
            seen.append(trace["meta"])
            assert ratio >= WCAG_NON_TEXT, (trace["name"], colour, marker, round(ratio, 2))
    # Every page state has a trace (drawn or not at this step: the figure is the run's).
    assert {
        "root", "ex-root", "synced", "unsync", "orphan", "orphan-unsync", "zapped",
        "summary"} <= set(seen), seen


def test_per_boot_chart_axis_title_does_not_overlap_its_legend(page: Any) -> None:
    spec = mmu_model.get_scenario("teaching-small").spec
    assert spec is not None
    run = mmu_model.run_scenario(spec.replace(boots=3))
    step = run.per_boot[0].action_step
    _open(page, f"/?v=1&scenario=teaching-small&boots=3&step={step}", step)
    page.wait_for_function(
        "() => { const c = document.getElementById('boots-chart');"
        " return !!(c && c._fullLayout && c.querySelector('.legend')); }", timeout=30_000)
    boxes = page.evaluate("""() => {
        const c = document.getElementById("boots-chart");
        const box = (e) => { const r = e.getBoundingClientRect();
                             return [r.left, r.top, r.right, r.bottom]; };
        const titles = [...c.querySelectorAll("[class*='xtitle'], [class*='x2title']")]
          .filter((t) => t.textContent.trim() !== "");
        return {titles: titles.map((t) => [t.textContent, box(t)]),
                legend: box(c.querySelector(".legend"))};
    }""")
    assert boxes["titles"], "the per-boot chart has no x axis title"
    lx0, ly0, lx1, ly1 = boxes["legend"]
    for text, (x0, y0, x1, y1) in boxes["titles"]:
        overlap = x0 < lx1 and lx0 < x1 and y0 < ly1 and ly0 < y1
        assert not overlap, (text, (x0, y0, x1, y1), boxes["legend"])


_GEOMETRY_JS = """() => {
  const gd = document.getElementById("tree"), r = gd.getBoundingClientRect();
  const next = document.getElementById("btn-next").getBoundingClientRect();
  return {next: Math.round(next.top + window.scrollY),
          plotTop: Math.round(r.top + window.scrollY + gd._fullLayout._size.t),
          plotHeight: Math.round(gd._fullLayout._size.h)};
}"""


@pytest.mark.parametrize("viewport", [{"width": 1400, "height": 900}, PROJECTOR],
                         ids=["1400x900", "1024x768"])
def test_nothing_moves_between_steps(page: Any, viewport: dict[str, int]) -> None:
    """teaching-small: at step 7 the first leak shows its banner (it used to push the
    buttons down 42 px); at step 32 new kinds of node join the legend (it used to wrap and
    push the tree down). Across those steps, and a step-through of the whole run, the Next
    button and the tree's plot area keep their place. skip=0: ArrowRight is one step, so
    the step-through visits every step, quiet ones included."""
    run = named_run("teaching-small")
    assert run.snapshot(6).orphans.unsync == 0 < run.snapshot(7).orphans.unsync
    _open(page, "/?v=1&scenario=teaching-small&step=6&skip=0", 6, viewport)
    first = page.evaluate(_GEOMETRY_JS)
    blur(page)
    act(page, lambda: page.keyboard.press("ArrowRight"), 7)
    assert page.evaluate(_GEOMETRY_JS) == first, "a leak appearing moved the controls"
    _open(page, "/?v=1&scenario=teaching-small&step=31&skip=0", 31, viewport)
    assert page.evaluate(_GEOMETRY_JS) == first
    blur(page)
    act(page, lambda: page.keyboard.press("ArrowRight"), 32)
    assert page.evaluate(_GEOMETRY_JS) == first, "step 32 moved the tree or the controls"

    blur(page)
    act(page, lambda: page.keyboard.press("Home"), 0)
    moved = []
    for step in range(run.last_step("action") + 1):
        if step:
            act(page, lambda: page.keyboard.press("ArrowRight"), step)
        now = page.evaluate(_GEOMETRY_JS)
        if now != first:
            moved.append((step, now))
    assert moved == [], f"expected {first} at every step"
    assert_no_console_errors(page)
