"""What makes the server safe to host: response headers, the same-origin check on POSTs,
the allowed Host names and the public base URL share links are built from.

Configured from the environment (the `kvm-shadow-viz serve` flags set the same variables):

MMU_VIZ_PUBLIC_URL     base URL share links use, e.g. https://viz.example.org (default: the
                       request's own host, when it is an allowed host)
MMU_VIZ_ALLOWED_HOSTS  comma-separated Host names the server answers; others get 400
                       ("*" answers any; default localhost, 127.0.0.1, ::1 and testserver,
                       the name TestClient uses); the public URL's host is always allowed
MMU_VIZ_EMBED_ORIGINS  space-separated origins allowed to frame an embed=1 view (default *:
                       any page may embed it); every other page may be framed by none
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import ViewError

__all__ = ["HeadAsGet", "Hosting", "SecurityHeaders", "check_same_origin", "share_url"]

DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "::1", "testserver")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Scripts only from this server (no inline script, no eval); Plotly and htmx set inline
# style attributes, so styles may be inline.  Swagger UI draws its icons from data: URLs.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}")


@dataclass(frozen=True)
class Hosting:
    public_url: str | None = None
    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
    embed_origins: tuple[str, ...] = ("*",)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Hosting:
        """From `environ` (default os.environ); a bad value is a ValueError."""
        env = os.environ if environ is None else environ
        public = (env.get("MMU_VIZ_PUBLIC_URL") or "").strip() or None
        hosts = env.get("MMU_VIZ_ALLOWED_HOSTS")
        origins = env.get("MMU_VIZ_EMBED_ORIGINS")
        return cls.make(
            public,
            [h.strip() for h in hosts.split(",") if h.strip()] if hosts else None,
            origins.split() if origins else None,
        )

    @classmethod
    def make(cls, public_url: str | None, allowed_hosts: list[str] | None = None,
             embed_origins: list[str] | None = None) -> Hosting:
        """Checked settings; a bad value is a ValueError naming the variable."""
        if public_url is not None:
            parts = urlsplit(public_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"MMU_VIZ_PUBLIC_URL must be an http(s) URL, got "
                                 f"{public_url!r}")
            public_url = public_url.rstrip("/")
        hosts = tuple(allowed_hosts) if allowed_hosts else DEFAULT_ALLOWED_HOSTS
        if public_url is not None:
            public_host = urlsplit(public_url).hostname
            if public_host and public_host not in hosts and "*" not in hosts:
                hosts = (*hosts, public_host)
        origins = tuple(embed_origins) if embed_origins else ("*",)
        for origin in origins:
            if origin != "*" and urlsplit(origin).scheme not in ("http", "https"):
                raise ValueError(f"MMU_VIZ_EMBED_ORIGINS: {origin!r} is not * or an "
                                 "http(s) origin")
        return cls(public_url, hosts, origins)


def share_url(request: Request, path: str) -> str:
    """`path` (a view URL like /?v=1&...) as a link to share.

    From the configured public URL; else from the request's host, which the Host check has
    already held to the allowed hosts.
    """
    hosting: Hosting = request.app.state.hosting
    if hosting.public_url is not None:
        return hosting.public_url + path
    return str(request.base_url).rstrip("/") + path


def _own_origins(request: Request) -> set[str]:
    hosting: Hosting = request.app.state.hosting
    own = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
    if hosting.public_url is not None:
        parts = urlsplit(hosting.public_url)
        own.add(f"{parts.scheme}://{parts.netloc}")
    return own


def check_same_origin(request: Request) -> None:
    """FastAPI dependency: a state-changing request from another site is refused (403).

    Browsers say where a request comes from in Sec-Fetch-Site (or at least Origin); a
    request with neither (curl, a script) is not a browser's cross-site form post.
    """
    if request.method in _SAFE_METHODS:
        return
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site in ("same-origin", "none"):
            return
        raise ViewError("origin", f"a {site} request may not change anything here: "
                        "upload from this server's own page", status=403)
    origin = request.headers.get("origin")
    if origin is not None and origin not in _own_origins(request):
        raise ViewError("origin", f"a request from {origin[:100]!r} may not change anything "
                        "here: upload from this server's own page", status=403)


def _is_embed(scope: Scope) -> bool:
    if scope.get("path") != "/":
        return False
    query = scope.get("query_string", b"").decode("latin-1")
    return ("embed", "1") in parse_qsl(query)


class SecurityHeaders:
    """ASGI middleware: the security headers on every response (pages, API, static files)."""

    def __init__(self, app: ASGIApp, hosting: Hosting) -> None:
        self.app = app
        # The header values depend only on whether the response is an embed: built once.
        self._headers = {embed: self._build(hosting, embed) for embed in (False, True)}

    @staticmethod
    def _build(hosting: Hosting, embed: bool) -> tuple[str, dict[str, str]]:
        ancestors = " ".join(hosting.embed_origins) if embed else "'none'"
        fixed = {
            "X-Content-Type-Options": "nosniff",
            # Trace ids in URLs are links to someone's upload: do not hand them on.
            "Referrer-Policy": "same-origin",
            "Cross-Origin-Resource-Policy": "cross-origin" if embed else "same-origin",
        }
        if not embed:
            fixed["X-Frame-Options"] = "DENY"
            fixed["Cross-Origin-Opener-Policy"] = "same-origin"
        return _CSP.format(ancestors=ancestors), fixed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp, fixed = self._headers[_is_embed(scope)]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", csp)
                for name, value in fixed.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HeadAsGet:
    """ASGI middleware: HEAD is answered wherever GET is, with GET's headers and no body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)
