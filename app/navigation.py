"""The timeline's navigation panel: markers, next / previous of each kind, skipping quiet
steps, and search by gfn or shadow page id. Pure functions of a resolved view and its
run's index (app/markers.py); every control is a view URL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from app.markers import MARKER_KINDS, RunIndex, run_index
from app.resolve import Baseline, PageRuns, Resolved
from app.viewstate import ViewState
from mmu_model import Grain
from mmu_model.snapshot import StepSummary

__all__ = ["MAX_FOUND_STEPS", "drawn_at_another_step", "markers_json", "nav_context",
           "parse_find", "select_found", "step_urls"]

MAX_FOUND_STEPS = 40


def skipping(state: ViewState) -> bool:
    return state.skip and state.grain == "action"


def step_urls(r: Resolved) -> dict[str, str]:
    """Previous and next step: with skipping on, the nearest steps that change something."""
    s, snap = r.state, r.snap
    last = snap.last_step
    if skipping(s):
        index = run_index(r.entry)
        prev_step, next_step = index.prev_loud(snap.step), index.next_loud(snap.step)
    else:
        prev_step, next_step = max(snap.step - 1, 0), min(snap.step + 1, last)
    return {"prev": s.with_(step=prev_step).url(), "next": s.with_(step=next_step).url()}


def drawn_at_another_step(r: Resolved, drawn: tuple[ViewState, StepSummary] | None) -> bool:
    """Whether the view the browser has drawn (X-Mmu-Drawn) is this one at another step.

    Then what does not change with the step (the marker strip, the scenario and trace
    forms, the scenario picker) is not sent again: the fragment holds an empty placeholder
    with the element's id and hx-preserve, which htmx replaces with the one it has.
    """
    return drawn is not None and drawn[0].url(omit=("step",)) == r.state.url(omit=("step",))


def parse_find(text: str) -> tuple[str, int]:
    """'#12' -> ("sp", 12); '0x1a' or '1a' -> ("gfn", 0x1a). The pattern is ViewState's."""
    if text.startswith("#"):
        return "sp", int(text[1:])
    return "gfn", int(text, 16)


def _found_pages(index: RunIndex, what: str, value: int) -> list[int]:
    if what == "sp":
        return [value] if index.touches(value) else []
    return index.pages_of_gfn(value)


def select_found(runs: PageRuns) -> PageRuns:
    """A view with `find` and no `sp` selects the page found: the one live at this step
    (the lowest id if several shadow the gfn), else the first the run made."""
    r = runs.main
    if r.state.find is None or r.state.sp is not None:
        return runs
    pages = _found_pages(run_index(r.entry), *parse_find(r.state.find))
    if not pages:
        return runs
    live = {p.id for p in r.full.pages}  # a search only: costs the tree once
    chosen = next((p for p in pages if p in live), pages[0])
    return replace(runs, main=replace(r, state=r.state.with_(sp=chosen)))


def _search(r: Resolved, index: RunIndex) -> dict[str, Any] | None:
    s = r.state
    if s.find is None:
        return None
    what, value = parse_find(s.find)
    label = f"shadow page #{value}" if what == "sp" else f"gfn {value:#x}"
    pages = _found_pages(index, what, value)
    touched: set[int] = set()
    for sp_id in pages:
        touched.update(index.touches(sp_id))
    steps = index.steps(sorted(touched), s.grain)
    shown = steps[:MAX_FOUND_STEPS]
    return {
        "label": label, "found": bool(pages),
        "pages": [{"id": p, "url": s.with_(sp=p).url()} for p in pages[:16]],
        "more_pages": max(len(pages) - 16, 0),
        "steps": [{"step": st, "url": s.with_(step=st).url(), "current": st == r.snap.step}
                  for st in shown],
        "more_steps": len(steps) - len(shown),
        "clear_url": s.with_(find=None, sp=None).url(),
    }


