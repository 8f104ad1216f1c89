"""ResponseCache: a repeated GET is answered from memory, keyed by the URL and the request
headers a view varies on; concurrent identical GETs render once; anything that may differ
per client (cookies, errors, no-store) is never kept."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

from app.response_cache import ResponseCache


class CountingApp:
    """Answers every GET with its path, query and HX-Request header, counting its calls."""

    def __init__(self, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None,
                 delay: float = 0.0) -> None:
        self.calls = 0
        self.status = status
        self.headers = headers or []
        self.delay = delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await asyncio.sleep(self.delay)
        hx = dict(scope["headers"]).get(b"hx-request", b"-")
        body = scope["path"].encode() + b"?" + scope["query_string"] + b" " + hx
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"text/plain"), *self.headers]})
        await send({"type": "http.response.body", "body": body})


def _gets(app: Any, *requests: tuple[str, dict[str, str]]) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hall") as client:
            return list(await asyncio.gather(
                *(client.get(url, headers=headers) for url, headers in requests)))

    return asyncio.run(go())


def test_a_repeated_get_is_served_from_memory() -> None:
    inner = CountingApp()
    cache = ResponseCache(inner)
    first, = _gets(cache, ("/?v=1&step=3", {}))
    second, = _gets(cache, ("/?v=1&step=3", {}))
    assert inner.calls == 1
    assert second.content == first.content == b"/?v=1&step=3 -"
    assert second.headers["x-response-cache"] == "hit"
    assert "x-response-cache" not in first.headers


def test_the_key_has_the_query_and_the_headers_a_view_varies_on() -> None:
    inner = CountingApp()
    cache = ResponseCache(inner)
    _gets(cache, ("/?step=3", {}))
    fragment, = _gets(cache, ("/?step=3", {"HX-Request": "true"}))  # the htmx fragment
    other_step, = _gets(cache, ("/?step=4", {}))
    assert inner.calls == 3
    assert fragment.content == b"/?step=3 true"
    assert other_step.content == b"/?step=4 -"


def test_concurrent_identical_gets_render_once() -> None:
    # A lecture hall: the same link, asked for by many at once while the first is rendering.
    inner = CountingApp(delay=0.2)
    responses = _gets(ResponseCache(inner), *[("/?v=1", {})] * 20)
    assert inner.calls == 1
    assert {r.content for r in responses} == {b"/?v=1 -"}


def test_what_may_differ_per_client_is_never_kept() -> None:
    for inner, headers in (
        (CountingApp(), {"Cookie": "session=1"}),  # a request with a cookie
        (CountingApp(headers=[(b"set-cookie", b"a=1")]), {}),  # a response setting one
        (CountingApp(headers=[(b"cache-control", b"no-store")]), {}),
        (CountingApp(status=404), {}),  # errors: a missing trace may be uploaded later
    ):
        cache = ResponseCache(inner)
        _gets(cache, ("/", headers))
        _gets(cache, ("/", headers))
        assert inner.calls == 2, headers


def test_only_view_and_api_paths_are_kept() -> None:
    inner = CountingApp()
    cache = ResponseCache(inner)
    for _ in range(2):
        _gets(cache, ("/healthz", {}))  # live counters: never kept
    assert inner.calls == 2


def test_the_cache_is_bounded_in_bytes() -> None:
    inner = CountingApp()
    cache = ResponseCache(inner, max_bytes=25)  # room for two bodies of 10 bytes ("/?step=1 -")
    for step in (1, 2, 3, 1):  # the 3rd evicts step 1, so the 4th renders it again
        _gets(cache, (f"/?step={step}", {}))
    assert inner.calls == 4


def test_a_step_fragment_is_kept_per_drawn_view() -> None:
    """A step fragment is the tree's delta from the view the browser has drawn (the
    X-Mmu-Drawn header): one student stepping 5 -> 6 and another jumping 3 -> 6 ask for the
    same URL but need different deltas, so the second must not get the first's answer."""
    inner = CountingApp()
    cache = ResponseCache(inner)
    hx = {"HX-Request": "true"}
    _gets(cache, ("/?v=1&step=6", {**hx, "X-Mmu-Drawn": "/?v=1&step=5"}))
    _gets(cache, ("/?v=1&step=6", {**hx, "X-Mmu-Drawn": "/?v=1&step=3"}))
    assert inner.calls == 2
    again, = _gets(cache, ("/?v=1&step=6", {**hx, "X-Mmu-Drawn": "/?v=1&step=5"}))
    assert inner.calls == 2
    assert again.headers["x-response-cache"] == "hit"
