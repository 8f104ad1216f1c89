"""Compare mode's panel: two runs of one source, side by side, and what tells them apart.

The left pane is the baseline (the view's `base` fixes), the right pane the view's own run
(`fixes`); each is labelled with its exact fix set and that set's name in the kernel's
history (app/fixsets.py). Both trees share one legend (the page's: app/legend.py), and each narrates
its own step.

Pages that differ: the runs allocate shadow pages in different orders, so sp ids do not
match between them; a page is matched by what KVM looks it up by, (gfn, role)
(kvm_mmu_find_shadow_page() hashes the gfn and compares the role word). At a step, the
pages of a (gfn, role) differ when the two runs hold a different multiset of states for
it (SpView.status: root, synced, unsync, orphan, ... and "zapped" for a page freed this
step): a page present in one run only, or present in both in a different state. Every
page of such a (gfn, role) is outlined, in both panes. This is about pages; the
"first difference" step (Run.first_difference) compares the runs' KVM counters, so the
two can disagree (a step can change counters without changing any page's state).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from app.fixsets import TRACK_WRITE_ZAP, history_name
from app.resolve import Baseline, Resolved
from app.treepanel import tree_figure_at
from app.viewstate import ViewState, fixes_param
from mmu_model import FIXES, EventView, Snapshot, SpView

__all__ = ["MAX_DIFF_ROWS", "compare_panel", "differing_pages"]

MAX_DIFF_ROWS = 24
MAX_SIDE_OPS = 40
PageKey = tuple[int, int]  # (gfn, role word)


def _pages(snap: Snapshot) -> list[SpView]:
    return [*snap.pages, *snap.ghosts]


def differing_pages(left: Snapshot, right: Snapshot) -> dict[PageKey, tuple[list[str],
                                                                          list[str]]]:
    """(gfn, role word) -> (sorted states in left, sorted states in right), for every
    (gfn, role) whose multiset of states differs between the two snapshots."""
    states: dict[PageKey, tuple[Counter[str], Counter[str]]] = {}
    for side, snap in enumerate((left, right)):
        for sp in _pages(snap):
            pair = states.setdefault((sp.gfn, sp.role_word), (Counter(), Counter()))
            pair[side][sp.status] += 1
    return {key: (sorted(a.elements()), sorted(b.elements()))
            for key, (a, b) in sorted(states.items()) if a != b}


def _marked(snap: Snapshot, keys: Iterable[PageKey]) -> list[str]:
    wanted = set(keys)
    return [str(sp.id) for sp in _pages(snap) if (sp.gfn, sp.role_word) in wanted]


def _ops(ops: Iterable[EventView]) -> list[dict[str, Any]]:
    return [{"index": ev.index, "kind": ev.kind, "narration": ev.narration,
             "call_path": list(ev.call_path)} for ev in ops]


def _side_narration(snap: Snapshot) -> dict[str, Any]:
    """One side's step: its guest action and the kernel operations its model ran for it."""
    action = snap.action
    out: dict[str, Any] = {"step0": snap.step == 0, "action": None, "ops": [], "more": 0}
    if snap.step == 0:
        return out
    if action is not None:
        out["action"] = {"kind": action.kind, "narration": action.narration}
    if snap.grain == "op" and snap.event is not None:
        out["ops"] = _ops([snap.event])
    elif action is not None:
        out["ops"] = _ops(action.ops[:MAX_SIDE_OPS])
        out["more"] = max(action.n_ops - len(out["ops"]), 0)
    return out


def _side(fixes: frozenset[str], snap: Snapshot, url: str) -> dict[str, Any]:
    return {
        "fixes": fixes_param(fixes),
        "names": _names(fixes),
        "history": history_name(fixes),
        "step": snap.step,
        "n_pages": len(snap.pages),
        "orphans": snap.orphans.total,
        "orphans_unsync": snap.orphans.unsync,
        "narration": _side_narration(snap),
        "url": url,
    }


def _note(base: Baseline, right: frozenset[str]) -> str | None:
    if base.asked is None:
        return None
    asked = base.asked
    toggled = "on" if TRACK_WRITE_ZAP in right else "off"
    return (f"This view asked to compare {history_name(asked)} ({_listed(asked)}) with "
            f"itself, which would show the same run twice. The right pane has "
            f"{TRACK_WRITE_ZAP} (patch 1/2) turned {toggled} instead: {history_name(right)} "
            f"({_listed(right)}).")


def _names(fixes: frozenset[str]) -> list[str]:
    """The set's fixes in the model's table order."""
    return [name for name in FIXES if name in fixes]


def _listed(fixes: frozenset[str]) -> str:
    return ", ".join(_names(fixes)) or "no fixes"


def _diff_rows(diffs: dict[PageKey, tuple[list[str], list[str]]], left: Snapshot,
               right: Snapshot) -> list[dict[str, Any]]:
    info = {(sp.gfn, sp.role_word): sp for sp in (*_pages(left), *_pages(right))}
    rows = []
    for key, (states_left, states_right) in list(diffs.items())[:MAX_DIFF_ROWS]:
        sp = info[key]
        rows.append({"gfn": f"{sp.gfn:#x}", "role": sp.role, "level": sp.level,
                     "left": ", ".join(states_left) or "absent",
                     "right": ", ".join(states_right) or "absent"})
    return rows


def compare_panel(r: Resolved, base: Baseline | None) -> dict[str, Any] | None:
    """The compare panel: both sides' labels, trees and narration, and what differs."""
    if base is None:
        return None
    s, full = r.state, r.full  # the marks need every page of the step
    left_fixes, right_fixes = s.base_set, s.fix_set
    diffs = differing_pages(base.snap, full)
    left_marks = _marked(base.snap, diffs)
    first = base.first_difference
    left_state = ViewState(scenario=s.scenario, trace=s.trace, params=s.params,
                           fixes=left_fixes, lenient=s.lenient, grain=s.grain,
                           step=base.snap.step)
    figure = tree_figure_at(base.entry, s.with_(sp=None), base.snap, differs=left_marks)
    figure["layout"]["showlegend"] = False  # one legend for both panes, outside the plots
    return {
        "left": _side(left_fixes, base.snap, left_state.url()) | {
            "figure": figure, "stats": _mini_stats(base.snap),
            "snapshot_json": left_state.url("/api/snapshot"),
            "graphml": left_state.url("/api/graph.graphml"),
            "dot": left_state.url("/api/graph.dot"),
        },
        "right": _side(right_fixes, full, s.with_(compare=False, base=None).url()) | {
            "stats": _mini_stats(full)},
        "right_marks": _marked(full, diffs),
        "note": _note(base, right_fixes),
        "n_differ": len(diffs),
        "differ_rows": _diff_rows(diffs, base.snap, full),
        "more_differ": max(len(diffs) - MAX_DIFF_ROWS, 0),
        "first_diff": first,
        "first_diff_url": None if first is None
        else s.with_(step=first, step_grain="action").url(),
    }


def _mini_stats(snap: Snapshot) -> list[tuple[str, int]]:
    stats = snap.stats
    return [("mmu_shadow_pages", stats.get("mmu_shadow_pages", 0)),
            ("mmu_unsync", stats.get("mmu_unsync", 0)),
            ("orphans", snap.orphans.total), ("orphans (unsync)", snap.orphans.unsync)]
