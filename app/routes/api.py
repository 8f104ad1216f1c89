"""JSON API under /api: scenarios, snapshots and events of any view, trace upload."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.errors import ViewError
from app.naming import content_disposition, export_name
from app.navigation import markers_json
from app.resolve import boot_variants, resolve, run_entry, source_of
from app.schemas import (
    ErrorOut,
    EventsOut,
    FixOut,
    ScenarioOut,
    SnapshotOut,
    TraceCreated,
    TraceOut,
)
from app.serialize import boots_csv, events_json, snapshot_json
from app.services import ServicesDep
from app.store import is_trace_id
from app.treepanel import run_layout
from app.uploads import read_upload, store_upload
from app.viewstate import ViewState, parse_query, view_parameters, whole_number_schema
from mmu_model import FIXES, list_scenarios

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["api"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "Unknown scenario or trace"},
    413: {"model": ErrorOut, "description": "Trace larger than 1 MiB"},
    422: {"model": ErrorOut, "description": "Bad parameter; `field` names it"},
}


def _param(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


_VIEW_PARAMS = view_parameters()


def _view(request: Request, extra: tuple[str, ...] = ()) -> tuple[ViewState, dict[str, str]]:
    return parse_query(request.query_params.multi_items(), extra=extra)


@router.get("/scenarios", response_model=list[ScenarioOut])
def read_scenarios() -> list[dict[str, Any]]:
    """Built-in scenarios, with their spec (query-string form) for simulated ones."""
    return [
        {"name": i.name, "title": i.title, "description": i.description, "kind": i.kind,
         "spec": i.spec.to_mapping() if i.spec is not None else None,
         "url": ViewState(scenario=i.name).url()}
        for i in list_scenarios()
    ]


@router.get("/fixes", response_model=list[FixOut])
def read_fixes() -> list[dict[str, Any]]:
    """The fix toggles, with the one-sentence effect of each."""
    return [{"name": f.name, "title": f.title, "effect": f.effect, "default": f.default}
            for f in FIXES.values()]


@router.get(
    "/snapshot",
    responses={200: {"model": SnapshotOut}, **_ERRORS},
    openapi_extra={"parameters": _VIEW_PARAMS},
)
def read_snapshot(request: Request, services: ServicesDep) -> Response:
    """The state after a step of any view: every shadow page, the stats and the narration.

    Takes the same query parameters as the page, so a page URL's query works here as is.
    """
    state, _ = _view(request)
    return JSONResponse(snapshot_json(resolve(services, state)))


@router.get(
    "/markers",
    responses={200: {"description": "The run's timeline markers in the view's grain"},
               **_ERRORS},
    openapi_extra={"parameters": _VIEW_PARAMS},
)
def read_markers(request: Request, services: ServicesDep) -> Response:
    """What matters in the run, from its event log: the steps of each marker kind (leak,
    orphan, flood, teardown, boot), the strip's buckets, how many action steps change
    nothing, and with `find`, the steps that touched that gfn's or id's shadow pages."""
    state, _ = _view(request)
    return JSONResponse(markers_json(resolve(services, state)))


IMMUTABLE = "public, max-age=31536000, immutable"


@router.get(
    "/layout",
    responses={200: {"description": "The run's tree figure and page positions"}, **_ERRORS},
    openapi_extra={"parameters": [
        *_VIEW_PARAMS, _param("h", "The layout's hash, as the page links it (optional).")]},
)
def read_layout(request: Request, services: ServicesDep) -> Response:
    """The tree figure of a run and the (x, y) of every page it ever creates.

    Fixed for the run, so the page gets it once: with the hash it links (`h`), the response
    is cacheable for good; a request without it, or with an old one, is revalidated.
    """
    state, extra = _view(request, extra=("h",))
    entry = run_entry(services, source_of(services, state), state.fix_set,
                      lenient=state.lenient)
    rl = run_layout(entry, state)
    etag = f'"{rl.hash}"'
    current = extra.get("h") == rl.hash
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE if current else "no-cache"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(rl.body, media_type="application/json", headers=headers)


@router.get(
    "/events",
    responses={200: {"model": EventsOut}, **_ERRORS},
    openapi_extra={"parameters": [
        *_VIEW_PARAMS,
        _param("start", "First event index (0-based).", whole_number_schema(0)),
        _param("count", "How many events (1..1000, default 100).", whole_number_schema(1, 1000)),
    ]},
)
def read_events(request: Request, services: ServicesDep) -> Response:
    """A window of the run's kernel-level events, with narration and stat deltas."""
    state, extra = _view(request, extra=("start", "count"))
    start = _int(extra, "start", 0)
    count = _int(extra, "count", 100)
    return JSONResponse(events_json(resolve(services, state), start, count))


