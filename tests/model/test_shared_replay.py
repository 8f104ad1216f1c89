"""One replay per event range, shared by a step's callers (Timeline.replay).

A step asks for the events of its range up to three times: its summary (what the step
touched, made and freed, its counters), the page counts moved to it, and the tree's pages
whose state differs from the drawn step's (changed_states / changed_pages). Timeline.replay
applies the range once and keeps the result for the others.

The reference for a replay is the decoded event log itself: Timeline.event(i) lists the
pages event i touched, made and freed and its counter deltas, and EventRecord.seek() gives
every page's state at either end of the range from the nearest checkpoint, independently
of the replay's own walk. The shared results must also equal what the same calls give on
their own, each on a fresh Timeline over the same record (nothing kept between them), in
the order the web layer makes them and in others.
"""

from __future__ import annotations

import functools
import random

import pytest

from mmu_model import Run, list_scenarios, run_named
from mmu_model.timeline import PageCounts, Timeline

NAMES = [info.name for info in list_scenarios()]


@functools.cache
def _run(name: str) -> Run:
    return run_named(name)


def _timeline(run: Run) -> Timeline:
    assert run.timeline is not None
    return run.timeline


def _ranges(timeline: Timeline, seed: int) -> list[tuple[int, int]]:
    """Some actions' event ranges (as a step applies them), some ranges across several
    actions or checkpoints, an empty one, and the run's first and last events."""
    rnd = random.Random(seed)
    n = timeline.n_events
    out = [(0, 0), (0, min(n, 7)), (max(n - 5, 0), n)]
    for _ in range(6):
        out.append(timeline.op_range(rnd.randint(1, timeline.n_actions), "action"))
    for _ in range(3):
        lo = rnd.randrange(n)
        out.append((lo, min(n, lo + rnd.randint(1, 3000))))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_a_replay_is_what_the_event_log_says_of_its_range(name: str) -> None:
    timeline = _timeline(_run(name))
    events = timeline.events
    n_pages = len(events.row_of)
    for lo, hi in _ranges(timeline, 3):
        done = timeline.replay(lo, hi)
        log = [timeline.event(i) for i in range(lo, hi)]
        touched = {sp for ev in log for sp in ev.touched}
        assert done.changed == touched
        assert done.created == {sp for ev in log for sp in ev.created}
        start, _ = events.seek(lo)
        end, _ = events.seek(hi)
        # Every page's state at hi, and at lo for the pages the range touched.
        assert done.first == {sp: start.get(sp) for sp in touched}
        assert all(done.states.get(sp) == end.get(sp) for sp in range(n_pages))
        # A page the log does not list as touched keeps its state over the range.
        differs = {sp: (start.get(sp), end.get(sp)) for sp in range(n_pages)
                   if start.get(sp) != end.get(sp)}
        assert differs.keys() <= touched
        assert done.diff() == differs
        # Counters: those at lo, plus every event's deltas.
        names = events.counter_names
        assert dict(zip(names, done.before, strict=True)) == timeline.counters_at(lo)
        assert dict(zip(names, done.values, strict=True)) == timeline.counters_at(hi)
        summed = dict.fromkeys(names, 0)
        for ev in log:
            for stat, delta in ev.stat_deltas.items():
                summed[stat] += delta
        assert [done.values[i] - done.before[i] for i in range(len(names))] == [
            summed[stat] for stat in names]
        # Ghosts: every page an event freed while it was live, as it was just before.
        freed = {sp for ev in log for sp in ev.freed}
        assert done.ghosts.keys() <= freed
        for sp, ghost in done.ghosts.items():
            assert ghost.ghost
            assert ghost.id == sp


@pytest.mark.parametrize("name", NAMES)
def test_the_callers_of_one_step_share_its_replay(name: str) -> None:
    """summary(), the page counts moved to the step, and changed_states() between the
    drawn step and this one replay the step's events once: the same Replay comes back."""
    run = _run(name)
    timeline = Timeline.of_record(_timeline(run).events)
    step = max(run.n_actions // 2, 1)
    lo, hi = timeline.op_range(step, "action")
    counts = PageCounts(timeline, lo)
    counts.move_to(hi)
    kept = timeline.replay(lo, hi)
    timeline.summary(step, "action", counts)
    timeline.changed_states(lo, hi)
    assert timeline.replay(lo, hi) is kept


def _counted(counts: PageCounts) -> tuple[object, ...]:
    """What a PageCounts counts (a level whose orphans all went counts none)."""
    by_level = {level: n for level, n in counts.orphans_by_level.items() if n}
    return counts.n_pages, by_level, counts.unreachable, counts.unreachable_unsync


@pytest.mark.parametrize("name", NAMES)
def test_shared_replays_give_what_separate_ones_give(name: str) -> None:
    """A walk over steps (forward by one as a visitor steps, back, and far), each step
    handled as the web layer does (move the counts, summarize, then the pages changed since
    the drawn step, with `also`), gives what each call gives on a fresh Timeline."""
    run = _run(name)
    record = _timeline(run).events
    shared = Timeline.of_record(record)
    last = shared.n_actions
    rnd = random.Random(7)
    start = rnd.randrange(last)
    walk = [start, *range(start + 1, min(start + 6, last) + 1), max(start - 1, 0),
            rnd.randrange(last + 1), rnd.randrange(last + 1)]
    counts = PageCounts(shared, shared.op_step(walk[0], "action"))
    drawn = walk[0]
    for step in walk:
        hi = shared.op_step(step, "action")
        from_op = shared.op_step(drawn, "action")
        counts.move_to(hi)
        summary = shared.summary(step, "action", counts)
        also = sorted(summary.changed)[:4]
        changes = shared.changed_pages(from_op, hi, also)

        alone_counts = PageCounts(Timeline.of_record(record), hi)
        assert summary == Timeline.of_record(record).summary(step, "action", alone_counts)
        assert _counted(counts) == _counted(alone_counts)
        alone = Timeline.of_record(record).changed_pages(from_op, hi, also)
        assert changes == alone
        assert shared.changed_states(hi, from_op) == Timeline.of_record(
            record).changed_states(hi, from_op)
        drawn = step
