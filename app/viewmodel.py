"""ViewState -> runs, snapshot and the plain data the templates and the JSON API show.

Templates get dicts, lists and precomputed URLs, never model objects; this module is the
only place that knows how a view is assembled from the model.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from app.build_jobs import BuildJob, ScenarioBuild, SeedTraceBuild, TraceBuild
from app.errors import ViewError
from app.figures import boots_figure, tree_figure
from app.graph import Layout, children_of, layout_for_run, path_to_root, tree_view
from app.runs import RunEntry
from app.services import Services
from app.store import StoredTrace
from app.viewstate import SPEC_FIELDS, ViewState, fixes_param
from mmu_model import (
    DISPLAY_ORDER,
    FIXES,
    EventView,
    Run,
    ScenarioInfo,
    ScenarioSpec,
    Snapshot,
    SpView,
    UnknownScenario,
    get_scenario,
    list_scenarios,
)

__all__ = [
    "MAX_WORK",
    "Resolved",
    "boots_context",
    "boots_csv",
    "events_json",
    "form_context",
    "page_context",
    "resolve",
    "snapshot_json",
    "source_of",
]

# Refuse specs whose simulation would build more than this many shadow pages in total
# (pages per root x root zaps x boots): about a minute of model time.
MAX_WORK = 400_000
TRACK_WRITE_ZAP = "track-write-zap"
PANEL_STATS: tuple[str, ...] = DISPLAY_ORDER[:9]
MAX_OPS_LISTED = 40


@dataclass(frozen=True)
class Source:
    kind: str  # "simulate" | "replay" (built-in seed trace) | "trace" (uploaded)
    info: ScenarioInfo | None
    spec: ScenarioSpec | None  # with the view's fixes
    stored: StoredTrace | None

    @property
    def title(self) -> str:
        if self.stored is not None:
            return self.stored.name
        assert self.info is not None
        return self.info.title


def source_of(services: Services, state: ViewState) -> Source:
    if state.trace is not None:
        stored = services.store.get(state.trace)
        if stored is None:
            raise ViewError("trace", f"no stored trace has id {state.trace}", status=404)
        return Source("trace", None, None, stored)
    info = get_scenario(state.scenario_name)
    if info.kind == "replay":
        if state.params:
            field = state.params[0][0]
            raise ViewError(field, f"{field} does not apply to {info.name}: a replayed trace "
                            "has no scenario parameters")
        return Source("replay", info, None, None)
    assert info.spec is not None
    spec = ScenarioSpec.from_mapping(state.param_map, base=info.spec)
    return Source("simulate", info, spec, None)


def _canonical_params(source: Source) -> tuple[tuple[str, str], ...]:
    """Spec overrides as the model writes them, without those equal to the scenario's own."""
    if source.spec is None or source.info is None or source.info.spec is None:
        return ()
    mine, base = source.spec.to_mapping(), source.info.spec.to_mapping()
    return tuple((k, v) for k, v in mine.items() if k in SPEC_FIELDS and base.get(k) != v)


def _check_size(services: Services, spec: ScenarioSpec) -> None:
    limit = services.settings.max_shadow_pages
    pages = spec.estimated_shadow_pages
    if pages > limit:
        raise ViewError("l2_mem_gib", f"this spec builds about {pages:,} shadow pages per root; "
                        f"this server draws at most {limit:,}: lower l2_mem_gib or pdes_per_pd")
    work = pages * spec.root_zaps_per_boot * spec.boots
    if work > MAX_WORK:
        raise ViewError("boots", f"this spec builds about {work:,} shadow pages over its run "
                        f"(pages x root zaps x boots); the limit is {MAX_WORK:,}: lower boots "
                        "or root_zaps_per_boot")


def run_entry(
    services: Services, source: Source, fixes: frozenset[str], *, lenient: bool = False,
    record: bool = True,
) -> RunEntry:
    """The cached run of `source` with `fixes` (computed on first use)."""
    fixes = frozenset(fixes)
    job: BuildJob
    if source.kind == "trace":
        assert source.stored is not None
        job = TraceBuild(source.stored.id, source.stored.text, fixes, lenient, record)
    elif source.kind == "replay":
        assert source.info is not None
        assert source.info.trace_file is not None
        job = SeedTraceBuild(source.info.trace_file, fixes, record)
    else:
        assert source.spec is not None
        spec = source.spec.replace(fixes=fixes)
        _check_size(services, spec)
        job = ScenarioBuild(spec, record)
    return services.runs.get(job.key, job)


