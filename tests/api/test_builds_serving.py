"""What the server sends: gzip when the client takes it, the vendored scripts and the page's
own files compressed once and revalidated by ETag, cache lifetimes on static files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app import static_files
from app.static_files import STATIC_CACHE, VENDOR_CACHE


def test_pages_and_json_are_gzipped_when_the_client_accepts_it(shared_client: Any) -> None:
    for url in ("/?v=1&scenario=teaching-small", "/api/snapshot?scenario=teaching-small"):
        packed = shared_client.get(url, headers={"Accept-Encoding": "gzip"})
        plain = shared_client.get(url, headers={"Accept-Encoding": "identity"})
        assert packed.headers["content-encoding"] == "gzip"
        assert "content-encoding" not in plain.headers
        assert packed.content == plain.content  # httpx unpacked it: the same body
        assert int(packed.headers["content-length"]) < len(plain.content) / 3


def test_plotly_is_sent_compressed_once_and_revalidated_by_etag(shared_client: Any) -> None:
    first = shared_client.get("/static/vendor/plotly.min.js",
                              headers={"Accept-Encoding": "gzip"})
    assert first.status_code == 200
    assert first.headers["content-encoding"] == "gzip"
    assert first.headers["cache-control"] == VENDOR_CACHE
    assert int(first.headers["content-length"]) < len(first.content) / 2
    again = shared_client.get("/static/vendor/plotly.min.js",
                              headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    plain = shared_client.get("/static/vendor/plotly.min.js",
                              headers={"Accept-Encoding": "identity"})
    assert plain.content == first.content


def test_the_pages_own_files_have_a_cache_lifetime(shared_client: Any) -> None:
    for path in ("/static/app.js", "/static/app.css"):
        response = shared_client.get(path)
        assert response.status_code == 200
        assert response.headers["cache-control"] == STATIC_CACHE
        assert "etag" in response.headers


def test_the_pages_own_files_are_compressed_once_and_revalidated_by_etag(
    shared_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lecture hall asks for each of the page's files 200 times at once: each is gzipped
    once (gzip.compress is called for the first request only), the same bytes after, and
    answered 304 to its ETag."""
    calls: list[bytes] = []
    real = static_files.gzip.compress

    def counting(data: bytes, *args: Any, **kwargs: Any) -> bytes:
        calls.append(data)
        return real(data, *args, **kwargs)

    monkeypatch.setattr(static_files.gzip, "compress", counting)
    static_files._gzipped.cache_clear()
    source = Path(static_files.__file__).resolve().parent.parent / "static" / "treepatch.js"
    bodies = [shared_client.get("/static/treepatch.js", headers={"Accept-Encoding": "gzip"})
              for _ in range(3)]
    assert [r.headers["content-encoding"] for r in bodies] == ["gzip"] * 3
    assert {r.content for r in bodies} == {source.read_bytes()}  # httpx unpacked each
    assert bodies[0].headers["content-type"].startswith("text/javascript")
    assert len(calls) == 1
    again = shared_client.get("/static/treepatch.js",
                              headers={"If-None-Match": bodies[0].headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("path", ["/static/nope.js", "/static/..%2Fpyproject.toml",
                                  "/static/%2E%2E", "/static/vendor", "/static/vendor/nope.js",
                                  "/static/vendor/..%2F..%2Fpyproject.toml", "/static/"])
def test_nothing_but_the_static_folders_files_is_served_from_it(
    shared_client: Any, path: str
) -> None:
    assert shared_client.get(path).status_code == 404
