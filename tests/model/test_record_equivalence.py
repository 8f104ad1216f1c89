"""The compact run record (mmu_model.record) changes no event: decoded, it is what the model
emitted.

Each run is recorded twice in the same pass: by the real Timeline (byte streams, integer
columns, chunked checkpoints) and by ReferenceRecorder below, the straightforward recorder
the project used before: one Python tuple per event holding the event's kind, call path,
argument dict, the full new state of every page it changed and its counter deltas, and a
full replay from step 0 to rebuild any step.  The two must give equal event views (kind,
call path, arguments with their types, pages touched / created / freed, stat deltas,
narration), equal action views, equal counters after every action, equal page lists and
equal snapshots at a sample of steps of both grains, on every built-in scenario and on both
seed traces in tests/fixtures.  Checkpoints are set 50 events apart so that a long run has
thousands of them (beyond the record's full directory copy every 64 checkpoints) and every
sampled seek starts from one.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path
from typing import Any, ClassVar

import pytest

import mmu_model
import mmu_model.replay
import mmu_model.simulate
from mmu_model.kvm import EventKind, Kvm
from mmu_model.narration import narrate
from mmu_model.snapshot import ActionView, EventView, OrphanSummary, Snapshot, SpView
from mmu_model.timeline import MAX_ACTION_OPS, TRACKED_COUNTERS, Timeline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TRACES = sorted(p.name for p in FIXTURES.glob("*.trace"))
CHECKPOINT_EVERY = 50

State = tuple[int, int, int, int, int, tuple[tuple[int, int], ...]]


def _state_of(sp: Any) -> State | None:
    """A page's state as the views show it; None once it is freed."""
    if sp.freed:
        return None
    flags = (1 if sp.unsync else 0) | (2 if sp.role.invalid else 0) | (4 if sp.orphan else 0)
    return (flags, sp.unsync_children, sp.write_flooding_count, sp.root_count, sp.n_leaves,
            tuple((p.id, i) for p, i in sp.parent_ptes))


def _counters(kvm: Kvm) -> list[int]:
    stats = kvm.stat.as_dict()
    return [*(stats[name] for name in mmu_model.STAT_NAMES), len(kvm.orphans),
            kvm.orphans_unsync, kvm.rmaps.entries, kvm.indirect_shadow_pages, kvm.hash_walked]