@dataclass(frozen=True)
class Resolved:
    state: ViewState  # canonical: step filled in, step_grain dropped
    source: Source
    entry: RunEntry
    snap: Snapshot
    layout: Layout

    @property
    def run(self) -> Run:
        return self.entry.run


def _layout(entry: RunEntry) -> Layout:
    layout: Layout = entry.derive("layout", lambda: layout_for_run(entry.run))
    return layout


def resolve(services: Services, state: ViewState) -> Resolved:
    """Load (or reuse) the run a view shows and take its snapshot at the view's step."""
    source = source_of(services, state)
    entry = run_entry(services, source, state.fix_set, lenient=state.lenient)
    run = entry.run
    grain = state.grain
    if state.step is None:
        step = run.convert_step(run.default_step, "action", grain)
    elif state.step_grain is not None and state.step_grain != grain:
        step = run.convert_step(state.step, state.step_grain, grain)
    else:
        step = state.step
    snap = entry.snapshot(step, grain)  # StepOutOfRange -> 422 naming "step"
    canonical = state.with_(step=step, step_grain=None, params=_canonical_params(source))
    return Resolved(canonical, source, entry, snap, _layout(entry))


# ------------------------------------------------------------------------------- figures
def _max_level(snap: Snapshot, run: Run) -> int:
    if run.spec is not None:
        return run.spec.ept_levels
    return max((p.level for p in (*snap.pages, *snap.ghosts)), default=4)


def _figure(r: Resolved, entry: RunEntry, snap: Snapshot, title: str = "") -> dict[str, Any]:
    layout = _layout(entry)
    view = tree_view(snap, layout, selected=r.state.sp)
    uirevision = f"{r.state.scenario_name}:{r.state.trace or ''}:{r.state.grain}"
    return tree_figure(
        view, layout, max_level=_max_level(snap, entry.run), uirevision=uirevision, title=title
    ) | {"meta": {"n_pages": view.n_pages, "n_nodes": view.n_nodes, "folded": view.folded}}


# ------------------------------------------------------------------------------- JSON shapes
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


# ------------------------------------------------------------------------------- page context
def _stat_rows(snap: Snapshot) -> list[dict[str, Any]]:
    rows = [
        {"name": name, "value": snap.stats.get(name, 0), "delta": snap.stat_deltas.get(name, 0),
         "kvm": True}
        for name in PANEL_STATS
    ]
    rows.append({"name": "orphans", "value": snap.orphans.total,
                 "delta": snap.stat_deltas.get("orphans", 0), "kvm": False})
    rows.append({"name": "orphans (unsync)", "value": snap.orphans.unsync,
                 "delta": snap.stat_deltas.get("orphans_unsync", 0), "kvm": False})
    return rows


def _op_item(r: Resolved, ev: EventView) -> dict[str, Any]:
    return {
        "index": ev.index, "kind": ev.kind, "narration": ev.narration,
        "call_path": list(ev.call_path),
        "deltas": sorted(ev.stat_deltas.items()),
        "url": r.state.with_(grain="op", step=ev.index + 1).url(),
    }


def _narration(r: Resolved) -> dict[str, Any]:
    """What happened in this step; every key is always present (templates are strict)."""
    snap = r.snap
    out: dict[str, Any] = {"step0": snap.step == 0, "grain": snap.grain, "action": None,
                           "event": None, "ops": None, "more_ops": 0, "deltas": []}
    if snap.step == 0:
        return out
    action = snap.action
    if action is not None:
        out["action"] = {"step": action.index + 1, "kind": action.kind,
                         "narration": action.narration, "boot": action.boot,
                         "n_ops": action.n_ops}
    if snap.grain == "op" and snap.event is not None:
        ev = snap.event
        out["event"] = _op_item(r, ev) | {
            "touched": list(ev.touched), "created": list(ev.created), "freed": list(ev.freed),
            "is_action": ev.is_action,
        }
    elif action is not None:
        # action.ops holds at most the model's cap; n_ops counts every op of the action.
        out["ops"] = [_op_item(r, ev) for ev in action.ops[:MAX_OPS_LISTED]]
        out["more_ops"] = max(action.n_ops - len(out["ops"]), 0)
    out["deltas"] = sorted(
        (k, v) for k, v in snap.stat_deltas.items() if k not in ("hash_walked",)
    )
    return out


