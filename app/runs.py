"""In-memory cache of finished runs, in front of the run store and the build pool: the web
layer's only shared mutable state.

A run is a pure function of its key, so a cached run is never stale. get(key, job) looks in
memory, then in the run store (app/run_store.py, files beside the SQLite database), and
only then builds: the job's cost is checked first (mmu_model/cost.py: a 4xx naming the
field over the limit), the client's quota of new builds (429) and the pool's free slots
(503) next, and the build runs in a worker process (app/builds.py). Everyone asking for one
key while it is being loaded or built waits for that one load; when all of them have gone
(their connections closed), the build is cancelled. A built run lands as soon as its
worker sends it: the worker then scans it for its index, while this process lays it out
and stores it; both parts go into the run store beside the run (app/run_parts.py), and a
run loaded from the store brings them (RunEntry.part).

What a run costs in memory: the compact run record holds 34-89 bytes per event, measured
by Run.nbytes (teaching-small 30 KB, large-10k 4.8 MB, boot-loop-bottom-up 5.1 MB,
populated-16g 8.2 MB), so the cache is bounded in bytes by run_nbytes(), not by counts.
What the web layer derives from a run counts too (RunEntry.weight): its index
(app/markers.py) and layout (app/run_parts.py), an index's bytes while they wait to be
taken, its kept marker strips, the snapshots and summaries it keeps, the page
counts its summaries are moved along (PageCounts: COUNTS_BYTES_PER_PAGE a live page, 18 MB
at the 100k-page spec's busiest step) and the page views its timeline keeps for reuse
(VIEW_BYTES each, one per page shown).

No collection walks a cached run for long, and the cache never asks for one: a run is a
few large arrays, not millions of objects (so the gc.freeze of each run, and main's full
collection every 8th build, are gone), and an evicted run is freed by reference counting.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from app.build_jobs import BuildJob
from app.builds import BuildPool, Busy, Cancelled, Task
from app.requesters import ClientBuildLimit, Requester, current_requester
from app.run_codec import decode_run, run_nbytes
from app.run_parts import INDEX, LAYOUT, encode_layout, part_version, run_layout_of
from app.run_store import RunStore, model_fingerprint
from mmu_model import Run, Snapshot
from mmu_model.cost import DEFAULT_MAX_EVENTS
from mmu_model.snapshot import StepSummary
from mmu_model.timeline import PageCounts

__all__ = ["DEFAULT_BYTE_BUDGET", "ClientGone", "RunCache", "RunEntry"]

log = logging.getLogger(__name__)

DEFAULT_BYTE_BUDGET = 256 << 20  # every built-in (8 MB records, up to ~40 MB once drawn whole)
_SNAPSHOTS_PER_RUN = 8
_SUMMARIES_PER_RUN = 64  # a few hundred bytes each, plus the step's ghosts
# Rendered parts of the page that depend on the run and the view but not on the step (the
# timeline's marker strip: up to 260 KB on a long run), kept for so many views per run.
_KEPT_HTML_PER_RUN = 4
# What a PageCounts holds per live page (its word and parent-code dicts, the reached set,
# the children sets), measured with tracemalloc: 207-440 bytes on boot-loop-bottom-up,
# large-10k and the 100k-page spec at their middle and last steps.
COUNTS_BYTES_PER_PAGE = 450

# Moving a run's page counts over more events than this costs about what counting every
# page again does (a 100k-page tree: ~0.1 s either way), so they are counted again.
MOVE_LIMIT_EVENTS = 20_000
# Kernel operations a step summary's action carries: those the narration panel lists
# (app/panels.py), not the model's MAX_ACTION_OPS. A 100k-page step's action has 512, and
# building the view of each of the first 200 (its narration, its page changes) cost about
# 1 ms a step, and the collector as much again for the objects they leave. What the others
# are, the panel's notes read from Timeline.op_headers().
SUMMARY_OPS = 12
_WAIT_POLL_S = 0.1
# How long a first use waits for a part its build worker is still working out (a 100k-page
# run's index scan takes about 0.5 s) before working it out itself.
PART_WAIT_S = 20.0

_K = TypeVar("_K")
_V = TypeVar("_V")


def _lru_get(cache: OrderedDict[_K, _V], key: _K) -> _V | None:
    """The cached value, marked most recently used (the caller holds the lock)."""
    value = cache.get(key)
    if value is not None:
        cache.move_to_end(key)
    return value


class _WeighedLru(Generic[_K, _V]):
    """At most `limit` values, the least recently used dropped first, and what they weigh
    in bytes (`weigh` of each); the caller holds the lock and adds what put() returns to
    the run's nbytes."""

    def __init__(self, limit: int, weigh: Callable[[_V], int]) -> None:
        self.limit = limit
        self.weigh = weigh
        self.items: OrderedDict[_K, tuple[_V, int]] = OrderedDict()

    def get(self, key: _K) -> _V | None:
        hit = _lru_get(self.items, key)
        return None if hit is None else hit[0]

    def put(self, key: _K, value: _V) -> int:
        """Keep `value` (unless `key` is kept already); the change in bytes kept."""
        if key in self.items:
            return 0
        weight = self.weigh(value)
        self.items[key] = (value, weight)
        change = weight
        while len(self.items) > self.limit:
            change -= self.items.popitem(last=False)[1][1]
        return change


