"""Recording of a run as events, and fast seeking to the state after any step.

Timeline is the recorder Kvm hands its events to and the seekable record of the finished
run.  The events themselves live in a compact EventRecord (record.py: byte streams and
integer columns, with checkpoints every ``checkpoint_every`` events); this module turns
them back into the views the web layer and the CLI read (SpView, EventView, ActionView,
Snapshot), exactly as the model emitted them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from .exceptions import StepOutOfRange
from .kvm import EventKind, Kvm, Recorder
from .narration import narrate
from .record import (
    INVALID,
    ORPHAN,
    TRACKED_COUNTERS,
    UNSYNC,
    EventRecord,
    PageStates,
    counters_of,
    unpack_state,
)
from .snapshot import (
    ActionView,
    EventView,
    Grain,
    OrphanSummary,
    PageChanges,
    Snapshot,
    SpStatus,
    SpView,
    StepSummary,
    page_status,
)

__all__ = ["MAX_ACTION_OPS", "TRACKED_COUNTERS", "LivePages", "PageCounts", "Replay",
           "StateChanges", "Timeline"]

# (state word, parent code) of a page at one step; (0, 0): not live.
PageState = tuple[int, int]

MAX_ACTION_OPS: Final = 200  # kernel operations an ActionView carries; n_ops counts them all
# Replays of an event range kept for reuse: a step asks for the same range up to three
# times (its summary, the page counts moved to it, the tree's changed pages).
REPLAYS_KEPT: Final = 4


@dataclass(frozen=True, slots=True)
class Replay:
    """Events [lo, hi) applied to the state at op step lo, and what they did.

    Read only once built (a Timeline shares it between its callers): `states` and `values`
    are the page states and counters at hi, `before` the counters at lo, `first` the state
    at lo of every page an event of the range touched, `ghosts` the views of the pages
    freed on the way (as they were just before), `changed` and `created` the pages the
    events touched and made.
    """

    lo: int
    hi: int
    states: PageStates
    values: list[int]
    before: list[int]
    first: dict[int, PageState]
    ghosts: dict[int, SpView]
    changed: frozenset[int]
    created: frozenset[int]

    def diff(self) -> dict[int, tuple[PageState, PageState]]:
        """(state at lo, state at hi) of every page whose state differs between the two."""
        states = self.states
        out: dict[int, tuple[PageState, PageState]] = {}
        for sp_id, old in self.first.items():
            new = states.get(sp_id)
            if new != old:
                out[sp_id] = (old, new)
        return out


class Timeline(Recorder):
    """Recorder for Kvm (see kvm.Recorder) and the seekable record of one run."""

    def __init__(self, kvm: Kvm | None = None, checkpoint_every: int = 1024) -> None:
        counters = counters_of(kvm) if kvm is not None else [0] * len(TRACKED_COUNTERS)
        self.events = EventRecord(counters, checkpoint_every)
        # The last view built per page, with the (state word, parent code) it shows.
        self._views: dict[int, tuple[int, int, SpView]] = {}
        self._replays: OrderedDict[tuple[int, int], Replay] = OrderedDict()
        self._replays_lock = threading.Lock()

    @classmethod
    def of_record(cls, record: EventRecord) -> Timeline:
        timeline = cls(None, record.checkpoint_every)
        timeline.events = record
        return timeline

    # -- recording ------------------------------------------------------------------------
    def record(self, kvm: Kvm, kind: str, args: dict[str, Any]) -> None:
        self.events.add(kvm, kind, args, False)

    def begin_action(self, kvm: Kvm, kind: str, args: dict[str, Any]) -> None:
        self.events.add(kvm, kind, args, True)

    def record_values(self, kvm: Kvm, kind: EventKind, values: tuple[object, ...],
                      action: bool) -> None:
        self.events.add_values(kvm, kind, values, action)

    def record_ints(self, kvm: Kvm, kind: EventKind, a: int, b: int, c: int) -> None:
        self.events.add_ints(kvm, kind, a, b, c)

    @property
    def boot(self) -> int:
        """The L2 boot the actions recorded from now on belong to."""
        return self.events.boot

    @boot.setter
    def boot(self, boot: int) -> None:
        self.events.boot = boot

    # -- sizes and steps --------------------------------------------------------------------
    @property
    def checkpoint_every(self) -> int:
        return self.events.checkpoint_every

    @property
    def n_events(self) -> int:
        return self.events.n_events

    @property
    def n_actions(self) -> int:
        return self.events.n_actions

    @property
    def nbytes(self) -> int:
        """Bytes the record holds (the per-page view cache comes on top, one view per page
        shown, and the last REPLAYS_KEPT replays: the pages their events touched)."""
        return self.events.nbytes()

    @property
    def n_views(self) -> int:
        """Page views kept for reuse (cached_view): one per page shown, at most one per
        page of the run."""
        return len(self._views)

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
        return self.events.action_first[step - 1], self.events.action_end(step - 1)

    def action_of_event(self, index: int) -> int:
        return self.events.action_of_event(index)

    def convert_step(self, step: int, from_grain: Grain, to_grain: Grain) -> int:
        self._check(step, from_grain)
        if from_grain == to_grain or step == 0:
            return step
        if to_grain == "op":
            return self.op_range(step, "action")[1]
        return self.action_of_event(step - 1) + 1

    # -- seeking ------------------------------------------------------------------------------
    def counters_at(self, op_step: int) -> dict[str, int]:
        """Every tracked counter after `op_step` events (seeking rebuilds every page too)."""
        self._check(op_step, "op")
        return dict(zip(TRACKED_COUNTERS, self.events.seek(op_step)[1], strict=True))

    # -- views ----------------------------------------------------------------------------------
    def describe(self, sp_id: int) -> str:
        row = self.events.static(sp_id)
        if row < 0:
            return f"#{sp_id}"
        level = self.events.roles[self.events.st_role[row]][2]
        return f"#{sp_id} (l{level} gfn {self.events.st_gfn[row]:#x})"

    def cached_view(self, sp_id: int, word: int, pcode: int) -> SpView:
        """view(), reusing the last one built for this page while its state is unchanged."""
        hit = self._views.get(sp_id)
        if hit is not None and hit[0] == word and hit[1] == pcode:
            return hit[2]
        view = self.view(sp_id, word, pcode)
        self._views[sp_id] = (word, pcode, view)
        return view

    def view(self, sp_id: int, word: int, pcode: int, ghost: bool = False) -> SpView:
        events = self.events
        row = events.row_of[sp_id]
        role_word, role, level, direct, guest_mode = events.roles[events.st_role[row]]
        _, unsync_children, wfc, root_count, leaves, parents = unpack_state(
            word, events.parents(pcode))
        return SpView(
            id=sp_id, gfn=events.st_gfn[row], level=level, role_word=role_word, role=role,
            direct=direct, guest_mode=guest_mode, invalid=bool(word & INVALID),
            unsync=bool(word & UNSYNC), unsync_children=unsync_children,
            write_flooding_count=wfc, root_count=root_count, parents=parents,
            leaf_sptes=leaves, orphan=bool(word & ORPHAN), l2_gfn=events.st_l2_gfn[row],
            ghost=ghost,
        )

    def _created_at(self, sp_id: int) -> int:
        return self.events.st_created[self.events.row_of[sp_id]]

    def event(self, index: int) -> EventView:
        if not 0 <= index < self.n_events:
            raise StepOutOfRange(index + 1, self.n_events)
        apos, spos = self.events._offsets(index)
        return self._event_view(index, self.action_of_event(index), apos, spos)[0]

    def _event_view(self, index: int, action: int, apos: int, spos: int
                    ) -> tuple[EventView, int, int]:
        """The view of event `index` (of action `action`) at offsets `apos` and `spos` of the
        args and state streams, and the next event's offsets."""
        events = self.events
        kind, path, args, next_apos = events.event_at(apos)
        changes, deltas, next_spos = events.changes_at(spos)
        names = events.counter_names
        view = EventView(
            index=index, kind=kind, is_action=events.action_first[action] == index,
            action_index=action, call_path=path, args=args,
            narration=narrate(kind, args, self.describe),
            touched=tuple([c[0] for c in changes]),
            created=tuple([c[0] for c in changes if self._created_at(c[0]) == index]),
            freed=tuple([c[0] for c in changes if not c[1]]),
            stat_deltas={names[i]: d for i, d in deltas},
        )
        return view, next_apos, next_spos

    def action(self, index: int, with_ops: bool = True, max_ops: int = MAX_ACTION_OPS
               ) -> ActionView:
        """Guest action `index` with its first kernel operations (`max_ops` of them at most,
        and never more than MAX_ACTION_OPS; n_ops counts them all)."""
        if not 0 <= index < self.n_actions:
            raise StepOutOfRange(index + 1, self.n_actions)
        events = self.events
        first = events.action_first[index]
        last = events.action_end(index) - 1
        apos, spos = events._offsets(first)
        kind, _, args, apos = events.event_at(apos)
        shown = min(last, first + min(max(max_ops, 0), MAX_ACTION_OPS))
        ops: list[EventView] = []
        if with_ops and shown > first:
            # The action's events lie one after the other in both streams: walk them.
            spos = events.changes_at(spos)[2]
            for i in range(first + 1, shown + 1):
                op, apos, spos = self._event_view(i, index, apos, spos)
                ops.append(op)
        return ActionView(
            index=index, kind=kind, narration=narrate(kind, args, self.describe),
            first_event=first, last_event=last, boot=events.boot_of_action(index),
            ops=tuple(ops),
            n_ops=last - first,
        )

    def op_headers(self, index: int, start: int = 0
                   ) -> list[tuple[str, tuple[str, ...], dict[str, object]]]:
        """(kind, call path, args) of guest action `index`'s kernel operations, from its
        `start`-th (0: the first) to the last of the MAX_ACTION_OPS an ActionView carries:
        what their EventViews say of them, without building those (no narration, no page
        changes)."""
        if not 0 <= index < self.n_actions:
            raise StepOutOfRange(index + 1, self.n_actions)
        events = self.events
        first = events.action_first[index]
        shown = min(events.action_end(index) - 1, first + MAX_ACTION_OPS)
        apos = events._offsets(first)[0]
        apos = events.event_at(apos)[3]  # the action's own event
        out: list[tuple[str, tuple[str, ...], dict[str, object]]] = []
        for i in range(first + 1, shown + 1):
            if i - first - 1 < start:
                apos = events.kind_at(apos)[1]  # skipped, its arguments not decoded
                continue
            kind, path, args, apos = events.event_at(apos)
            out.append((kind, path, args))
        return out

    def replay(self, lo: int, hi: int) -> Replay:
        """Seek to op step `lo` and apply events lo..hi-1 (Replay); the last few replays are
        kept, so the callers of one step share one."""
        key = (lo, hi)
        with self._replays_lock:
            hit = self._replays.get(key)
            if hit is not None:
                self._replays.move_to_end(key)
                return hit
        done = self._replay(lo, hi)
        with self._replays_lock:
            self._replays[key] = done
            while len(self._replays) > REPLAYS_KEPT:
                self._replays.popitem(last=False)
        return done

    def _replay(self, lo: int, hi: int) -> Replay:
        events = self.events
        states, values = events.seek(lo)
        before = list(values)
        first: dict[int, PageState] = {}
        ghosts: dict[int, SpView] = {}
        changed: set[int] = set()
        created: set[int] = set()
        pos = events.state_offset(lo) if hi > lo else 0
        for index in range(lo, hi):
            changes, deltas, pos = events.changes_at(pos)
            for sp_id, mask, word, pcode in changes:
                prev_word, prev_pcode = states.get(sp_id)
                if sp_id not in first:
                    first[sp_id] = (prev_word, prev_pcode)
                    changed.add(sp_id)
                if self._created_at(sp_id) == index:
                    created.add(sp_id)
                if not mask:
                    if prev_word:
                        ghosts[sp_id] = self.view(sp_id, prev_word, prev_pcode, ghost=True)
                    states.set(sp_id, 0, 0)
                    continue
                states.set(sp_id, word if mask & 1 else prev_word,
                           pcode if mask & 2 else prev_pcode)
            for i, d in deltas:
                values[i] += d
        return Replay(lo, hi, states, values, before, first, ghosts, frozenset(changed),
                      frozenset(created))

    def _counters(self, values: list[int], before: list[int]
                  ) -> tuple[dict[str, int], dict[str, int]]:
        """The counters by name, and those that changed with their change."""
        names = self.events.counter_names
        counters = dict(zip(names, values, strict=True))
        return counters, {name: values[i] - before[i] for i, name in enumerate(names)
                          if values[i] != before[i]}

    def _step_views(self, step: int, grain: Grain, lo: int, max_ops: int = MAX_ACTION_OPS
               ) -> tuple[EventView | None, ActionView | None]:
        """The step's first kernel operation and its guest action (none at step 0), with
        at most `max_ops` of the action's kernel operations."""
        if not step:
            return None, None
        event_view = self.event(lo)
        if grain == "op":
            return event_view, self.action(event_view.action_index, with_ops=False)
        return event_view, self.action(step - 1, max_ops=max_ops)

    def snapshot(self, step: int, grain: Grain = "action") -> Snapshot:
        lo, hi = self.op_range(step, grain)
        done = self.replay(lo, hi)
        states = done.states
        cached = self.cached_view
        pages = tuple([cached(i, w, p) for i, w, p in states.live()])
        by_level: dict[str, int] = {}
        for page in pages:
            if page.orphan:
                by_level[str(page.level)] = by_level.get(str(page.level), 0) + 1
        counters, deltas_out = self._counters(done.values, done.before)
        event_view, action_view = self._step_views(step, grain, lo)
        return Snapshot(
            step=step, grain=grain, last_step=self.last_step(grain), pages=pages,
            ghosts=self._ghosts(done), changed=done.changed, created=done.created,
            stats=counters,
            stat_deltas=deltas_out,
            orphans=OrphanSummary(
                total=counters["orphans"], unsync=counters["orphans_unsync"],
                by_level=dict(sorted(by_level.items())),
            ),
            event=event_view, action=action_view,
        )

    def _ghosts(self, done: Replay) -> tuple[SpView, ...]:
        """The views of the pages the replay freed and did not make again."""
        states = done.states
        return tuple([g for i, g in done.ghosts.items() if not states.get(i)[0]])

    def all_pages(self) -> list[tuple[int, int, int]]:
        """(id, level, l2_gfn) of every page the run ever created, for a stable layout."""
        events = self.events
        roles = events.roles
        return [(events.st_id[r], roles[events.st_role[r]][2], events.st_l2_gfn[r])
                for r in range(len(events.st_id))]

    def action_counters(self) -> Iterator[tuple[int, ...]]:
        """The counters after each action, in order (for comparing two runs)."""
        for values in self.events.counters_after_actions():
            yield tuple(values)

    # -- what changed between steps ---------------------------------------------------------
    def op_step(self, step: int, grain: Grain) -> int:
        """Events applied once step `step` (in `grain`) is done."""
        return self.op_range(step, grain)[1]

    def changed_states(self, from_op: int, to_op: int, also: Iterable[int] = ()
                       ) -> dict[int, tuple[PageState, PageState]]:
        """(state at from_op, state at to_op) of every page whose state differs between the
        two op steps, and of the pages in `also`. Costs a seek to the earlier step and the
        events between them, whatever the tree's size (shared with the other callers of
        replay() over the same events)."""
        self._check(from_op, "op")
        self._check(to_op, "op")
        lo, hi = min(from_op, to_op), max(from_op, to_op)
        events = self.events
        done = self.replay(lo, hi)
        states = done.states
        out = done.diff()
        for sp_id in also:
            if sp_id not in out and 0 <= sp_id < len(events.row_of):
                same = states.get(sp_id)
                out[sp_id] = (same, same)
        if from_op > to_op:
            return {i: (new, old) for i, (old, new) in out.items()}
        return out

    def changed_pages(self, from_op: int, to_op: int, also: Iterable[int] = ()) -> PageChanges:
        """changed_states() as the pages' views (PageChanges)."""
        before: dict[int, SpView] = {}
        after: dict[int, SpView] = {}
        diff = self.changed_states(from_op, to_op, also)
        for sp_id, ((old_word, old_pcode), (new_word, new_pcode)) in diff.items():
            if old_word:
                before[sp_id] = self.cached_view(sp_id, old_word, old_pcode)
            if new_word:
                after[sp_id] = self.cached_view(sp_id, new_word, new_pcode)
        return PageChanges(before=before, after=after, ids=frozenset(diff))

    def live_pages(self, op_step: int) -> LivePages:
        """Every live page after `op_step` events as its raw state (LivePages): what
        pages_at() gives without building a view per page."""
        self._check(op_step, "op")
        states, _ = self.events.seek(op_step)
        return LivePages(self, states.live())

    def brief(self, sp_id: int, word: int, pcode: int) -> tuple[SpStatus, int, int, int]:
        """(status, level, first parent's id or -1, l2_gfn) of page `sp_id` in state
        (word, pcode): what its view() would say of these, without building it."""
        events = self.events
        row = events.row_of[sp_id]
        parents = events.parents(pcode)
        root_count = unpack_state(word, ())[3]
        status = page_status(False, bool(word & INVALID), root_count, bool(word & ORPHAN),
                             bool(word & UNSYNC), bool(parents))
        return (status, events.roles[events.st_role[row]][2],
                parents[0][0] if parents else -1, events.st_l2_gfn[row])

    def pages_at(self, op_step: int) -> tuple[SpView, ...]:
        """Every live page after `op_step` events, in id order (Snapshot.pages)."""
        self._check(op_step, "op")
        states, _ = self.events.seek(op_step)
        cached = self.cached_view
        return tuple([cached(i, w, p) for i, w, p in states.live()])

    def summary(self, step: int, grain: Grain, counts: PageCounts,
                max_ops: int = MAX_ACTION_OPS) -> StepSummary:
        """The step as snapshot() gives it, but for its pages: their counts come from
        `counts`, which must be at the step's op step (PageCounts.move_to). Its action
        carries at most `max_ops` of its kernel operations (snapshot()'s carries
        MAX_ACTION_OPS: a caller that shows fewer need not have the others built;
        op_headers() says what they are)."""
        lo, hi = self.op_range(step, grain)
        if counts.op_step != hi:
            raise ValueError(f"the page counts are at op step {counts.op_step}, not {hi}")
        done = self.replay(lo, hi)
        counters, deltas_out = self._counters(done.values, done.before)
        event_view, action_view = self._step_views(step, grain, lo, max_ops)
        by_level = {str(level): n for level, n in sorted(counts.orphans_by_level.items()) if n}
        return StepSummary(
            step=step, grain=grain, last_step=self.last_step(grain), op_step=hi,
            n_pages=counts.n_pages, ghosts=self._ghosts(done), changed=done.changed,
            created=done.created, stats=counters,
            stat_deltas=deltas_out,
            orphans=OrphanSummary(
                total=counters["orphans"], unsync=counters["orphans_unsync"],
                by_level=by_level, unreachable=counts.unreachable,
                unreachable_unsync=counts.unreachable_unsync,
            ),
            event=event_view, action=action_view,
        )


