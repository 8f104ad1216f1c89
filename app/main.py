"""Composition root: create_app() wires settings, services, routes and error handlers.

Run with `uvicorn app.main:create_app --factory` (what `make run` does).
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.compression import Compression
from app.errors import ErrorInfo, ViewError, error_info
from app.routes import api, pages
from app.services import Services
from app.settings import Settings
from mmu_model import MmuModelError

__all__ = ["create_app"]

log = logging.getLogger(__name__)

# Vendored bundles change only with package-lock.json: a week in the browser's cache.
_VENDOR_CACHE = "public, max-age=604800"


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


def _vendor_file(path: Path, what: str) -> FileResponse:
    if not path.is_file():
        log.error("%s not found at %s", what, path)
    return FileResponse(path, media_type="text/javascript",
                        headers={"Cache-Control": _VENDOR_CACHE})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    app = FastAPI(
        title="KVM shadow MMU visualizer",
        summary="Step through L0 KVM's shadow page trees for a nested guest.",
        version="0.1.0",
    )
    app.state.services = Services.create(settings)
    # Pages, fragments and JSON are text: compressed they are 5-10x smaller.
    app.add_middleware(Compression, minimum_size=1000)
    app.state.settings = settings

    app.add_exception_handler(MmuModelError, _bad_input_handler)
    app.add_exception_handler(ViewError, _bad_input_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)

    @app.get("/healthz", tags=["health"])
    def read_health() -> dict[str, str]:
        """Liveness probe."""
        return {"status": "ok"}

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def read_plotly_js() -> FileResponse:
        return _vendor_file(settings.plotly_path, "plotly-basic.min.js (npm ci, or PLOTLY_JS)")

    @app.get("/static/vendor/htmx.min.js", include_in_schema=False)
    def read_htmx_js() -> FileResponse:
        return _vendor_file(settings.htmx_path, "htmx.min.js (npm ci, or HTMX_JS)")

    @app.get("/favicon.ico", include_in_schema=False)
    def read_favicon() -> FileResponse:
        return FileResponse(settings.static_dir / "favicon.svg", media_type="image/svg+xml")

    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=settings.static_dir), name="static")
    return app
