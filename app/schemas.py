"""Pydantic models of the JSON API's responses (they document /docs; big ones are not
validated at run time, the snapshot being built as plain dicts for speed)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

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


class SpOut(BaseModel):
    id: int
    gfn: int
    level: int
    role: str
    role_word: int
    status: str
    direct: bool
    guest_mode: bool
    invalid: bool
    unsync: bool
    unsync_children: int
    write_flooding_count: int
    root_count: int
    parents: list[list[int]]
    leaf_sptes: int
    rmap_entries: int
    orphan: bool
    l2_gfn: int
    ghost: bool


class EventOut(BaseModel):
    index: int
    op_step: int
    kind: str
    is_action: bool
    action_index: int
    call_path: list[str]
    args: dict[str, Any]
    narration: str
    touched: list[int]
    created: list[int]
    freed: list[int]
    stat_deltas: dict[str, int]


class ActionOut(BaseModel):
    index: int
    action_step: int
    kind: str
    narration: str
    boot: int
    first_event: int
    last_event: int


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
    pages: list[SpOut]
    ghosts: list[SpOut]
    changed: list[int]
    created: list[int]
    event: EventOut | None
    action: ActionOut | None


class EventsOut(BaseModel):
    start: int
    count: int
    n_events: int
    events: list[EventOut]


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
