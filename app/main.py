"""Composition root: create_app() wires settings, services, routes and error handlers.

Run with `uvicorn app.main:create_app --factory` (what `make run` does).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.build_jobs import BuildJob, ScenarioBuild, SeedTraceBuild
from app.builds import BuildStopped, Busy, model_in_use
from app.errors import ErrorInfo, ViewError, error_info
from app.requesters import RateLimited, RequesterMiddleware
from app.response_cache import ResponseCache
from app.routes import api, pages
from app.runs import ClientGone
from app.services import Services
from app.settings import Settings
from mmu_model import DEFAULT_FIXES, MmuModelError, list_scenarios

__all__ = ["create_app"]

log = logging.getLogger(__name__)

# Vendored libraries change only with the installed package: a week, then revalidated by
# ETag. The page's own files may change with any checkout: an hour, then revalidated.
_VENDOR_CACHE = "public, max-age=604800"
_STATIC_CACHE = "public, max-age=3600"


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/api"


def _error_response(request: Request, info: ErrorInfo) -> Response:
    if _wants_json(request):
        return JSONResponse(info.as_json(), status_code=info.status,
                            headers={"Vary": "HX-Request"})
    services: Services = request.app.state.services
    return pages.error_page(request, services, info, pages.state_or_none(request))


async def _bad_input_handler(request: Request, exc: Exception) -> Response:
    return _error_response(request, error_info(exc))


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(part) for part in first.get("loc", ()) if part not in ("query", "path", "body")]
    field = loc[-1] if loc else "request"
    return _error_response(request, ErrorInfo(422, field, f"{field}: {first.get('msg', '')}"))


async def _http_error_handler(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods: the API's JSON error shape under /api, else the page."""
    assert isinstance(exc, StarletteHTTPException)
    if _wants_json(request):
        return JSONResponse({"detail": str(exc.detail), "field": "path"},
                            status_code=exc.status_code, headers=exc.headers)
    if exc.status_code == 404:
        message = f"nothing here at {request.url.path[:200]}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path[:200]}"
    else:
        message = str(exc.detail)
    services: Services = request.app.state.services
    response = pages.error_page(request, services, ErrorInfo(exc.status_code, "path", message),
                                pages.state_or_none(request))
    response.headers.update(exc.headers or {})
    return response


async def _busy_handler(request: Request, exc: Exception) -> Response:
    """No free build slot (503) or this client's new builds used up (429): retry later."""
    assert isinstance(exc, Busy)
    status = 429 if isinstance(exc, RateLimited) else 503
    response = _error_response(request, ErrorInfo(status, "request", exc.message))
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def _stopped_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BuildStopped)
    return _error_response(request, ErrorInfo(
        422, "request", f"this run could not be built: {exc.message}; ask for a smaller "
        "one (l2_mem_gib, pdes_per_pd, boots, root_zaps_per_boot)"))


async def _client_gone_handler(request: Request, exc: Exception) -> Response:
    del request, exc  # nobody is listening any more
    return Response(status_code=503)


class _Compression:
    """Starlette's GZipMiddleware, letting the http.response.debug message (how
    TestClient sees a template response's context) past: GZip drops message types it
    does not know."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def app_beside_debug(scope: Scope, receive: Receive, gzip_send: Send) -> None:
            async def route(message: Message) -> None:
                await (send if message["type"] == "http.response.debug" else gzip_send)(message)

            await self.app(scope, receive, route)

        gzip_app = GZipMiddleware(app_beside_debug, minimum_size=1000, compresslevel=6)
        await gzip_app(scope, receive, send)


@cache
def _gzipped(path: Path, mtime: float) -> tuple[bytes, str]:
    del mtime  # part of the cache key: a changed file is compressed again
    data = gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)
    return data, f'"{hashlib.sha256(data).hexdigest()[:32]}"'


def _vendor_file(request: Request, path: Path, what: str) -> Response:
    """A vendored script, compressed once and kept (plotly.min.js: 4.8 MB, 1.4 MB gzipped)
    rather than by GZipMiddleware on every request."""
    if not path.is_file():
        log.error("%s not found at %s", what, path)
        raise StarletteHTTPException(404, f"{what} is not installed")
    data, etag = _gzipped(path, path.stat().st_mtime)
    headers = {"Cache-Control": _VENDOR_CACHE, "ETag": etag, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" not in request.headers.get("accept-encoding", ""):
        return FileResponse(path, media_type="text/javascript", headers=headers)
    return Response(data, media_type="text/javascript",
                    headers={**headers, "Content-Encoding": "gzip"})


class _CachedStatic(StaticFiles):
    """The page's own static files, with a Cache-Control lifetime (ETag as before)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.setdefault("Cache-Control", _STATIC_CACHE)
        return response


