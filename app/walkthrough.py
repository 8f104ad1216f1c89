"""Walkthroughs: a few captioned stops through a built-in run, for a lecture or a review.

A stop is found in the run's own events (the first leak, the first flood zap, ...; see
app/markers.py), never a fixed step number, so the stops stay right when the model or the
fix set changes; a stop whose event never happens in the run is left out. A caption is
plain text in our own words; {name} fields are filled from the model at the stop's step:
any KVM stat, `orphans`, `orphans_unsync`, `n_pages`, `step`.

A stop is a view URL: `stop=<k>` (1-based) with the stop's action step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.errors import ViewError
from app.fixsets import TRACK_WRITE_ZAP
from app.markers import RunIndex, run_index
from app.resolve import Resolved

__all__ = ["TOURS", "Stop", "tour_context", "tour_stops"]

Finder = Callable[[RunIndex], int | None]


def last(kind: str) -> Finder:
    def find(index: RunIndex) -> int | None:
        steps = index.marker_steps(kind, "action")
        return steps[-1] if steps else None
    return find


def nth(kind: str, n: int) -> Finder:
    """The n-th (1-based) step of a kind."""
    def find(index: RunIndex) -> int | None:
        steps = index.marker_steps(kind, "action")
        return steps[n - 1] if len(steps) >= n else None
    return find


def first(kind: str) -> Finder:
    return nth(kind, 1)


def before(finder: Finder) -> Finder:
    """The step just before another stop: the state it starts from."""
    def find(index: RunIndex) -> int | None:
        step = finder(index)
        return step - 1 if step is not None and step > 1 else None
    return find


def first_after(kind: str, finder: Finder) -> Finder:
    def find(index: RunIndex) -> int | None:
        step = finder(index)
        return None if step is None else index.after(index.marker_steps(kind, "action"), step)
    return find


def opening(index: RunIndex) -> int | None:
    return 1 if index.n_actions else None


def ending(index: RunIndex) -> int | None:
    return index.n_actions or None


@dataclass(frozen=True)
class Stop:
    find: Finder
    title: str
    caption: str
    with_patch: str | None = None  # the caption when track-write-zap is on, if different


_END = ("At the end, {orphans_unsync} orphaned unsync pages are left and {mmu_shadow_pages} "
        "shadow pages are still counted. Turn on track-write-zap (patch 1/2) and run it "
        "again: the same steps leave no unsync orphan.")
_END_PATCHED = ("At the end, with patch 1/2 on, {orphans_unsync} orphaned unsync pages are "
                "left and {mmu_shadow_pages} shadow pages are still counted: each emulated "
                "PDE zap took the unsync page below it along. Turn track-write-zap off to "
                "see the leak.")

TOURS: dict[str, tuple[Stop, ...]] = {
    "teaching-small": (
        Stop(opening, "L2 starts",
             "L2 enters with its EPT root; L0 allocates a shadow root for it. Every shadow "
             "page built later hangs below a root like this one."),
        Stop(before(first("teardown")), "The tree is built",
             "L2 has touched its memory, so L0 shadows each L1 table with a shadow page: "
             "{mmu_shadow_pages} of them. L1 has just moved L2 to a fresh root; the old tree "
             "is about to be torn down."),
        Stop(first("teardown"), "The 4 KiB pass unsyncs the PTs",
             "L1 zaps every 4 KiB entry first. Its first store into each PT makes L0 unsync "
             "that PT's shadow page instead of trapping every write: {mmu_unsync} pages are "
             "unsync now."),
        Stop(first("leak"), "The first leak",
             "L1 zaps a PDE. kvm_mmu_track_write() clears the SPTE but gives "
             "mmu_page_zap_pte() no invalid_list, so the unsync PT below loses its only parent "
             "and is not zapped: an orphaned unsync page, which nothing will sync or free."),
        Stop(first("flood"), "Flood detection zaps the PD",
             "The third trapped write to the PD with no use in between: L0 zaps the whole "
             "PD and the unsync pages still linked below it. The pages orphaned before are "
             "not linked any more, so they stay: {orphans_unsync} leaked."),
        Stop(nth("teardown", 2), "The next root goes the same way",
             "L2 built a new tree and L1 tears the next root down in the same order; watch "
             "the same PDE zaps orphan two more unsync PTs."),
        Stop(ending, "The end", _END, _END_PATCHED),
    ),
    "seed-bottom-up": (
        Stop(opening, "The trace's starting point",
             "The replay rebuilds L1's tables from the trace's old values and gives each a "
             "shadow page, as L0 had them: {mmu_shadow_pages} pages, the {mmu_unsync} "
             "level-1 ones unsync, as L1's 4 KiB pass left them."),
        Stop(first("leak"), "A PDE zap orphans an unsync PT",
             "A trace line zaps a PDE. kvm_mmu_track_write() passes no invalid_list to "
             "mmu_page_zap_pte(), so the unsync PT below is orphaned: the first leak."),
        Stop(first("flood"), "A flood zap",
             "The third write to one PD: flood detection zaps it, and the recursive zap "
             "takes its children that are still linked. The orphans are not among them."),
        Stop(first_after("leak", first("flood")), "The leaks go on",
             "The next PD is zapped entry by entry the same way: each zap of a PDE with an "
             "unsync PT below adds a leak ({orphans_unsync} so far)."),
        Stop(last("flood"), "The last flood zap",
             "Flood detection fires once more and zaps what is still linked below that "
             "page; the orphans are not linked, so it misses them."),
        Stop(ending, "The end of the trace", _END, _END_PATCHED),
    ),
    "seed-top-down": (
        Stop(opening, "The trace's starting point",
             "The replay rebuilds L1's tables from the trace's old values, each with its "
             "shadow page: {mmu_shadow_pages} pages, {mmu_unsync} of them unsync."),
        Stop(first("orphan"), "A zap orphans a page",
             "L1 zaps an entry of a higher-level table first; the page below loses its only "
             "parent and becomes an orphan ({orphans} now)."),
        Stop(first("leak"), "An unsync page is orphaned",
             "This time the page cut loose is unsync: a leak ({orphans_unsync} now)."),
        Stop(first("flood"), "Flood detection kicks in",
             "The third write to the same table with no use in between: flood detection "
             "zaps it with whatever is still linked below it. After this step: {orphans} "
             "orphans, {orphans_unsync} of them unsync."),
        Stop(last("flood"), "The last flood zap",
             "The last table L1 writes is flood-zapped too."),
        Stop(ending, "The end of the trace", _END, _END_PATCHED),
    ),
}


def tour_name(r: Resolved) -> str | None:
    if r.source.kind == "trace" or r.source.info is None:
        return None
    name = r.source.info.name
    return name if name in TOURS else None


def tour_stops(r: Resolved) -> list[tuple[int, Stop]]:
    """(action step, stop) of the view's source, each step once, in step order."""
    name = tour_name(r)
    if name is None:
        return []
    index = run_index(r.entry)
    found: dict[int, Stop] = {}
    for stop in TOURS[name]:
        step = stop.find(index)
        if step is not None and step not in found:
            found[step] = stop
    return sorted(found.items(), key=lambda item: item[0])


