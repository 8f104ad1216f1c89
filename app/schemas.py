"""Pydantic models of the JSON API's responses (they document /docs; big ones are not
validated at run time, the snapshot being built as plain dicts for speed)."""

from __future__ import annotations

from typing import Any, get_type_hints

from pydantic import BaseModel, create_model

from app.serialize import ACTION_FIELDS, EVENT_FIELDS, SP_FIELDS
from mmu_model import ActionView, EventView, SpView

__all__ = [
    "ErrorOut",
    "EventOut",
    "EventsOut",
    "FixOut",
    "ScenarioOut",
    "SnapshotOut",
    "SpOut",
    "TraceCreated",
    "TraceOut",
]


class ErrorOut(BaseModel):
    detail: str
    field: str
    line: int | None = None


class ScenarioOut(BaseModel):
    name: str
    title: str
    description: str
    kind: str
    spec: dict[str, str] | None
    url: str


class FixOut(BaseModel):
    name: str
    title: str
    effect: str
    default: bool


def _model_of(name: str, view: type, names: tuple[str, ...], **extra: Any) -> type[BaseModel]:
    """A pydantic model with the fields `names` of the model view `view` (typed as there)."""
    hints = get_type_hints(view)
    hints |= {n: get_type_hints(getattr(view, n).fget)["return"]
              for n in names if isinstance(getattr(view, n, None), property)}
    fields: dict[str, Any] = {n: (hints[n], ...) for n in names} | {
        n: (t, ...) for n, t in extra.items()}
    return create_model(name, **fields)


# One serializer per model view: the fields come from the model's own types (via
# app/serialize.py's field lists), so a page's fields are declared once, in SpView.
SpOut = _model_of("SpOut", SpView, SP_FIELDS)
EventOut = _model_of("EventOut", EventView, EVENT_FIELDS, args=dict[str, Any], op_step=int)
ActionOut = _model_of("ActionOut", ActionView, ACTION_FIELDS, action_step=int)


class SnapshotOut(BaseModel):
    view: dict[str, Any]
    source: dict[str, Any]
    fixes: list[str]
    step: int
    grain: str
    last_step: int
    stats: dict[str, int]
    stat_deltas: dict[str, int]
    orphans: dict[str, Any]
    pages: list[SpOut]  # type: ignore[valid-type]
    ghosts: list[SpOut]  # type: ignore[valid-type]
    changed: list[int]
    created: list[int]
    event: EventOut | None  # type: ignore[valid-type]
    action: ActionOut | None  # type: ignore[valid-type]


class EventsOut(BaseModel):
    start: int
    count: int
    n_events: int
    events: list[EventOut]  # type: ignore[valid-type]


class TraceCreated(BaseModel):
    id: str
    name: str
    bytes: int
    lines: int
    url: str
    created: bool


class TraceOut(BaseModel):
    id: str
    name: str
    text: str
    bytes: int
    lines: int
    created_at: float
    url: str