class ReferenceRecorder:
    """One tuple per event; a step is rebuilt by replaying every event before it."""

    def __init__(self, kvm: Kvm | None) -> None:
        self.events: list[tuple[str, int, tuple[str, ...], dict[str, Any],
                                list[tuple[int, State | None]], list[tuple[int, int]]]] = []
        self.actions: list[tuple[int, int]] = []  # (first event, boot)
        self.static: dict[int, tuple[int, int, str, int, bool, bool, int, int]] = {}
        self.states: dict[int, State] = {}
        self.start = _counters(kvm) if kvm is not None else [0] * len(TRACKED_COUNTERS)
        self.counters = list(self.start)
        self._cursor: tuple[int, dict[int, State], list[int]] = (0, {}, list(self.start))

    def add(self, kvm: Kvm, kind: str, args: dict[str, Any], boot: int | None) -> None:
        index = len(self.events)
        if boot is not None:
            self.actions.append((index, boot))
        changes: list[tuple[int, State | None]] = []
        for sp in kvm.touched:
            if sp.id not in self.static:
                role = sp.role
                self.static[sp.id] = (sp.gfn, role.word, role.describe(), role.level,
                                      role.direct, role.guest_mode, sp.l2_gfn, index)
            state = _state_of(sp)
            if state != self.states.get(sp.id):
                changes.append((sp.id, state))
                if state is None:
                    del self.states[sp.id]
                else:
                    self.states[sp.id] = state
        now = _counters(kvm)
        deltas = [(i, v - self.counters[i]) for i, v in enumerate(now) if v != self.counters[i]]
        self.counters = now
        self.events.append((kind, len(self.actions) - 1, tuple(kvm.path), dict(args),
                            changes, deltas))

    # -- views, written out the long way ----------------------------------------------------
    def describe(self, sp_id: int) -> str:
        s = self.static.get(sp_id)
        return f"#{sp_id}" if s is None else f"#{sp_id} (l{s[3]} gfn {s[0]:#x})"

    def view(self, sp_id: int, state: State, ghost: bool = False) -> SpView:
        gfn, word, role, level, direct, guest_mode, l2_gfn, _ = self.static[sp_id]
        return SpView(id=sp_id, gfn=gfn, level=level, role_word=word, role=role,
                      direct=direct, guest_mode=guest_mode, invalid=bool(state[0] & 2),
                      unsync=bool(state[0] & 1), unsync_children=state[1],
                      write_flooding_count=state[2], root_count=state[3], parents=state[5],
                      leaf_sptes=state[4], orphan=bool(state[0] & 4), l2_gfn=l2_gfn,
                      ghost=ghost)

    def action_end(self, a: int) -> int:
        return self.actions[a + 1][0] if a + 1 < len(self.actions) else len(self.events)

    def event(self, index: int) -> EventView:
        kind, action, path, args, changes, deltas = self.events[index]
        return EventView(
            index=index, kind=kind, is_action=self.actions[action][0] == index,
            action_index=action, call_path=path, args=args,
            narration=narrate(kind, args, self.describe),
            touched=tuple(i for i, _ in changes),
            created=tuple(i for i, _ in changes if self.static[i][7] == index),
            freed=tuple(i for i, s in changes if s is None),
            stat_deltas={TRACKED_COUNTERS[i]: d for i, d in deltas},
        )

    def action(self, a: int, with_ops: bool = True) -> ActionView:
        first, boot = self.actions[a]
        last = self.action_end(a) - 1
        kind, _, _, args, _, _ = self.events[first]
        shown = min(last, first + MAX_ACTION_OPS)
        ops = tuple(self.event(i) for i in range(first + 1, shown + 1)) if with_ops else ()
        return ActionView(index=a, kind=kind, narration=narrate(kind, args, self.describe),
                          first_event=first, last_event=last, boot=boot, ops=ops,
                          n_ops=last - first)

    def _replay_to(self, op_step: int) -> tuple[dict[int, State], list[int]]:
        """States and counters after `op_step` events (a forward-only cursor, else from 0)."""
        at, states, values = self._cursor
        if op_step < at:
            at, states, values = 0, {}, list(self.start)
        for _, _, _, _, changes, deltas in self.events[at:op_step]:
            for sp_id, state in changes:
                if state is None:
                    states.pop(sp_id, None)
                else:
                    states[sp_id] = state
            for i, d in deltas:
                values[i] += d
        self._cursor = (op_step, states, values)
        return dict(states), list(values)

    def snapshot(self, step: int, grain: str) -> Snapshot:
        if step == 0:
            lo = hi = 0
        elif grain == "op":
            lo, hi = step - 1, step
        else:
            lo, hi = self.actions[step - 1][0], self.action_end(step - 1)
        states, values = self._replay_to(lo)
        before = list(values)
        ghosts: dict[int, SpView] = {}
        changed: set[int] = set()
        created: set[int] = set()
        for index in range(lo, hi):
            _, _, _, _, changes, deltas = self.events[index]
            for sp_id, state in changes:
                changed.add(sp_id)
                if self.static[sp_id][7] == index:
                    created.add(sp_id)
                if state is None:
                    if sp_id in states:
                        ghosts[sp_id] = self.view(sp_id, states.pop(sp_id), ghost=True)
                else:
                    states[sp_id] = state
            for i, d in deltas:
                values[i] += d
        pages = tuple(self.view(i, states[i]) for i in sorted(states))
        by_level: dict[str, int] = {}
        for page in pages:
            if page.orphan:
                by_level[str(page.level)] = by_level.get(str(page.level), 0) + 1
        stats = dict(zip(TRACKED_COUNTERS, values, strict=True))
        event = action = None
        if step:
            event = self.event(lo)
            action = (self.action(event.action_index, with_ops=False) if grain == "op"
                      else self.action(step - 1))
        last = len(self.actions) if grain == "action" else len(self.events)
        return Snapshot(
            step=step, grain=grain, last_step=last, pages=pages,
            ghosts=tuple(g for i, g in ghosts.items() if i not in states),
            changed=frozenset(changed), created=frozenset(created), stats=stats,
            stat_deltas={n: values[i] - before[i] for i, n in enumerate(TRACKED_COUNTERS)
                         if values[i] != before[i]},
            orphans=OrphanSummary(stats["orphans"], stats["orphans_unsync"],
                                  dict(sorted(by_level.items()))),
            event=event, action=action,
        )