def _caption(r: Resolved, step: int, stop: Stop) -> str:
    snap = r.entry.summary(step, "action")  # the counts only: no page is built
    values: dict[str, Any] = {**snap.stats, "n_pages": snap.n_pages, "step": step,
                              "orphans": snap.orphans.total,
                              "orphans_unsync": snap.orphans.unsync}
    patched = stop.with_patch is not None and TRACK_WRITE_ZAP in r.state.fix_set
    return (stop.with_patch if patched and stop.with_patch else stop.caption).format_map(values)


def tour_context(r: Resolved) -> dict[str, Any] | None:
    """The walkthrough panel: a start link, or the current stop with previous / next."""
    s = r.state
    stops = tour_stops(r)
    if not stops:
        if s.stop is not None:
            raise ViewError("stop", "this source has no walkthrough; stop applies to "
                            + ", ".join(TOURS))
        return None

    def url(k: int) -> str:
        return s.with_(stop=k, step=stops[k - 1][0], step_grain="action", find=None,
                       sp=None).url()

    if s.stop is None:
        return {"active": False, "count": len(stops), "start_url": url(1)}
    if s.stop > len(stops):
        raise ViewError("stop", f"this walkthrough has {len(stops)} stops; stop must be "
                        f"1..{len(stops)} (got {s.stop})")
    k = s.stop
    step, stop = stops[k - 1]
    here = r.action_step == step
    return {
        "active": True, "count": len(stops), "k": k, "step": step, "title": stop.title,
        "caption": _caption(r, step, stop), "here": here, "here_url": url(k),
        "prev_url": url(k - 1) if k > 1 else None,
        "next_url": url(k + 1) if k < len(stops) else None,
        "end_url": s.with_(stop=None).url(),
        "stops": [{"k": j, "step": st, "title": sp.title, "url": url(j), "current": j == k}
                  for j, (st, sp) in enumerate(stops, start=1)],
    }
