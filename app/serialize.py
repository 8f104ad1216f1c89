"""Model views -> JSON and CSV: one serializer per model view (SpView, EventView, ...).

The API's response schemas (app/schemas.py) are derived from the same model types.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import fields
from operator import attrgetter
from typing import Any

from app.errors import ViewError
from app.resolve import Resolved
from app.viewstate import fixes_param
from mmu_model import ActionView, EventView, Run, SpView

# The serialized fields of each model view: its dataclass fields (the one place they are
# declared), plus the derived ones the API documents (app/schemas.py derives from these).
SP_FIELDS: tuple[str, ...] = (*(f.name for f in fields(SpView)), "status", "rmap_entries")
EVENT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(EventView))
ACTION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ActionView)
                                       if f.name not in ("ops", "n_ops"))
_sp_values = attrgetter(*SP_FIELDS)
_event_values = attrgetter(*EVENT_FIELDS)
_action_values = attrgetter(*ACTION_FIELDS)

__all__ = [
    "ACTION_FIELDS",
    "BOOT_COLUMNS",
    "EVENT_FIELDS",
    "SP_FIELDS",
    "action_json",
    "boots_csv",
    "event_json",
    "events_json",
    "snapshot_json",
    "sp_json",
]


def sp_json(sp: SpView) -> dict[str, Any]:
    """Every field of SpView, and its derived status and rmap_entries (SpOut's fields)."""
    return dict(zip(SP_FIELDS, _sp_values(sp), strict=True))


def event_json(ev: EventView) -> dict[str, Any]:
    """Every field of EventView (args reduced to JSON values), and op_step (EventOut's)."""
    out = dict(zip(EVENT_FIELDS, _event_values(ev), strict=True))
    out["args"] = ({k: v for k, v in ev.args.items() if isinstance(v, str | int | float | bool)}
                   | {k: list(v) for k, v in ev.args.items() if isinstance(v, list | tuple)})
    out["op_step"] = ev.index + 1
    return out


def action_json(action: ActionView) -> dict[str, Any]:
    """ActionView without its ops, and action_step (ActionOut's fields)."""
    return dict(zip(ACTION_FIELDS, _action_values(action), strict=True)) | {
        "action_step": action.index + 1}


def snapshot_json(r: Resolved) -> dict[str, Any]:
    snap = r.full
    action = snap.action
    return {
        "view": {"url": r.state.url(), "query": r.state.to_query(), "version": r.state.v},
        "source": {"kind": r.source.kind, "title": r.source.title,
                   "scenario": None if r.state.trace else r.state.scenario_name,
                   "trace": r.state.trace},
        "fixes": list(r.run.fixes),
        "step": snap.step, "grain": snap.grain, "last_step": snap.last_step,
        "stats": dict(snap.stats), "stat_deltas": dict(snap.stat_deltas),
        "orphans": snap.orphans.as_dict(),
        "pages": [sp_json(p) for p in snap.pages],
        "ghosts": [sp_json(p) for p in snap.ghosts],
        "changed": sorted(snap.changed), "created": sorted(snap.created),
        "event": event_json(snap.event) if snap.event is not None else None,
        "action": None if action is None else action_json(action),
    }


def events_json(r: Resolved, start: int, count: int) -> dict[str, Any]:
    run = r.run
    if not 0 <= start <= run.n_events:
        raise ViewError("start", f"start must be 0..{run.n_events}, got {start}")
    if not 1 <= count <= 1000:
        raise ViewError("count", f"count must be 1..1000, got {count}")
    return {
        "start": start, "count": count, "n_events": run.n_events,
        "events": [event_json(ev) for ev in run.events(start, count)],
    }


BOOT_COLUMNS = ("boot", "shadow_pages", "unsync", "orphans", "orphans_unsync", "rmap_entries",
                "hash_walked", "action_step")


def boots_csv(runs: Iterable[Run]) -> str:
    """One row per L2 boot of each run (the per-boot chart draws the view's run with and
    without track-write-zap: both are here), run after run, told apart by `fixes`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("fixes", *BOOT_COLUMNS))
    for run in runs:
        fixes = fixes_param(run.fixes)
        for b in run.per_boot:
            writer.writerow((fixes, *(getattr(b, c) for c in BOOT_COLUMNS)))
    return out.getvalue()
