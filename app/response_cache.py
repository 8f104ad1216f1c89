"""Whole responses to repeated GETs, served from memory without running the app again.

Every view is a pure function of its URL (the view state) and of a few request headers, and
the runs behind it never change while the server runs, so the same GET gets the same bytes.
A lecture hall is 200 browsers asking for the same URLs (the shared link, then its steps):
after the first, each is a dictionary lookup instead of a page render.

Kept: 200 answers to GET on the view and API paths, up to max_bytes in all (least recently
used first out), keyed by the path and query and the request headers a response may depend
on (KEY_HEADERS, plus whether gzip is accepted); while one request for a key is being
answered, the same requests wait for its bytes rather than render it again. Not kept:
requests with a Cookie, responses that set one, say Cache-Control no-store or private, or
stream. Under TestClient (which sees template contexts through the http.response.debug
extension) nothing is kept, so the tests of every route see the route run.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ResponseCache"]

# x-mmu-drawn (app.routes.pages.DRAWN_HEADER) names the view the browser has drawn: a step
# fragment is the tree's delta from that view, so two drawn views are two answers.
KEY_HEADERS = (b"host", b"hx-request", b"hx-history-restore-request", b"hx-trigger",
               b"hx-target", b"x-mmu-play", b"x-mmu-drawn")
CACHED_PATHS = frozenset({"/", "/boots", "/api/snapshot", "/api/events", "/api/boots.csv"})
_MAX_RESPONSE = 4 << 20

Key = tuple[bytes, ...]
Stored = tuple[int, list[tuple[bytes, bytes]], bytes]


class ResponseCache:
    def __init__(self, app: ASGIApp, max_bytes: int = 64 << 20) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Key, Stored] = OrderedDict()
        self._bytes = 0
        # Everything here is touched from the event loop only, so it needs no lock.
        self._pending: dict[Key, asyncio.Event] = {}

    def _key(self, scope: Scope) -> Key | None:
        if (scope["type"] != "http" or scope["method"] != "GET"
                or scope["path"] not in CACHED_PATHS
                or "http.response.debug" in scope.get("extensions", {})):
            return None
        headers = dict(scope["headers"])
        if b"cookie" in headers:
            return None
        gzip = b"1" if b"gzip" in headers.get(b"accept-encoding", b"") else b"0"
        return (scope["path"].encode(), scope["query_string"], gzip,
                *(headers.get(name, b"") for name in KEY_HEADERS))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = self._key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        pending = self._pending.get(key)
        if pending is not None:
            await pending.wait()  # the same request is being answered: wait for its bytes
        if await self._serve_stored(key, send):
            return
        if key in self._pending:  # it was not kept: answer this one too
            await self.app(scope, receive, send)
            return
        self._pending[key] = asyncio.Event()
        try:
            await self._answer_and_keep(key, scope, receive, send)
        finally:
            self._pending.pop(key).set()

    async def _serve_stored(self, key: Key, send: Send) -> bool:
        stored = self._entries.get(key)
        if stored is None:
            return False
        self._entries.move_to_end(key)
        status, headers, body = stored
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"x-response-cache", b"hit")]})
        await send({"type": "http.response.body", "body": body})
        return True

    async def _answer_and_keep(self, key: Key, scope: Scope, receive: Receive,
                               send: Send) -> None:

        start: Message | None = None
        body = b""
        keep = True

        async def send_and_keep(message: Message) -> None:
            # Only a response sent as one body message is kept: a second one (more_body)
            # or a large body lets it pass through uncached.
            nonlocal start, body, keep
            if message["type"] == "http.response.start":
                start = message
                keep = _cacheable(message)
            elif message["type"] == "http.response.body" and keep:
                body = message.get("body", b"")
                keep = not message.get("more_body") and len(body) <= _MAX_RESPONSE
            await send(message)

        await self.app(scope, receive, send_and_keep)
        if keep and start is not None:
            self._put(key, start, body)

    def _put(self, key: Key, start: Message, body: bytes) -> None:
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"x-run-source"]
        if key in self._entries:
            return
        self._entries[key] = (start["status"], headers, body)
        self._bytes += len(body)
        while self._bytes > self.max_bytes and self._entries:
            _, (_, _, old) = self._entries.popitem(last=False)
            self._bytes -= len(old)


def _cacheable(start: Message) -> bool:
    if start["status"] != 200:
        return False
    for name, value in start.get("headers", []):
        name = name.lower()
        if name == b"set-cookie":
            return False
        if name == b"cache-control" and (b"no-store" in value or b"private" in value):
            return False
    return True
