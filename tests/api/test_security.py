"""Nothing a user supplies is rendered unescaped, and the page loads nothing from elsewhere."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.api.conftest import HX, TOP_DOWN_TRACE

PAYLOAD = "<script>alert(1)</script>"


def test_trace_name_with_markup_is_escaped(client: Any) -> None:
    """A trace named <script> shows as text on its page."""
    text = TOP_DOWN_TRACE.read_text()
    trace_id = client.post("/api/traces", json={"text": text, "name": PAYLOAD}).json()["id"]
    for headers in ({}, HX):
        page = client.get(f"/?trace={trace_id}", headers=headers)
        assert page.status_code == 200
        assert PAYLOAD not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


@pytest.mark.parametrize(
    "query",
    [f"scenario={PAYLOAD}", f"l2_mem_gib={PAYLOAD}", f"order={PAYLOAD}", f"{PAYLOAD}=1",
     f"fixes={PAYLOAD}", f"step={PAYLOAD}"],
)
def test_markup_in_parameters_is_escaped(client: Any, query: str) -> None:
    """A parameter name or value with markup comes back escaped, in the error and the form."""
    for headers in ({}, HX):
        response = client.get(f"/?{query}", headers=headers)
        assert 400 <= response.status_code < 500
        assert PAYLOAD not in response.text
        assert "&lt;script&gt;" in response.text


def test_trace_text_with_markup_is_escaped_in_the_form_error(client: Any) -> None:
    """A bad trace line quoting markup is escaped in the re-rendered form."""
    response = client.post("/traces", data={"text": f"gpa = {PAYLOAD}\n"}, headers=HX)
    assert response.status_code == 422
    assert PAYLOAD not in response.text


def test_figure_json_cannot_close_its_script_tag(client: Any) -> None:
    """Embedded figure JSON escapes <, > and & so no value can end the <script> early."""
    page = client.get("/").text
    for block in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', page, re.S):
        assert "<" not in block
        assert ">" not in block


@pytest.mark.parametrize("url", ["/", "/?compare=1", "/?embed=1", "/?scenario=seed-bottom-up"])
def test_page_references_no_external_host(client: Any, url: str) -> None:
    """The page names no other host's URL and no protocol-relative URL: it works offline.

    Its own absolute URL (the "Link to this view" box) is the one http(s) URL it may hold.
    """
    page = client.get(url).text
    own = str(client.base_url).rstrip("/") + "/"
    assert [u for u in re.findall(r"https?://[^\s\"'<>]*", page) if not u.startswith(own)] == []
    assert re.search(r"""(src|href|action)=["']?//""", page) is None
    for src in re.findall(r"""(?:src|href)=["']([^"']+)["']""", page):
        assert src.startswith(("/", "#", "?")), src
