"""Reading an uploaded trace from a request (multipart form, urlencoded form, JSON or plain
text), bounded, and storing it once it is known to replay.

Every content type goes through the same checks (app.inputs): bytes that are not UTF-8 and
strings with lone surrogates are refused naming the field, in a form field as in a file.
Parsing, the replay check and SQLite run in a worker thread, a few uploads at a time, so
the event loop keeps answering other requests meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from dataclasses import dataclass
from typing import Any

import anyio
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from app.errors import StoreUnavailable, ViewError
from app.inputs import check_text, decode_utf8, parse_urlencoded
from app.store import StoredTrace, TraceStore
from mmu_model import MAX_TRACE_BYTES, MmuModelError, parse_trace, replay_parsed

__all__ = ["TraceUpload", "read_upload", "store_upload", "validate_trace"]

log = logging.getLogger(__name__)

_OVERHEAD = 64 * 1024  # multipart boundaries and the other form fields
_MAX_BODY = 2 * MAX_TRACE_BYTES + _OVERHEAD  # a file and a text field, each at the limit
_MAX_PARTS = 10
_TRUE = {"1", "true", "on", "yes"}
# Uploads parsed and replayed at once; more wait (for at most _QUEUE_WAIT_S) for a slot.
_UPLOAD_SLOTS = 2
_QUEUE_WAIT_S = 30.0
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary())


@dataclass(frozen=True, slots=True)
class TraceUpload:
    text: str
    name: str
    lenient: bool


def _too_large(size: int) -> ViewError:
    return ViewError("trace", f"trace is {size:,} bytes or more; the limit is "
                     f"{MAX_TRACE_BYTES:,} bytes (1 MiB)", status=413)


def _checked_trace(field: str, text: str) -> str:
    check_text(field, text)
    if len(text.encode("utf-8")) > MAX_TRACE_BYTES:
        raise _too_large(MAX_TRACE_BYTES + 1)
    return text


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > _MAX_BODY:
        raise _too_large(int(declared))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            raise _too_large(len(body))
    return bytes(body)


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    data: bytearray | None = None


def _multipart(body: bytes, content_type: str) -> list[_Part]:
    """The parts of a multipart/form-data body, their bytes as sent (no decoding yet)."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise ViewError("trace", "the multipart body has no boundary")
    parts: list[_Part] = []
    header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray()}
    current = _Part()

    def on_part_begin() -> None:
        nonlocal current
        if len(parts) >= _MAX_PARTS:
            raise ViewError("trace", f"the form has more than {_MAX_PARTS} parts")
        current = _Part(data=bytearray())
        parts.append(current)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        if bytes(header["field"]).lower() == b"content-disposition":
            _, opts = parse_options_header(bytes(header["value"]))
            current.name = decode_utf8("form field name", opts.get(b"name", b""))
            if b"filename" in opts:
                current.filename = decode_utf8("filename", opts[b"filename"])
        header["field"].clear()
        header["value"].clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        assert current.data is not None
        current.data += data[start:end]

    callbacks: Any = {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                      "on_header_value": on_header_value, "on_header_end": on_header_end,
                      "on_part_data": on_part_data}
    parser = MultipartParser(boundary, callbacks)
    try:
        parser.write(body)
        parser.finalize()
    except ViewError:
        raise
    except Exception as exc:  # python-multipart's MultipartParseError and its kin
        raise ViewError("trace", f"the multipart body could not be read: {exc}") from None
    return parts


def _from_fields(fields: list[tuple[str, str]], file: tuple[str, str] | None) -> TraceUpload:
    """A form's fields (and its `file` part, as (filename, text)) as one upload."""
    values: dict[str, str] = {}
    for name, value in fields:
        values.setdefault(name, check_text(name, value))
    name = values.get("name", "")
    lenient = values.get("lenient", "").lower() in _TRUE
    text = ""
    if file is not None:
        filename, text = file
        name = name or filename
    if not text.strip():
        text = _checked_trace("text", values.get("text", ""))
    if not text.strip():
        raise ViewError("trace", "paste a trace or choose a file: the upload is empty")
    return TraceUpload(text, name, lenient)


async def read_upload(request: Request) -> TraceUpload:
    """The trace in a request: a form's `file` or `text` field, JSON {"text"}, or raw text."""
    ctype = request.headers.get("content-type", "")
    kind = ctype.split(";")[0].strip().lower()
    body = await _read_body(request)
    if kind == "multipart/form-data":
        fields: list[tuple[str, str]] = []
        file: tuple[str, str] | None = None
        for part in _multipart(body, ctype):
            data = bytes(part.data or b"")
            if part.name == "file":  # with a filename (a browser) or without (curl -F file=<f)
                if len(data) > MAX_TRACE_BYTES:
                    raise _too_large(len(data))
                if data and file is None:
                    file = (check_text("filename", part.filename or ""),
                            decode_utf8("trace", data))
            else:
                fields.append((part.name, decode_utf8(part.name or "form field", data)))
        return _from_fields(fields, file)
    if kind == "application/x-www-form-urlencoded":
        return _from_fields(parse_urlencoded(body, max_fields=_MAX_PARTS), None)
    if kind == "application/json":
        try:
            payload = json.loads(decode_utf8("body", body))
        except RecursionError:  # '[[[[...' deeper than the interpreter's stack
            raise ViewError("trace", "the JSON body is nested too deeply") from None
        except ValueError:
            raise ViewError("trace", "the body is not valid JSON") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            raise ViewError("text", 'expected a JSON object {"text": "...", "name": "...", '
                            '"lenient": false}')
        given = payload.get("name")
        name = check_text("name", given) if isinstance(given, str) else ""
        return TraceUpload(_checked_trace("text", payload["text"]), name,
                           payload.get("lenient") is True)
    if len(body) > MAX_TRACE_BYTES:
        raise _too_large(len(body))
    text = decode_utf8("trace", body)
    lenient = request.query_params.get("lenient", "").lower() in _TRUE
    return TraceUpload(text, check_text("name", request.query_params.get("name", "")), lenient)


def validate_trace(text: str, lenient: bool) -> None:
    """Refuse a trace its view could not open: it must parse and replay (TraceParseError).

    The replay runs without recording (no timeline); what it refuses, such as one table at
    two levels, is refused here, with the same message the view would give.
    """
    parsed = parse_trace(text, lenient=lenient)
    try:
        replay_parsed(parsed, record=False)
    except MmuModelError:
        raise
    except Exception as exc:  # a shape the replay does not handle: refuse it, and say so
        log.exception("trace refused: the replay failed")
        raise ViewError("trace", f"the trace parses but cannot be replayed "
                        f"({type(exc).__name__}: {str(exc)[:200]})") from None


def _validate_and_store(store: TraceStore, upload: TraceUpload) -> tuple[StoredTrace, bool]:
    validate_trace(upload.text, upload.lenient)
    return store.put(upload.text, upload.name)


async def store_upload(store: TraceStore, upload: TraceUpload) -> tuple[StoredTrace, bool]:
    """Validate the trace (TraceParseError names the line) and store it, off the event loop."""
    loop = asyncio.get_running_loop()
    slots = _limiters.get(loop)
    if slots is None:
        slots = _limiters[loop] = anyio.CapacityLimiter(_UPLOAD_SLOTS)
    with anyio.move_on_after(_QUEUE_WAIT_S) as scope:
        await slots.acquire()
    if scope.cancelled_caught:
        raise StoreUnavailable("busy", "the server is busy with other uploads; try again "
                               "in a few seconds", 5)
    try:
        return await run_in_threadpool(_validate_and_store, store, upload)
    finally:
        slots.release()
