"""HTML routes. One URL, two shapes: the full page, or the `view` block for htmx requests."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.embeds import embed_snippet
from app.errors import ErrorInfo, ViewError, error_info
from app.navigation import select_found
from app.panels import boots_context, form_context, page_context, scenarios_list
from app.rendering import is_fragment_request
from app.resolve import boot_variants, resolve, resolve_page
from app.security import share_url
from app.services import Services, ServicesDep
from app.uploads import TraceUpload, read_upload, store_upload
from app.viewstate import SPEC_FIELDS, ViewState, parse_query

__all__ = ["error_page", "router"]

router = APIRouter(tags=["pages"], include_in_schema=False)

PAGE = "viz.html.jinja"
SCENARIO_FORM_ID = "scenario-form"
DRAWN_HEADER = "X-Mmu-Drawn"


def _history_headers(request: Request, url: str) -> dict[str, str]:
    """Tell htmx which URL the swapped view has (replace while playing, else push)."""
    if not is_fragment_request(request):
        return {}
    if request.headers.get("x-mmu-play") == "1":
        return {"HX-Replace-Url": url}
    return {"HX-Push-Url": url}


@router.get("/")
def read_view(request: Request, services: ServicesDep) -> Response:
    """The visualizer: every control's URL leads here, with the whole view in the query."""
    state, _ = parse_query(request.query_params.multi_items())
    # The tree is sent as a change from the view the browser has drawn (a fragment only:
    # a full page draws from nothing).
    drawn = request.headers.get(DRAWN_HEADER) if is_fragment_request(request) else None
    runs = select_found(resolve_page(services, state, drawn))  # find=: select its page
    context = page_context(runs)
    context["urls"]["share"] = share_url(request, context["urls"]["self"])
    context["urls"]["embed_code"] = embed_snippet(
        share_url(request, context["urls"]["embed"]),
        f"{context['source']['title']}: shadow page tree (KVM shadow MMU visualizer)")
    headers = _history_headers(request, runs.main.state.url())
    if context["step_update"]:  # every changed panel comes out of band (hx-swap-oob)
        headers["HX-Reswap"] = "none"
    response = services.renderer.render(request, PAGE, context, headers=headers)
    response.headers["Vary"] = f"HX-Request, {DRAWN_HEADER}"
    return response


@router.get("/boots")
def read_boots_panel(request: Request, services: ServicesDep) -> Response:
    """The per-boot chart of a run, loaded once after the page (a second run may be needed).

    It is the same at every step: the page moves its cursor to the step's boot.
    """
    state, _ = parse_query(request.query_params.multi_items())
    resolved = resolve(services, state)
    context = {"boots": boots_context(resolved, boot_variants(services, resolved))}
    response = services.renderer.render(request, "boots-panel.html.jinja", context,
                                        block="boots_panel")
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@router.post("/traces")
async def create_trace_page(request: Request, services: ServicesDep) -> Response:
    """Trace import from the page: store, then go to the trace's own URL."""
    upload: TraceUpload | None = None
    try:
        upload = await read_upload(request)
        stored, _ = await store_upload(services.store, upload)
    except Exception as exc:
        info = _bad_input(exc)
        form = _echoed_form(upload, info.message)
        context = {"trace_form": form}
        if is_fragment_request(request):
            return services.renderer.render(
                request, "trace-form.html.jinja", context, block="trace_form",
                status_code=info.status, headers={"HX-Reswap": "outerHTML", **info.headers},
            )
        response = error_page(request, services, info, None, trace_form=form)
        response.headers.update(info.headers)  # Retry-After when the store is unavailable
        return response
    state = ViewState(trace=stored.id, lenient=upload.lenient)
    url = state.url()
    if is_fragment_request(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _echoed_form(upload: TraceUpload | None, error: str) -> dict[str, Any]:
    """The trace form after a refused upload: the trace that was sent (pasted or a file's
    text; read_upload has held it to MAX_TRACE_BYTES) back in the text box, with its name
    and "skip bad lines", so fixing a line or ticking the box and pressing Import again
    works. Nothing is kept on the server. A body that could not be read at all (too big,
    not UTF-8) has no trace to give back."""
    if upload is None:
        return {"text": "", "name": "", "lenient": False, "error": error}
    return {"text": upload.text, "name": upload.name, "lenient": upload.lenient,
            "error": error}


def _bad_input(exc: Exception) -> ErrorInfo:
    try:
        return error_info(exc)
    except TypeError:
        raise exc from None


def error_page(
    request: Request,
    services: Services,
    info: ErrorInfo,
    state: ViewState | None,
    *,
    trace_form: dict[str, Any] | None = None,
) -> Response:
    """The page with the error shown (and next to its form field), never a traceback.

    A bad value sent from the scenario form by htmx only re-renders that form, with the
    message next to the field: the tree, the step and the URL stay as they were.
    """
    spec_errors = {info.field: info.message} if info.field in SPEC_FIELDS else {}
    raw = {k: v for k, v in request.query_params.items() if k in SPEC_FIELDS}
    form = form_context(state, spec_errors, raw)
    fragment = is_fragment_request(request)
    if fragment and spec_errors and request.headers.get("hx-trigger") == SCENARIO_FORM_ID:
        return services.renderer.render(
            request, "_scenario-form.html.jinja", {"form": form}, block="scenario_form",
            status_code=info.status,
            headers={"HX-Retarget": f"#{SCENARIO_FORM_ID}", "HX-Reswap": "outerHTML",
                     "HX-Push-Url": "false"},
        )
    context = {
        "state": state,
        "embed": False,
        "error": {"status": info.status, "field": info.field, "message": info.message,
                  "line": info.lineno,
                  "title": "Page not found" if info.status == 404 and info.field == "path"
                  else "Cannot show this view"},
        "form": form,
        "trace_form": trace_form or {"text": "", "name": "", "lenient": False, "error": None},
        "scenarios": scenarios_list(),
        "home_url": ViewState().url(),
    }
    return services.renderer.render(
        request, PAGE, context, status_code=info.status,
        headers={"HX-Push-Url": "false"} if fragment else None,
    )


def state_or_none(request: Request) -> ViewState | None:
    """The view state of a failed request, if its query at least parses."""
    try:
        return parse_query(request.query_params.multi_items())[0]
    except ViewError:
        return None
