"""Issue 14, defects 3 and 10 in Chromium: overlapping tree marks, and the smaller things a
visit trips on (tab title, export names, the per-boot CSV, a changed scenario's text, the
charts' ARIA roles).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import pytest

from mmu_model import DEFAULT_FIXES, FIXES
from tests.browser.test_visualizer import (
    act,
    assert_no_console_errors,
    named_run,
    wait_tree,
)

TRACK_WRITE_ZAP = "track-write-zap"
MAINLINE = ",".join(name for name in FIXES if name in DEFAULT_FIXES)

# Every drawn marker and link of a tree in viewport pixels, from the figure's own axes:
# markers with their pixel radius (half their marker size), links as segments.
_GEOMETRY_JS = """(id) => {
  const gd = document.getElementById(id), fl = gd._fullLayout;
  const px = (x, y) => [fl.xaxis.l2p(x) + fl._size.l, fl.yaxis.l2p(y) + fl._size.t];
  const nodes = [], links = [];
  for (let k = 0; k < gd.data.length; k++) {
    const t = gd.data[k], full = gd._fullData[k];
    if (t.meta === "edges") {
      for (let i = 0; i + 1 < t.x.length; i += 3) {
        links.push([px(t.x[i], t.y[i]), px(t.x[i + 1], t.y[i + 1])]);
      }
    } else if (Array.isArray(t.customdata) && t.meta !== "changed" && t.meta !== "selected") {
      for (let i = 0; i < t.x.length; i++) {
        const size = Array.isArray(full.marker.size) ? full.marker.size[i] : full.marker.size;
        nodes.push({id: t.customdata[i][0], at: px(t.x[i], t.y[i]), r: size / 2});
      }
    }
  }
  return {nodes, links};
}"""


def foreign_links(geometry: dict[str, Any]) -> list[tuple[int, int]]:
    """(node id, link index) of every marker that touches a link it is not an end of: its
    centre nearer the segment than its radius plus 2 px (the 1 px line and a hair)."""
    hits = []
    for node in geometry["nodes"]:
        px, py = node["at"]
        for k, ((ax, ay), (bx, by)) in enumerate(geometry["links"]):
            if math.isclose(ax, px, abs_tol=0.5) and math.isclose(ay, py, abs_tol=0.5):
                continue  # the link starts at this node
            if math.isclose(bx, px, abs_tol=0.5) and math.isclose(by, py, abs_tol=0.5):
                continue  # the link ends at this node
            dx, dy = bx - ax, by - ay
            t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
            if math.hypot(ax + t * dx - px, ay + t * dy - py) < node["r"] + 2:
                hits.append((node["id"], k))
    return hits


@pytest.mark.parametrize(("step", "level", "older"), [(5, 4, "root"), (26, 3, "orphan")])
def test_no_page_is_drawn_on_a_link_it_does_not_end(
    page: Any, artifacts_dir: Path, step: int, level: int, older: str
) -> None:
    """Defect 3. Step 5 (the landing step): L1 gave L2 a fresh root while the old tree
    waits for its teardown, so two roots share the root's slot and the old one still links
    to its PDPT. Step 26: the old PDPT is an orphan in the slot of the new PDPT, which links
    under the new root. Drawn in one column, the newer page sat on the older one's link
    (step 5) or the newer link ran through the older page (step 26); now no marker touches
    a link it is not an end of, in pixels as Chromium draws them."""
    run = named_run("teaching-small")
    snap = run.snapshot(step)
    same_slot = sorted(sp.id for sp in snap.pages if sp.level == level)
    assert len(same_slot) == 2
    assert next(sp for sp in snap.pages if sp.id == same_slot[0]).status == older
    page.goto(f"/?v=1&scenario=teaching-small&step={step}")
    wait_tree(page, step)
    geometry = page.evaluate(_GEOMETRY_JS, "tree")
    drawn = {node["id"] for node in geometry["nodes"]}
    assert set(same_slot) <= drawn
    assert foreign_links(geometry) == []
    page.locator("#tree").screenshot(path=str(artifacts_dir / f"overlap-step{step}.png"))
    assert_no_console_errors(page)


def test_the_tab_title_follows_the_step(page: Any) -> None:
    """Defect 10: after an htmx step the tab still named the step the page was loaded at."""
    page.goto("/?v=1&scenario=teaching-small&step=8")
    wait_tree(page, 8)
    assert "step 8" in page.title()
    act(page, lambda: page.click("#btn-next"), 9)
    page.wait_for_function("() => document.title.includes('step 9')", timeout=10_000)
    assert "step 8" not in page.title()


def test_exported_files_name_the_scenario_fixes_and_step(page: Any) -> None:
    """Defect 10: the PNG was "shadow-tree-action-step-8" whatever the scenario; every
    export now names the scenario, the fix set, the grain and the step."""
    page.goto("/?v=1&scenario=teaching-small&step=8")
    wait_tree(page, 8)
    stem = f"teaching-small_{MAINLINE.replace(',', '+')}_action-step8"
    for selector, suffix in (("#export-png", "png"), ("#export-svg", "svg"),
                             ("#export-graphml", "graphml"), ("#export-dot", "dot")):
        with page.expect_download(timeout=30_000) as info:
            page.click(selector)
        assert info.value.suggested_filename == f"{stem}.{suffix}", selector
    assert_no_console_errors(page)


def test_per_boot_csv_holds_both_lines_of_the_chart(page: Any) -> None:
    """Defect 10: the chart draws the run without and with track-write-zap; the CSV held
    only the view's fix set. teaching-small booted 3 times: 3 rows per fix set, and with
    patch 1/2 no boot ends with an orphaned unsync page (kvm_mmu_track_write() zaps the
    page instead of orphaning it)."""
    page.goto("/?v=1&scenario=teaching-small&boots=3&step=8")
    wait_tree(page, 8)
    page.wait_for_selector("#boots-chart", timeout=30_000)
    with page.expect_download(timeout=30_000) as info:
        page.click("#export-csv")
    download = info.value
    assert download.suggested_filename == (
        f"teaching-small-custom_{MAINLINE.replace(',', '+')}-boots.csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    by_fixes: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_fixes.setdefault(row["fixes"], []).append(row)
    patched = ",".join(name for name in FIXES if name in DEFAULT_FIXES | {TRACK_WRITE_ZAP})
    assert set(by_fixes) == {MAINLINE, patched}
    assert [r["boot"] for r in by_fixes[MAINLINE]] == ["1", "2", "3"]
    assert [r["boot"] for r in by_fixes[patched]] == ["1", "2", "3"]
    assert all(r["orphans_unsync"] == "0" for r in by_fixes[patched])
    assert any(r["orphans_unsync"] != "0" for r in by_fixes[MAINLINE])
    assert_no_console_errors(page)


def test_a_changed_scenario_says_what_was_changed(page: Any) -> None:
    """Defect 10: after the form changed `boots`, the page still showed the built-in's
    description, as if nothing had changed."""
    page.goto("/?v=1&scenario=teaching-small&step=3")
    wait_tree(page, 3)
    page.fill("#spec-boots", "3")
    act(page, lambda: page.click("#scenario-submit"))
    description = " ".join(page.locator("#source .description").inner_text().split())
    assert description.startswith("custom: boots = 3"), description
    assert "teaching-small" in description
    assert_no_console_errors(page)


# WAI-ARIA roles whose children are presentational: axe-core's nested-interactive rule
# flags any of them holding a focusable element (a Plotly chart's modebar buttons).
_CHILDREN_PRESENTATIONAL = {"button", "checkbox", "img", "math", "menuitemcheckbox",
                            "menuitemradio", "meter", "option", "progressbar", "radio",
                            "scrollbar", "separator", "slider", "switch", "tab"}


def test_charts_are_named_figures_not_images_with_controls_inside(page: Any) -> None:
    """Defect 10: the chart divs had role="img" (presentational children) while Plotly puts
    interactive controls in them: axe's nested-interactive (serious) on every chart. Each
    chart keeps an accessible name, under a role that may hold controls."""
    page.goto(f"/?v=1&scenario=teaching-small&boots=3&step=8&compare=1&fixes={MAINLINE}"
              f",{TRACK_WRITE_ZAP}")
    wait_tree(page, 8)
    wait_tree(page, 8, tree_id="tree-base")
    page.wait_for_selector("#boots-chart .main-svg", timeout=30_000)
    charts = page.evaluate("""() => [...document.querySelectorAll(".plot")].map((el) => {
        const ids = (el.getAttribute("aria-labelledby") || "").split(/\\s+/).filter(Boolean);
        const name = el.getAttribute("aria-label") ||
          ids.map((id) => (document.getElementById(id) || {}).textContent || "").join(" ");
        return {id: el.id, role: el.getAttribute("role"), name: name.trim()};
      })""")
    assert {c["id"] for c in charts} == {"tree", "tree-base", "boots-chart"}
    for chart in charts:
        assert chart["role"] not in _CHILDREN_PRESENTATIONAL, chart
        assert chart["name"], chart
    assert_no_console_errors(page)
