"""RunCache in memory: bounded in bytes (Run.nbytes), and no garbage collection of its own.

An evicted run is freed by reference counting alone (a model run leaves no reference
cycles), so the cache never needs a full collection and never asks for one: on main, a
gc.unfreeze + gc.collect every 8th build stalled every request for seconds.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable

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


def test_kept_html_is_rendered_once_per_view_and_weighs_while_kept() -> None:
    """A view's marker strip is rendered once and kept with the run, its bytes in the run's
    weight; past the last few views kept, the oldest is dropped and its bytes with it."""
    entry = RunCache().get("ts", lambda: run_named("teaching-small"))
    renders: list[str] = []

    def render(text: str) -> Callable[[], str]:
        def go() -> str:
            renders.append(text)
            return text
        return go

    base = entry.nbytes
    assert entry.kept_html("view-a", render("a" * 1000)) == "a" * 1000
    assert entry.kept_html("view-a", render("a" * 1000)) == "a" * 1000
    assert renders == ["a" * 1000]
    assert entry.nbytes == base + 1000
    kept = 4  # views kept per run (app/runs.py _KEPT_HTML_PER_RUN)
    for k in range(1, kept + 1):  # as many new views as are kept: view-a goes
        entry.kept_html(f"view-{k}", render("b" * 10))
    assert entry.nbytes == base + kept * 10
    assert entry.kept_html("view-a", render("c" * 5)) == "c" * 5  # rendered again
    assert entry.nbytes == base + (kept - 1) * 10 + 5  # view-1 made room for it


def test_what_a_run_keeps_of_its_steps_counts_in_its_weight() -> None:
    """Whole snapshots, step summaries and the page counts they are moved along hold a
    few hundred bytes per page view: the run's weight grows with them, by at least what
    tracemalloc says they hold, so the cache's byte budget sees them."""
    import tracemalloc

    entry = RunCache().get("l10k", lambda: run_named("large-10k"))
    middle = entry.run.n_actions // 2  # about 5,000 live pages
    base = entry.weight
    tracemalloc.start()
    snap = entry.snapshot(middle, "action")
    entry.summary(middle, "action")
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(snap.pages) > 4000
    assert entry.weight - base >= held


def test_a_run_that_grows_past_the_budget_pushes_the_older_ones_out() -> None:
    """Three teaching-small runs fit the budget until the newest keeps a few of its steps:
    its next use evicts the oldest run, with no new run inserted; the run used just before
    it (a compare view's other run) stays."""
    one = run_nbytes(run_named("teaching-small"))
    cache = RunCache(byte_budget=one * 7 // 2)
    cache.get("old", lambda: run_named("teaching-small"))
    cache.get("mid", lambda: run_named("teaching-small"))
    new = cache.get("new", lambda: run_named("teaching-small"))
    assert len(cache) == 3
    for step in range(1, new.run.n_actions + 1, 4):
        new.snapshot(step, "action")
    assert new.weight > one * 3 // 2
    cache.get("mid", lambda: pytest.fail("cached"))  # the pair in use: mid, then new
    cache.get("new", lambda: pytest.fail("cached"))
    assert len(cache) == 2
    cache.get("mid", lambda: pytest.fail("mid is kept: it was used just before new"))
