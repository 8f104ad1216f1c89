"""Seeking in a recorded run (mmu_model.timeline): every snapshot must be the state the
model really was in after that step.

The oracle is a second, unrecorded-by-the-timeline run of the same scenario that captures
the live Kvm after every event (a run is a pure function of its spec, so it passes through
the same states); snapshots are compared with those captures in order, in random order and
from both grains, with checkpoints close together so that seeks start from them.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import random
from pathlib import Path

import pytest

import mmu_model
import mmu_model.replay
import mmu_model.simulate
from mmu_model import mmu
from mmu_model.exceptions import StepOutOfRange
from mmu_model.fixes import DEFAULT_FIXES
from mmu_model.kvm import EventKind, Kvm
from mmu_model.narration import ACTION_KINDS, KERNEL_KINDS
from mmu_model.scenario import ScenarioSpec
from mmu_model.timeline import Timeline

POST_PATCH = DEFAULT_FIXES | {"track-write-zap"}
RUNS = ["teaching-small", "seed-bottom-up", "seed-top-down"]
MODEL_DIR = Path(mmu_model.__file__).resolve().parent


def live_state(kvm: Kvm) -> tuple[dict, dict]:
    """Every allocated shadow page and every tracked counter, read off the live Kvm."""
    pages = {
        sp.id: (sp.gfn, sp.role.level, dataclasses.replace(sp.role, invalid=False).word,
                sp.unsync, sp.role.invalid, sp.orphan, sp.unsync_children,
                sp.write_flooding_count, sp.root_count, sp.n_leaves,
                tuple((p.id, i) for p, i in sp.parent_ptes))
        for sp in kvm.sps
    }
    counters = {**kvm.stat.as_dict(), "orphans": len(kvm.orphans),
                "orphans_unsync": kvm.orphans_unsync, "rmap_entries": kvm.rmaps.entries,
                "indirect_shadow_pages": kvm.indirect_shadow_pages,
                "hash_walked": kvm.hash_walked}
    return pages, counters


def snapshot_state(snap) -> tuple[dict, dict]:
    pages = {
        p.id: (p.gfn, p.level, p.role_word, p.unsync, p.invalid, p.orphan, p.unsync_children,
               p.write_flooding_count, p.root_count, p.leaf_sptes, p.parents)
        for p in snap.pages
    }
    return pages, dict(snap.stats)


class Capture:
    """The live state after every event of every Kvm built while it is installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.after_event: list[tuple[dict, dict]] = [({}, {})]  # op step 0, set below
        self.action_of_event: list[int] = []  # action step each event belongs to
        self.action_end: list[int] = [0]  # op step at which each action step ends
        original_emit, original_begin = Kvm.emit, Kvm.begin_action
        original_event, original_action = Kvm.event, Kvm.action
        original_event_ints = Kvm.event_ints
        original_count_event, original_count_action = Kvm.count_event, Kvm.count_action

        def emit(kvm: Kvm, kind: str, **args: object) -> None:
            original_emit(kvm, kind, **args)
            self._after(kvm)

        def event(kvm: Kvm, kind: EventKind, values: tuple[object, ...]) -> None:
            original_event(kvm, kind, values)
            self._after(kvm)

        def event_ints(kvm: Kvm, kind: EventKind, a: int, b: int = 0, c: int = 0) -> None:
            original_event_ints(kvm, kind, a, b, c)
            self._after(kvm)

        def count_event(kvm: Kvm) -> None:  # an event a headless run only counts
            original_count_event(kvm)
            self._after(kvm)

        def _before_action(kvm: Kvm) -> None:
            if not kvm.events_emitted:
                self.after_event[0] = live_state(kvm)  # the state before anything happened
            if kvm.actions_emitted:
                self.action_end.append(kvm.events_emitted)

        def begin_action(kvm: Kvm, kind: str, **args: object) -> None:
            _before_action(kvm)
            original_begin(kvm, kind, **args)
            self._after(kvm)

        def action(kvm: Kvm, kind: EventKind, values: tuple[object, ...]) -> None:
            _before_action(kvm)
            original_action(kvm, kind, values)
            self._after(kvm)

        def count_action(kvm: Kvm) -> None:
            _before_action(kvm)
            original_count_action(kvm)
            self._after(kvm)

        monkeypatch.setattr(Kvm, "emit", emit)
        monkeypatch.setattr(Kvm, "begin_action", begin_action)
        monkeypatch.setattr(Kvm, "event", event)
        monkeypatch.setattr(Kvm, "event_ints", event_ints)
        monkeypatch.setattr(Kvm, "action", action)
        monkeypatch.setattr(Kvm, "count_event", count_event)
        monkeypatch.setattr(Kvm, "count_action", count_action)

    def _after(self, kvm: Kvm) -> None:
        self.after_event.append(live_state(kvm))
        self.action_of_event.append(kvm.actions_emitted)

    def close(self, kvm_events: int) -> None:
        self.action_end.append(kvm_events)


