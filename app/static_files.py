"""/static: the page's own files (static/) and the vendored scripts (static/vendor/, app.assets).

A lecture hall opening one link asks for each of these files 200 times at once, so each is
gzipped once and kept (plotly.min.js: 1.2 MB, 0.4 MB gzipped), answered 304 to its ETag,
and served by this ASGI app on the event loop: no route dependencies, no thread-pool hop
(as a FastAPI route, a file cost the server about 2 ms of CPU per request).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import mimetypes
from functools import cache
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

from app.assets import asset_by_name, locate

__all__ = ["STATIC_CACHE", "VENDOR_CACHE", "StaticFiles"]

log = logging.getLogger(__name__)

# Vendored libraries change only with the installed package: a week, then revalidated by
# ETag. The page's own files may change with any checkout: an hour, then revalidated.
VENDOR_CACHE = "public, max-age=604800"
STATIC_CACHE = "public, max-age=3600"


@cache
def _gzipped(path: Path, mtime: float) -> tuple[bytes, str]:
    del mtime  # part of the cache key: a changed file is compressed again
    data = gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)
    return data, f'"{hashlib.sha256(data).hexdigest()[:32]}"'


def _compressed_file(request: Request, path: Path, media_type: str, lifetime: str) -> Response:
    data, etag = _gzipped(path, path.stat().st_mtime)
    headers = {"Cache-Control": lifetime, "ETag": etag, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" not in request.headers.get("accept-encoding", ""):
        return FileResponse(path, media_type=media_type, headers=headers)
    return Response(data, media_type=media_type,
                    headers={**headers, "Content-Encoding": "gzip"})


class StaticFiles:
    """Mounted at /static: `static_dir`'s files by name, and vendor/<asset name>."""

    def __init__(self, static_dir: Path, root: Path) -> None:
        self.static_dir = static_dir.resolve()
        self.root = root

    def _response(self, request: Request, name: str) -> Response:
        if name.startswith("vendor/"):
            asset = asset_by_name(name.removeprefix("vendor/"))
            if asset is None:
                raise HTTPException(404)
            path = locate(asset, self.root)
            if path is None:
                log.error("%s not found (from %s)", asset.name, asset.what)
                raise HTTPException(404, f"{asset.name} is missing ({asset.what})")
            return _compressed_file(request, path, asset.media_type, VENDOR_CACHE)
        path = (self.static_dir / name).resolve()
        if path.parent != self.static_dir or not path.is_file():
            raise HTTPException(404)
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return _compressed_file(request, path, media_type, STATIC_CACHE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method not in ("GET", "HEAD"):
            raise HTTPException(405, headers={"Allow": "GET, HEAD"})
        # Mounted: root_path ends with the mount's prefix, path is the whole path.
        path, root = scope["path"], scope.get("root_path", "")
        name = path[len(root):].lstrip("/") if path.startswith(root) else ""
        response = self._response(request, name)
        await response(scope, receive, send)
