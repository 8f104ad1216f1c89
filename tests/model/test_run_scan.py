"""scan_run(): one pass over a recorded run for its markers, quiet actions and page touches.

Each expectation follows from the kernel path or the marker's definition (the module
docstring of mmu_model/run_scan.py), checked against the decoded event log, never against
numbers copied from a run.
"""

from __future__ import annotations

from functools import cache

import pytest

from mmu_model import Run, get_scenario, run_named, run_scenario
from mmu_model.record import EventRecord
from mmu_model.run_scan import scan_run
from mmu_model.scenario import ScenarioSpec


def _spec(name: str, **changes: object) -> ScenarioSpec:
    spec = get_scenario(name).spec
    assert spec is not None
    return spec.replace(**changes)


@cache
def _run(name: str, boots: int = 1, fixes: tuple[str, ...] | None = None) -> Run:
    if get_scenario(name).kind == "replay":  # a seed trace: replayed as it is
        assert boots == 1
        assert fixes is None
        return run_named(name)
    changes: dict[str, object] = {"boots": boots}
    if fixes is not None:
        changes["fixes"] = fixes
    return run_scenario(_spec(name, **changes), record=True)


def _record(run: Run) -> EventRecord:
    assert run.timeline is not None
    return run.timeline.events


# The definitions, stated here rather than imported from the module under test: L1's
# teardown passes (guest.py's l1_zap_* and l1_freeze_* actions; L2 activity between passes
# does not end a teardown) and the one counter that is a cost, not state.
TEARDOWN_START = {"l1_zap_4k", "l1_zap_entry", "l1_freeze_run", "l1_freeze_pt"}
TEARDOWN_GOES_ON = TEARDOWN_START | {"l2_activity"}
COST_COUNTERS = {"hash_walked"}

RUNS = [("teaching-small", 1), ("seed-bottom-up", 1), ("boot-loop-bottom-up", 3),
        ("boot-loop-top-down", 2)]


@pytest.mark.parametrize(("name", "boots"), RUNS)
def test_kind_at_reads_the_kind_event_at_decodes_and_skips_to_the_same_offset(
        name: str, boots: int) -> None:
    rec = _record(_run(name, boots))
    apos = bpos = 0
    for _ in range(rec.n_events):
        kind, _path, _args, apos = rec.event_at(apos)
        skipped, bpos = rec.kind_at(bpos)
        assert (skipped, bpos) == (kind, apos)


@pytest.mark.parametrize(("name", "boots"), RUNS)
def test_the_scan_is_each_definition_applied_to_the_decoded_events(name: str,
                                                                    boots: int) -> None:
    rec = _record(_run(name, boots))
    names = rec.counter_names
    leak_i, orphan_i = names.index("orphans_unsync"), names.index("orphans")
    want: dict[str, list[int]] = {k: [] for k in (
        "leak", "orphan", "flood", "teardown", "leak_actions", "orphan_actions", "loud")}
    touches: dict[int, list[int]] = {}
    prev_first_kind = ""
    for a in range(rec.n_actions):
        first, end = rec.action_first[a], rec.action_end(a)
        net = {leak_i: 0, orphan_i: 0}
        loud = False
        for index in range(first, end):
            kind, _path, _args, changes, deltas = rec.event(index)
            if index == first:
                if kind in TEARDOWN_START and prev_first_kind not in TEARDOWN_GOES_ON:
                    want["teardown"].append(index)
                prev_first_kind = kind
            elif kind == "detect_write_flooding":
                want["flood"].append(index)
            for sp_id in dict.fromkeys(c[0] for c in changes):
                touches.setdefault(sp_id, []).append(index)
            loud = loud or bool(changes)
            for i, delta in deltas:
                loud = loud or names[i] not in COST_COUNTERS
                if i in net:
                    net[i] += delta
                    if delta > 0:
                        want["leak" if i == leak_i else "orphan"].append(index)
        if loud:
            want["loud"].append(a + 1)
        if net[leak_i] > 0:
            want["leak_actions"].append(a + 1)
        if net[orphan_i] > 0:
            want["orphan_actions"].append(a + 1)

    got = scan_run(rec)
    assert list(got.leak) == want["leak"]
    assert list(got.orphan) == want["orphan"]
    assert list(got.flood) == want["flood"]
    assert list(got.teardown) == want["teardown"]
    assert list(got.leak_actions) == want["leak_actions"]
    assert list(got.orphan_actions) == want["orphan_actions"]
    assert list(got.loud_actions) == want["loud"]
    for sp_id in range(len(got.touch_start) - 1):
        row = list(got.touch_events[got.touch_start[sp_id]:got.touch_start[sp_id + 1]])
        assert row == touches.get(sp_id, []), sp_id
    assert len(got.touch_start) - 1 == max(touches) + 1


@pytest.mark.parametrize(("name", "boots"), [("seed-bottom-up", 1), ("boot-loop-bottom-up", 3),
                                             ("large-10k", 1)])
def test_flood_markers_and_misaligned_writes_add_up_to_mmu_flooded(name: str,
                                                                   boots: int) -> None:
    # kvm_mmu_track_write() bumps mmu_flooded once for every page it zaps because
    # detect_write_misaligned() or detect_write_flooding() said so, and the model emits one
    # event of that name each time: the flood markers are the second kind.
    run = _run(name, boots)
    rec = _record(run)
    misaligned = sum(1 for i in range(rec.n_events)
                     if rec.event(i)[0] == "detect_write_misaligned")
    assert len(scan_run(rec).flood) + misaligned == run.final_stats["mmu_flooded"]
    assert run.final_stats["mmu_flooded"] > 0  # the check saw some


def test_one_boot_marker_per_l2_boot_at_the_first_event_of_an_action() -> None:
    # Boot k's marker is the first event of the first action recorded in boot k.
    run = _run("boot-loop-bottom-up", 3)
    rec = _record(run)
    first_of_boot: dict[int, int] = {}
    for a in range(rec.n_actions):
        first_of_boot.setdefault(rec.boot_of_action(a), rec.action_first[a])
    assert sorted(first_of_boot) == [1, 2, 3]
    assert list(scan_run(rec).boot) == [first_of_boot[k] for k in (1, 2, 3)]


def test_without_the_fix_every_leak_stays_and_with_it_no_action_leaks() -> None:
    # Pre-patch, nothing syncs or frees an orphaned unsync page, so orphans_unsync only
    # rises, one event at a time: the leak markers are as many as the run's unsync orphans.
    # With track-write-zap, kvm_mmu_track_write() zaps each orphan in the action that
    # orphaned it: no action ends with more orphaned unsync pages than it began with.
    leaky = _run("boot-loop-bottom-up", 3)
    found = scan_run(_record(leaky))
    assert len(found.leak) == leaky.orphans.unsync > 0
    assert len(found.leak_actions) > 0
    fixed_spec = _spec("boot-loop-bottom-up")
    fixed = _run("boot-loop-bottom-up", 3, (*fixed_spec.fixes, "track-write-zap"))
    assert fixed.orphans.unsync == 0
    assert list(scan_run(_record(fixed)).leak_actions) == []
