"""Resolved runs -> the plain data the page's panels show (pure functions of what was resolved).

Templates get dicts, lists and precomputed URLs, never model objects. Nothing here loads a
run: app/resolve.py has done that before any of these is called.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.compare import compare_panel
from app.figures import boots_figure
from app.fixsets import counterpart
from app.graph import children_of, path_to_root
from app.kernel_links import (
    ELIXIR_RELEASE,
    action_notes,
    kernel_notes,
    link_of,
    merge_notes,
    path_links,
    text_links,
)
from app.legend import tree_legend
from app.naming import custom_description, export_name
from app.navigation import drawn_at_another_step, nav_context, step_urls
from app.resolve import PageRuns, Resolved
from app.runs import SUMMARY_OPS
from app.serialize import sp_json
from app.treepanel import tree_panel
from app.viewstate import SPEC_FIELDS, ViewState, open_param
from app.walkthrough import tour_context
from mmu_model import (
    DISPLAY_ORDER,
    FIXES,
    ActionView,
    EventView,
    Run,
    ScenarioSpec,
    Snapshot,
    UnknownScenario,
    get_scenario,
    list_scenarios,
)
from mmu_model.snapshot import StepSummary
from mmu_model.timeline import MAX_ACTION_OPS

__all__ = ["boots_context", "form_context", "page_context", "scenarios_list"]

PANEL_STATS: tuple[str, ...] = DISPLAY_ORDER[:9]
OpHeader = tuple[str, tuple[str, ...], Mapping[str, object]]  # kind, call path, args
# Ops listed at action grain: the rest are one link away, at kernel-operation grain. A step
# summary carries as many (app/runs.py), no more.
MAX_OPS_LISTED = SUMMARY_OPS


def _stat_rows(snap: Snapshot | StepSummary) -> list[dict[str, Any]]:
    rows = [
        {"name": name, "value": snap.stats.get(name, 0), "delta": snap.stat_deltas.get(name, 0),
         "kvm": True}
        for name in PANEL_STATS
    ]
    rows.append({"name": "orphans", "value": snap.orphans.total,
                 "delta": snap.stat_deltas.get("orphans", 0), "kvm": False})
    rows.append({"name": "orphans (unsync)", "value": snap.orphans.unsync,
                 "delta": snap.stat_deltas.get("orphans_unsync", 0), "kvm": False})
    # Derived from the step's pages, not recorded per event: no step delta to show.
    orphans = snap.orphans
    if orphans.unreachable is not None:
        rows.append({"name": "unreachable", "value": orphans.unreachable, "delta": None,
                     "kvm": False})
        rows.append({"name": "unreachable (unsync)", "value": orphans.unreachable_unsync,
                     "delta": None, "kvm": False})
    return rows


def _op_notes(r: Resolved, kind: str, call_path: tuple[str, ...],
              args: Mapping[str, object]) -> list[dict[str, Any]]:
    child = args.get("child")
    # Only the patch note of a mmu_page_zap_pte() names the child: describe it for that.
    describe = (r.run.timeline.describe(child)
                if kind == "mmu_page_zap_pte" and isinstance(child, int) and r.run.timeline
                else "the child")
    return kernel_notes(kind, call_path, args, r.state.fix_set, describe)


def _noted_ops(r: Resolved, action: ActionView
               ) -> list[OpHeader]:
    """(kind, call path, args) of every op the model recorded for the action (its first
    MAX_ACTION_OPS): those the step summary carries, then the rest from the record."""
    ops: list[OpHeader] = [
        (ev.kind, ev.call_path, ev.args) for ev in action.ops]
    timeline = r.run.timeline
    if timeline is not None and len(ops) < min(action.n_ops, MAX_ACTION_OPS):
        ops.extend(timeline.op_headers(action.index, start=len(ops)))
    return ops


def _op_item(r: Resolved, ev: EventView) -> dict[str, Any]:
    return {
        "index": ev.index, "kind": ev.kind, "narration": ev.narration,
        "call_path": list(ev.call_path),
        "call_links": path_links(ev.call_path), "kind_link": link_of(ev.kind),
        "narration_links": text_links(ev.narration),
        "deltas": sorted(ev.stat_deltas.items()),
        "url": _op_url(r, ev.index),
    }


def _op_url(r: Resolved, index: int) -> str:
    """The view at op grain at event `index` (op step index + 1)."""
    return r.state.with_(grain="op", step=index + 1).url()


def _narration(r: Resolved) -> dict[str, Any]:
    """What happened in this step; every key is always present (templates are strict)."""
    snap = r.snap
    out: dict[str, Any] = {"step0": snap.step == 0, "grain": snap.grain, "action": None,
                           "event": None, "ops": None, "more_ops": 0, "more_url": None,
                           "more_from": None, "deltas": [], "notes": [],
                           "release": ELIXIR_RELEASE}
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
        listed = action.ops[:MAX_OPS_LISTED]
        out["ops"] = [_op_item(r, ev) for ev in listed]
        out["more_ops"] = max(action.n_ops - len(listed), 0)
        if out["more_ops"] and listed:  # an action's ops are consecutive events
            out["more_url"] = _op_url(r, listed[-1].index + 1)
            out["more_from"] = listed[-1].index + 2  # the op grain's step of the next op
    out["deltas"] = sorted(
        (k, v) for k, v in snap.stat_deltas.items() if k not in ("hash_walked",)
    )
    order = r.run.spec.order if r.run.spec is not None else None
    header = snap.event if snap.event is not None and snap.event.is_action else None
    first = action_notes(header.kind, header.args, order) if header is not None else []
    # Notes come from every op the model recorded for the step, listed or not.
    noted: list[OpHeader] = []
    if out["event"] is not None and snap.event is not None:
        noted = [(snap.event.kind, snap.event.call_path, snap.event.args)]
    elif action is not None:
        noted = _noted_ops(r, action)
    out["notes"] = merge_notes([*(_op_notes(r, *op) for op in noted), first])
    return out


def _selected(r: Resolved) -> dict[str, Any] | None:
    sp_id = r.state.sp
    if sp_id is None:
        return None
    snap = r.full  # the selected page's children and path need every page
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
    action_step = r.action_step
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
    action_step = r.action_step
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
        **step_urls(r),
        "last": s.with_(step=last).url(),
        "slider": s.url(omit=("step",)),
        "grain_select": s.with_(step_grain=s.grain).url(omit=("grain",)),
        "other_grain": s.with_(grain=other, step_grain=s.grain).url(),
        "select": s.url(omit=("sp",)) + "&sp=",
        "embed": s.with_(embed=True).url(),
        "full": s.with_(embed=False).url(),
        "snapshot_json": s.url("/api/snapshot"),
        "graphml": s.url("/api/graph.graphml"),
        "dot": s.url("/api/graph.dot"),
        "boots_csv": s.url("/api/boots.csv"),
        "boots_panel": s.run_state().url("/boots"),
        "open": open_param(s.open),
        "open_base": s.url(omit=("open",)),
        "compare": _compare_toggle(r).url(),
        "export_name": export_name(s),
    }


def _compare_toggle(r: Resolved) -> ViewState:
    s = r.state
    if s.compare:
        return s.with_(compare=False, base=None)
    fixes = s.fix_set
    if fixes == s.base_set:  # comparing a set with itself shows nothing: toggle the patch
        fixes = counterpart(fixes)
    action_step = r.action_step
    return s.with_(compare=True, fixes=frozenset(fixes), step=action_step, step_grain="action")


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
        "hidden": (state or ViewState()).form_inputs(),
        "simulated": [i.name for i in list_scenarios() if i.kind == "simulate"],
    }


def scenarios_list() -> list[dict[str, Any]]:
    return [{"name": i.name, "title": i.title, "kind": i.kind, "description": i.description}
            for i in list_scenarios()]


def page_context(runs: PageRuns) -> dict[str, Any]:
    """Everything viz.html.jinja shows, from the resolved runs alone."""
    r = runs.main
    snap = r.snap
    run = r.run
    compare = compare_panel(r, runs.baseline)
    # The tree before the timeline: on a run just built, its build worker is still scanning
    # it for the timeline's marks (app/run_parts.py) while the tree is worked out here.
    tree = tree_panel(r.entry, r.state, snap, runs.drawn)
    return {
        "state": r.state,
        "embed": r.state.embed,
        "error": None,
        "source": {
            "kind": r.source.kind, "title": r.source.title,
            "description": custom_description(r.source.info, r.state.params)
            if r.source.info else "",
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
        "tree": tree | {"differs": compare["right_marks"] if compare else []},
        "orphans": snap.orphans.as_dict(),
        "n_pages": snap.n_pages,
        "stats": _stat_rows(snap),
        "narration": _narration(r),
        "fixes": _fix_rows(r),
        "toggle_note": _toggle_note(r),
        "compare": compare,
        "legend": tree_legend(),
        "multi_boot": run.kind == "simulate" and len(run.per_boot) > 1,
        "replay": _replay(r),
        "selected": _selected(r),
        "nav": nav_context(r, runs.baseline, runs.drawn),
        # The step-independent panels the browser has already (see drawn_at_another_step).
        "kept": drawn_at_another_step(r, runs.drawn),
        # ... and, outside compare mode (its two trees are swapped whole), the step's
        # panels come out of band, each in place (templates/viz.html.jinja, step_update).
        "step_update": drawn_at_another_step(r, runs.drawn) and not compare,
        "tour": tour_context(r),
        "form": form_context(r.state),
        "trace_form": {"text": "", "error": None, "name": "", "lenient": False},
    }


def boots_context(r: Resolved, variants: list[tuple[str, Run, bool]]) -> dict[str, Any]:
    """The per-boot chart of the view's run, from its track-write-zap variants."""
    if not r.run.per_boot:
        return {"figure": None, "boots": 0, "csv_url": r.state.url("/api/boots.csv"),
                "url": r.state.run_state().url("/boots")}
    boot = r.snap.action.boot if r.snap.action is not None else None
    figure = boots_figure([(label, run.per_boot, dashed) for label, run, dashed in variants],
                          current_boot=boot)
    return {"figure": figure, "boots": len(r.run.per_boot),
            "csv_url": r.state.run_state().url("/api/boots.csv"),
            "url": r.state.run_state().url("/boots")}
