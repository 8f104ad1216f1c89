"""RunCache and the garbage collector: a cached run is frozen out of the collector's sight as
soon as it is built, and an evicted run is freed by reference counting alone (a model run
leaves no reference cycles), so neither needs a full collection over every cached run; what
else gets frozen with a build is collected every few builds."""

from __future__ import annotations

import gc
import weakref

import pytest

from app.runs import SETTLE_EVERY_BUILDS, RunCache
from mmu_model import Run, run_named


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


class _Node:
    """Something that can be in a reference cycle and be watched with a weakref."""

    def __init__(self) -> None:
        self.me: _Node | None = None


def test_garbage_frozen_with_a_build_is_collected_every_few_builds() -> None:
    # Another request's cyclic garbage, made while a build keeps the collector paused, is
    # frozen along with the run; every SETTLE_EVERY_BUILDS builds it is collected.
    cache = RunCache()
    strays: list[weakref.ref[_Node]] = []

    def build_with_a_stray() -> Run:
        node = _Node()
        node.me = node
        strays.append(weakref.ref(node))
        del node  # garbage now, but only the collector can free it
        return run_named("seed-bottom-up")

    for n in range(1, SETTLE_EVERY_BUILDS + 1):
        cache.get(n, build_with_a_stray)
        gc.collect()  # an ordinary collection: frozen objects are out of its sight
        if n < SETTLE_EVERY_BUILDS:
            assert all(ref() is not None for ref in strays)
    assert all(ref() is None for ref in strays)
