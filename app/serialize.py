"""Model views -> JSON and CSV: one serializer per model view (SpView, EventView, ...).

The API's response schemas (app/schemas.py) are derived from the same model types.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from app.errors import ViewError
from app.resolve import Resolved
from app.viewstate import fixes_param
from mmu_model import EventView, SpView

__all__ = ["BOOT_COLUMNS", "boots_csv", "event_json", "events_json", "snapshot_json", "sp_json"]


def sp_json(sp: SpView) -> dict[str, Any]:
    return {
        "id": sp.id, "gfn": sp.gfn, "level": sp.level, "role": sp.role,
        "role_word": sp.role_word, "status": sp.status, "direct": sp.direct,
        "guest_mode": sp.guest_mode, "invalid": sp.invalid, "unsync": sp.unsync,
        "unsync_children": sp.unsync_children, "write_flooding_count": sp.write_flooding_count,
        "root_count": sp.root_count, "parents": [list(p) for p in sp.parents],
        "leaf_sptes": sp.leaf_sptes, "rmap_entries": sp.rmap_entries, "orphan": sp.orphan,
        "l2_gfn": sp.l2_gfn, "ghost": sp.ghost,
    }


def event_json(ev: EventView) -> dict[str, Any]:
    return {
        "index": ev.index, "op_step": ev.index + 1, "kind": ev.kind, "is_action": ev.is_action,
        "action_index": ev.action_index, "call_path": list(ev.call_path),
        "args": {k: v for k, v in ev.args.items() if isinstance(v, str | int | float | bool)}
        | {k: list(v) for k, v in ev.args.items() if isinstance(v, list | tuple)},
        "narration": ev.narration, "touched": list(ev.touched), "created": list(ev.created),
        "freed": list(ev.freed), "stat_deltas": dict(ev.stat_deltas),
    }


def snapshot_json(r: Resolved) -> dict[str, Any]:
    snap = r.snap
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
        "action": None if action is None else {
            "index": action.index, "action_step": action.index + 1, "kind": action.kind,
            "narration": action.narration, "boot": action.boot,
            "first_event": action.first_event, "last_event": action.last_event,
        },
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


def boots_csv(r: Resolved) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("fixes", *BOOT_COLUMNS))
    fixes = fixes_param(r.run.fixes)
    for b in r.run.per_boot:
        writer.writerow((fixes, *(getattr(b, c) for c in BOOT_COLUMNS)))
    return out.getvalue()
