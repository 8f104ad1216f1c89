"""The "Copy embed code" snippet (app.embeds) and where the page puts it."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient

from app.embeds import EMBED_HEIGHT, EMBED_WIDTH, MIN_HEIGHT, MIN_WIDTH, embed_snippet


def test_snippet_escapes_the_url_and_the_title() -> None:
    """A URL's & and a title's quotes and angle brackets become entities, so the snippet is
    one well-formed iframe element whatever the scenario is called."""
    snippet = embed_snippet('http://h/?v=1&scenario=a&embed=1', 'x "y" <z>')
    assert snippet == (
        '<iframe src="http://h/?v=1&amp;scenario=a&amp;embed=1" width="800" height="500" '
        'title="x &#34;y&#34; &lt;z&gt;" loading="lazy"></iframe>')


def test_snippet_size_is_at_least_the_smallest_frame_the_embed_fits() -> None:
    assert EMBED_WIDTH >= MIN_WIDTH
    assert EMBED_HEIGHT >= MIN_HEIGHT


def test_page_carries_the_snippet_of_its_own_embed_view(client: TestClient) -> None:
    body = client.get("/?v=1&scenario=teaching-small&step=7").text
    match = re.search(r'<button id="copy-embed" type="button" data-snippet="([^"]+)"', body)
    assert match, "no Copy embed code button"
    snippet = html.unescape(match.group(1))
    src = html.unescape(re.search(r'src="([^"]+)"', snippet).group(1))  # type: ignore[union-attr]
    assert src.startswith("http://testserver/?v=1&scenario=teaching-small&")
    assert src.endswith("&step=7&embed=1")