def _selected(r: Resolved) -> dict[str, Any] | None:
    sp_id = r.state.sp
    if sp_id is None:
        return None
    snap = r.snap
    sp = next((p for p in (*snap.pages, *snap.ghosts) if p.id == sp_id), None)
    clear_url = r.state.with_(sp=None).url()
    if sp is None:
        return {"id": sp_id, "present": False, "clear_url": clear_url}
    link = lambda i: r.state.with_(sp=i).url()  # noqa: E731
    return {
        "id": sp_id, "present": True, "clear_url": clear_url, "sp": sp_json(sp),
        "gfn_hex": f"{sp.gfn:#x}", "l2_gfn_hex": f"{sp.l2_gfn:#x}",
        "parents": [{"id": p, "index": i, "url": link(p)} for p, i in sp.parents],
        "children": [{"id": c, "index": i, "url": link(c)} for c, i in children_of(snap, sp_id)],
        "path": [{"id": i, "url": link(i)} for i in path_to_root(snap, sp_id)],
    }


def _fix_rows(r: Resolved) -> list[dict[str, Any]]:
    rows = []
    active = r.state.fix_set
    action_step = r.run.convert_step(r.snap.step, r.state.grain, "action")
    for name, fix in FIXES.items():
        toggled = active ^ {name}
        target = r.state.with_(fixes=frozenset(toggled), step=action_step, step_grain="action")
        rows.append({"name": name, "title": fix.title, "effect": fix.effect,
                     "on": name in active, "default": fix.default, "url": target.url()})
    return rows


def _toggle_note(r: Resolved) -> str | None:
    """At op grain a fix toggle (or compare) cannot keep the op step: say where it lands."""
    if r.state.grain != "op":
        return None
    action_step = r.run.convert_step(r.snap.step, "op", "action")
    if action_step == 0:
        return ("At kernel-operation grain, toggling a fix or compare re-runs the model "
                "and shows step 0.")
    return ("At kernel-operation grain, toggling a fix or compare re-runs the model (its "
            "operations differ) and shows the last operation of guest action "
            f"{action_step}, the action this step belongs to.")


def _timeline_urls(r: Resolved) -> dict[str, str]:
    s, snap = r.state, r.snap
    last = snap.last_step
    other = "op" if s.grain == "action" else "action"
    return {
        "self": s.url(),
        "first": s.with_(step=0).url(),
        "prev": s.with_(step=max(snap.step - 1, 0)).url(),
        "next": s.with_(step=min(snap.step + 1, last)).url(),
        "last": s.with_(step=last).url(),
        "slider": s.url(omit=("step",)),
        "grain_select": s.with_(step_grain=s.grain).url(omit=("grain",)),
        "other_grain": s.with_(grain=other, step_grain=s.grain).url(),
        "select": s.url(omit=("sp",)) + "&sp=",
        "embed": s.with_(embed=True).url(),
        "full": s.with_(embed=False).url(),
        "snapshot_json": s.url("/api/snapshot"),
        "boots_csv": s.url("/api/boots.csv"),
        "boots_panel": s.url("/boots"),
        "compare": _compare_toggle(r).url(),
    }


def _compare_toggle(r: Resolved) -> ViewState:
    s = r.state
    if s.compare:
        return s.with_(compare=False, base=None)
    fixes = s.fix_set
    if fixes == s.base_set:  # comparing a set with itself shows nothing: add the patch
        fixes = fixes | {TRACK_WRITE_ZAP}
        if fixes == s.base_set:
            fixes = fixes - {TRACK_WRITE_ZAP}
    action_step = r.run.convert_step(r.snap.step, s.grain, "action")
    return s.with_(compare=True, fixes=frozenset(fixes), step=action_step, step_grain="action")


def _compare(services: Services, r: Resolved) -> dict[str, Any] | None:
    s = r.state
    if not s.compare:
        return None
    base_entry = run_entry(services, r.source, s.base_set, lenient=s.lenient)
    base_run = base_entry.run
    action_step = r.run.convert_step(r.snap.step, s.grain, "action")
    base_step = base_run.convert_step(action_step, "action", s.grain)
    base_snap = base_entry.snapshot(base_step, s.grain)
    first = base_run.first_difference(r.run)
    if first is not None:
        first = min(first, r.run.n_actions)
    return {
        "base_label": fixes_param(s.base_set),
        "label": fixes_param(s.fix_set),
        "figure": _figure(r, base_entry, base_snap),
        "step": base_step,
        "stats": _stat_rows(base_snap),
        "orphans_unsync": base_snap.orphans.unsync,
        "first_diff": first,
        "first_diff_url": None if first is None
        else s.with_(step=first, step_grain="action").url(),
    }


