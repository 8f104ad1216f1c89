"""The web layer's own bad-input error, and the mapping of model errors to HTTP statuses.

Every error a user can cause names the field it is about:

| error                                   | status | field                      |
|-----------------------------------------|--------|----------------------------|
| ViewError (bad query parameter)         | 422    | the parameter              |
| InvalidSpec                             | 422    | the spec field             |
| UnknownFix                              | 422    | fixes                      |
| StepOutOfRange                          | 422    | step                       |
| TraceParseError                         | 422    | trace (message: the line)  |
| TraceTooLarge                           | 413    | trace                      |
| UnknownScenario                         | 404    | scenario                   |
| unknown trace id (ViewError)            | 404    | trace                      |
| run estimated too large (ViewError)     | 422    | l2_mem_gib / boots         |
| StoreUnavailable (SQLite locked, ...)   | 503    | store (with Retry-After)   |

A message or field name that echoes client text is clipped (`clip`), so no error response
grows with what was sent.
"""

from __future__ import annotations

from mmu_model.exceptions import (
    InvalidSpec,
    MmuModelError,
    StepOutOfRange,
    TraceParseError,
    TraceTooLarge,
    UnknownFix,
    UnknownScenario,
)

__all__ = ["MAX_MESSAGE_CHARS", "ErrorInfo", "StoreUnavailable", "ViewError", "clip",
           "error_info"]

MAX_MESSAGE_CHARS = 600
MAX_FIELD_CHARS = 64


def clip(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class ViewError(Exception):
    """Bad input found by the web layer; `field` names the query parameter or form field."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


class StoreUnavailable(Exception):
    """The trace store cannot serve the request now (locked, read-only, missing)."""

    def __init__(self, state: str, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.state = state
        self.message = message
        self.retry_after = retry_after


class ErrorInfo:
    __slots__ = ("field", "lineno", "message", "retry_after", "status")

    def __init__(self, status: int, field: str, message: str, lineno: int | None = None,
                 retry_after: int | None = None) -> None:
        self.status = status
        self.field = clip(field, MAX_FIELD_CHARS)
        self.message = clip(message, MAX_MESSAGE_CHARS)
        self.lineno = lineno
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"detail": self.message, "field": self.field}
        if self.lineno is not None:
            out["line"] = self.lineno
        return out


def error_info(exc: Exception) -> ErrorInfo:
    """Status, field and message for an error caused by bad input."""
    if isinstance(exc, ViewError):
        return ErrorInfo(exc.status, exc.field, exc.message)
    if isinstance(exc, StoreUnavailable):
        return ErrorInfo(503, "store", exc.message, retry_after=exc.retry_after)
    if isinstance(exc, InvalidSpec):
        return ErrorInfo(422, exc.field, f"{exc.field}: {exc.message}")
    if isinstance(exc, UnknownScenario):
        return ErrorInfo(404, "scenario", str(exc))
    if isinstance(exc, UnknownFix):
        return ErrorInfo(422, "fixes", str(exc))
    if isinstance(exc, StepOutOfRange):
        return ErrorInfo(422, "step", str(exc))
    if isinstance(exc, TraceTooLarge):
        return ErrorInfo(413, "trace", str(exc), exc.lineno or None)
    if isinstance(exc, TraceParseError):
        return ErrorInfo(422, "trace", str(exc), exc.lineno or None)
    if isinstance(exc, MmuModelError):
        return ErrorInfo(422, getattr(exc, "field", "request"), str(exc))
    raise TypeError(f"not a bad-input error: {exc!r}")
