"""Composition root: create_app() wires settings, services, routes and error handlers.

Run with `uvicorn app.main:create_app --factory` (what `make run` does).
"""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

import mmu_model.mmu
from app import apidocs
from app.assets import asset_by_name, locate
from app.errors import ErrorInfo, StoreUnavailable, ViewError, error_info
from app.inputs import check_query
from app.routes import api, graph_api, pages
from app.security import HeadAsGet, Hosting, SecurityHeaders, check_same_origin
from app.services import Services
from app.settings import Settings
from mmu_model import MmuModelError
from mmu_model.cli import package_version

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_VENDOR_CACHE = "public, max-age=86400"


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


def model_build() -> str:
    """'compiled' when the mypyc build of mmu_model is the one imported, else 'interpreted'."""
    return "compiled" if mmu_model.mmu.__file__.endswith((".so", ".pyd")) else "interpreted"


def create_app(settings: Settings | None = None, hosting: Hosting | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    hosting = hosting or Hosting.from_env()
    app = FastAPI(
        title="KVM shadow MMU visualizer",
        summary="Step through L0 KVM's shadow page trees for a nested guest.",
        version=package_version(),
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

    @app.get("/healthz", tags=["health"])
    async def read_health(request: Request) -> JSONResponse:
        """Health: 200 when the trace store reads and writes, else 503 saying what is wrong.

        `store.notice` says when the database file vanished or was replaced since the
        server first saw it; `model` is the build of mmu_model serving ("compiled" or
        "interpreted").
        """
        services: Services = request.app.state.services
        store = await run_in_threadpool(services.store.health)
        ok = store.state == "ok"
        return JSONResponse(
            {"status": "ok" if ok else "degraded", "version": package_version(),
             "model": model_build(), "store": store.as_json()},
            status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})

    @app.get("/static/vendor/{name}", include_in_schema=False)
    def read_vendor_asset(name: str) -> FileResponse:
        asset = asset_by_name(name)
        if asset is None:
            raise StarletteHTTPException(404)
        path = locate(asset, settings.root)
        if path is None:
            log.error("%s not found (from %s)", asset.name, asset.what)
            raise StarletteHTTPException(404, f"{asset.name} is missing ({asset.what})")
        return FileResponse(path, media_type=asset.media_type,
                            headers={"Cache-Control": _VENDOR_CACHE})

    @app.get("/favicon.ico", include_in_schema=False)
    def read_favicon() -> FileResponse:
        return FileResponse(settings.static_dir / "favicon.svg", media_type="image/svg+xml")

    app.include_router(apidocs.router)
    app.include_router(api.router)
    app.include_router(graph_api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=settings.static_dir), name="static")
    return app
