"""Bad input gets its documented 4xx naming the field: JSON under /api, in the page otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from app.settings import DEFAULT_MAX_SHADOW_PAGES
from tests.api.conftest import HX, ROOT

UNKNOWN_ID = "a" * 64

# (query, status, field). Expected statuses follow app/errors.py's table.
BAD_VIEWS = [
    ("scenario=nope", 404, "scenario"),
    ("step=100000", 422, "step"),  # teaching-small has 48 actions
    ("step=-1", 422, "step"),
    ("step=abc", 422, "step"),
    ("step=1&step=2", 422, "step"),
    ("grain=year", 422, "grain"),
    ("step_grain=year&step=1", 422, "step_grain"),
    ("fixes=bogus", 422, "fixes"),
    ("compare=1&base=bogus", 422, "base"),
    ("compare=maybe", 422, "compare"),
    ("sp=-3", 422, "sp"),
    ("v=2", 422, "v"),
    ("bogus=1", 422, "bogus"),
    ("l2_mem_gib=0", 422, "l2_mem_gib"),
    ("l2_mem_gib=abc", 422, "l2_mem_gib"),
    ("l2_mem_gib=1025", 422, "l2_mem_gib"),
    ("huge_share=2", 422, "huge_share"),
    ("pdes_per_pd=2.5", 422, "pdes_per_pd"),
    ("order=sideways", 422, "order"),
    ("ept_levels=3", 422, "ept_levels"),
    ("l1_mem_gib=2", 422, "l1_mem_gib"),  # must be at least L2 + 2
    ("trace=zzz", 422, "trace"),
    (f"trace={UNKNOWN_ID}", 404, "trace"),
    (f"trace={UNKNOWN_ID}&scenario=teaching-small", 422, "scenario"),
    ("scenario=seed-top-down&l2_mem_gib=2", 422, "l2_mem_gib"),
    # 1024 GiB fully populated with PTs: about 525,000 pages per root, past the web's limit.
    ("l2_mem_gib=1024&pdes_per_pd=512&ptes_per_pt=1", 422, "l2_mem_gib"),
    # 23 pages x 2 root zaps x 100,000 boots: far past the work limit.
    ("boots=100000", 422, "boots"),
]


@pytest.mark.parametrize(("query", "status", "field"), BAD_VIEWS)
def test_api_bad_view_is_json_naming_the_field(
    shared_client: Any, query: str, status: int, field: str
) -> None:
    """/api/snapshot answers bad input with {detail, field} and the documented status."""
    response = shared_client.get(f"/api/snapshot?{query}")
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field
    assert field in body["detail"] or field in {"scenario", "trace", "v", "fixes", "base"}
    assert "Traceback" not in response.text


@pytest.mark.parametrize(("query", "status", "field"), BAD_VIEWS)
@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "fragment"])
def test_page_bad_view_shows_the_error_in_the_page(
    shared_client: Any, query: str, status: int, field: str, headers: dict[str, str]
) -> None:
    """The page shows the error (next to the form field for a spec field), never a traceback."""
    response = shared_client.get(f"/?{query}", headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert "HX-Request" in response.headers["vary"].split(", ")  # and Accept-Encoding (gzip)
    assert f'data-field="{field}"' in response.text
    assert response.context["error"]["field"] == field
    if headers:
        assert response.headers["HX-Push-Url"] == "false"
        assert response.text.lstrip().startswith('<main id="view"')
    spec_fields = {f["name"] for f in response.context["form"]["fields"]}
    if field in spec_fields:
        assert f'id="err-{field}"' in response.text
        shown = next(f for f in response.context["form"]["fields"] if f["name"] == field)
        assert shown["error"]
    assert "Traceback" not in response.text


def test_size_limit_is_the_documented_one(shared_client: Any) -> None:
    """The refusal message states the documented page limit."""
    body = shared_client.get("/api/snapshot?l2_mem_gib=1024&pdes_per_pd=512&ptes_per_pt=1").json()
    assert f"{DEFAULT_MAX_SHADOW_PAGES:,}" in body["detail"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("start=-1", "start"), ("start=x", "start"), ("count=0", "count"), ("count=5000", "count"),
     ("start=100000", "start")],
)
def test_events_window_errors_name_the_parameter(
    shared_client: Any, query: str, field: str
) -> None:
    """/api/events refuses a bad window with 422 naming start or count."""
    response = shared_client.get(f"/api/events?{query}")
    assert response.status_code == 422
    assert response.json()["field"] == field


@pytest.mark.parametrize(
    ("trace_id", "status"), [(UNKNOWN_ID, 404), ("not-a-digest", 422), ("A" * 64, 422)]
)
def test_unknown_or_malformed_trace_id(shared_client: Any, trace_id: str, status: int) -> None:
    """GET /api/traces/{id} is 404 for an unknown id and 422 for a malformed one."""
    response = shared_client.get(f"/api/traces/{trace_id}")
    assert response.status_code == status
    assert response.json()["field"] == "trace"


def test_bad_spec_keeps_the_submitted_values_in_the_form(shared_client: Any) -> None:
    """An invalid form submission shows the user's values again, with the error by the field."""
    response = shared_client.get("/?v=1&scenario=teaching-small&l2_mem_gib=0&seed=42")
    fields = {f["name"]: f for f in response.context["form"]["fields"]}
    assert fields["l2_mem_gib"]["value"] == "0"
    assert fields["seed"]["value"] == "42"
    assert fields["l2_mem_gib"]["error"]
    assert fields["seed"]["error"] is None


