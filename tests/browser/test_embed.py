"""Embeds that work anywhere (issue 14): a cross-site iframe draws its tree and steps, the
embed layout fits a 640x400 frame, and "Copy embed code" gives an iframe of the view.

The host page is served by a tiny http.server on a second loopback port, under the name
`localhost` while the app is framed as `127.0.0.1`: a different site, not only a different
origin, the way a slide deck or a course page on another server frames it. The app allows
framing on the embed view only (app/security.py: frame-ancestors from
MMU_VIZ_EMBED_ORIGINS, default *, for `/?...&embed=1`; 'none' elsewhere).
"""

from __future__ import annotations

import functools
import html
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.embeds import EMBED_HEIGHT, EMBED_WIDTH, MIN_HEIGHT, MIN_WIDTH
from tests.browser.test_visualizer import (
    _MARK_STALE_JS,
    _READY_JS,
    assert_no_console_errors,
    named_run,
    query,
    wait_tree,
)

EMBED_PATH = "/?v=1&scenario=teaching-small&embed=1"

# Everything a reader of the embed needs, each wholly inside the frame's viewport.
SHOWN = ("#tree", "#btn-first", "#btn-prev", "#btn-play", "#btn-next", "#btn-last",
         "#step-slider")

_FITS_JS = """(ids) => {
  const w = window.innerWidth, h = window.innerHeight, out = [];
  for (const id of ids) {
    const r = document.querySelector(id).getBoundingClientRect();
    if (r.width === 0 || r.top < 0 || r.left < 0 || r.bottom > h + 0.5 || r.right > w + 0.5)
      out.push(id + " at " + [r.left, r.top, r.right, r.bottom].map(Math.round));
  }
  const el = document.scrollingElement;
  if (el.scrollHeight > el.clientHeight + 1) out.push("the page scrolls: " + el.scrollHeight);
  return out;
}"""

# Plotly drew the tree's nodes: marker paths inside the tree's SVG.
_NODES_DRAWN_JS = """() => document.querySelectorAll("#tree .scatterlayer .point").length"""


@pytest.fixture
def host_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served on its own loopback port; yields (dir, http://localhost:PORT)."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        del format, args


def _frame(page: Any, server_url: str) -> Any:
    page.wait_for_function(
        "(origin) => [...document.querySelectorAll('iframe')].length > 0", arg=server_url)
    for _ in range(100):
        frames = [f for f in page.frames if f.url.startswith(server_url)]
        if frames:
            return frames[0]
        page.wait_for_timeout(100)
    pytest.fail(f"no frame of {server_url}: {[f.url for f in page.frames]}")


def _wait_frame_tree(frame: Any, step: int) -> None:
    frame.wait_for_function(_READY_JS, arg=["tree", step], timeout=30_000)


def test_cross_site_embed_draws_its_tree_and_its_steps_work(
    browser: Any, server_url: str, host_dir: tuple[Path, str]
) -> None:
    run = named_run("teaching-small")
    start = run.default_step
    directory, host = host_dir
    src = server_url + EMBED_PATH
    (directory / "host.html").write_text(
        "<!doctype html><title>a course page</title><link rel=\"icon\" href=\"data:,\">"
        "<h1>Lecture 3</h1>"
        f'<iframe src="{html.escape(src)}" width="{MIN_WIDTH}" height="{MIN_HEIGHT}" '
        'title="shadow page tree" style="border: 0"></iframe>')
    assert urlsplit(host).hostname != urlsplit(server_url).hostname  # another site
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
        page.goto(f"{host}/host.html")
        frame = _frame(page, server_url)
        _wait_frame_tree(frame, start)
        assert frame.evaluate(_NODES_DRAWN_JS) > 0, "Plotly drew no node in the frame"
        # 640x400: the tree and every step control in view, nothing to scroll.
        assert frame.evaluate(_FITS_JS, list(SHOWN)) == []

        frame.evaluate(_MARK_STALE_JS)
        frame.click("#btn-next")
        _wait_frame_tree(frame, start + 1)
        frame.evaluate(_MARK_STALE_JS)
        frame.locator("#tree").click(position={"x": 5, "y": 5})  # the frame has the focus
        frame.evaluate("() => document.activeElement && document.activeElement.blur()")
        page.keyboard.press("ArrowRight")
        _wait_frame_tree(frame, start + 2)
        assert frame.evaluate(_NODES_DRAWN_JS) > 0
        assert query(frame.url).get("step") == str(start + 2), frame.url
        assert frame.evaluate(_FITS_JS, list(SHOWN)) == []
        assert errors == [], errors
    finally:
        context.close()


def test_copy_embed_code_gives_an_iframe_of_this_view_that_fits_its_size(
    page: Any, browser: Any, server_url: str
) -> None:
    run = named_run("teaching-small")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto("/?v=1&scenario=teaching-small&step=7")
    wait_tree(page, 7)
    page.click("#copy-embed")
    page.locator("#copy-status", has_text="copied").wait_for(timeout=5_000)
    snippet = page.evaluate("() => navigator.clipboard.readText()")
    match = re.fullmatch(
        r'<iframe src="([^"]+)" width="(\d+)" height="(\d+)" title="[^"<>]+" loading="lazy">'
        r"</iframe>", snippet)
    assert match, snippet
    src = html.unescape(match.group(1))
    # The embed of this very view: its link's query (every parameter spelled out) plus
    # embed=1, on this server.
    share = page.locator("#share-url").input_value()
    assert src.startswith(server_url + "/?"), src
    assert query(src) == query(share) | {"embed": "1"}, (src, share)
    width, height = int(match.group(2)), int(match.group(3))
    assert (width, height) == (EMBED_WIDTH, EMBED_HEIGHT)
    assert width >= MIN_WIDTH
    assert height >= MIN_HEIGHT

    # Opened at the snippet's size, the embed shows the tree and the controls, no scrolling.
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        frame_page = context.new_page()
        frame_page.goto(src)
        frame_page.wait_for_function(_READY_JS, arg=["tree", 7], timeout=30_000)
        assert frame_page.evaluate(_FITS_JS, list(SHOWN)) == []
    finally:
        context.close()
    assert run.snapshot(7).orphans.unsync > 0  # the leak banner is shown there, and fits
    assert_no_console_errors(page)