def _run(name: str, **kw):
    return mmu_model.run_named(name, **kw)


@pytest.fixture
def small_checkpoints(monkeypatch):
    """Checkpoints every 7 events, so seeks start from a checkpoint and replay a few."""
    every7 = functools.partial(Timeline, checkpoint_every=7)
    monkeypatch.setattr(mmu_model.simulate, "Timeline", every7)
    monkeypatch.setattr(mmu_model.replay, "Timeline", every7)


@pytest.fixture
def recorded_and_live(invariants, small_checkpoints, monkeypatch, request):
    name = request.param
    run = _run(name)
    assert run.timeline is not None
    assert run.timeline.checkpoint_every == 7
    capture = Capture(monkeypatch)
    again = _run(name, record=False)
    capture.close(again.n_events)
    assert (again.n_events, again.n_actions) == (run.n_events, run.n_actions)
    assert len(capture.after_event) == run.n_events + 1
    return run, capture


# -- seeking ------------------------------------------------------------------------------------
@pytest.mark.parametrize("recorded_and_live", RUNS, indirect=True)
def test_snapshot_equals_live_state_at_every_op_step(recorded_and_live):
    """snapshot(k, 'op') is the live state after event k, for every k."""
    run, capture = recorded_and_live
    for step in range(run.last_step("op") + 1):
        assert snapshot_state(run.snapshot(step, "op")) == capture.after_event[step], step


@pytest.mark.parametrize("recorded_and_live", RUNS, indirect=True)
def test_snapshot_equals_live_state_at_every_action_step(recorded_and_live):
    """snapshot(a, 'action') is the live state at the end of action a, for every a."""
    run, capture = recorded_and_live
    for step in range(run.last_step("action") + 1):
        expected = capture.after_event[capture.action_end[step]]
        assert snapshot_state(run.snapshot(step, "action")) == expected, step


@pytest.mark.parametrize("recorded_and_live", RUNS, indirect=True)
def test_seeking_in_random_order_gives_the_same_snapshots(recorded_and_live):
    """Seeking has no hidden state: any order of seeks gives the same snapshots."""
    run, _ = recorded_and_live
    for grain in ("action", "op"):
        steps = list(range(run.last_step(grain) + 1))
        in_order = {s: run.snapshot(s, grain) for s in steps}
        random.Random(grain).shuffle(steps)
        for s in steps:
            assert run.snapshot(s, grain) == in_order[s], (grain, s)


@pytest.mark.parametrize("recorded_and_live", RUNS, indirect=True)
def test_convert_step_between_grains(recorded_and_live):
    """An action step maps to the op step that ends it, and every op step to its action."""
    run, capture = recorded_and_live
    for action_step in range(run.last_step("action") + 1):
        op_step = run.convert_step(action_step, "action", "op")
        assert op_step == capture.action_end[action_step]  # where that action ended
        assert run.convert_step(op_step, "op", "action") == action_step
    for op_step in range(1, run.last_step("op") + 1):
        assert run.convert_step(op_step, "op", "action") == capture.action_of_event[op_step - 1]
    for grain in ("action", "op"):
        assert run.convert_step(0, grain, "op" if grain == "action" else "action") == 0