class _PageReader:
    """What a page's view says of it (brief), and its view, built on demand (view), for a
    page given as its raw state (state word, parent code)."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline

    def brief(self, sp_id: int, word: int, pcode: int) -> tuple[SpStatus, int, int, int]:
        return self.timeline.brief(sp_id, word, pcode)

    def view(self, sp_id: int, word: int, pcode: int) -> SpView:
        return self.timeline.cached_view(sp_id, word, pcode)


class LivePages(_PageReader):
    """Every live page at one op step as (sp id, state word, parent code), in id order."""

    def __init__(self, timeline: Timeline, states: list[tuple[int, int, int]]) -> None:
        super().__init__(timeline)
        self.states = states


class StateChanges(_PageReader):
    """Timeline.changed_states() with its reader: (state at the first step, state at the
    second) of every page reported; (0, 0): not live."""

    def __init__(self, timeline: Timeline,
                 diff: dict[int, tuple[PageState, PageState]]) -> None:
        super().__init__(timeline)
        self.diff = diff

    def sides(self) -> tuple[list[tuple[int, tuple[int, SpStatus]]],
                             list[tuple[int, int, int]]]:
        """The pages reported, in id order: (sp id, (first parent's id or -1, status)) at
        the first step, as brief() reads them, of those live there, and (sp id, state
        word, parent code) at the second of those live there. One loop here rather than a
        call per page in the caller: a step that rewrites a whole table reports 514."""
        brief = self.timeline.brief
        before: list[tuple[int, tuple[int, SpStatus]]] = []
        after: list[tuple[int, int, int]] = []
        diff = self.diff
        for sp_id in sorted(diff):
            old, new = diff[sp_id]
            if old[0]:
                status, _level, first, _l2_gfn = brief(sp_id, old[0], old[1])
                before.append((sp_id, (first, status)))
            if new[0]:
                after.append((sp_id, new[0], new[1]))
        return before, after


def _is_root(word: int) -> bool:
    """A valid page the vCPU holds as a root (root_count > 0): where reachability starts."""
    return bool(word) and not word & INVALID and unpack_state(word, ())[3] > 0


class PageCounts:
    """What the step's panels count over every live page, at one op step: the live pages,
    the orphans per level, and the unreachable pages (OrphanSummary.with_reachability():
    valid pages no walk from a valid root reaches, and how many of them are unsync).

    Built once from every page (like a snapshot), then moved to another step by the pages
    whose state differs between the two (Timeline.changed_states): only pages whose
    liveness, parents or root status changed, and the pages linked below them, are walked
    again, so a step costs what it changed rather than the tree's size. Mutable: one
    owner moves it (the web layer holds one per run, under a lock).
    """

    def __init__(self, timeline: Timeline, op_step: int) -> None:
        timeline._check(op_step, "op")
        self.timeline = timeline
        self.op_step = op_step
        events = timeline.events
        states, _ = events.seek(op_step)
        self.words: dict[int, int] = {}
        self.pcodes: dict[int, int] = {}
        self.children: dict[int, set[int]] = {}
        for sp_id, word, pcode in states.live():
            self.words[sp_id] = word
            self.pcodes[sp_id] = pcode
            for parent, _index in events.parents(pcode):
                self.children.setdefault(parent, set()).add(sp_id)
        self.reached: set[int] = set()
        stack = [sp_id for sp_id, word in self.words.items() if _is_root(word)]
        while stack:
            sp_id = stack.pop()
            if sp_id not in self.reached:
                self.reached.add(sp_id)
                stack.extend(self.children.get(sp_id, ()))
        self.n_pages = 0
        self.orphans_by_level: dict[int, int] = {}
        self.unreachable = 0
        self.unreachable_unsync = 0
        for sp_id, word in self.words.items():
            self._count(sp_id, word, 1)

    def _level(self, sp_id: int) -> int:
        events = self.timeline.events
        return events.roles[events.st_role[events.row_of[sp_id]]][2]

    def _count(self, sp_id: int, word: int, sign: int) -> None:
        """Add (sign 1) or take away (-1) what page `sp_id` in state `word` counts for."""
        if not word:
            return
        self.n_pages += sign
        if word & ORPHAN:
            level = self._level(sp_id)
            self.orphans_by_level[level] = self.orphans_by_level.get(level, 0) + sign
        if not word & INVALID and sp_id not in self.reached:
            self.unreachable += sign
            if word & UNSYNC:
                self.unreachable_unsync += sign

    def move_to(self, op_step: int) -> None:
        """The counts after `op_step` events, from those at the current op step."""
        if op_step != self.op_step:
            self.apply(self.timeline.changed_states(self.op_step, op_step))
            self.op_step = op_step

    def apply(self, diff: dict[int, tuple[PageState, PageState]]) -> None:
        """Move by `diff`: (old state, new state) of every page whose state differs."""
        words, pcodes, children, reached = self.words, self.pcodes, self.children, self.reached
        parents_of = self.timeline.events.parents
        seeds: list[int] = []
        for sp_id, ((old_word, old_pcode), (new_word, new_pcode)) in diff.items():
            self._count(sp_id, old_word, -1)
            if old_pcode != new_pcode or bool(old_word) != bool(new_word):
                if old_word:
                    for parent, _index in parents_of(old_pcode):
                        below = children.get(parent)
                        if below is not None:
                            below.discard(sp_id)
                            if not below:
                                del children[parent]
                if new_word:
                    for parent, _index in parents_of(new_pcode):
                        children.setdefault(parent, set()).add(sp_id)
                seeds.append(sp_id)
            elif _is_root(old_word) != _is_root(new_word):
                seeds.append(sp_id)
            if new_word:
                words[sp_id] = new_word
                pcodes[sp_id] = new_pcode
            else:
                words.pop(sp_id, None)
                pcodes.pop(sp_id, None)
        # Reachability can change only at the seeds and below them.
        region: set[int] = set()
        stack = seeds
        while stack:
            sp_id = stack.pop()
            if sp_id not in region:
                region.add(sp_id)
                stack.extend(children.get(sp_id, ()))
        for sp_id in region:
            if sp_id not in diff:
                self._count(sp_id, words.get(sp_id, 0), -1)
        reached.difference_update(region)
        # Parents sit one level above their children: walking the region from the top
        # level down, every parent's reachability is known when its children ask.
        for sp_id in sorted(region, key=self._level, reverse=True):
            word = words.get(sp_id, 0)
            if not word:
                continue
            if _is_root(word) or any(p in reached for p, _i in parents_of(pcodes[sp_id])):
                reached.add(sp_id)
        for sp_id in region | diff.keys():
            self._count(sp_id, words.get(sp_id, 0), 1)
