"""Each route as a full page, as an htmx fragment and as JSON, from the same view query."""

from __future__ import annotations

import csv
import io
import json
import re
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


def boots_ref(html: str) -> str:
    match = re.search(r'id="boots-ref" hidden data-url="([^"]*)"\s+data-boot="(\d+)"', html)
    assert match, "the view has no #boots-ref"
    return match.group(1).replace("&amp;", "&")


def test_multi_boot_page_names_one_boots_panel_for_every_step(shared_client: Any) -> None:
    """A multi-boot view names the run's /boots chart (no step in it: the same at each step,
    so the page loads it once and moves its cursor); a one-boot view names none."""
    first = boots_ref(shared_client.get(MULTI_BOOT + "&step=1").text)
    later = boots_ref(shared_client.get(MULTI_BOOT + "&step=9", headers=HX).text)
    assert first == later
    assert first.startswith("/boots?")
    assert "step" not in query(first)
    assert boots_ref(shared_client.get("/").text) == ""


def tree_delta_of(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="tree-delta">(.*?)</script>', html)
    assert match, "the view has no tree delta"
    value: dict[str, Any] = json.loads(match.group(1))
    return value


def test_layout_is_cacheable_for_good_under_its_hash(shared_client: Any) -> None:
    """The layout URL (with its hash) is immutable; its ETag revalidates; no hash: no-cache."""
    delta = tree_delta_of(shared_client.get("/?v=1&scenario=teaching-small&step=3").text)
    response = shared_client.get(delta["layout"])
    assert response.status_code == 200
    assert "immutable" in response.headers["cache-control"]
    etag = response.headers["etag"]
    body = response.json()
    run = mmu_model.run_named("teaching-small")
    # Every page the run ever creates has its place: ids are 1..n, one slot each.
    assert sum(x is not None for x in body["x"]) == len(run.all_pages())
    again = shared_client.get(delta["layout"], headers={"If-None-Match": etag})
    assert again.status_code == 304
    # Another step of the same run links the same layout.
    other = tree_delta_of(shared_client.get("/?v=1&scenario=teaching-small&step=9").text)
    assert other["layout"] == delta["layout"]
    bare = shared_client.get(delta["layout"].split("&h=")[0])
    assert bare.headers["cache-control"] == "no-cache"


def test_a_step_sends_only_what_changed_since_the_drawn_view(shared_client: Any) -> None:
    """With X-Mmu-Drawn naming the drawn view, a step's tree is a delta from it.

    teaching-small's step 6 touches a handful of pages (its snapshot's `changed`): the
    delta sets at most those plus the nodes that appear, and none of the others.
    """
    run = mmu_model.run_named("teaching-small")
    before = tree_delta_of(shared_client.get("/?v=1&scenario=teaching-small&step=5").text)
    assert before["base"] is None  # a page draws from nothing
    response = shared_client.get("/?v=1&scenario=teaching-small&step=6",
                                 headers=HX | {"X-Mmu-Drawn": before["url"]})
    assert "X-Mmu-Drawn" in response.headers["vary"]
    delta = tree_delta_of(response.text)
    assert delta["base"] == before["url"]
    snap, prev = run.snapshot(6), run.snapshot(5)
    touched = snap.changed | {p.id for p in snap.ghosts} | {p.id for p in prev.ghosts}
    assert {int(k) for k in delta["set"]} <= touched
    assert len(delta["set"]) < len(snap.pages)
    # A drawn view of another run (other fixes) gets the whole tree.
    whole = tree_delta_of(shared_client.get(
        "/?v=1&scenario=teaching-small&step=6&fixes=none",
        headers=HX | {"X-Mmu-Drawn": before["url"]}).text)
    assert whole["base"] is None
    assert len(whole["set"]) == len(run.snapshot(6).pages) + len(run.snapshot(6).ghosts)


def test_boots_csv_has_one_row_per_boot(shared_client: Any) -> None:
    """The per-boot CSV has a header and one row per L2 boot, numbers from the model."""
    spec = mmu_model.get_scenario("teaching-small").spec
    assert spec is not None
    run = mmu_model.run_scenario(spec.replace(boots=3))
    response = shared_client.get("/api/boots.csv" + MULTI_BOOT[1:])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    every = list(csv.DictReader(io.StringIO(response.text)))
    # The view's own run comes first; then the same run with track-write-zap (the chart's
    # other line), told apart by `fixes` (tests/api/test_compare.py checks those rows).
    rows = every[:3]
    assert len(every) == 6
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
    """/healthz answers ok, with the store's state and the model build serving.

    The suite imports mmu_model from the source tree (pytest puts the checkout first on
    sys.path), so the source model serves.
    """
    body = shared_client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["store"]["state"] == "ok"
    assert body["store"]["notice"] is None
    assert body["model"]["kind"] == "source"


@pytest.mark.parametrize("path", ["/static/vendor/plotly.min.js", "/static/vendor/htmx.min.js",
                                  "/static/app.js", "/static/app.css", "/favicon.ico"])
def test_assets_are_served_locally(shared_client: Any, path: str) -> None:
    """plotly.js, htmx and our own assets come from this server."""
    response = shared_client.get(path)
    assert response.status_code == 200
    assert len(response.content) > 100


def test_snapshot_json_is_what_its_schema_documents(shared_client: Any) -> None:
    """Each page in /api/snapshot has exactly SpView's fields plus its derived `status` and
    `rmap_entries`, which is what the documented SpOut lists (both come from SpView), and
    the whole response validates against SnapshotOut."""
    from dataclasses import fields

    from app.schemas import SnapshotOut, SpOut
    from mmu_model import SpView

    body = shared_client.get("/api/snapshot?v=1&scenario=teaching-small&step=7").json()
    expected = {f.name for f in fields(SpView)} | {"status", "rmap_entries"}
    assert {tuple(sorted(p)) for p in body["pages"]} == {tuple(sorted(expected))}
    assert set(SpOut.model_fields) == expected
    SnapshotOut.model_validate(body)