class TeeTimeline(Timeline):
    """The real Timeline, with a ReferenceRecorder fed the very same events beside it."""

    made: ClassVar[list[TeeTimeline]] = []

    def __init__(self, kvm: Kvm | None = None, checkpoint_every: int = 1024) -> None:
        super().__init__(kvm, checkpoint_every)
        self.reference = ReferenceRecorder(kvm)
        TeeTimeline.made.append(self)

    def record(self, kvm: Kvm, kind: str, args: dict[str, Any]) -> None:
        self.reference.add(kvm, kind, args, None)
        super().record(kvm, kind, args)

    def begin_action(self, kvm: Kvm, kind: str, args: dict[str, Any]) -> None:
        self.reference.add(kvm, kind, args, self.boot)
        super().begin_action(kvm, kind, args)

    def record_values(self, kvm: Kvm, kind: EventKind, values: tuple[object, ...],
                      action: bool) -> None:
        # The reference sees the keyword dict the positional values stand for.
        args = dict(zip(kind.args, values, strict=True))
        self.reference.add(kvm, kind.name, args, self.boot if action else None)
        super().record_values(kvm, kind, values, action)

    def record_ints(self, kvm: Kvm, kind: EventKind, a: int, b: int, c: int) -> None:
        args = dict(zip(kind.args, (a, b, c), strict=False))
        self.reference.add(kvm, kind.name, args, None)
        super().record_ints(kvm, kind, a, b, c)


@pytest.fixture
def tee(monkeypatch: pytest.MonkeyPatch):
    factory = functools.partial(TeeTimeline, checkpoint_every=CHECKPOINT_EVERY)
    monkeypatch.setattr(mmu_model.simulate, "Timeline", factory)
    monkeypatch.setattr(mmu_model.replay, "Timeline", factory)
    TeeTimeline.made.clear()
    yield
    TeeTimeline.made.clear()


def _recorded(source: str) -> tuple[mmu_model.Run, ReferenceRecorder]:
    if source.endswith(".trace"):
        run = mmu_model.replay_trace((FIXTURES / source).read_text())
    else:
        run = mmu_model.run_named(source)
    (timeline,) = TeeTimeline.made
    assert run.timeline is timeline
    return run, timeline.reference


def _sample_steps(run: mmu_model.Run, grain: str, rng: random.Random) -> list[int]:
    last = run.last_step(grain)
    steps = {0, 1, last, min(run.default_step, last)} if grain == "action" else {0, 1, last}
    # Steps on and around checkpoints (op grain), and random ones.
    steps |= {s for k in (1, 2, 64, 65) for s in (k * CHECKPOINT_EVERY - 1,
                                                  k * CHECKPOINT_EVERY,
                                                  k * CHECKPOINT_EVERY + 1) if s <= last}
    steps |= {rng.randrange(last + 1) for _ in range(12)}
    return sorted(steps)


@pytest.mark.slow
@pytest.mark.parametrize("source", [*mmu_model.BUILTINS, *TRACES])
def test_decoded_record_is_what_the_model_emitted(tee, source: str) -> None:
    run, ref = _recorded(source)
    timeline = run.timeline
    assert timeline is not None
    assert (timeline.n_events, timeline.n_actions) == (len(ref.events), len(ref.actions))
    assert (run.n_events, run.n_actions) == (len(ref.events), len(ref.actions))
    # Every event, decoded: kinds, call paths, arguments (with their Python types: a True is
    # not a 1, a list is not a tuple), pages touched / created / freed, deltas, narration.
    for index, decoded in enumerate(run.events(0, run.n_events)):
        expected = ref.event(index)
        assert decoded == expected, index
        assert repr(decoded.args) == repr(expected.args), index
    for a in range(run.n_actions):
        assert timeline.action(a, with_ops=False) == ref.action(a, with_ops=False), a
    assert run.all_pages() == [(i, s[3], s[6]) for i, s in ref.static.items()]
    rng = random.Random(source)
    for grain in ("op", "action"):
        for step in _sample_steps(run, grain, rng):
            assert run.snapshot(step, grain) == ref.snapshot(step, grain), (grain, step)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["teaching-small", "boot-loop-top-down"])
def test_counters_after_every_action_match_the_reference(tee, source: str) -> None:
    """action_counters() (first_difference's input), against the reference's deltas."""
    run, ref = _recorded(source)
    assert run.timeline is not None
    values = list(ref.start)
    expected = []
    for a in range(len(ref.actions)):
        for event in ref.events[ref.actions[a][0]:ref.action_end(a)]:
            for i, d in event[5]:
                values[i] += d
        expected.append(tuple(values))
    assert list(run.timeline.action_counters()) == expected
