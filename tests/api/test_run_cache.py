"""RunCache in memory: bounded in bytes (Run.nbytes), and no garbage collection of its own.

An evicted run is freed by reference counting alone (a model run leaves no reference
cycles), so the cache never needs a full collection and never asks for one: on main, a
gc.unfreeze + gc.collect every 8th build stalled every request for seconds.
"""

from __future__ import annotations

import gc
import weakref

import pytest

from app.run_codec import run_nbytes
from app.runs import RunCache
from mmu_model import run_named


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


def test_a_build_that_fails_is_not_remembered() -> None:
    cache = RunCache()

    def broken() -> object:
        raise ValueError("bad trace")

    with pytest.raises(ValueError, match="bad trace"):
        cache.get("broken", broken)  # type: ignore[arg-type]
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
    cache never calls the collector nor unfreezes."""
    asked: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda generation=2: asked.append(generation) or 0)
    monkeypatch.setattr(gc, "unfreeze", lambda: pytest.fail("the cache unfroze the heap"))
    cache = RunCache(max_entries=1)
    for n in range(10):
        cache.get(n, lambda: run_named("seed-bottom-up"))
    assert len(cache) == 1
    assert asked == []
