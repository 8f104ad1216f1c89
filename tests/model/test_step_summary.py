"""Steps by what changed: Run.summary() with a moving PageCounts, and Run.changed_pages().

Both are read APIs over the compact record; the reference for each is Run.snapshot(),
which rebuilds every page of the step. A summary is the snapshot without its pages: the
same fields, n_pages = len(snapshot.pages), and the same OrphanSummary, whose unreachable
counts a snapshot derives by walking from every valid root (OrphanSummary.
with_reachability) while the summary's PageCounts keeps them by re-walking only below the
pages whose liveness, parents or root status changed. changed_pages(a, b) must report
exactly the pages whose view differs between the two snapshots, each as that snapshot
shows it.
"""

from __future__ import annotations

import random

import pytest

from mmu_model import Run, get_scenario, run_named, run_scenario
from mmu_model.snapshot import Snapshot, StepSummary


def runs() -> dict[str, Run]:
    spec = get_scenario("teaching-small").spec
    assert spec is not None
    return {
        "teaching-small": run_named("teaching-small"),
        # 60 boots: root zaps each boot, orphans piling up (unreachable pages change a lot).
        "teaching-small-60": run_scenario(spec.replace(boots=60)),
        "seed-top-down": run_named("seed-top-down"),
        "seed-bottom-up": run_named("seed-bottom-up"),
        "large-10k": run_named("large-10k"),
    }


RUNS = runs()


def same_step(summary: StepSummary, snap: Snapshot) -> None:
    assert summary.n_pages == len(snap.pages)
    assert summary.orphans == snap.orphans  # total, unsync, by_level, unreachable(_unsync)
    for name in ("step", "grain", "last_step", "ghosts", "changed", "created", "stats",
                 "stat_deltas", "event", "action"):
        assert getattr(summary, name) == getattr(snap, name), name


@pytest.mark.parametrize("name", list(RUNS))
@pytest.mark.parametrize("grain", ["action", "op"])
def test_summary_with_moving_counts_is_the_snapshot_without_pages(name: str, grain: str) -> None:
    """One PageCounts moved to steps in a shuffled order (forward, back, far and near, and
    the last step, where a run's teardown leaves its fewest pages) gives what each step's
    snapshot counts from scratch."""
    run = RUNS[name]
    last = run.last_step(grain)  # type: ignore[arg-type]
    rnd = random.Random(11)
    steps = sorted({0, last, *range(0, last + 1, max(last // 12, 1)),
                    *(rnd.randrange(last + 1) for _ in range(12))})
    walk = steps + [s + 1 for s in steps if s < last]
    rnd.shuffle(walk)
    counts = run.page_counts(walk[0], grain)  # type: ignore[arg-type]
    for step in walk:
        same_step(run.summary(step, grain, counts),  # type: ignore[arg-type]
                  run.snapshot(step, grain))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(RUNS))
def test_changed_pages_are_the_pages_whose_views_differ(name: str) -> None:
    """For step pairs near and far (both directions), `before`/`after` hold each reported
    page as snapshot(a)/snapshot(b) show it; every page not reported looks the same in
    both; pages asked for with `also` are reported even when unchanged."""
    run = RUNS[name]
    last = run.n_actions
    rnd = random.Random(5)
    pairs = [(a, min(a + d, last)) for a in (rnd.randrange(last + 1) for _ in range(8))
             for d in (1, 3, 40)]
    pairs += [(b, a) for a, b in pairs]
    for a, b in pairs:
        old, new = run.snapshot(a), run.snapshot(b)
        old_pages = {p.id: p for p in old.pages}
        new_pages = {p.id: p for p in new.pages}
        also = frozenset(list(old_pages)[:3])
        changes = run.changed_pages(a, b, "action", also)
        differing = {i for i in old_pages.keys() | new_pages.keys()
                     if old_pages.get(i) != new_pages.get(i)}
        assert changes.ids == differing | also
        assert changes.before == {i: old_pages[i] for i in changes.ids if i in old_pages}
        assert changes.after == {i: new_pages[i] for i in changes.ids if i in new_pages}


@pytest.mark.parametrize("name", ["seed-bottom-up", "large-10k"])
def test_a_summary_with_fewer_ops_is_the_snapshot_cut_short(name: str) -> None:
    """Timeline.summary(max_ops=k) builds only the first k of the action's ops: the action is
    the snapshot's with its ops tuple cut to k (n_ops still counts them all, the other fields
    do not depend on the ops), and Timeline.op_headers(index, start=k) says what the rest of
    the snapshot's ops are, (kind, call path, args) each, in order."""
    run = RUNS[name]
    timeline = run.timeline
    assert timeline is not None
    # The steps whose action has the most ops: those have ops to leave out.
    steps = sorted(range(1, run.n_actions + 1), key=lambda s: -run.action(s - 1).n_ops)[:5]
    for step in steps:
        snap = run.snapshot(step)
        assert snap.action is not None
        assert len(snap.action.ops) > 3
        for k in (0, 3):
            summary = timeline.summary(step, "action", run.page_counts(step), max_ops=k)
            assert summary.action is not None
            assert summary.action.ops == snap.action.ops[:k]
            assert summary.action.n_ops == snap.action.n_ops
            assert summary.action.narration == snap.action.narration
            assert summary.event == snap.event
            rest = timeline.op_headers(step - 1, start=k)
            assert rest == [(ev.kind, ev.call_path, ev.args) for ev in snap.action.ops[k:]]
