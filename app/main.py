"""Composition root: create_app() wires settings, services, routes and error handlers.

Run with `uvicorn app.main:create_app --factory` (what `make run` does).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from app import apidocs
from app.build_jobs import BuildJob, ScenarioBuild, SeedTraceBuild
from app.builds import BuildStopped, Busy, model_in_use
from app.compression import Compression
from app.errors import ErrorInfo, StoreUnavailable, ViewError, error_info
from app.gc_policy import tune_the_collector
from app.inputs import check_query
from app.requesters import RateLimited, RequesterMiddleware
from app.response_cache import ResponseCache
from app.routes import api, graph_api, pages
from app.runs import ClientGone
from app.security import HeadAsGet, Hosting, SecurityHeaders, check_same_origin
from app.services import Services
from app.settings import Settings
from app.static_files import StaticFiles
from mmu_model import DEFAULT_FIXES, MmuModelError, list_scenarios
from mmu_model.cli import package_version

__all__ = ["create_app"]

log = logging.getLogger(__name__)

def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/api"


def _error_response(request: Request, info: ErrorInfo) -> Response:
    if _wants_json(request):
        return JSONResponse(info.as_json(), status_code=info.status,
                            headers={"Vary": "HX-Request", **info.headers})
    services: Services = request.app.state.services
    response = pages.error_page(request, services, info, pages.state_or_none(request))
    response.headers.update(info.headers)
    return response


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
    services.renderer.compile_all()
    tune_the_collector()  # last: what is alive now lives as long as the server
    if settings.warm_builtins:
        threading.Thread(target=services.runs.warm, args=(builtin_jobs(),),
                         name="warm-builtins", daemon=True).start()
    try:
        yield
    finally:
        services.builds.close()


def create_app(settings: Settings | None = None, hosting: Hosting | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    hosting = hosting or Hosting.from_env()
    app = FastAPI(
        title="KVM shadow MMU visualizer",
        summary="Step through L0 KVM's shadow page trees for a nested guest.",
        version=package_version(),
        lifespan=_lifespan,
        docs_url=None,  # app.apidocs serves /docs from local assets
        redoc_url=None,
        dependencies=[Depends(check_query), Depends(check_same_origin)],
    )
    app.state.services = Services.create(settings)
    app.state.settings = settings
    app.state.hosting = hosting
    # The last added is outermost: headers on every answer (the Host check's 400 too),
    # then the Host check, then HEAD answered as GET.
    app.add_middleware(HeadAsGet)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(hosting.allowed_hosts))
    app.add_middleware(SecurityHeaders, hosting=hosting)

    app.add_exception_handler(MmuModelError, _bad_input_handler)
    app.add_exception_handler(ViewError, _bad_input_handler)
    app.add_exception_handler(StoreUnavailable, _bad_input_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(Busy, _busy_handler)
    app.add_exception_handler(BuildStopped, _stopped_handler)
    app.add_exception_handler(ClientGone, _client_gone_handler)

    @app.get("/healthz", tags=["health"])
    async def read_health(request: Request) -> JSONResponse:
        """Health: 200 when the trace store reads and writes, else 503 saying what is wrong.

        `store.notice` says when the database file vanished or was replaced since the
        server first saw it; `model` is the build of mmu_model this process serves
        (compiled or source), `worker_model` the one its build workers serve, and the
        counters say where its runs came from.
        """
        services: Services = request.app.state.services
        store = await run_in_threadpool(services.store.health)
        ok = store.state == "ok"
        return JSONResponse(
            {"status": "ok" if ok else "degraded", "version": package_version(),
             "model": model_in_use(), "worker_model": services.builds.model,
             "store": store.as_json(),
             "runs": dict(services.runs.counts), "run_cache_bytes": services.runs.nbytes,
             "builds": dict(services.builds.counts),
             "builds_in_flight": services.builds.in_flight()},
            status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})

    @app.get("/favicon.ico", include_in_schema=False)
    def read_favicon() -> FileResponse:
        return FileResponse(settings.static_dir / "favicon.svg", media_type="image/svg+xml")

    app.include_router(apidocs.router)
    app.include_router(api.router)
    app.include_router(graph_api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(settings.static_dir, settings.root), name="static")

    # Outermost last: responses are compressed after the requester bookkeeping, and kept
    # compressed by the response cache.
    app.add_middleware(RequesterMiddleware)
    # Pages, fragments and JSON are text: compressed they are 5-10x smaller.
    app.add_middleware(Compression, minimum_size=1000)
    app.add_middleware(ResponseCache, max_bytes=settings.response_cache_mb << 20)
    return app