def test_step_zero_is_empty(invariants):
    """Step 0 of either grain is the empty state before anything happened."""
    run = _run("teaching-small")
    for grain in ("action", "op"):
        snap = run.snapshot(0, grain)
        assert snap.pages == ()
        assert snap.ghosts == ()
        assert not snap.changed
        assert set(snap.stats.values()) == {0}
        assert snap.stat_deltas == {}
        assert snap.event is None
        assert snap.action is None
        assert snap.orphans.total == 0
        assert snap.last_step == run.last_step(grain)


def test_steps_past_either_end_raise(invariants):
    """Steps past the last one, or negative, raise StepOutOfRange."""
    run = _run("teaching-small")
    for grain in ("action", "op"):
        last = run.last_step(grain)
        run.snapshot(last, grain)
        for bad in (last + 1, last + 100, -1):
            with pytest.raises(StepOutOfRange):
                run.snapshot(bad, grain)
            with pytest.raises(StepOutOfRange):
                run.convert_step(bad, grain, "op")
    with pytest.raises(StepOutOfRange):
        run.event(run.n_events)
    with pytest.raises(StepOutOfRange):
        run.action(run.n_actions)


# -- narration ---------------------------------------------------------------------------------
def _emitted_literals() -> dict[str, set[str]]:
    """Event kinds written in mmu_model as literals in emit(...) / begin_action(...) calls,
    or declared as ``NAME = EventKind("kind", ...)`` and passed by NAME to event(...) or
    event_ints(...) (a kernel event, filed under "emit") / action(...) (filed under
    "begin_action")."""
    found: dict[str, set[str]] = {"emit": set(), "begin_action": set()}
    calls = {"emit": "emit", "begin_action": "begin_action", "event": "emit",
             "event_ints": "emit", "action": "begin_action"}
    for path in MODEL_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        declared: dict[str, str] = {}  # EventKind constants of this module: NAME -> kind
        for node in ast.walk(tree):
            if (isinstance(node, ast.AnnAssign | ast.Assign)
                    and isinstance(node.value, ast.Call)
                    and isinstance(node.value.func, ast.Name)
                    and node.value.func.id == "EventKind"):
                target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
                assert isinstance(target, ast.Name)
                first = node.value.args[0]
                assert isinstance(first, ast.Constant)
                assert isinstance(first.value, str)
                declared[target.id] = first.value
        used: set[str] = set()
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in calls and node.args
                    and not (isinstance(node.func.value, ast.Attribute)
                             and node.func.value.attr == "recorder")  # Kvm forwarding
                    # Kvm.event(kind, values) / Kvm.action(kind, values), not Timeline's
                    # event(index) / action(index)
                    and (node.func.attr in ("emit", "begin_action", "event_ints")
                         or len(node.args) == 2)
                    # a Recorder's own record() / begin_action(kvm, kind, args)
                    and not (isinstance(node.args[0], ast.Name) and node.args[0].id == "kvm")):
                bucket = found[calls[node.func.attr]]
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    bucket.add(first.value)
                elif isinstance(first, ast.Name) and first.id in declared:
                    bucket.add(declared[first.id])
                    used.add(first.id)
                elif isinstance(first, ast.Name):
                    bucket.add(f"<variable {first.id} in {path.name}>")
        # A kind picked into a variable (see below) is used through it.
        unused = set(declared) - used - {"_MISALIGNED", "_FLOODING"}
        assert not unused, f"EventKinds declared but never emitted in {path.name}: {unused}"
    return found


def test_every_kind_the_source_emits_has_narration():
    """Every event kind written in an emit() / begin_action() call, or declared as an
    EventKind for event() / action(), has a narration renderer."""
    found = _emitted_literals()
    # detect_write_flooding / detect_write_misaligned are emitted through a variable.
    variables = {k for k in found["emit"] if k.startswith("<")}
    assert variables == {"<variable reason in mmu.py>"}
    assert {"detect_write_flooding", "detect_write_misaligned"} <= set(KERNEL_KINDS)
    assert found["emit"] - variables <= set(KERNEL_KINDS)
    assert found["begin_action"] <= set(ACTION_KINDS)
    # The scan sees the kinds the hot paths declare (it would pass vacuously otherwise).
    assert {"mmu_set_spte", "kvm_mmu_prepare_zap_page", "kvm_mmu_track_write"} <= found["emit"]
    assert {"l2_touch", "l1_zap_entry", "l1_freeze_pt"} <= found["begin_action"]