def test_unknown_api_path_is_json_naming_the_path(shared_client: Any) -> None:
    """An unknown /api route is a JSON 404 in the API's error shape."""
    response = shared_client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["field"] == "path"
    assert shared_client.delete("/api/scenarios").status_code == 405


def test_bad_value_from_the_scenario_form_rerenders_only_the_form(shared_client: Any) -> None:
    """An htmx submission of the scenario form with a bad value gets the form back alone."""
    headers = {**HX, "HX-Trigger": "scenario-form"}
    response = shared_client.get("/?v=1&scenario=teaching-small&l2_mem_gib=0&seed=42",
                                 headers=headers)
    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == "#scenario-form"
    assert response.headers["HX-Reswap"] == "outerHTML"
    assert response.headers["HX-Push-Url"] == "false"
    text = response.text.lstrip()
    assert text.startswith('<form id="scenario-form"')
    assert 'id="err-l2_mem_gib"' in text
    assert 'value="42"' in text
    assert 'id="view"' not in text
    assert 'id="error"' not in text
    # Not from the form (e.g. a hand-edited URL), or not a form field: the whole error view.
    for query, hdrs in (("l2_mem_gib=0", HX), ("fixes=bogus", headers)):
        other = shared_client.get(f"/?{query}", headers=hdrs)
        assert other.text.lstrip().startswith('<main id="view"')
        assert "HX-Retarget" not in other.headers


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "fragment"])
def test_unknown_page_path_is_the_html_error_page(shared_client: Any, headers: Any) -> None:
    """Outside /api an unknown path gets the page's 404, naming the path, not plain text."""
    response = shared_client.get("/no/such/page?x=1", headers=headers)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert response.context["error"]["field"] == "path"
    assert "/no/such/page" in response.context["error"]["message"]
    assert "Page not found" in response.text
    assert 'id="scenario-form"' in response.text
    if not headers:
        assert response.text.startswith("<!doctype html>")


def test_wrong_method_on_a_page_is_the_html_error_page(shared_client: Any) -> None:
    """A wrong method outside /api is an HTML 405 that keeps the Allow header."""
    response = shared_client.delete("/")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("text/html")
    assert "GET" in response.headers["allow"]
    assert "DELETE is not allowed" in response.text


def test_missing_static_file_is_a_404(shared_client: Any) -> None:
    """A missing asset is still a 404 (as the HTML error page)."""
    assert not (ROOT / "static" / "missing.css").exists()
    assert shared_client.get("/static/missing.css").status_code == 404
