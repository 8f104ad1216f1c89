"""Trace import: stored by content hash in SQLite, replayed at its own URL, kept on restart."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

import mmu_model
from app.main import create_app
from app.settings import Settings
from mmu_model import MAX_TRACE_BYTES, trace_digest
from tests.api.conftest import BOTTOM_UP_TRACE, HX, TOP_DOWN_TRACE

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

BAD_LINE = "gpa = 1000, old = 0, new = 0, level = 9, flood = 0\n"


def test_json_upload_returns_id_and_url(client: Any) -> None:
    """POST /api/traces stores the trace under its digest and points at its view URL."""
    text = TOP_DOWN_TRACE.read_text()
    response = client.post("/api/traces", json={"text": text, "name": "top-down"})
    assert response.status_code == 201
    body = response.json()
    assert body["id"] == trace_digest(text)
    assert body["created"] is True
    assert body["url"] == (
        f"/?v=1&trace={body['id']}&fixes=unlink-children-zap%2Cflood-detection&grain=action"
    )
    again = client.post("/api/traces", json={"text": text})
    assert again.status_code == 200
    assert again.json()["created"] is False


@pytest.mark.parametrize("how", ["multipart-file", "multipart-text", "plain"])
def test_every_upload_form_stores_the_same_trace(client: Any, how: str) -> None:
    """A file, a form field and a raw text body give the same content-addressed id."""
    text = BOTTOM_UP_TRACE.read_text()
    if how == "multipart-file":
        response = client.post("/api/traces", files={"file": ("bu.trace", text, "text/plain")})
    elif how == "multipart-text":
        response = client.post("/api/traces", data={"text": text})
    else:
        response = client.post("/api/traces", content=text,
                               headers={"content-type": "text/plain"})
    assert response.status_code == 201, response.text
    assert response.json()["id"] == trace_digest(text)


def test_trace_view_replays_and_lists_discrepancies_as_step_links(client: Any) -> None:
    """The trace's own URL replays it; each discrepancy links to its action step."""
    text = BOTTOM_UP_TRACE.read_text()
    run = mmu_model.replay_trace(text)
    assert run.replay is not None
    trace_id = client.post("/api/traces", json={"text": text}).json()["id"]
    page = client.get(f"/?trace={trace_id}")
    assert page.status_code == 200
    replay = page.context["replay"]
    assert replay["lines"] == run.replay.lines
    assert [d["step"] for d in replay["discrepancies"]] == [
        d.action_step for d in run.replay.discrepancies
    ]
    for d in replay["discrepancies"]:
        assert f"step={d['step']}" in d["url"]
        assert d["url"].replace("&", "&amp;") in page.text
    snap = client.get(f"/api/snapshot?trace={trace_id}&step={run.last_step()}").json()
    assert snap["orphans"] == run.snapshot(run.last_step()).orphans.as_dict()


def test_uploaded_trace_survives_an_app_restart(settings: Settings) -> None:
    """A trace stored by one app instance is served by a new one on the same DB file."""
    text = TOP_DOWN_TRACE.read_text()
    with TestClient(create_app(settings)) as first:
        trace_id = first.post("/api/traces", json={"text": text}).json()["id"]
    assert settings.db_path.is_file()
    with TestClient(create_app(settings)) as second:
        stored = second.get(f"/api/traces/{trace_id}")
        assert stored.status_code == 200
        assert stored.json()["text"] == text
        page = second.get(f"/?trace={trace_id}")
        assert page.status_code == 200
        assert page.context["source"]["trace"] == trace_id


def test_page_form_upload_redirects_to_the_trace_url(client: Any) -> None:
    """The page's form stores the trace and redirects (303, or HX-Redirect for htmx)."""
    text = TOP_DOWN_TRACE.read_text()
    plain = client.post("/traces", data={"text": text}, follow_redirects=False)
    assert plain.status_code == 303
    assert f"trace={trace_digest(text)}" in plain.headers["location"]
    htmx = client.post("/traces", data={"text": text}, headers=HX)
    assert htmx.status_code == 204
    assert f"trace={trace_digest(text)}" in htmx.headers["HX-Redirect"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"text": BAD_LINE}, 422, "line 1"),
        ({"text": "# only a comment\n"}, 422, "no trace records"),
        ({"text": "x" * (MAX_TRACE_BYTES + 1)}, 413, "1 MiB"),
        ({"nottext": 1}, 422, "text"),
    ],
)
def test_bad_uploads_are_refused_naming_the_trace(
    client: Any, body: dict[str, Any], status: int, needle: str
) -> None:
    """Unparseable, empty-of-records and oversized traces get 422/413 with field trace."""
    response = client.post("/api/traces", json=body)
    assert response.status_code == status
    assert response.json()["field"] in ("trace", "text")
    assert needle in response.json()["detail"]


def test_oversized_and_binary_multipart_uploads(client: Any) -> None:
    """A file over 1 MiB is 413; bytes that are not UTF-8 are 422."""
    big = client.post("/api/traces", files={"file": ("big.trace", b"#" * (MAX_TRACE_BYTES + 10))})
    assert big.status_code == 413
    binary = client.post("/api/traces", files={"file": ("bin.trace", b"\xff\xfe\x00gpa")})
    assert binary.status_code == 422
    assert binary.json()["field"] == "trace"


def test_bad_upload_from_the_page_shows_the_error_in_the_form(client: Any) -> None:
    """An htmx upload that fails re-renders #trace-form with the parser's message."""
    response = client.post("/traces", data={"text": BAD_LINE}, headers=HX)
    assert response.status_code == 422
    assert response.text.lstrip().startswith('<form id="trace-form"')
    assert "line 1" in response.text
    full = client.post("/traces", data={"text": BAD_LINE})
    assert full.status_code == 422
    assert 'id="trace-error"' in full.text


@pytest.mark.parametrize(("text", "lines"), [
    # Two records, each ended by its newline: two lines, as parse_trace numbers them (a
    # final newline ends the last line; it does not start a third).
    ("gpa = 1000, old = 0, new = 0, level = 1, flood = 0\n"
     "gpa = 1008, old = 0, new = 0, level = 1, flood = 0\n", 2),
    # The same without the final newline: still two.
    ("gpa = 1000, old = 0, new = 0, level = 1, flood = 0\n"
     "gpa = 1008, old = 0, new = 0, level = 1, flood = 0", 2),
])
def test_a_stored_trace_counts_its_lines_as_the_parser_does(
    client: Any, text: str, lines: int
) -> None:
    created = client.post("/api/traces", json={"text": text})
    assert created.status_code == 201, created.text
    assert created.json()["lines"] == lines
    assert client.get(f"/api/traces/{created.json()['id']}").json()["lines"] == lines
