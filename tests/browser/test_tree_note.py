"""The tree's note (how much of the tree is folded) is HTML under the plot, not in the figure.

As a Plotly annotation the note was laid out again by every redraw of the tree (its text
measured, the figure's layout replotted when it changed), and a long one ran off the
figure's right edge. Now the server renders it (#tree-note, templates/viz.html.jinja) in a
slot of fixed height under the plot, at every step, note or not, so nothing below it moves
when a note appears or grows; exported images still carry it (static/app.js withNote).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.browser.test_visualizer import act, assert_no_console_errors, blur, named_run, wait_tree

# The note's text, whether Plotly lays out any annotation, the pages the drawn summary nodes
# fold (each summary's customdata is [id, count, state, parent]: app/figures.py _record), and
# where the note's slot and the step buttons are.
_NOTE_JS = """() => {
  const gd = document.getElementById("tree");
  const note = document.getElementById("tree-note");
  const summary = gd.data.find((t) => t.meta === "summary");
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.top, r.height]; };
  return {
    note: note ? note.textContent.replace(/\\s+/g, " ").trim() : null,
    annotations: (gd.layout.annotations || []).length + (gd._fullLayout.annotations || []).length,
    folded: (summary && summary.customdata || []).reduce((n, cd) => n + cd[1], 0),
    slot: note ? box(note) : null,
    buttons: box(document.getElementById("step-buttons")),
    scroll: [note ? note.scrollHeight : 0, note ? note.clientHeight : 0],
  };
}"""
_FOLDED = re.compile(r"([\d,]+) healthy level-1 pages folded into summary nodes")


def _check(shown: dict[str, Any]) -> None:
    """The note is the page's, not the figure's, and says what the figure folds."""
    assert shown["note"] is not None, "no #tree-note under the plot"
    assert shown["annotations"] == 0, shown  # Plotly lays out no text of the note
    match = _FOLDED.search(shown["note"])
    if shown["folded"]:
        # Every level-1 page folded into a summary node is counted once, in its node's count.
        assert match is not None, shown["note"]
        assert int(match.group(1).replace(",", "")) == shown["folded"], shown
    else:
        assert match is None, shown["note"]
    assert shown["scroll"][0] <= shown["scroll"][1] + 1, shown  # the note fits its slot


def test_the_note_is_under_the_plot_at_every_step_and_nothing_moves(page: Any) -> None:
    """large-10k (past COLLAPSE_THRESHOLD: its level-1 pages fold into summary nodes) at its
    default step, one step on (applied as a delta), and a jump back to step 0 (no page yet,
    so no note): at each, the note under the plot names as many folded pages as the drawn
    summary nodes hold, Plotly draws no annotation, and neither the note's slot nor the step
    buttons move."""
    run = named_run("large-10k")
    start = run.default_step
    page.goto("/?v=1&scenario=large-10k&skip=0", timeout=120_000)
    wait_tree(page, start, timeout_ms=120_000)
    first = page.evaluate(_NOTE_JS)
    _check(first)
    assert first["folded"] > 0, first  # the default step draws summary nodes

    blur(page)
    act(page, lambda: page.keyboard.press("ArrowRight"), start + 1, timeout_ms=60_000)
    after = page.evaluate(_NOTE_JS)
    _check(after)
    assert after["folded"] > 0, after

    blur(page)
    act(page, lambda: page.keyboard.press("Home"), 0, timeout_ms=60_000)
    back = page.evaluate(_NOTE_JS)
    _check(back)
    assert back["note"] == "", back  # step 0: no page, nothing folded
    for shown in (after, back):
        assert shown["slot"] == first["slot"], (first, shown)
        assert shown["buttons"] == first["buttons"], (first, shown)
    assert_no_console_errors(page)


def test_an_exported_image_carries_the_note(page: Any, artifacts_dir: Path) -> None:
    """The SVG export of large-10k's tree draws the note the page shows under the plot."""
    page.goto("/?v=1&scenario=large-10k", timeout=120_000)
    wait_tree(page, timeout_ms=120_000)
    note = page.evaluate(_NOTE_JS)["note"]
    match = _FOLDED.search(note)
    assert match is not None, note
    with page.expect_download(timeout=30_000) as info:
        page.click("#export-svg")
    data = Path(info.value.path()).read_bytes()
    (artifacts_dir / "export-note.svg").write_bytes(data)
    assert match.group(0).encode() in data, note
    assert_no_console_errors(page)
