"""Reading an uploaded trace from a request (multipart form, JSON or plain text), bounded."""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.requests import Request

from app.errors import ViewError
from app.store import StoredTrace, TraceStore
from mmu_model import MAX_TRACE_BYTES, parse_trace

__all__ = ["TraceUpload", "read_upload", "store_upload"]

_OVERHEAD = 64 * 1024  # multipart boundaries and the other form fields
_TRUE = {"1", "true", "on", "yes"}


@dataclass(frozen=True, slots=True)
class TraceUpload:
    text: str
    name: str
    lenient: bool


def _too_large(size: int) -> ViewError:
    return ViewError("trace", f"trace is {size:,} bytes or more; the limit is "
                     f"{MAX_TRACE_BYTES:,} bytes (1 MiB)", status=413)


def _decode(data: bytes) -> str:
    if len(data) > MAX_TRACE_BYTES:
        raise _too_large(len(data))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ViewError("trace", f"trace is not UTF-8 text (byte {exc.start})") from None


async def read_upload(request: Request) -> TraceUpload:
    """The trace in a request: a multipart `file` or `text` field, JSON {"text"}, or raw text."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > (
        2 * MAX_TRACE_BYTES + _OVERHEAD
    ):
        raise _too_large(int(declared))
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            form = await request.form(max_files=1, max_fields=10,
                                      max_part_size=MAX_TRACE_BYTES + 1)
        except Exception as exc:  # starlette raises HTTPException(400) on oversized parts
            detail = str(getattr(exc, "detail", exc))
            if "size" in detail.lower() or "large" in detail.lower():
                raise _too_large(MAX_TRACE_BYTES + 1) from None
            raise ViewError("trace", f"the upload could not be read: {detail}") from None
        name = str(form.get("name") or "")
        lenient = str(form.get("lenient") or "").lower() in _TRUE
        upload = form.get("file")
        text = ""
        if isinstance(upload, UploadFile) and (upload.filename or upload.size):
            data = await upload.read(MAX_TRACE_BYTES + 1)
            text = _decode(data)
            name = name or (upload.filename or "")
        if not text.strip():
            raw = form.get("text")
            text = raw if isinstance(raw, str) else ""
            if len(text.encode("utf-8", "surrogatepass")) > MAX_TRACE_BYTES:
                raise _too_large(MAX_TRACE_BYTES + 1)
        if not text.strip():
            raise ViewError("trace", "paste a trace or choose a file: the upload is empty")
        return TraceUpload(text, name, lenient)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_TRACE_BYTES + _OVERHEAD:
            raise _too_large(len(body))
    if ctype == "application/json":
        try:
            payload = json.loads(body)
        except ValueError:
            raise ViewError("trace", "the body is not valid JSON") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            raise ViewError("text", 'expected a JSON object {"text": "...", "name": "...", '
                            '"lenient": false}')
        text = payload["text"]
        if len(text.encode("utf-8", "surrogatepass")) > MAX_TRACE_BYTES:
            raise _too_large(MAX_TRACE_BYTES + 1)
        given = payload.get("name")
        return TraceUpload(text, given if isinstance(given, str) else "",
                           payload.get("lenient") is True)
    text = _decode(bytes(body))
    lenient = request.query_params.get("lenient", "").lower() in _TRUE
    return TraceUpload(text, request.query_params.get("name", ""), lenient)


def store_upload(store: TraceStore, upload: TraceUpload) -> tuple[StoredTrace, bool]:
    """Validate the trace (TraceParseError names the line) and store it."""
    parse_trace(upload.text, lenient=upload.lenient)
    return store.put(upload.text, upload.name)
