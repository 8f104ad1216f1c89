"""In-memory cache of finished runs: the web layer's only shared mutable state.

Runs are pure functions of their key (scenario spec with its fixes, or stored trace + fixes),
so a cached run is never stale. The cache is an LRU bounded by entry count and by the total
number of recorded events; a per-key lock makes concurrent requests for the same run wait for
one computation instead of starting several.

A recorded run is millions of small immutable objects that live as long as they are cached.
Left to the cyclic garbage collector, every full collection walks them all, which shows up as
100+ ms pauses on ordinary step requests. So a run is built with the collector paused and its
objects are moved out of the collector's sight (gc.freeze) as soon as it is built: the model
leaves no reference cycles behind (a model test checks it), so there is nothing to collect
first, and an evicted run is freed by reference counting alone.

What does need the collector is cyclic garbage that other requests make while a build keeps
it paused (about 200 objects per page request): the freeze catches that too. So every
SETTLE_EVERY_BUILDS builds, everything is handed back (gc.unfreeze), collected once and
frozen again. That walks every cached run (7.9 s with two million-event runs cached), which
is why it is not done on every build or eviction.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from mmu_model import Run, Snapshot

__all__ = ["RunCache", "RunEntry"]

# About 300 MB of timelines at the model's current footprint per event.
DEFAULT_EVENT_BUDGET = 3_000_000
SETTLE_EVERY_BUILDS = 8
_SNAPSHOTS_PER_RUN = 8


@dataclass
class RunEntry:
    """A run plus what the web layer derives from it once (layout) or often (snapshots)."""

    key: Hashable
    run: Run
    lock: threading.Lock = field(default_factory=threading.Lock)
    derived: dict[str, Any] = field(default_factory=dict)
    _snapshots: OrderedDict[tuple[int, str], Snapshot] = field(default_factory=OrderedDict)

    @property
    def weight(self) -> int:
        return max(self.run.n_events, 1)

    def snapshot(self, step: int, grain: str) -> Snapshot:
        key = (step, grain)
        with self.lock:
            snap = self._snapshots.get(key)
            if snap is not None:
                self._snapshots.move_to_end(key)
                return snap
        snap = self.run.snapshot(step, grain)  # type: ignore[arg-type]
        with self.lock:
            self._snapshots[key] = snap
            while len(self._snapshots) > _SNAPSHOTS_PER_RUN:
                self._snapshots.popitem(last=False)
        return snap

    def derive(self, name: str, build: Callable[[], Any]) -> Any:
        """Compute a per-run value once (e.g. the layout), under the entry's lock."""
        with self.lock:
            if name in self.derived:
                return self.derived[name]
        value = build()
        with self.lock:
            return self.derived.setdefault(name, value)


class RunCache:
    def __init__(self, max_entries: int = 12, event_budget: int = DEFAULT_EVENT_BUDGET) -> None:
        self.max_entries = max_entries
        self.event_budget = event_budget
        self._entries: OrderedDict[Hashable, RunEntry] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self.hits = 0
        self.misses = 0
        self._builds = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, compute: Callable[[], Run]) -> RunEntry:
        with self._lock:
            entry = self._lookup(key)
            if entry is not None:
                return entry
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                entry = self._lookup(key)
                if entry is not None:
                    return entry
                self.misses += 1
            try:
                run = _build_frozen(compute)
            finally:
                with self._lock:
                    self._key_locks.pop(key, None)
            entry = RunEntry(key=key, run=run)
            with self._lock:
                self._entries[key] = entry
                self._evict()
                self._builds += 1
                settle = self._builds % SETTLE_EVERY_BUILDS == 0
            if settle:
                _settle_garbage()
            return entry

    def _lookup(self, key: Hashable) -> RunEntry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return entry

    def _evict(self) -> None:
        total = sum(e.weight for e in self._entries.values())
        while len(self._entries) > 1 and (
            len(self._entries) > self.max_entries or total > self.event_budget
        ):
            _, old = self._entries.popitem(last=False)
            total -= old.weight

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
        _settle_garbage()


def _build_frozen(compute: Callable[[], Run]) -> Run:
    """Build a run with the collector paused, then freeze everything alive.

    Left running, the collector's first passes after a build would walk every object the
    build allocated: about 4 s for a million-event run.
    """
    gc.collect()  # what earlier requests left; the cached runs are frozen already
    collecting = gc.isenabled()
    gc.disable()
    try:
        run = compute()
        gc.freeze()
    finally:
        if collecting:
            gc.enable()
    return run


def _settle_garbage() -> None:
    """Collect whatever was left frozen, then freeze what still lives."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