def _replay(r: Resolved) -> dict[str, Any] | None:
    report = r.run.replay
    if report is None:
        return None
    return {
        "lines": report.lines, "tables": report.tables,
        "discrepancies": [
            {"text": d.describe(), "step": d.action_step, "lineno": d.lineno,
             "url": r.state.with_(step=d.action_step, step_grain="action").url()}
            for d in report.discrepancies
        ],
        "notes": list(report.notes), "warnings": list(report.warnings),
    }


def form_context(
    state: ViewState | None, errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The scenario form: every ScenarioSpec field with its value and error, if any."""
    errors = errors or {}
    name = state.scenario_name if state is not None and state.trace is None else None
    info = None
    if name is not None:
        try:
            info = get_scenario(name)
        except UnknownScenario:  # reported in the error banner; show the default form
            info = None
    base = info.spec if info is not None and info.spec is not None else ScenarioSpec()
    values = base.to_mapping()
    if state is not None:
        values |= state.param_map
    if raw:
        values |= {k: v for k, v in raw.items() if k in SPEC_FIELDS}
    fields = []
    for f in ScenarioSpec.FIELDS:
        fields.append({
            "name": f.name, "label": f.label, "help": f.help, "kind": f.kind,
            "min": None if f.min is None else f"{f.min:g}",
            "max": None if f.max is None else f"{f.max:g}",
            "step": "1" if "int" in f.kind else "any", "choices": list(f.choices),
            "value": values.get(f.name, ""), "error": errors.get(f.name),
        })
    return {
        "scenario": name if info is not None and info.kind == "simulate" else "teaching-small",
        "fields": fields,
        "fixes": fixes_param(state.fix_set) if state is not None else None,
        "grain": state.grain if state is not None else "action",
        "simulated": [i.name for i in list_scenarios() if i.kind == "simulate"],
    }


def scenarios_list() -> list[dict[str, Any]]:
    return [{"name": i.name, "title": i.title, "kind": i.kind, "description": i.description}
            for i in list_scenarios()]


def page_context(services: Services, r: Resolved) -> dict[str, Any]:
    snap = r.snap
    figure = _figure(r, r.entry, snap)
    run = r.run
    return {
        "state": r.state,
        "embed": r.state.embed,
        "error": None,
        "source": {
            "kind": r.source.kind, "title": r.source.title,
            "description": r.source.info.description if r.source.info else "",
            "scenario": None if r.state.trace else r.state.scenario_name,
            "trace": r.state.trace,
            "trace_bytes": r.source.stored.bytes if r.source.stored else None,
        },
        "scenarios": scenarios_list(),
        "urls": _timeline_urls(r),
        "timeline": {
            "step": snap.step, "last_step": snap.last_step, "grain": snap.grain,
            "n_actions": run.n_actions, "n_events": run.n_events,
            "boot": snap.action.boot if snap.action is not None else 0,
            "boots": len(run.per_boot),
        },
        "figure": figure,
        "orphans": snap.orphans.as_dict(),
        "n_pages": len(snap.pages),
        "stats": _stat_rows(snap),
        "narration": _narration(r),
        "fixes": _fix_rows(r),
        "toggle_note": _toggle_note(r),
        "compare": _compare(services, r),
        "multi_boot": run.kind == "simulate" and len(run.per_boot) > 1,
        "replay": _replay(r),
        "selected": _selected(r),
        "form": form_context(r.state),
        "trace_form": {"text": "", "error": None, "name": ""},
    }


# ------------------------------------------------------------------------------- per boot
def _boot_variants(services: Services, r: Resolved) -> list[tuple[str, Run, bool]]:
    fixes = r.state.fix_set
    with_fix, without_fix = fixes | {TRACK_WRITE_ZAP}, fixes - {TRACK_WRITE_ZAP}
    out = []
    for label, variant, dashed in (("without track-write-zap", without_fix, True),
                                   ("with track-write-zap", with_fix, False)):
        if variant == fixes:
            run = r.run
        else:
            run = run_entry(services, r.source, variant, lenient=r.state.lenient,
                            record=False).run
        out.append((label, run, dashed))
    return out


def boots_context(services: Services, r: Resolved) -> dict[str, Any]:
    if not r.run.per_boot:
        return {"figure": None, "boots": 0, "csv_url": r.state.url("/api/boots.csv")}
    variants = _boot_variants(services, r)
    boot = r.snap.action.boot if r.snap.action is not None else None
    figure = boots_figure([(label, run.per_boot, dashed) for label, run, dashed in variants],
                          current_boot=boot)
    return {"figure": figure, "boots": len(r.run.per_boot),
            "csv_url": r.state.url("/api/boots.csv")}


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
