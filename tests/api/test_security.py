"""Nothing a user supplies is rendered unescaped, and the page loads nothing from elsewhere."""

from __future__ import annotations

import re
import warnings
from typing import Any

import pytest

from app.main import create_app
from app.security import Hosting
from tests.api.conftest import HX, TOP_DOWN_TRACE

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

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
    """The page loads nothing from another host and no protocol-relative URL: it works
    offline.

    Its own absolute URL (the "Link to this view" box) and plain links (<a href>, nothing
    fetched) to the kernel's source, list archive and git (app/kernel_links.py) are the
    only http(s) URLs it may hold.
    """
    page = client.get(url).text
    own = str(client.base_url).rstrip("/") + "/"
    page = re.sub(r"""<a [^>]*href="https://(elixir\.bootlin\.com|lore\.kernel\.org|"""
                  r"""git\.kernel\.org)/[^"]*"[^>]*>""", "<a>", page)
    assert [u for u in re.findall(r"https?://[^\s\"'<>]*", page) if not u.startswith(own)] == []
    assert re.search(r"""(src|href|action)=["']?//""", page) is None
    for src in re.findall(r"""(?:src|href)=["']([^"']+)["']""", page):
        assert src.startswith(("/", "#", "?")), src


# ---------------------------------------------------------------- hosting headers

def _csp(response: Any) -> dict[str, str]:
    """The Content-Security-Policy as {directive: sources}."""
    out = {}
    for part in response.headers["content-security-policy"].split(";"):
        name, _, value = part.strip().partition(" ")
        out[name] = value
    return out


@pytest.mark.parametrize(("url", "framing"), [
    ("/", "'none'"), ("/?embed=1", "*"), ("/api/scenarios", "'none'"),
    ("/static/app.js", "'none'"), ("/static/vendor/htmx.min.js", "'none'"),
    ("/nowhere", "'none'"),
])
def test_security_headers_on_every_kind_of_response(shared_client: Any, url: str,
                                                    framing: str) -> None:
    """Scripts only from this server (no inline, no eval); only an embed may be framed."""
    response = shared_client.get(url)
    csp = _csp(response)
    assert csp["script-src"] == "'self'"
    assert csp["object-src"] == "'none'"
    assert csp["frame-ancestors"] == framing
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    embed = framing != "'none'"
    assert response.headers["cross-origin-resource-policy"] == (
        "cross-origin" if embed else "same-origin")
    assert ("x-frame-options" in response.headers) is not embed


def test_page_holds_no_inline_script(shared_client: Any) -> None:
    """Every <script> loads a file of this server or is inert JSON data, as the CSP needs."""
    page = shared_client.get("/").text
    for attrs, body in re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S):
        assert "src=" in attrs or 'type="application/json"' in attrs, attrs
        assert "src=" not in attrs or not body.strip()
    assert re.search(r"\son[a-z]+=", page) is None  # no inline event handler


def test_embedding_origins_are_configurable(settings: Any) -> None:
    """MMU_VIZ_EMBED_ORIGINS narrows who may frame an embed; other pages stay unframeable."""
    hosting = Hosting.make(None, embed_origins=["https://course.example.edu"])
    with TestClient(create_app(settings, hosting)) as client:
        assert _csp(client.get("/?embed=1"))["frame-ancestors"] == "https://course.example.edu"
        assert _csp(client.get("/"))["frame-ancestors"] == "'none'"


@pytest.mark.parametrize("route", ["/traces", "/api/traces"])
@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
])
def test_cross_site_post_is_refused(client: Any, route: str, headers: dict[str, str]) -> None:
    """A form on another site posting here is a 403 and stores nothing."""
    response = client.post(route, data={"text": TOP_DOWN_TRACE.read_text()}, headers=headers,
                           follow_redirects=False)
    assert response.status_code == 403
    assert client.app.state.services.store.count() == 0


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "same-origin"},
    {"Origin": "http://testserver"},
    {},  # curl and scripts send neither header
])
def test_same_origin_post_is_accepted(client: Any, headers: dict[str, str]) -> None:
    """The page's own form (and a script without browser headers) may upload."""
    response = client.post("/traces", data={"text": TOP_DOWN_TRACE.read_text()},
                           headers=headers, follow_redirects=False)
    assert response.status_code == 303
    # Accepted means stored: one trace, and the redirect opens its view.
    assert client.app.state.services.store.count() == 1
    assert client.get(response.headers["location"]).status_code == 200


def test_forged_host_is_refused_not_reflected(shared_client: Any) -> None:
    """Host: evil.example is not an allowed host: 400, and the name is not in the answer."""
    response = shared_client.get("/", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert "evil.example" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"  # headers on refusals too


def test_share_link_uses_the_public_url(settings: Any) -> None:
    """With a public base URL, the "Link to this view" is on it whatever Host was used."""
    hosting = Hosting.make("https://viz.example.org/")
    with TestClient(create_app(settings, hosting)) as client:
        page = client.get("/")
        share = page.context["urls"]["share"]
        assert share.startswith("https://viz.example.org/?v=1&")
        assert client.get("/", headers={"Host": "viz.example.org"}).status_code == 200
        assert client.get("/", headers={"Host": "other.example"}).status_code == 400


def test_bad_hosting_settings_name_the_variable() -> None:
    with pytest.raises(ValueError, match="MMU_VIZ_PUBLIC_URL"):
        Hosting.make("ftp://x")
    with pytest.raises(ValueError, match="MMU_VIZ_EMBED_ORIGINS"):
        Hosting.make(None, embed_origins=["course.example"])


def test_docs_load_swagger_ui_from_this_server(shared_client: Any) -> None:
    """/docs names only this server's files; each of them is served."""
    page = shared_client.get("/docs").text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert urls
    for url in urls:
        assert url.startswith("/"), url
        assert shared_client.get(url).status_code == 200, url


def test_hosting_reads_the_environment_it_is_given() -> None:
    hosting = Hosting.from_env({"MMU_VIZ_PUBLIC_URL": " https://viz.example.org/ ",
                                "MMU_VIZ_ALLOWED_HOSTS": " a.example , ,b.example",
                                "MMU_VIZ_EMBED_ORIGINS": "https://x.example https://y.example"})
    assert hosting.public_url == "https://viz.example.org"
    assert hosting.allowed_hosts == ("a.example", "b.example", "viz.example.org")
    assert hosting.embed_origins == ("https://x.example", "https://y.example")
    assert Hosting.from_env({}) == Hosting()


def test_serve_refuses_bad_hosting_settings_before_it_starts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad flag, or a bad variable the flags leave alone, is a usage error naming it."""
    from app.cli import _build_parser, _serve_env
    from mmu_model.cli import UsageError

    monkeypatch.delenv("MMU_VIZ_PUBLIC_URL", raising=False)
    monkeypatch.delenv("MMU_VIZ_ALLOWED_HOSTS", raising=False)
    monkeypatch.setenv("MMU_VIZ_EMBED_ORIGINS", "course.example")
    with pytest.raises(UsageError, match="MMU_VIZ_EMBED_ORIGINS"):
        _serve_env(_build_parser().parse_args(["serve"]))
    env = _serve_env(_build_parser().parse_args(
        ["serve", "--embed-origin", "https://course.example"]))
    assert env["MMU_VIZ_EMBED_ORIGINS"] == "https://course.example"
    with pytest.raises(UsageError, match="MMU_VIZ_PUBLIC_URL"):
        _serve_env(_build_parser().parse_args(
            ["serve", "--embed-origin", "https://course.example", "--public-url", "ftp://x"]))
