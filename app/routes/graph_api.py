"""The shadow-page DAG of any view's step: analyses as JSON, and GraphML / DOT downloads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.graph_export import analyses, dot_lines, graphml_lines
from app.naming import content_disposition, export_name
from app.resolve import resolve
from app.routes.api import _ERRORS, _VIEW_PARAMS, _view
from app.services import ServicesDep

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["api"])


def _download(resolved: Any, lines: Any, suffix: str, media_type: str) -> Response:
    # One run's DAG, even when asked from a compare view: named after that run alone.
    name = export_name(resolved.state.with_(compare=False), resolved.snap.step)
    return Response("\n".join(lines(resolved.full)) + "\n", media_type=media_type,
                    headers={"Content-Disposition": content_disposition(f"{name}.{suffix}")})


def _file_responses(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI responses of a text download of `media_type`."""
    return {200: {"content": {media_type: {"schema": {"type": "string"}}},
                  "description": description}, **_ERRORS}


@router.get("/graph", responses=_ERRORS, openapi_extra={"parameters": _VIEW_PARAMS})
def read_graph(request: Request, services: ServicesDep) -> JSONResponse:
    """Graph analyses of the step's shadow pages (networkx).

    `reachable`: pages a walk from some root reaches; `stranded`: valid pages no root
    reaches (orphans, ex-roots and all that hangs below them); with `sp`, its `subtree` and its
    `blast_radius` (the pages roots reach only through it).
    """
    state, _ = _view(request)
    resolved = resolve(services, state)
    return JSONResponse(analyses(resolved.full, state.sp))


@router.get("/graph.graphml", responses=_file_responses("application/graphml+xml", "GraphML"),
            openapi_extra={"parameters": _VIEW_PARAMS})
def read_graphml(request: Request, services: ServicesDep) -> Response:
    """The step's shadow-page DAG as GraphML (nodes: pages with their fields; edges: SPTEs)."""
    resolved = resolve(services, _view(request)[0])
    return _download(resolved, graphml_lines, "graphml", "application/graphml+xml")


@router.get("/graph.dot", responses=_file_responses("text/vnd.graphviz", "Graphviz DOT"),
            openapi_extra={"parameters": _VIEW_PARAMS})
def read_dot(request: Request, services: ServicesDep) -> Response:
    """The step's shadow-page DAG as Graphviz DOT (`dot -Tsvg` draws it)."""
    resolved = resolve(services, _view(request)[0])
    return _download(resolved, dot_lines, "dot", "text/vnd.graphviz")
