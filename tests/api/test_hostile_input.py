"""Hostile text gets a 4xx naming its field, the same on every route and content type.

A lone UTF-16 surrogate can only arrive through a JSON "\\ud800" escape; bytes that are not
UTF-8 can arrive in any body or query.  Neither may be stored (SQLite would hold text that
no view could encode) nor turned into U+FFFD or latin-1 behind the client's back.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.conftest import HX, TOP_DOWN_TRACE

GOOD_LINE = "gpa = 1000, old = 0, new = 0, level = 1, flood = 0\n"
# Two records: table 0x300000 (level 2) names its child 0x300001 as a level-1 table, and
# then 0x300001 is written as a level-3 table.  mmu_model.replay._build_tables refuses one
# gfn at two levels (a kernel shadow page has one role.level per gfn+role), so the trace
# parses but no view of it (strict or lenient) can open: it must be refused at upload.
TWO_LEVELS = ("gpa = 300000000, old = 300001007, new = 0, level = 2, flood = 0\n"
              "gpa = 300001000, old = 300002007, new = 0, level = 3, flood = 0\n")
UPLOAD_ROUTES = ["/api/traces", "/traces"]


def _field(response: Any) -> str:
    if response.headers["content-type"].startswith("application/json"):
        return str(response.json()["field"])
    return response.text


@pytest.mark.parametrize("route", UPLOAD_ROUTES)
@pytest.mark.parametrize("key", ["text", "name"])
def test_lone_surrogate_in_json_is_a_422_naming_the_field(client: Any, route: str,
                                                           key: str) -> None:
    """'\\ud800' in `text` or `name` is refused with that field named, nothing stored."""
    body = {"text": GOOD_LINE, "name": "n"}
    body[key] = body[key] + "\ud800"
    payload = json.dumps(body)  # ensure_ascii: the surrogate is sent as the escape \ud800
    assert "\\ud800" in payload
    response = client.post(route, content=payload.encode(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert "surrogate" in response.text
    if route.startswith("/api"):
        assert response.json()["field"] == key
    assert client.app.state.services.store.count() == 0


@pytest.mark.parametrize(("body", "says"), [
    (b"[" * 200_000, "nested too deeply"),  # json.loads would raise RecursionError
    (b'{"text": ', "not valid JSON"),
    (b'["text"]', "expected a JSON object"),
])
def test_malformed_json_is_a_422(client: Any, body: bytes, says: str) -> None:
    response = client.post("/api/traces", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert says in response.json()["detail"]


BAD_UTF8 = b"gpa = 1000, old = 0, new = 0, level = 1, flood = 0 \xff\xfe\n"


@pytest.mark.parametrize("route", UPLOAD_ROUTES)
@pytest.mark.parametrize("how", ["multipart-file", "multipart-text", "multipart-name",
                                 "urlencoded-text", "plain"])
def test_invalid_utf8_is_a_422_in_every_content_type(client: Any, route: str,
                                                      how: str) -> None:
    """Bytes 0xff 0xfe are refused naming the field they came in; nothing is stored.

    Starlette's own form parser would decode a multipart field as latin-1 and a urlencoded
    one with U+FFFD replacements: the upload would be stored changed.
    """
    good = GOOD_LINE.encode()
    if how == "multipart-file":
        kwargs: dict[str, Any] = {"files": {"file": ("t.trace", BAD_UTF8, "text/plain")}}
        field = "trace"
    elif how == "multipart-text":
        kwargs = {"files": {"text": (None, BAD_UTF8)}}
        field = "text"
    elif how == "multipart-name":
        kwargs = {"files": {"text": (None, good), "name": (None, b"n\xff")}}
        field = "name"
    elif how == "urlencoded-text":
        kwargs = {"content": b"text=" + BAD_UTF8.replace(b"\xff", b"%FF").replace(
            b"\xfe", b"%FE").replace(b" ", b"+").replace(b"\n", b"%0A"),
            "headers": {"content-type": "application/x-www-form-urlencoded"}}
        field = "text"
    else:
        kwargs = {"content": BAD_UTF8, "headers": {"content-type": "text/plain"}}
        field = "trace"
    response = client.post(route, **kwargs)
    assert response.status_code == 422, response.text
    assert "not UTF-8" in response.text
    if route.startswith("/api"):
        assert response.json()["field"] == field
    assert client.app.state.services.store.count() == 0


@pytest.mark.parametrize("path", ["/", "/api/snapshot", "/api/events", "/boots"])
def test_invalid_utf8_in_the_query_is_a_422(shared_client: Any, path: str) -> None:
    """scenario=%FF is refused naming `scenario`, not read as U+FFFD."""
    response = shared_client.get(f"{path}?scenario=%FF")
    assert response.status_code == 422
    assert "not UTF-8" in response.text
    if path.startswith("/api"):
        assert response.json()["field"] == "scenario"


@pytest.mark.parametrize(("length", "status", "says"), [
    (60_000, 414, "the limit is 8,192"),   # the whole query string is over 8 KiB
    (5_000, 422, "5,000 characters long"),  # one name over 64 characters
])
def test_a_long_parameter_name_gives_a_small_error(shared_client: Any, length: int,
                                                   status: int, says: str) -> None:
    """A long name is refused; the answer does not echo it whole.

    The page's error response is the normal page with the error in it; it must not grow
    by the characters sent (it was 188 KB for a 60k-character key).
    """
    key = "k" * length
    api = shared_client.get(f"/api/snapshot?{key}=1")
    assert api.status_code == status
    assert len(api.content) < 1000
    assert says in api.json()["detail"]
    small = shared_client.get("/?bogus=1")
    page = shared_client.get(f"/?{key}=1")
    assert page.status_code == status
    assert len(page.content) < len(small.content) + 1000


@pytest.mark.parametrize("digit", ["\uff17", "\u0667"])  # full-width 7, Arabic-Indic 7
def test_a_non_ascii_digit_is_refused(shared_client: Any, digit: str) -> None:
    """l2_mem_gib=U+FF17 would be int() == 7 in Python: refused naming l2_mem_gib."""
    response = shared_client.get("/api/snapshot", params={"l2_mem_gib": digit})
    assert response.status_code == 422
    assert response.json()["field"] == "l2_mem_gib"
    assert "ASCII digit" in response.json()["detail"]


@pytest.mark.parametrize("lenient", [False, True])
@pytest.mark.parametrize("route", UPLOAD_ROUTES)
def test_a_trace_no_view_can_open_is_refused_at_upload(client: Any, route: str,
                                                       lenient: bool) -> None:
    """The two-level trace is a 422 at upload naming the table, in both modes."""
    response = client.post(route, data={"text": TWO_LEVELS, "lenient": str(lenient).lower()},
                           headers=HX if route == "/traces" else {})
    assert response.status_code == 422, response.text
    assert "0x300001 appears at level 3" in response.text
    assert client.app.state.services.store.count() == 0


def test_what_is_accepted_opens_in_the_mode_it_was_sent(client: Any) -> None:
    """A good trace uploaded lenient opens at its URL, which keeps lenient=1."""
    text = "garbage line\n" + TOP_DOWN_TRACE.read_text()
    created = client.post("/api/traces", json={"text": text, "lenient": True})
    assert created.status_code == 201
    assert "lenient=1" in created.json()["url"]
    assert client.get(created.json()["url"]).status_code == 200


@pytest.mark.parametrize("path", ["/", "/healthz", "/api/scenarios", "/static/app.css",
                                  "/static/vendor/htmx.min.js", "/docs", "/openapi.json"])
def test_head_works_wherever_get_does(shared_client: Any, path: str) -> None:
    """HEAD answers GET's status and headers, without a body."""
    get = shared_client.get(path)
    head = shared_client.head(path)
    assert get.status_code == 200
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
