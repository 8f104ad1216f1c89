"""Who is waiting for a run: per request, the client's address, whether it has gone, and
what served the request's runs; and the bound on new builds per client per minute.

RequesterMiddleware (pure ASGI) sets these for each GET, watches the connection for the
client going away (the http.disconnect message) and adds `X-Run-Source: memory|store|built`
to the response, so a client (and the restart test) can see whether a run was built.
A sync route runs in a worker thread with a copy of the request's context, so the run
cache reads the requester from a context variable.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.builds import Busy

__all__ = ["ClientBuildLimit", "RateLimited", "Requester", "RequesterMiddleware",
           "current_requester", "requesting"]


@dataclass
class Requester:
    client: str | None
    gone: threading.Event = field(default_factory=threading.Event)
    sources: list[str] = field(default_factory=list)


_current: ContextVar[Requester | None] = ContextVar("requester", default=None)


def current_requester() -> Requester | None:
    return _current.get()


@contextmanager
def requesting(requester: Requester | None) -> Iterator[None]:
    """Run the body as `requester`'s request (the middleware does this for each GET)."""
    token = _current.set(requester)
    try:
        yield
    finally:
        _current.reset(token)


class RateLimited(Busy):
    """This client started its quota of new builds this minute (429)."""


class ClientBuildLimit:
    """At most `per_minute` new builds per client address in any 60 s."""

    WINDOW_S = 60.0

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._starts: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, client: str | None) -> None:
        if client is None:
            return
        now = time.monotonic()
        with self._lock:
            for name in [c for c, d in self._starts.items() if d[-1] < now - self.WINDOW_S]:
                del self._starts[name]  # forget idle clients: the table stays small
            starts = self._starts.setdefault(client, deque())
            while starts and starts[0] < now - self.WINDOW_S:
                starts.popleft()
            if len(starts) >= self.per_minute:
                wait = int(starts[0] + self.WINDOW_S - now) + 1
                raise RateLimited(f"this client started {self.per_minute} new builds in the "
                                  "last minute; that is the limit per client", wait)
            starts.append(now)


# Paths that never wait on a run (files, the health probe, the API docs): no requester to
# track, no disconnect watcher to start.
_NO_RUNS_PREFIX = "/static/"
_NO_RUNS = frozenset({"/healthz", "/favicon.ico", "/docs", "/openapi.json"})


class RequesterMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] not in ("GET", "HEAD")
                or scope["path"].startswith(_NO_RUNS_PREFIX) or scope["path"] in _NO_RUNS):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        requester = Requester(client[0] if client else None)
        with requesting(requester):
            await self._serve(requester, scope, receive, send)

    async def _serve(self, requester: Requester, scope: Scope, receive: Receive,
                     send: Send) -> None:
        first = await receive()
        disconnected = asyncio.Event()
        pending = [first]

        async def app_receive() -> Message:
            if pending:
                return pending.pop()
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def watch() -> None:
            message = first
            while message["type"] == "http.request" and message.get("more_body"):
                message = await receive()  # a GET with a body: not expected, drained
            if message["type"] != "http.disconnect":
                message = await receive()  # returns when the client goes (or we answered)
            requester.gone.set()
            disconnected.set()

        async def send_with_source(message: Message) -> None:
            if message["type"] == "http.response.start" and requester.sources:
                headers = list(message.get("headers", []))
                headers.append((b"x-run-source", ",".join(requester.sources).encode()))
                message = {**message, "headers": headers}
            await send(message)

        watcher = asyncio.create_task(watch())
        try:
            await self.app(scope, app_receive, send_with_source)
        finally:
            watcher.cancel()
