"""Recording of a run as events, and fast seeking to the state after any step.

Every event stores the new state of each shadow page it touched (a small tuple, or None
once freed) and the sparse deltas of the tracked counters.  The state after op step k is
rebuilt from the nearest checkpoint at or before k plus at most ``checkpoint_every``
events.  Checkpoints are cheap: page states live in 256-entry chunks shared copy-on-write
between checkpoints, so one costs a list of chunk references plus the chunks that changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .exceptions import StepOutOfRange
from .kvm import Kvm
from .narration import narrate
from .page import KvmMmuPage
from .snapshot import ActionView, EventView, Grain, OrphanSummary, Snapshot, SpView
from .stats import STAT_NAMES

__all__ = ["TRACKED_COUNTERS", "Timeline"]

# Model counters recorded beside the KVM stats (not kernel stats).
MODEL_COUNTERS = ("orphans", "orphans_unsync", "rmap_entries", "indirect_shadow_pages",
                  "hash_walked")
TRACKED_COUNTERS: tuple[str, ...] = STAT_NAMES + MODEL_COUNTERS

_UNSYNC, _INVALID, _ORPHAN = 1, 2, 4
MAX_ACTION_OPS = 200  # kernel operations an ActionView carries; n_ops counts them all
_CHUNK_SHIFT = 8
_CHUNK = 1 << _CHUNK_SHIFT

# (flags, unsync_children, write_flooding_count, root_count, leaf_sptes, parents)
State = tuple[int, int, int, int, int, tuple[tuple[int, int], ...]]
Static = tuple[int, int, str, int, bool, bool, int, int]  # gfn, word, role, level, direct,
#                                                          guest_mode, l2_gfn, created_event
Change = tuple[int, State | None]
Event = tuple[str, int, tuple[str, ...], tuple[tuple[str, Any], ...], tuple[Change, ...],
              tuple[tuple[int, int], ...]]


class _States:
    __slots__ = ("chunks", "owned")

    def __init__(self, chunks: list[list[State | None]] | None = None) -> None:
        self.chunks: list[list[State | None]] = list(chunks) if chunks else []
        self.owned: set[int] = set()

    def get(self, sp_id: int) -> State | None:
        c = sp_id >> _CHUNK_SHIFT
        return self.chunks[c][sp_id & (_CHUNK - 1)] if c < len(self.chunks) else None

    def set(self, sp_id: int, state: State | None) -> None:
        c = sp_id >> _CHUNK_SHIFT
        chunks = self.chunks
        while c >= len(chunks):
            chunks.append([None] * _CHUNK)
            self.owned.add(len(chunks) - 1)
        if c not in self.owned:
            chunks[c] = chunks[c][:]
            self.owned.add(c)
        chunks[c][sp_id & (_CHUNK - 1)] = state

    def freeze(self) -> list[list[State | None]]:
        self.owned = set()
        return list(self.chunks)

    def items(self) -> Iterator[tuple[int, State]]:
        for c, chunk in enumerate(self.chunks):
            base = c << _CHUNK_SHIFT
            for j, state in enumerate(chunk):
                if state is not None:
                    yield base + j, state


def _state_of(sp: KvmMmuPage) -> State | None:
    if sp.freed:
        return None
    flags = (_UNSYNC if sp.unsync else 0) | (_INVALID if sp.role.invalid else 0) | (
        _ORPHAN if sp.orphan else 0
    )
    return (
        flags,
        sp.unsync_children,
        sp.write_flooding_count,
        sp.root_count,
        sp.n_leaves,
        tuple((p.id, i) for p, i in sp.parent_ptes),
    )


def counters_of(kvm: Kvm) -> tuple[int, ...]:
    stat = kvm.stat
    return (
        *(getattr(stat, name) for name in STAT_NAMES),
        len(kvm.orphans),
        kvm.orphans_unsync,
        kvm.rmaps.entries,
        kvm.indirect_shadow_pages,
        kvm.hash_walked,
    )


class Timeline:
    """Recorder for Kvm (see kvm.Recorder) and the seekable record of one run."""

    def __init__(self, kvm: Kvm | None = None, checkpoint_every: int = 1024) -> None:
        self.checkpoint_every = checkpoint_every
        self.events: list[Event] = []
        self.actions: list[tuple[str, tuple[tuple[str, Any], ...], int, int]] = []
        self.static: dict[int, Static] = {}
        self._states = _States()
        self._counters: tuple[int, ...] = (
            counters_of(kvm) if kvm is not None else (0,) * len(TRACKED_COUNTERS)
        )
        self._checkpoints: list[tuple[list[list[State | None]], tuple[int, ...]]] = [
            (self._states.freeze(), self._counters)
        ]
        self._paths: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._views: dict[int, tuple[State, SpView]] = {}  # last view built per page
        self.boot = 0

    # -- recording ------------------------------------------------------------------------
    def _append(self, kvm: Kvm, kind: str, args: dict[str, Any]) -> None:
        changes: list[Change] = []
        index = len(self.events)
        static = self.static
        for sp in kvm.touched.values():
            if sp.id not in static:
                role = sp.role
                static[sp.id] = (sp.gfn, role.word, role.describe(), role.level, role.direct,
                                 role.guest_mode, sp.l2_gfn, index)
            state = _state_of(sp)
            if state != self._states.get(sp.id):
                changes.append((sp.id, state))
                self._states.set(sp.id, state)
        counters = counters_of(kvm)
        old = self._counters
        deltas = tuple((i, v - old[i]) for i, v in enumerate(counters) if v != old[i])
        self._counters = counters
        path = tuple(kvm.path)
        path = self._paths.setdefault(path, path)
        self.events.append(
            (kind, len(self.actions) - 1, path, tuple(args.items()), tuple(changes), deltas)
        )
        if len(self.events) % self.checkpoint_every == 0:
            self._checkpoints.append((self._states.freeze(), self._counters))

    def record(self, kvm: Kvm, kind: str, args: dict[str, Any]) -> None:
        if not self.actions:
            raise RuntimeError("kernel operation recorded outside a guest action")
        self._append(kvm, kind, args)

    def begin_action(self, kvm: Kvm, kind: str, args: dict[str, Any]) -> None:
        self.actions.append((kind, tuple(args.items()), len(self.events), self.boot))
        self._append(kvm, kind, args)

    # -- sizes and steps --------------------------------------------------------------------
    @property
    def n_events(self) -> int:
        return len(self.events)

    @property
    def n_actions(self) -> int:
        return len(self.actions)

    def last_step(self, grain: Grain) -> int:
        return self.n_actions if grain == "action" else self.n_events

    def _check(self, step: int, grain: Grain) -> None:
        last = self.last_step(grain)
        if not 0 <= step <= last:
            raise StepOutOfRange(step, last)

    def op_range(self, step: int, grain: Grain) -> tuple[int, int]:
        """Events [lo, hi) that step `step` applies (empty for step 0)."""
        self._check(step, grain)
        if step == 0:
            return 0, 0
        if grain == "op":
            return step - 1, step
        lo = self.actions[step - 1][2]
        hi = self.actions[step][2] if step < self.n_actions else self.n_events
        return lo, hi

    def action_of_event(self, index: int) -> int:
        return self.events[index][1]

    def convert_step(self, step: int, from_grain: Grain, to_grain: Grain) -> int:
        self._check(step, from_grain)
        if from_grain == to_grain or step == 0:
            return step
        if to_grain == "op":
            return self.op_range(step, "action")[1]
        return self.action_of_event(step - 1) + 1

    # -- seeking ------------------------------------------------------------------------------
    def _seek(self, op_step: int) -> tuple[_States, list[int]]:
        c = op_step // self.checkpoint_every
        chunks, counters = self._checkpoints[c]
        states = _States(chunks)
        values = list(counters)
        for event in self.events[c * self.checkpoint_every : op_step]:
            for sp_id, state in event[4]:
                states.set(sp_id, state)
            for i, d in event[5]:
                values[i] += d
        return states, values

    def counters_at(self, op_step: int) -> dict[str, int]:
        self._check(op_step, "op")
        return dict(zip(TRACKED_COUNTERS, self._seek(op_step)[1], strict=True))

    # -- views ----------------------------------------------------------------------------------
    def describe(self, sp_id: int) -> str:
        s = self.static.get(sp_id)
        if s is None:
            return f"#{sp_id}"
        return f"#{sp_id} (l{s[3]} gfn {s[0]:#x})"

    def cached_view(self, sp_id: int, state: State) -> SpView:
        """view(), reusing the last one built for this page while its state is unchanged."""
        hit = self._views.get(sp_id)
        if hit is not None and hit[0] == state:
            return hit[1]
        view = self.view(sp_id, state)
        self._views[sp_id] = (state, view)
        return view

    def view(self, sp_id: int, state: State, ghost: bool = False) -> SpView:
        gfn, word, role, level, direct, guest_mode, l2_gfn, _ = self.static[sp_id]
        flags = state[0]
        return SpView(
            id=sp_id, gfn=gfn, level=level, role_word=word, role=role, direct=direct,
            guest_mode=guest_mode, invalid=bool(flags & _INVALID), unsync=bool(flags & _UNSYNC),
            unsync_children=state[1], write_flooding_count=state[2], root_count=state[3],
            parents=state[5], leaf_sptes=state[4], orphan=bool(flags & _ORPHAN),
            l2_gfn=l2_gfn, ghost=ghost,
        )

    def event(self, index: int) -> EventView:
        if not 0 <= index < self.n_events:
            raise StepOutOfRange(index + 1, self.n_events)
        kind, action, path, args_items, changes, deltas = self.events[index]
        args = dict(args_items)
        created = tuple(i for i, _ in changes if self.static[i][7] == index)
        freed = tuple(i for i, s in changes if s is None)
        is_action = self.actions[action][2] == index
        return EventView(
            index=index, kind=kind, is_action=is_action, action_index=action, call_path=path,
            args=args, narration=narrate(kind, args, self.describe),
            touched=tuple(i for i, _ in changes), created=created, freed=freed,
            stat_deltas={TRACKED_COUNTERS[i]: d for i, d in deltas},
        )

    def action(self, index: int, with_ops: bool = True) -> ActionView:
        if not 0 <= index < self.n_actions:
            raise StepOutOfRange(index + 1, self.n_actions)
        kind, args_items, first, boot = self.actions[index]
        last = (self.actions[index + 1][2] if index + 1 < self.n_actions else self.n_events) - 1
        shown = min(last, first + MAX_ACTION_OPS)
        ops = tuple(self.event(i) for i in range(first + 1, shown + 1)) if with_ops else ()
        return ActionView(
            index=index, kind=kind, narration=narrate(kind, dict(args_items), self.describe),
            first_event=first, last_event=last, boot=boot, ops=ops, n_ops=last - first,
        )

    def snapshot(self, step: int, grain: Grain = "action") -> Snapshot:
        lo, hi = self.op_range(step, grain)
        states, values = self._seek(lo)
        before = list(values)
        ghosts: dict[int, SpView] = {}
        changed: set[int] = set()
        created: set[int] = set()
        for index in range(lo, hi):
            event = self.events[index]
            for sp_id, state in event[4]:
                changed.add(sp_id)
                if self.static[sp_id][7] == index:
                    created.add(sp_id)
                if state is None:
                    prev = states.get(sp_id)
                    if prev is not None:
                        ghosts[sp_id] = self.view(sp_id, prev, ghost=True)
                states.set(sp_id, state)
            for i, d in event[5]:
                values[i] += d
        cached = self.cached_view
        pages = tuple(cached(i, s) for i, s in states.items())
        by_level: dict[str, int] = {}
        for page in pages:
            if page.orphan:
                by_level[str(page.level)] = by_level.get(str(page.level), 0) + 1
        counters = dict(zip(TRACKED_COUNTERS, values, strict=True))
        deltas = {
            name: values[i] - before[i]
            for i, name in enumerate(TRACKED_COUNTERS)
            if values[i] != before[i]
        }
        event_view = None
        action_view = None
        if step:
            if grain == "op":
                event_view = self.event(lo)
                action_view = self.action(event_view.action_index, with_ops=False)
            else:
                action_view = self.action(step - 1)
                event_view = self.event(lo)
        return Snapshot(
            step=step, grain=grain, last_step=self.last_step(grain), pages=pages,
            ghosts=tuple(g for i, g in ghosts.items() if states.get(i) is None),
            changed=frozenset(changed), created=frozenset(created), stats=counters,
            stat_deltas=deltas,
            orphans=OrphanSummary(
                total=counters["orphans"], unsync=counters["orphans_unsync"],
                by_level=dict(sorted(by_level.items())),
            ),
            event=event_view, action=action_view,
        )

    def all_pages(self) -> list[tuple[int, int, int]]:
        """(id, level, l2_gfn) of every page the run ever created, for a stable layout."""
        return [(i, s[3], s[6]) for i, s in self.static.items()]

    def action_counters(self) -> Iterator[tuple[int, ...]]:
        """The counters after each action, in order (for comparing two runs)."""
        values = list(self._checkpoints[0][1])
        ends = [a[2] for a in self.actions[1:]] + [self.n_events]
        index = 0
        for end in ends:
            while index < end:
                for i, d in self.events[index][5]:
                    values[i] += d
                index += 1
            yield tuple(values)
