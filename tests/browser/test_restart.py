"""A restart serves a stored run without building it again: view a run in Chromium on the
server as `make run` starts it, stop the server, start it again on the same database, and
view the run again. The second server answers from the run store (the page's response
says `X-Run-Source: store`) and its /healthz counts no build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.api.test_builds_make_run import MakeRunServer, needs_make_run

# Not a built-in's opening run, so no start-up warming could have stored it.
VIEW = "/?v=1&scenario=teaching-small&boots=3&seed=11"
_TREE_DRAWN_JS = """() => {
  const el = document.getElementById("tree");
  return !!(el && el.data && el.data.length > 0);
}"""


def _view(browser: Any, server: MakeRunServer) -> str:
    """Open VIEW in a fresh page, wait for the tree to be drawn; the run's source."""
    page = browser.new_page()
    try:
        response = page.goto(server.url + VIEW)
        assert response is not None
        assert response.status == 200
        page.wait_for_function(_TREE_DRAWN_JS, timeout=30_000)
        page.wait_for_load_state("networkidle")  # the boots panel loads itself after
        source: str = response.headers["x-run-source"]
        return source
    finally:
        page.close()


@needs_make_run
def test_a_restarted_server_serves_the_stored_run_without_building(
    browser: Any, tmp_path: Path
) -> None:
    server = MakeRunServer(tmp_path / "traces.sqlite3")
    with server.running():
        assert _view(browser, server) == "built"
        # The view's run, and the boots panel's run with the other fixes (it loads itself).
        built = server.health()["builds"]["built"]
        assert built >= 1
    with server.running():  # the same database, so the same run store
        assert _view(browser, server) == "store"
        health = server.health()
        assert health["builds"]["built"] == 0
        assert health["runs"]["built"] == 0
        assert health["runs"]["store"] == built
