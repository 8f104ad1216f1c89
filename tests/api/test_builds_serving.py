"""What the server sends: gzip when the client takes it, the vendored scripts compressed once
and revalidated by ETag, cache lifetimes on static files."""

from __future__ import annotations

from typing import Any

from app.main import _STATIC_CACHE, _VENDOR_CACHE


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
    assert first.headers["cache-control"] == _VENDOR_CACHE
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
        assert response.headers["cache-control"] == _STATIC_CACHE
        assert "etag" in response.headers