@dataclass(frozen=True)
class _StripLinks:
    """A kind's strip buckets with their links, built only when the strip is rendered (it
    is rendered once per view and kept with the run: RunEntry.kept_html)."""

    index: RunIndex
    kind: str
    grain: Grain
    last_step: int
    at_step: str  # the view's URL up to its step's value

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for b in self.index.buckets(self.kind, self.grain, self.last_step):
            yield b | {"url": f"{self.at_step}{b['step']}"}


def nav_context(r: Resolved, baseline: Baseline | None,
                drawn: tuple[ViewState, StepSummary] | None = None) -> dict[str, Any]:
    """Marker strip, next / previous links per kind, the skip toggle and the search result.

    The strip is the same at every step of a view (its links differ in the step only), and
    a long run's is large, so it is sent once: when the browser has drawn a view that
    differs from this one in its step alone (X-Mmu-Drawn), `strip_kept` says to send an
    empty placeholder that htmx replaces with the strip it has (hx-preserve, by id).
    """
    s, snap = r.state, r.snap
    index = run_index(r.entry)
    grain = s.grain
    last = snap.last_step
    base = s.url(omit=("step",))
    at_step = base + "&step="  # every marker is this view at its step
    strip_id = "markers-" + hashlib.sha1(base.encode()).hexdigest()[:12]
    kept = drawn_at_another_step(r, drawn)
    kinds = []
    for kind in MARKER_KINDS.values():
        steps = index.marker_steps(kind.name, grain)
        if not steps:
            continue
        before, after = index.before(steps, snap.step), index.after(steps, snap.step)
        kinds.append({
            "name": kind.name, "label": kind.label, "plural": kind.plural, "key": kind.key,
            "description": kind.description, "count": len(steps),
            "prev_url": None if before is None else s.with_(step=before).url(),
            "next_url": None if after is None else s.with_(step=after).url(),
            "prev_step": before, "next_step": after,
            "buckets": _StripLinks(index, kind.name, grain, last, at_step),
        })
    diff = None
    if baseline is not None and baseline.first_difference is not None:
        first = baseline.first_difference
        step = first if grain == "action" else r.run.convert_step(first, "action", "op")
        diff = {"step": step, "left": round(100 * step / last, 3) if last else 0,
                "url": s.with_(step=first, step_grain="action").url()}
    return {
        "kinds": kinds, "diff": diff, "last_step": last, "strip_id": strip_id,
        # The browser has this strip (nothing is sent), or the run keeps its HTML per view.
        "strip_kept": kept,
        "keep_strip": partial(r.entry.kept_html, ("marker-strip", base, diff and diff["step"])),
        "skip": {"shown": grain == "action", "on": s.skip, "quiet": index.n_quiet,
                 "url": s.with_(skip=not s.skip).url(),
                 "current_quiet": grain == "action" and snap.step > 0
                 and index.is_quiet(snap.step)},
        "search": _search(r, index),
        "find_fields": s.query_pairs(omit=("find", "sp", "stop")),
        "find_value": s.find or "",
    }


MAX_JSON_STEPS = 1000


def markers_json(r: Resolved) -> dict[str, Any]:
    """The run's markers in the view's grain, for /api/markers: per kind its steps (the
    first MAX_JSON_STEPS; `count` counts all) and the strip's buckets; the quiet steps'
    count; the search result when the view has `find`."""
    s = r.state
    index = run_index(r.entry)
    last = r.snap.last_step
    kinds: dict[str, Any] = {}
    for kind in MARKER_KINDS.values():
        steps = index.marker_steps(kind.name, s.grain)
        kinds[kind.name] = {
            "description": kind.description, "key": kind.key, "count": len(steps),
            "steps": steps[:MAX_JSON_STEPS],
            "buckets": [{"step": b["step"], "last": b["last"], "count": b["count"]}
                        for b in index.buckets(kind.name, s.grain, last)],
        }
    search = _search(r, index)
    return {
        "grain": s.grain, "step": r.snap.step, "last_step": last, "kinds": kinds,
        "quiet_steps": index.n_quiet if s.grain == "action" else 0,
        "search": None if search is None else {
            "label": search["label"], "pages": [p["id"] for p in search["pages"]],
            "steps": [st["step"] for st in search["steps"]],
            "more_steps": search["more_steps"],
        },
    }
