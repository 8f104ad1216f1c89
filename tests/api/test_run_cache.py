"""RunCache in memory: bounded in bytes, and the garbage collector kept off cached runs.

A cached run is frozen out of the collector's sight as soon as it is made, and an evicted
run is freed by reference counting alone (a model run leaves no reference cycles), so the
cache never needs a full collection, and never asks for one: that stalled every request
for seconds on main (a gc.unfreeze + gc.collect every 8th build).
"""

from __future__ import annotations

import gc
import weakref

import pytest

from app.run_codec import run_nbytes
from app.runs import RunCache
from mmu_model import run_named


def _in_a_collected_generation(obj: object) -> bool:
    # gc.get_objects() lists generations 0 to 2; frozen objects sit in the permanent one.
    return any(o is obj for o in gc.get_objects())


def test_a_cached_run_is_frozen_as_soon_as_it_is_built() -> None:
    cache = RunCache()
    entry = cache.get("run", lambda: run_named("teaching-small"))
    timeline = entry.run.timeline
    assert timeline is not None
    assert gc.is_tracked(timeline)
    assert not _in_a_collected_generation(timeline)
    assert not _in_a_collected_generation(timeline.events)
    assert gc.isenabled()  # the build paused the collector and gave it back


def test_an_evicted_run_is_freed_without_the_collector() -> None:
    cache = RunCache(max_entries=1)
    first = cache.get("first", lambda: run_named("teaching-small"))
    assert first.run.timeline is not None
    timeline = weakref.ref(first.run.timeline)
    gc.disable()
    try:
        cache.get("second", lambda: run_named("seed-bottom-up"))  # evicts "first"
        assert len(cache) == 1
        assert timeline() is not None  # still held here
        del first
        # Reference counting alone must free it: the collector is paused.
        assert timeline() is None
    finally:
        gc.enable()


def test_a_build_that_fails_gives_the_collector_back() -> None:
    cache = RunCache()

    def broken() -> object:
        raise ValueError("bad trace")

    with pytest.raises(ValueError, match="bad trace"):
        cache.get("broken", broken)  # type: ignore[arg-type]
    assert gc.isenabled()
    assert len(cache) == 0
    # A failed build is not remembered: the next request tries again.
    assert cache.get("broken", lambda: run_named("teaching-small")).run.n_events > 0


def test_the_cache_is_bounded_in_bytes_not_in_runs() -> None:
    # Room for one teaching-small run and a half: the second evicts the first even though
    # max_entries would keep twelve.
    one = run_nbytes(run_named("teaching-small"))
    cache = RunCache(max_entries=12, byte_budget=one * 3 // 2)
    cache.get(("ts", 1), lambda: run_named("teaching-small"))
    assert cache.nbytes == one
    cache.get(("ts", 2), lambda: run_named("teaching-small"))
    assert len(cache) == 1
    assert cache.nbytes == one
    assert cache.counts["built"] == 2


def test_a_run_larger_than_the_budget_is_still_served_and_kept_alone() -> None:
    cache = RunCache(byte_budget=1)
    entry = cache.get("big", lambda: run_named("teaching-small"))
    assert entry.run.n_events > 0
    assert len(cache) == 1
    cache.get("big", lambda: pytest.fail("a cached run is not built again"))
    assert cache.counts["memory"] == 1


def test_no_build_or_eviction_asks_for_a_full_collection(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """More builds than main's every-8th-build settle, each evicting the one before: the
    cache collects at most the young generations (0 and 1) and never unfreezes."""
    asked: list[int] = []
    real_collect = gc.collect

    def collect(generation: int = 2) -> int:
        asked.append(generation)
        return real_collect(min(generation, 1))

    monkeypatch.setattr(gc, "collect", collect)
    monkeypatch.setattr(gc, "unfreeze", lambda: pytest.fail("the cache unfroze the heap"))
    cache = RunCache(max_entries=1)
    for n in range(10):
        cache.get(n, lambda: run_named("seed-bottom-up"))
    assert asked, "a build collects what earlier requests left in the young generations"
    assert max(asked) <= 1
