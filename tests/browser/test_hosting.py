"""Hosted pages in Chromium: /docs works offline, and the CSP blocks nothing the page needs.

A Content-Security-Policy violation is a console error in Chromium ("Refused to execute
inline script ..."), so a page that loads with no console error and draws its content runs
under the policy as sent.
"""

from __future__ import annotations

from typing import Any


def test_docs_fetch_nothing_from_another_host(page: Any) -> None:
    """Swagger UI renders the API's operations from this server's files alone."""
    page.goto("/docs")
    page.locator('.opblock-summary-path[data-path="/api/snapshot"]').first.wait_for(
        timeout=15_000)
    assert page.foreign_requests() == []
    assert any(url.endswith("/static/vendor/swagger-ui-bundle.js") for url in page.requests)
    assert any(url.endswith("/openapi.json") for url in page.requests)
    assert page.console_errors == [], page.console_errors


def test_page_and_embed_run_under_the_csp(page: Any) -> None:
    """The page and an embed draw their tree with no CSP violation (no console error)."""
    for url in ("/", "/?embed=1"):
        page.goto(url)
        # A node drawn, not just Plotly's empty SVG: the tree's data came through.
        page.locator("#tree .scatterlayer .point").first.wait_for(timeout=20_000)
        assert page.console_errors == [], (url, page.console_errors)