# What a step's page views hold, each (SpView and its tuples), measured with tracemalloc
# on snapshots of boot-loop-bottom-up, large-10k, populated-16g and the 100k-page spec:
# 234-857 bytes; and a changed or created page id in a summary's frozensets.
VIEW_BYTES = 900
PAGE_ID_BYTES = 100


def _snapshot_bytes(snap: Snapshot) -> int:
    # Live pages' views are the timeline's own (Timeline.cached_view, weighed in
    # RunEntry.weight); a snapshot adds its tuple of them and its ghosts' views.
    return len(snap.pages) * 8 + len(snap.ghosts) * VIEW_BYTES + 1024


def _summary_bytes(summary: StepSummary) -> int:
    return (len(summary.ghosts) * VIEW_BYTES
            + (len(summary.changed) + len(summary.created)) * PAGE_ID_BYTES + 2048)


class ClientGone(Exception):
    """The client closed its connection while waiting for a run."""


@dataclass
class RunEntry:
    """A run plus what the web layer derives from it once (layout) or often (snapshots)."""

    key: Hashable
    run: Run
    nbytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    derived: dict[str, Any] = field(default_factory=dict)
    # Kept per run, and counted in nbytes while kept: whole steps, step summaries, and
    # rendered parts that do not change with the step.
    _snapshots: _WeighedLru[tuple[int, str], Snapshot] = field(
        default_factory=lambda: _WeighedLru(_SNAPSHOTS_PER_RUN, _snapshot_bytes))
    _summaries: _WeighedLru[tuple[int, str], StepSummary] = field(
        default_factory=lambda: _WeighedLru(_SUMMARIES_PER_RUN, _summary_bytes))
    _kept_html: _WeighedLru[Hashable, str] = field(
        default_factory=lambda: _WeighedLru(_KEPT_HTML_PER_RUN, len))
    # The run's page counts at the last step summarized, moved to each step asked for.
    _counts: PageCounts | None = None
    _counts_lock: threading.Lock = field(default_factory=threading.Lock)
    _counts_nbytes: int = 0  # what the counts add to nbytes, for their size now
    # One lock per derived value being worked out, so two first uses build it once.
    _deriving: dict[str, threading.Lock] = field(default_factory=dict)
    # The run's parts (app/run_parts.py) that came, or are coming, with it from its build
    # worker (their bytes count in nbytes until taken), and the run store's, by part name.
    _parts: dict[str, Future[bytes | None]] = field(default_factory=dict)
    _part_nbytes: dict[str, int] = field(default_factory=dict)
    stored_part: Callable[[str], bytes | None] | None = None
    keep_part: Callable[[str, bytes], None] | None = None

    @property
    def weight(self) -> int:
        """nbytes, and the page views the run's timeline keeps for reuse (one per page
        shown so far: up to 90 MB for the 100k-page spec once every page was drawn)."""
        timeline = self.run.timeline
        views = timeline.n_views if timeline is not None else 0
        return max(self.nbytes + views * VIEW_BYTES, 1)

    def weigh(self, change: int) -> None:
        """What something kept with the run (outside the kept values above) adds to its
        weight, or gives back when it is dropped (negative)."""
        with self.lock:
            self.nbytes += change

    def snapshot(self, step: int, grain: str) -> Snapshot:
        key = (step, grain)
        with self.lock:
            snap = self._snapshots.get(key)
        if snap is not None:
            return snap
        snap = self.run.snapshot(step, grain)  # type: ignore[arg-type]
        with self.lock:
            self.nbytes += self._snapshots.put(key, snap)
        return snap

    def summary(self, step: int, grain: str) -> StepSummary:
        """The step without its pages (what most panels show): its cost is what changed
        since the last step summarized, not the tree's size (StepOutOfRange if no step)."""
        key = (step, grain)
        with self.lock:
            hit = self._summaries.get(key)
        if hit is not None:
            return hit
        run = self.run
        g: Any = grain
        with self._counts_lock:
            counts = self._counts
            self._counts = None  # until it is moved (a failure must not leave it half-moved)
            if counts is None or abs(counts.op_step - run.op_step(step, g)) > MOVE_LIMIT_EVENTS:
                counts = run.page_counts(step, g)
            summary = run.summary(step, g, counts, max_ops=SUMMARY_OPS)
            self._counts = counts
            counted = counts.n_pages * COUNTS_BYTES_PER_PAGE
            with self.lock:
                self.nbytes += counted - self._counts_nbytes
                self._counts_nbytes = counted
        with self.lock:
            self.nbytes += self._summaries.put(key, summary)
        return summary

    def kept_html(self, key: Hashable, render: Callable[[], str]) -> str:
        """HTML rendered once per `key` (a view, without its step) and kept with the run,
        whose weight in the cache's byte budget counts it while it is kept."""
        with self.lock:
            hit = self._kept_html.get(key)
        if hit is not None:
            return hit
        html = render()
        with self.lock:
            self.nbytes += self._kept_html.put(key, html)
        return html

    def derive(self, name: str, build: Callable[[], Any],
               weigh: Callable[[Any], int] | None = None) -> Any:
        """A per-run value computed once (e.g. the layout) and kept with the run; `weigh`
        gives the bytes it adds to the run's weight. A second first use waits for the
        first one's build (a derived value may derive others, never itself)."""
        with self.lock:
            if name in self.derived:
                return self.derived[name]
            building = self._deriving.setdefault(name, threading.Lock())
        with building:
            with self.lock:
                if name in self.derived:
                    return self.derived[name]
            value = build()
            with self.lock:
                self.derived[name] = value
                self._deriving.pop(name, None)
                if weigh is not None:
                    self.nbytes += weigh(value)
                return value

    # -- parts --------------------------------------------------------------------------
    def expect_part(self, name: str, coming: Future[bytes | None]) -> None:
        """A part the build worker sends after the run (its bytes weigh until taken)."""
        me = weakref.ref(self)  # the future keeps its callback: no cycle through it

        def arrived(done: Future[bytes | None]) -> None:
            entry, data = me(), done.result()
            if entry is None or data is None:
                return
            with entry.lock:
                if entry._parts.get(name) is done:  # not taken yet: it weighs
                    entry._part_nbytes[name] = len(data)
                    entry.nbytes += len(data)
            if entry.keep_part is not None:
                entry.keep_part(name, data)

        with self.lock:
            self._parts[name] = coming
        coming.add_done_callback(arrived)

    def part(self, name: str, timeout: float = PART_WAIT_S) -> bytes | None:
        """The bytes of a part of the run, taken once: the build worker's (waiting for it
        at most `timeout` seconds), else the run store's; None if neither has it."""
        with self.lock:
            coming = self._parts.pop(name, None)
            self.nbytes -= self._part_nbytes.pop(name, 0)
        if coming is not None:
            try:
                data = coming.result(timeout=timeout)
            except FutureTimeout:
                data = None
            if data is not None:
                return data
        return self.stored_part(name) if self.stored_part is not None else None