def _int(values: dict[str, str], name: str, default: int) -> int:
    raw = values.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ViewError(name, f"{name} must be a whole number, got {raw[:40]!r}") from None


@router.get(
    "/boots.csv",
    # Errors are JSON like every route's (a response_class would document them as text).
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                     "description": "One row per boot"}, **_ERRORS},
    openapi_extra={"parameters": _VIEW_PARAMS},
)
def read_boots_csv(request: Request, services: ServicesDep) -> Response:
    """Per-boot numbers as CSV: one row per L2 boot of the view's run, then of the same
    run with track-write-zap toggled (what the per-boot chart draws); `fixes` tells them
    apart."""
    state, _ = _view(request)
    resolved = resolve(services, state)
    runs = [resolved.run]
    if resolved.run.per_boot:  # no boots, no chart: no second run to build
        runs += [run for _label, run, _dashed in boot_variants(services, resolved)
                 if run is not resolved.run]
    name = export_name(resolved.state.with_(compare=False), per_run=True)
    return Response(
        boots_csv(runs), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": content_disposition(f"{name}-boots.csv")},
    )


@router.post(
    "/traces",
    status_code=201,
    response_model=TraceCreated,
    responses={200: {"model": TraceCreated, "description": "Already stored"}, **_ERRORS},
    openapi_extra={"requestBody": {"content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"}, "text": {"type": "string"},
            "name": {"type": "string"}, "lenient": {"type": "boolean"}}}},
        "application/json": {"schema": {"type": "object", "required": ["text"], "properties": {
            "text": {"type": "string"}, "name": {"type": "string"},
            "lenient": {"type": "boolean"}}}},
        "text/plain": {"schema": {"type": "string"}},
    }}},
)
async def create_trace(request: Request, services: ServicesDep) -> Response:
    """Store a kvm_mmu_track_write() trace; its id is the hash of its content.

    The body is a multipart form (`file` or `text`, optional `name`, `lenient`), JSON
    {"text", "name", "lenient"}, or the trace as plain text. 201 when new, 200 when that
    content was already stored.
    """
    upload = await read_upload(request)
    stored, created = await store_upload(services.store, upload)
    url = ViewState(trace=stored.id, lenient=upload.lenient).url()
    body = {"id": stored.id, "name": stored.name, "bytes": stored.bytes,
            "lines": stored.lines, "url": url, "created": created}
    return JSONResponse(body, status_code=201 if created else 200,
                        headers={"Location": url})


@router.get("/traces/{trace_id}", response_model=TraceOut, responses=_ERRORS)
def read_trace(trace_id: str, services: ServicesDep) -> dict[str, Any]:
    """A stored trace: its text and metadata."""
    if not is_trace_id(trace_id):
        raise ViewError("trace", "trace must be the 64-hex-digit id of a stored trace")
    stored = services.store.get(trace_id)
    if stored is None:
        raise ViewError("trace", f"no stored trace has id {trace_id}", status=404)
    return {"id": stored.id, "name": stored.name, "text": stored.text, "bytes": stored.bytes,
            "lines": stored.lines, "created_at": stored.created_at,
            "url": ViewState(trace=stored.id).url()}