def _zap_all_fast_run(invariants) -> Timeline:
    """A recorded world that also deletes a memslot (kvm_mmu_zap_all_fast) and recycles."""
    from mmu_model.guest import L1Guest, NestedGuest

    l1 = L1Guest(pool_lo=1 << 22, pool_hi=1 << 23, rng=random.Random(3))
    kvm = Kvm(fixes=mmu_model.FixSet.from_names(DEFAULT_FIXES), n_max_mmu_pages=12,
              root_level=4, guest=l1)
    timeline = Timeline(kvm)
    kvm.recorder = timeline
    guest = NestedGuest(kvm, l1, ept_levels=4, l2_backing_base=1 << 18, shared=True)
    guest.vm_entry(1)
    guest.touch(0, [(i, i == 3, 0b11) for i in range(8)], False)  # quota 12: recycles
    kvm.begin_action("memslot_change")
    mmu.kvm_mmu_zap_all_fast(kvm)
    guest.touch(0, [(0, False, 0b11)], False)
    return timeline


def test_every_kind_the_runs_emit_has_narration(invariants):
    """Every event that varied runs record narrates to a non-empty sentence."""
    runs = [
        _run("teaching-small"), _run("teaching-small", fixes=POST_PATCH),
        _run("seed-bottom-up"), _run("seed-top-down"),
        mmu_model.run_scenario(ScenarioSpec(l2_mem_gib=3, pdes_per_pd=4, ptes_per_pt=2,
                                            ept_levels=4, order="top-down", mode="shared",
                                            flood_clear_prob=0.5, quota=64, boots=3)),
    ]
    timelines = [r.timeline for r in runs] + [_zap_all_fast_run(invariants)]
    kinds: set[str] = set()
    for timeline in timelines:
        assert timeline is not None
        for index in range(timeline.n_events):
            event = timeline.event(index)
            kinds.add(event.kind)
            assert event.narration.strip(), event.kind
        for index in range(timeline.n_actions):
            assert timeline.action(index, with_ops=False).narration.strip()
    assert kinds <= set(KERNEL_KINDS) | set(ACTION_KINDS)
    # These runs reach every kind but the misaligned write (no guest model makes one) and
    # the rmap recycle (a chain of 1,001 entries; narrated in test_rmap_recycle.py).
    assert (set(KERNEL_KINDS) | set(ACTION_KINDS)) - kinds == {"detect_write_misaligned",
                                                               "kvm_zap_all_rmap_sptes"}


# -- two runs ----------------------------------------------------------------------------------
def test_first_difference_is_the_first_orphaning_pde_write(invariants):
    """Without and with the fix, teaching-small first differs at the 2M pass's first PDE write."""
    before = _run("teaching-small")
    after = _run("teaching-small", fixes=POST_PATCH)
    timeline = before.timeline
    assert timeline is not None
    # Everything up to the 2M pass is the same with and without the fix: the 4K pass's
    # stores are not emulated.  The 2M pass's first PDE write is trapped with the PD's
    # count at 0, zaps one SPTE, and its PT loses its only parent: orphaned before the
    # patch, zapped with it.
    headers = (timeline.event(timeline.action(i, with_ops=False).first_event)
               for i in range(timeline.n_actions))
    first_2m = next(h.action_index + 1 for h in headers
                    if h.kind == "l1_zap_entry" and h.args["pass"] == "2M")
    assert before.first_difference(after) == first_2m
    assert after.first_difference(before) == first_2m
    assert before.snapshot(first_2m).stat_deltas["orphans_unsync"] == 1
    assert after.snapshot(first_2m).stat_deltas["mmu_shadow_zapped"] == 1
    assert before.first_difference(_run("teaching-small")) is None