@dataclass(eq=False)
class _Flight:
    """One load or build of a key, and how many requests wait for it."""

    future: Future[RunEntry] = field(default_factory=Future)
    waiting: int = 0
    task: Task | None = None


class RunCache:
    def __init__(
        self,
        max_entries: int = 12,
        byte_budget: int = DEFAULT_BYTE_BUDGET,
        *,
        pool: BuildPool | None = None,
        store: RunStore | None = None,
        max_events: int = DEFAULT_MAX_EVENTS,
        client_limit: ClientBuildLimit | None = None,
    ) -> None:
        self.max_entries = max_entries
        self.byte_budget = byte_budget
        self.pool = pool
        self.store = store
        self.max_events = max_events
        self.client_limit = client_limit
        self._entries: OrderedDict[Hashable, RunEntry] = OrderedDict()
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}
        self.counts = {"memory": 0, "store": 0, "built": 0, "store_rejected": 0}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(e.weight for e in self._entries.values())

    # -- getting a run --------------------------------------------------------------------
    def get(self, key: Hashable, compute: Callable[[], Run]) -> RunEntry:
        """The run of `key`: from memory, the store, or built by `compute`.

        `compute` is a BuildJob (built in a worker, stored, cancellable); any other callable
        is built here in the calling thread (kept for callers that are not jobs yet).
        """
        requester = current_requester()
        with self._lock:
            entry = self._lookup(key)
            if entry is not None:
                self._note(requester, "memory")
                return entry
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
            flight.waiting += 1
        if leader:
            self._start(key, flight, compute, requester)
        return self._wait(key, flight, requester)

    def _start(self, key: Hashable, flight: _Flight, compute: Callable[[], Run],
               requester: Requester | None) -> None:
        try:
            if not isinstance(compute, BuildJob) or self.pool is None:
                run = compute()
                self._land(key, flight, run, "built", requester)
                return
            job = compute
            estimated_s = job.check(self.max_events)
            digest = job.digest(model_fingerprint())
            if self.store is not None and self._load_stored(key, flight, digest, requester):
                return
            if self.client_limit is not None:
                self.client_limit.admit(requester.client if requester else None)
            task = self.pool.submit(job, estimated_s)
            with self._lock:
                flight.task = task
            index = task.index  # not the task: its future must not hold it (a cycle)
            task.future.add_done_callback(
                lambda done: self._built(key, flight, digest, done, index, requester))
        except BaseException as exc:
            self._fail(key, flight, exc)

    def _load_stored(self, key: Hashable, flight: _Flight, digest: str,
                     requester: Requester | None) -> bool:
        assert self.store is not None
        data = self.store.load(digest)
        if data is None:
            return False
        try:
            run = decode_run(data)
        except Exception as exc:
            self.counts["store_rejected"] += 1
            self.store.discard(digest, f"does not decode: {type(exc).__name__}: {exc}")
            return False
        self._land(key, flight, run, "store", requester, digest)
        return True

    def _built(self, key: Hashable, flight: _Flight, digest: str, done: Future[bytes],
               index: Future[bytes | None], requester: Requester | None) -> None:
        """In the pool's thread, when the worker has sent the run: load it and lay it out
        while the worker scans it (its index follows: RunEntry.part), then store it. The
        first view waits for the layout and the index; nobody waits for the store, so it
        comes last."""
        try:
            data = done.result()
            run = decode_run(data)
            entry = self._land(key, flight, run, "built", requester, digest, index)
        except BaseException as exc:
            self._fail(key, flight, exc)
            return
        layout = None
        # Until the run is stored, its parts are not: the layout's bytes, encoded once as it
        # is laid out (here or by a first view), wait here.
        laid_out: list[bytes] = []
        entry.keep_part = lambda name, part: laid_out.append(part) if name == LAYOUT else None
        if run.timeline is not None:
            try:
                layout = run_layout_of(entry)
            except Exception:
                log.exception("laying out %s failed", key)
        store = self.store
        if store is None:
            entry.keep_part = None
            return
        try:
            store.save(digest, data)
        except OSError as exc:
            entry.keep_part = None
            log.warning("run store: cannot save %s: %s", digest, exc)
            return
        finally:
            del data
        # Parts are kept beside a stored run only: from now on, the index if it came while
        # the run was being laid out or saved, and the layout (unless the store has it).
        entry.keep_part = lambda name, part: self._keep_part(digest, name, part)
        if index.done() and (part := index.result()) is not None:
            self._keep_part(digest, INDEX, part)
        if layout is not None and not store.has_part(digest, LAYOUT, part_version(LAYOUT)):
            self._keep_part(digest, LAYOUT, laid_out[0] if laid_out else encode_layout(layout))

    def _land(self, key: Hashable, flight: _Flight, run: Run, source: str,
              requester: Requester | None, digest: str | None = None,
              index: Future[bytes | None] | None = None) -> RunEntry:
        entry = RunEntry(key=key, run=run, nbytes=run_nbytes(run))
        store = self.store
        if store is not None and digest is not None:
            entry.stored_part = lambda name: store.load_part(digest, name, part_version(name))
            if source == "store":  # a built run's parts are kept once it is stored (_built)
                entry.keep_part = lambda name, data: self._keep_part(digest, name, data)
        if index is not None:
            entry.expect_part(INDEX, index)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            self._evict()
            self._flights.pop(key, None)
            self.counts[source] += 1
        self._note(requester, source)
        flight.future.set_result(entry)
        return entry

    def _keep_part(self, digest: str, name: str, data: bytes) -> None:
        assert self.store is not None
        try:
            self.store.save_part(digest, name, part_version(name), data)
        except OSError as exc:
            log.warning("run store: cannot save the %s of %s: %s", name, digest, exc)

    def _fail(self, key: Hashable, flight: _Flight, exc: BaseException) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
        if not flight.future.done():
            flight.future.set_exception(exc)

    def _wait(self, key: Hashable, flight: _Flight, requester: Requester | None) -> RunEntry:
        while True:
            try:
                entry = flight.future.result(timeout=_WAIT_POLL_S)
            except FutureTimeout:
                if requester is not None and requester.gone.is_set():
                    self._leave(key, flight)
                    raise ClientGone() from None
                continue
            except Cancelled:
                raise ClientGone() from None
            if requester is not None and not requester.sources:
                self._note(requester, "memory")  # it waited for someone else's load
            return entry

    def _leave(self, key: Hashable, flight: _Flight) -> None:
        with self._lock:
            flight.waiting -= 1
            if flight.waiting > 0 or flight.future.done():
                return
            if self._flights.get(key) is flight:
                del self._flights[key]
            task = flight.task
        if task is not None and self.pool is not None:
            self.pool.cancel(task)
        log.info("build cancelled, everyone waiting for it has gone: %s", key)

    @staticmethod
    def _note(requester: Requester | None, source: str) -> None:
        if requester is not None and source not in requester.sources:
            requester.sources.append(source)

    # -- the built-ins, at first start ------------------------------------------------------
    def warm(self, jobs: Iterable[BuildJob]) -> int:
        """Build into the store every job it does not hold yet, one at a time; returns how
        many were built. Runs in a background thread: the page answers meanwhile."""
        if self.pool is None or self.store is None:
            return 0
        built = 0
        for job in jobs:
            if self.pool.closed:
                break
            digest = job.digest(model_fingerprint())
            if self.store.has(digest):
                continue
            try:
                task = self._submit_when_free(job)
                if task is None:
                    break  # shutting down
                self.store.save(digest, task.future.result())
                index = task.index.result()
                if index is not None:
                    self._keep_part(digest, INDEX, index)
                built += 1
            except Cancelled:
                break  # shutting down
            except Exception as exc:
                log.warning("warming %s failed: %s", job.describe(), exc)
        return built

    def _submit_when_free(self, job: BuildJob) -> Task | None:
        """Submit, waiting while visitors' builds fill the pool: they go first."""
        assert self.pool is not None
        estimated_s = job.check(self.max_events)
        while not self.pool.closed:
            try:
                return self.pool.submit(job, estimated_s)
            except Busy as busy:
                time.sleep(min(busy.retry_after, 5))
        return None

    # -- memory ---------------------------------------------------------------------------
    def _lookup(self, key: Hashable) -> RunEntry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.counts["memory"] += 1
            # Runs grow after they are cached (what is kept of their steps): each use of
            # one trims the others back into the budget, but never the run used just
            # before it (a compare view's other run, in the same request).
            self._evict(keep=2)
        return entry

    def _evict(self, keep: int = 1) -> None:
        total = sum(e.weight for e in self._entries.values())
        while len(self._entries) > keep and (
            len(self._entries) > self.max_entries or total > self.byte_budget
        ):
            _, old = self._entries.popitem(last=False)
            total -= old.weight

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

