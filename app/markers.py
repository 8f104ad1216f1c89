"""What matters in a run, found once from its event log: the timeline's markers, the steps
that change nothing, and which steps touched each shadow page.

One pass over the run's recorded events (kinds and state changes; no narration is built;
mmu_model.run_scan.scan_run, compiled with the recorder: done by the build worker while the
server loads the run, and kept in the run store with it, app/run_parts.py) gives, per
marker kind, the sorted event indices where it happens:

- leak: orphans_unsync goes up (a page is orphaned while unsync: nothing will sync or free it);
- orphan: orphans goes up (any page loses its last parent SPTE while it stays valid);
  at the action grain both count an action whose net change is up (a flood zap may orphan
  a page for a moment and free it in the same action);
- flood: detect_write_flooding() zapped a page;
- teardown: L1 starts tearing an EPT root down (its first zap action after other work);
- boot: the first action of each L2 boot.

A *quiet* action changes no page and no counter but the hash-walk tally (a cost, not
state): the step draws exactly what the one before it drew.  The index is per run (a run is
a pure function of its key), kept in the run's cache entry; the timeline strip draws it in
at most MAX_BUCKETS buckets per kind, so a 100k-event run's markers stay small.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app.run_parts import run_scan_of
from app.runs import RunEntry
from mmu_model import Grain

__all__ = ["MARKER_KINDS", "MAX_BUCKETS", "MarkerKind", "RunIndex", "run_index"]

MAX_BUCKETS = 240


@dataclass(frozen=True)
class MarkerKind:
    name: str
    label: str  # "next <label>"
    plural: str
    key: str  # the key for next; shift + key for previous
    description: str


MARKER_KINDS: dict[str, MarkerKind] = {k.name: k for k in (
    MarkerKind("leak", "leak", "leaks", "n",
               "an orphaned unsync page appears (orphans_unsync goes up): the leak"),
    MarkerKind("orphan", "orphaning", "orphanings", "o",
               "a valid page loses its last parent SPTE (orphans goes up)"),
    MarkerKind("flood", "flood zap", "flood zaps", "f",
               "detect_write_flooding() zaps a page and everything still linked below it"),
    MarkerKind("teardown", "root teardown", "root teardowns", "t",
               "L1 starts tearing an EPT root down"),
    MarkerKind("boot", "boot", "boots", "b", "an L2 boot starts"),
)}

@dataclass
class RunIndex:
    """The marker events, quiet actions and per-page touches of one run (see module doc)."""

    n_events: int
    n_actions: int
    action_first: Sequence[int]
    events: dict[str, array[int]]  # marker kind -> event indices, ascending
    action_marks: dict[str, array[int]]  # leak, orphan: action steps whose net change is up
    loud_actions: array[int]  # action steps (1-based) that change something, ascending
    # Which events changed each page's state, as one array in sp id order (compressed
    # rows): sp id k's event indices are touch_events[touch_start[k]:touch_start[k + 1]].
    touch_start: array[int]
    touch_events: array[int]
    page_gfns: tuple[Sequence[int], Sequence[int]]  # (sp id, gfn) of every page, by row
    _steps: dict[tuple[str, str], list[int]] = field(default_factory=dict, repr=False)
    _buckets: dict[tuple[str, str, int], list[dict[str, Any]]] = field(
        default_factory=dict, repr=False)

    # -- steps -----------------------------------------------------------------------------
    def step_of_event(self, index: int, grain: Grain) -> int:
        if grain == "op":
            return index + 1
        return bisect_right(self.action_first, index)  # action index + 1

    def steps(self, indices: Sequence[int], grain: Grain) -> list[int]:
        """The distinct steps of `grain` that the events at `indices` belong to."""
        out: list[int] = []
        for index in indices:
            step = self.step_of_event(index, grain)
            if not out or out[-1] != step:
                out.append(step)
        return out

    def marker_steps(self, kind: str, grain: Grain) -> list[int]:
        """The kind's steps in `grain`, ascending (worked out once per kind and grain)."""
        key = (kind, grain)
        steps = self._steps.get(key)
        if steps is None:
            if grain == "action" and kind in self.action_marks:
                steps = list(self.action_marks[kind])
            else:
                steps = self.steps(self.events[kind], grain)
            self._steps[key] = steps  # a race only computes the same list twice
        return steps

    @staticmethod
    def after(steps: Sequence[int], step: int) -> int | None:
        i = bisect_right(steps, step)
        return steps[i] if i < len(steps) else None

    @staticmethod
    def before(steps: Sequence[int], step: int) -> int | None:
        i = bisect_left(steps, step)
        return steps[i - 1] if i > 0 else None

    # -- pages -------------------------------------------------------------------------------
    def touches(self, sp_id: int) -> Sequence[int]:
        """Indices of the events that changed `sp_id`'s state, ascending (empty: never)."""
        if not 0 <= sp_id < len(self.touch_start) - 1:
            return ()
        return self.touch_events[self.touch_start[sp_id]:self.touch_start[sp_id + 1]]

    def pages_of_gfn(self, gfn: int) -> list[int]:
        """The ids of every page that ever shadowed `gfn`, ascending (a scan: searches are
        rare, and a table per gfn would cost as much as the run's own page rows)."""
        ids, gfns = self.page_gfns
        return sorted(sp for sp, g in zip(ids, gfns, strict=True) if g == gfn)

    # -- quiet steps -------------------------------------------------------------------------
    def is_quiet(self, action_step: int) -> bool:
        i = bisect_left(self.loud_actions, action_step)
        return not (i < len(self.loud_actions) and self.loud_actions[i] == action_step)

    def next_loud(self, action_step: int) -> int:
        """The next action step that changes something (the last step if none does)."""
        found = self.after(self.loud_actions, action_step)
        return self.n_actions if found is None else found

    def prev_loud(self, action_step: int) -> int:
        """The previous action step that changes something (step 0 if none does)."""
        found = self.before(self.loud_actions, action_step)
        return 0 if found is None else found

    @property
    def n_quiet(self) -> int:
        return self.n_actions - len(self.loud_actions)

    # -- strip -------------------------------------------------------------------------------
    def buckets(self, kind: str, grain: Grain, last_step: int) -> list[dict[str, Any]]:
        """The kind's steps in at most MAX_BUCKETS groups: first step, count, position (%).

        Worked out once per kind and grain; callers must not change the dicts."""
        key = (kind, grain, last_step)
        cached = self._buckets.get(key)
        if cached is None:
            cached = self._buckets[key] = self._bucket(kind, grain, last_step)
        return cached

    def _bucket(self, kind: str, grain: Grain, last_step: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if last_step <= 0:
            return out
        width = max(1, -(-last_step // MAX_BUCKETS))
        for step in self.marker_steps(kind, grain):
            bucket = (step - 1) // width
            if out and out[-1]["bucket"] == bucket:
                out[-1]["count"] += 1
                out[-1]["last"] = step
                continue
            out.append({"bucket": bucket, "step": step, "last": step, "count": 1,
                        "left": round(100 * step / last_step, 3)})
        return out


def _build(entry: RunEntry) -> RunIndex:
    timeline = entry.run.timeline
    if timeline is None:
        raise ValueError("the run was not recorded")
    rec = timeline.events
    found = run_scan_of(entry)  # scanned by the build worker, or stored with the run
    events: dict[str, array[int]] = {kind: found[kind] for kind in MARKER_KINDS}
    action_marks = {"leak": found["leak_actions"], "orphan": found["orphan_actions"]}
    return RunIndex(rec.n_events, rec.n_actions, rec.action_first, events, action_marks,
                    found["loud_actions"], found["touch_start"], found["touch_events"],
                    (rec.st_id, rec.st_gfn))


def _nbytes(index: RunIndex) -> int:
    """What the index holds: its arrays (the page rows it reads are the run's own)."""
    arrays = [*index.events.values(), *index.action_marks.values(), index.loud_actions,
              index.touch_start, index.touch_events]
    return sum(a.itemsize * len(a) + 64 for a in arrays)


def run_index(entry: RunEntry) -> RunIndex:
    """The run's index, built on first use and kept with the cached run, whose weight in
    the run cache's byte budget then counts it too."""
    index: RunIndex = entry.derive("nav-index", lambda: _build(entry), _nbytes)
    return index
