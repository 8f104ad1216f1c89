"""/docs: Swagger UI served from this server (the fastapi-offline package), so the API
docs work offline and under the Content-Security-Policy (no inline script)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - API docs</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/vendor/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/static/vendor/swagger-ui-bundle.js" defer></script>
<script src="/static/docs.js" defer></script>
</body>
</html>
"""


@router.get("/docs")
def read_docs() -> HTMLResponse:
    """Swagger UI over /openapi.json."""
    return HTMLResponse(_PAGE.format(title="KVM shadow MMU visualizer"))