def builtin_jobs() -> list[BuildJob]:
    """The run each built-in scenario opens on (default fixes), as build jobs."""
    jobs: list[BuildJob] = []
    for info in list_scenarios():
        if info.spec is not None:
            jobs.append(ScenarioBuild(info.spec.replace(fixes=DEFAULT_FIXES)))
        elif info.trace_file is not None:
            jobs.append(SeedTraceBuild(info.trace_file, DEFAULT_FIXES))
    return jobs


# Sync routes run in anyio's thread pool (40 threads by default), all wanting the GIL: with
# 40 runnable, the event loop waited up to 40 x 5 ms for its turn and /healthz took 1.6 s
# under load. Fewer threads (a waiting build holds one; at most 2 x workers are in flight)
# and a shorter switch interval keep the loop answering.
ROUTE_THREADS = 16
GIL_SWITCH_S = 0.001


def _share_the_gil_with_the_event_loop() -> None:
    anyio.to_thread.current_default_thread_limiter().total_tokens = ROUTE_THREADS
    sys.setswitchinterval(GIL_SWITCH_S)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    services: Services = app.state.services
    settings: Settings = app.state.settings
    model = model_in_use()
    # uvicorn's own logger, so the line shows beside "Started server process".
    logging.getLogger("uvicorn.error").info(
        "serving the %s model from %s; runs stored in %s", model["kind"], model["package"],
        settings.runs_dir)
    _share_the_gil_with_the_event_loop()
    services.builds.start()
    if settings.warm_builtins:
        threading.Thread(target=services.runs.warm, args=(builtin_jobs(),),
                         name="warm-builtins", daemon=True).start()
    try:
        yield
    finally:
        services.builds.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    app = FastAPI(
        title="KVM shadow MMU visualizer",
        summary="Step through L0 KVM's shadow page trees for a nested guest.",
        version="0.1.0",
        lifespan=_lifespan,
    )
    app.state.services = Services.create(settings)
    app.state.settings = settings

    app.add_exception_handler(MmuModelError, _bad_input_handler)
    app.add_exception_handler(ViewError, _bad_input_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(Busy, _busy_handler)
    app.add_exception_handler(BuildStopped, _stopped_handler)
    app.add_exception_handler(ClientGone, _client_gone_handler)

    @app.get("/healthz", tags=["health"])
    async def read_health() -> dict[str, Any]:
        """Liveness probe, and what this server serves: which model (compiled or source,
        in this process and in its build workers) and what its runs came from."""
        services: Services = app.state.services
        return {
            "status": "ok",
            "model": model_in_use(),
            "worker_model": services.builds.model,
            "runs": dict(services.runs.counts),
            "run_cache_bytes": services.runs.nbytes,
            "builds": dict(services.builds.counts),
            "builds_in_flight": services.builds.in_flight(),
        }

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def read_plotly_js(request: Request) -> Response:
        return _vendor_file(request, settings.plotly_js, "plotly.min.js (the plotly package)")

    @app.get("/static/vendor/htmx.min.js", include_in_schema=False)
    def read_htmx_js(request: Request) -> Response:
        return _vendor_file(request, settings.htmx_path, "htmx.min.js (npm ci, or HTMX_JS)")

    @app.get("/favicon.ico", include_in_schema=False)
    def read_favicon() -> FileResponse:
        return FileResponse(settings.static_dir / "favicon.svg", media_type="image/svg+xml")

    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", _CachedStatic(directory=settings.static_dir), name="static")

    # Outermost last: responses are compressed after the requester bookkeeping, and kept
    # compressed by the response cache.
    app.add_middleware(RequesterMiddleware)
    app.add_middleware(_Compression)
    app.add_middleware(ResponseCache, max_bytes=settings.response_cache_mb << 20)
    return app
