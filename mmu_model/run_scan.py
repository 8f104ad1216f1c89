"""One pass over a recorded run's events for what a reader of the run looks for.

The web layer's timeline markers, its "skip the steps that change nothing" and its
per-page history (app/markers.py) all come from the same walk over every recorded event:
its kind, the pages whose state it changed and its counter deltas.  On a 100k-page run
that is 800,000 events, so the walk is here, compiled with the recorder it reads
(scripts/build_compiled.py), and returns flat arrays.

What it finds, as event indices (0-based) or action steps (1-based), ascending:

- leak: an event that raises orphans_unsync (a page orphaned while unsync: nothing will
  sync or free it); orphan: an event that raises orphans (a valid page lost its last
  parent SPTE);
- leak / orphan action marks: the actions whose net change of those counters is up (a
  flood zap can orphan a page and free it within one action: no mark);
- flood: a detect_write_flooding event (it zapped a page);
- teardown: the first event of an action of L1 tearing its EPT tables down that follows
  other work;
- boot: the first event of each L2 boot (boot > 0);
- loud actions: the actions that change a page or a counter other than hash_walked (the
  hash-walk tally is a cost, not state: a quiet action draws what the one before drew);
- touches: (sp id, event index) for every event that changed a page's state, grouped by
  sp id (a counting sort: the event indices of sp id k are
  touch_events[touch_start[k]:touch_start[k + 1]]).
"""

from __future__ import annotations

from array import array

from mmu_model.record import EventRecord

__all__ = ["COST_COUNTERS", "TEARDOWN_GOES_ON", "TEARDOWN_START", "RunScan", "scan_run"]

# L1's teardown passes (guest.py): the first zap action after other work starts one; L2
# activity between the passes does not end it.
TEARDOWN_START = frozenset({"l1_zap_4k", "l1_zap_entry", "l1_freeze_run", "l1_freeze_pt"})
TEARDOWN_GOES_ON = TEARDOWN_START | {"l2_activity"}
COST_COUNTERS = frozenset({"hash_walked"})


class RunScan:
    """What scan_run() found (see the module docstring)."""

    def __init__(self, lists: dict[str, list[int]], touch_start: array[int],
                 touch_events: array[int]) -> None:
        self.leak = array("q", lists["leak"])
        self.orphan = array("q", lists["orphan"])
        self.flood = array("q", lists["flood"])
        self.teardown = array("q", lists["teardown"])
        self.boot = array("q", lists["boot"])
        self.leak_actions = array("q", lists["leak_actions"])
        self.orphan_actions = array("q", lists["orphan_actions"])
        self.loud_actions = array("q", lists["loud_actions"])
        self.touch_start = touch_start
        self.touch_events = touch_events


def scan_run(rec: EventRecord) -> RunScan:
    names = rec.counter_names
    leak_i = names.index("orphans_unsync")
    orphan_i = names.index("orphans")
    cost = [name in COST_COUNTERS for name in names]
    # Lists while scanning (a list append is a compiled primitive, an array's is a call).
    leak: list[int] = []
    orphan: list[int] = []
    flood: list[int] = []
    teardown: list[int] = []
    leak_actions: list[int] = []
    orphan_actions: list[int] = []
    loud_actions: list[int] = []
    touched_sp: list[int] = []
    touched_ev: list[int] = []
    n_events = rec.n_events
    action_first = rec.action_first
    n_actions = rec.n_actions
    apos = 0
    spos = 0
    prev_action_kind = ""
    for a in range(n_actions):
        first = action_first[a]
        end = action_first[a + 1] if a + 1 < n_actions else n_events
        changed = False
        net_leak = 0
        net_orphan = 0
        for index in range(first, end):
            kind, apos = rec.kind_at(apos)
            changes, deltas, spos = rec.changes_at(spos)
            if index == first:
                if kind in TEARDOWN_START and prev_action_kind not in TEARDOWN_GOES_ON:
                    teardown.append(index)
                prev_action_kind = kind
            elif kind == "detect_write_flooding":
                flood.append(index)
            if changes:  # each page at most once: an event's pages are Kvm.touched, a set
                changed = True
                for change in changes:
                    touched_sp.append(change[0])
                    touched_ev.append(index)
            for i, delta in deltas:
                if not cost[i]:
                    changed = True
                if i == leak_i:
                    net_leak += delta
                    if delta > 0:
                        leak.append(index)
                elif i == orphan_i:
                    net_orphan += delta
                    if delta > 0:
                        orphan.append(index)
        if changed:
            loud_actions.append(a + 1)
        if net_leak > 0:
            leak_actions.append(a + 1)
        if net_orphan > 0:
            orphan_actions.append(a + 1)
    boot = [action_first[rec.boot_first[k]] for k in range(len(rec.boot_first))
            if rec.boot_values[k] > 0]
    touch_start, touch_events = _rows(touched_sp, touched_ev)
    return RunScan({"leak": leak, "orphan": orphan, "flood": flood, "teardown": teardown,
                    "boot": boot, "leak_actions": leak_actions,
                    "orphan_actions": orphan_actions, "loud_actions": loud_actions},
                   touch_start, touch_events)


def _rows(keys: list[int], values: list[int]) -> tuple[array[int], array[int]]:
    """Counting sort of (key, value) pairs by key, keeping the values' order within a key:
    start[k]:start[k + 1] is key k's slice of the returned values."""
    n_keys = 0
    for key in keys:
        if key + 1 > n_keys:
            n_keys = key + 1
    start = [0] * (n_keys + 1)
    for key in keys:
        start[key + 1] += 1
    for k in range(n_keys):
        start[k + 1] += start[k]
    fill = start.copy()
    out = [0] * len(values)
    for j in range(len(keys)):
        key = keys[j]
        out[fill[key]] = values[j]
        fill[key] += 1
    return array("i", start), array("i", out)
