"""The first view: the run's tree layout is fetched once, while the page's scripts load."""

from __future__ import annotations

from typing import Any

from .test_visualizer import assert_no_console_errors, wait_tree


def test_the_layout_is_fetched_once_by_the_preload_before_the_scripts_have_run(
        page: Any) -> None:
    """The page names the run's layout in a <link rel="preload">, so the browser starts
    fetching it with the page's scripts, not after them; app.js's fetch of the same URL
    (same mode, same credentials) is then served by that one response. A preload with
    other fetch options would show as a second /api/layout request."""
    page.goto("/?v=1&scenario=teaching-small&step=5")
    wait_tree(page)
    layouts = page.evaluate("""() => performance.getEntriesByType('resource')
        .filter((e) => new URL(e.name).pathname === '/api/layout')
        .map((e) => ({by: e.initiatorType, start: e.startTime}))""")
    assert len(layouts) == 1, layouts
    assert layouts[0]["by"] == "link"
    scripts_ran = page.evaluate(
        "() => performance.getEntriesByType('navigation')[0].domContentLoadedEventStart")
    assert layouts[0]["start"] < scripts_ran
    assert len([u for u in page.requests if "/api/layout" in u]) == 1
    assert_no_console_errors(page)
