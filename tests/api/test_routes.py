"""Each route as a full page, as an htmx fragment and as JSON, from the same view query."""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import mmu_model
from mmu_model import DEFAULT_FIXES
from tests.api.conftest import HX, HX_RESTORE, MULTI_BOOT

VIEWS = [
    "/",
    "/?v=1&scenario=teaching-small&step=7",
    "/?v=1&scenario=teaching-small&grain=op&step=3",
    "/?v=1&scenario=teaching-small&compare=1&fixes=track-write-zap,unlink-children-zap,flood-detection",
    "/?v=1&scenario=teaching-small&sp=1",
    "/?v=1&scenario=teaching-small&embed=1",
    "/?v=1&scenario=seed-top-down",
    MULTI_BOOT,
]

SHAPES = {
    "page": ({}, "page"),
    "fragment": (HX, "fragment"),
    "history-restore": (HX_RESTORE, "page"),
}


def query(url: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


@pytest.mark.parametrize("url", VIEWS)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_view_route_returns_page_or_fragment(shared_client: Any, url: str, shape: str) -> None:
    """GET of any view is the full page, or only #view for htmx (but not for history restore)."""
    headers, expected = SHAPES[shape]
    response = shared_client.get(url, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "HX-Request" in response.headers["vary"].split(", ")  # and Accept-Encoding (gzip)
    assert response.template.name == "viz.html.jinja"
    body = response.text
    if expected == "page":
        assert body.lstrip().lower().startswith("<!doctype html>")
        assert "/static/vendor/htmx.min.js" in body
        assert 'id="view"' in body
        assert "hx-push-url" not in response.headers
    else:
        assert body.lstrip().startswith('<main id="view"')
        assert "<html" not in body
        assert "HX-Push-Url" in response.headers
    assert 'id="tree"' in body
    assert 'id="tree-panel"' in body


@pytest.mark.parametrize("url", VIEWS)
def test_snapshot_json_matches_the_page_step(shared_client: Any, url: str) -> None:
    """/api/snapshot with a page's query returns the snapshot of that page's step."""
    page = shared_client.get(url)
    ctx = page.context
    api_url = "/api/snapshot" + (url[1:] if url.startswith("/?") else "")
    response = shared_client.get(api_url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert data["step"] == ctx["timeline"]["step"]
    assert data["grain"] == ctx["timeline"]["grain"]
    assert data["last_step"] == ctx["timeline"]["last_step"]
    assert len(data["pages"]) == ctx["n_pages"]
    assert data["orphans"]["unsync"] == ctx["orphans"]["unsync"]


def test_fragment_pushes_the_canonical_url(shared_client: Any) -> None:
    """An htmx step gets HX-Push-Url with the whole view; a play step replaces instead."""
    run = mmu_model.run_named("teaching-small")
    response = shared_client.get("/?step=2", headers=HX)
    pushed = response.headers["HX-Push-Url"]
    assert query(pushed) == {
        "v": "1", "scenario": "teaching-small", "grain": "action", "step": "2",
        "fixes": ",".join(n for n in mmu_model.FIXES if n in DEFAULT_FIXES),
    }
    playing = shared_client.get("/?step=2", headers=HX | {"X-Mmu-Play": "1"})
    assert playing.headers["HX-Replace-Url"] == pushed
    assert "HX-Push-Url" not in playing.headers
    assert run.last_step("action") >= 2


def test_boots_panel_is_a_fragment_with_the_per_boot_chart(shared_client: Any) -> None:
    """/boots returns the per-boot chart: 4 series for each of 2 fix variants."""
    response = shared_client.get("/boots" + MULTI_BOOT[1:], headers=HX)
    assert response.status_code == 200
    assert "HX-Request" in response.headers["vary"].split(", ")  # and Accept-Encoding (gzip)
    assert response.text.lstrip().startswith('<section id="boots-panel"')
    figure = response.context["boots"]["figure"]
    assert len(figure["data"]) == 2 * 4
    assert all(len(trace["x"]) == 3 for trace in figure["data"])
    assert 'id="boots-chart"' in response.text


def test_multi_boot_page_loads_the_boots_panel_lazily(shared_client: Any) -> None:
    """A multi-boot view asks for /boots after load; a one-boot view does not."""
    multi = shared_client.get(MULTI_BOOT).text
    assert 'hx-get="/boots?' in multi
    assert 'hx-get="/boots?' not in shared_client.get("/").text


def test_boots_csv_has_one_row_per_boot(shared_client: Any) -> None:
    """The per-boot CSV has a header and one row per L2 boot, numbers from the model."""
    spec = mmu_model.get_scenario("teaching-small").spec
    assert spec is not None
    run = mmu_model.run_scenario(spec.replace(boots=3))
    response = shared_client.get("/api/boots.csv" + MULTI_BOOT[1:])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 3
    assert [int(r["boot"]) for r in rows] == [1, 2, 3]
    assert [int(r["shadow_pages"]) for r in rows] == [b.shadow_pages for b in run.per_boot]
    assert [int(r["orphans"]) for r in rows] == [b.orphans for b in run.per_boot]
    assert {r["fixes"] for r in rows} == {"unlink-children-zap,flood-detection"}


def test_scenarios_api_lists_every_builtin(shared_client: Any) -> None:
    """/api/scenarios lists each built-in scenario with its URL, and a spec when simulated."""
    data = shared_client.get("/api/scenarios").json()
    assert [s["name"] for s in data] == [s.name for s in mmu_model.list_scenarios()]
    for item in data:
        assert (item["spec"] is None) == (item["kind"] == "replay")
        assert query(item["url"])["scenario"] == item["name"]


def test_events_api_returns_the_requested_window(shared_client: Any) -> None:
    """/api/events returns `count` events from `start`, with their narration."""
    run = mmu_model.run_named("teaching-small")
    data = shared_client.get("/api/events?start=10&count=5").json()
    assert data["n_events"] == run.n_events
    assert [e["index"] for e in data["events"]] == [10, 11, 12, 13, 14]
    assert data["events"][0]["narration"] == run.event(10).narration


def test_openapi_documents_the_json_api(shared_client: Any) -> None:
    """/openapi.json documents every /api route, with the view parameters on snapshot."""
    spec = shared_client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/api/scenarios", "/api/snapshot", "/api/events", "/api/boots.csv",
                 "/api/traces", "/api/traces/{trace_id}"):
        assert path in paths, path
    names = {p["name"] for p in paths["/api/snapshot"]["get"]["parameters"]}
    assert {"scenario", "trace", "step", "grain", "fixes", "l2_mem_gib"} <= names
    assert shared_client.get("/docs").status_code == 200


def test_healthz(shared_client: Any) -> None:
    """/healthz answers ok, and says which model this process serves (tests import the
    source tree: pytest puts the checkout first on sys.path)."""
    health = shared_client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["model"]["kind"] == "source"


@pytest.mark.parametrize("path", ["/static/vendor/plotly.min.js", "/static/vendor/htmx.min.js",
                                  "/static/app.js", "/static/app.css", "/favicon.ico"])
def test_assets_are_served_locally(shared_client: Any, path: str) -> None:
    """plotly.js, htmx and our own assets come from this server."""
    response = shared_client.get(path)
    assert response.status_code == 200
    assert len(response.content) > 100
