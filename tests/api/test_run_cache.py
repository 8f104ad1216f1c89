"""RunCache and the garbage collector: a cached run is frozen out of the collector's sight as
soon as it is built, and an evicted run is freed by reference counting alone (a model run
leaves no reference cycles), so neither needs a full collection over every cached run."""

from __future__ import annotations

import gc
import weakref

import pytest

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
