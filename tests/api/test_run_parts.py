"""A run's parts (app/run_parts.py): its index scan comes from the build worker, which scans
the run while the server loads it; its layout is worked out once; both are kept in the run
store beside the run, so a restart serves them without scanning or laying out again, and a
changed model or layout code never reads an old part."""

from __future__ import annotations

import gc
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import app.gc_policy
import app.run_parts as run_parts
import app.runs
from app.build_jobs import ScenarioBuild
from app.builds import BuildPool
from app.gc_policy import YOUNG_THRESHOLD, tune_the_collector
from app.graph import Layout, build_layout, layout_for_run
from app.markers import run_index
from app.run_codec import run_nbytes
from app.run_parts import (
    INDEX,
    LAYOUT,
    LAYOUT_BYTES_PER_PAGE,
    SCAN_FIELDS,
    PartFormatError,
    decode_layout,
    decode_scan,
    encode_layout,
    encode_scan,
    part_version,
    run_layout_of,
)
from app.run_store import RunStore, model_fingerprint
from app.runs import RunCache, RunEntry
from mmu_model import get_scenario, run_named
from mmu_model.run_scan import scan_run

# boot-loop-bottom-up zaps its roots every boot: ex-roots stack on the root's slot, so its
# layout has stacked pages (float y) beside single ones (int y, the level itself).
STACKED = "boot-loop-bottom-up"


@pytest.fixture
def pool() -> Iterator[BuildPool]:
    pool = BuildPool(workers=1, max_in_flight=2, cpu_limit_s=60)
    try:
        yield pool
    finally:
        pool.close()


def _job() -> ScenarioBuild:
    spec = get_scenario(STACKED).spec
    assert spec is not None
    return ScenarioBuild(spec)


def _same_layout(a: Layout, b: Layout) -> None:
    assert a.slots == b.slots
    assert a.pos == b.pos
    # An int y is a page alone on its slot (y = its level), a float one a page in a stack.
    assert {k: (type(x), type(y)) for k, (x, y) in a.pos.items()} == {
        k: (type(x), type(y)) for k, (x, y) in b.pos.items()}
    assert a._xs == b._xs


# -- the codecs --------------------------------------------------------------------------
def test_a_layout_read_back_is_the_one_laid_out() -> None:
    # seed-bottom-up creates each page once (every y an int), boot-loop-bottom-up every
    # page again each boot (every y in a stack, a float).
    types: set[type] = set()
    for name in ("seed-bottom-up", STACKED):
        layout = layout_for_run(run_named(name))
        types |= {type(y) for _, y in layout.pos.values()}
        _same_layout(decode_layout(encode_layout(layout)), layout)
    assert types == {int, float}


def test_a_scan_read_back_is_the_scan() -> None:
    run = run_named(STACKED)
    assert run.timeline is not None
    scan = scan_run(run.timeline.events)
    back = decode_scan(encode_scan(scan))
    assert back == {name: getattr(scan, name) for name in SCAN_FIELDS}
    assert back["boot"]  # not trivially empty: a boot loop has boots


@pytest.mark.parametrize("damage", ["truncate", "foreign", "extra"])
def test_bytes_that_are_not_a_part_are_refused(damage: str) -> None:
    data = encode_layout(layout_for_run(run_named("teaching-small")))
    bad = {"truncate": data[: len(data) // 2], "foreign": b"MMURUN1\n" + data[8:],
           "extra": data + b"\0"}[damage]
    with pytest.raises(PartFormatError):
        decode_layout(bad)
    with pytest.raises(PartFormatError):
        decode_scan(data)  # a layout is not a scan: other arrays


def test_a_part_version_follows_the_model_and_the_part(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    index, layout = part_version(INDEX), part_version(LAYOUT)
    assert index != layout  # the layout depends on app/graph.py too
    part_version.cache_clear()
    monkeypatch.setattr(run_parts, "model_fingerprint", lambda: "0.0.0:another-model")
    try:
        assert part_version(INDEX) != index
        assert part_version(LAYOUT) != layout
    finally:
        part_version.cache_clear()


# -- the store ------------------------------------------------------------------------------
def test_parts_are_kept_only_beside_their_run_and_go_with_it(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs", max_bytes=4000)  # each file has a 40-byte header
    store.save_part("a", INDEX, "v1", b"p" * 100)
    assert store.load_part("a", INDEX, "v1") is None  # no run a: nothing kept
    store.save("a", b"x" * 1000)
    store.save_part("a", INDEX, "v1", b"p" * 1000)
    assert store.load_part("a", INDEX, "v1") == b"p" * 1000
    assert store.load_part("a", INDEX, "v2") is None  # another version is not this one
    store.save_part("a", INDEX, "v2", b"q" * 10)  # replaces v1
    assert store.load_part("a", INDEX, "v1") is None
    assert store.load_part("a", INDEX, "v2") == b"q" * 10
    store.save_part("a", LAYOUT, "v1", b"l" * 2000)
    os.utime(store.path("a"), (1, 1))  # a is the least recently used run
    # The bound counts parts: a (1000 + 10 + 2000 + 3 headers: 3130) and b (1040) are over
    # 4000 bytes, so a goes, with its parts.
    store.save("b", b"y" * 1000)
    assert sorted(p.name for p in store.directory.iterdir()) == ["b.run"]


def test_a_discarded_run_takes_its_parts(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs", max_bytes=1 << 20)
    store.save("a", b"x" * 10)
    store.save_part("a", LAYOUT, "v", b"l")
    store.discard("a", "a test")
    assert list(store.directory.iterdir()) == []


# -- the cache ------------------------------------------------------------------------------
def test_the_index_comes_from_the_build_worker(pool: BuildPool, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    job = _job()
    cache = RunCache(pool=pool, store=RunStore(tmp_path / "runs", max_bytes=1 << 30))
    entry = cache.get(job.key, job)

    def no_scan(*_: object) -> None:
        raise AssertionError("the server scanned the run itself")

    monkeypatch.setattr(run_parts, "scan_run", no_scan)
    index = run_index(entry)
    monkeypatch.undo()
    # The scan is a pure function of the run's record: the worker's is the local one.
    assert entry.run.timeline is not None
    local = scan_run(entry.run.timeline.events)
    assert list(index.loud_actions) == list(local.loud_actions)
    assert list(index.touch_events) == list(local.touch_events)
    assert {k: list(v) for k, v in index.events.items()} == {
        k: list(getattr(local, k)) for k in index.events}


def test_a_headless_build_comes_without_an_index(pool: BuildPool) -> None:
    """A run built without its record (record=False) has no events to scan: the worker
    says so (None) rather than leaving the server waiting for an index."""
    spec = get_scenario("teaching-small").spec
    assert spec is not None
    task = pool.submit(ScenarioBuild(spec, record=False), 1.0)
    assert task.future.result(timeout=60)
    assert task.index.result(timeout=60) is None


def test_a_restart_serves_the_index_and_layout_without_working_them_out(
        pool: BuildPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = _job()
    store = RunStore(tmp_path / "runs", max_bytes=1 << 30)
    first = RunCache(pool=pool, store=store)
    built = first.get(job.key, job)
    built_index = run_index(built)
    built_layout = run_layout_of(built)
    digest = job.digest(model_fingerprint())
    for part in (LAYOUT, INDEX):
        _wait_for(lambda part=part: store.load_part(digest, part, part_version(part)))

    def never(*_: object) -> None:
        raise AssertionError("worked out again")

    monkeypatch.setattr(run_parts, "scan_run", never)
    monkeypatch.setattr(run_parts, "layout_for_run", never)
    again = RunCache(pool=pool, store=store)  # a restart: empty memory, same files
    entry = again.get(job.key, job)
    assert again.counts["store"] == 1
    assert pool.counts["built"] == 1
    _same_layout(run_layout_of(entry), built_layout)
    index = run_index(entry)
    assert list(index.loud_actions) == list(built_index.loud_actions)
    assert list(index.touch_start) == list(built_index.touch_start)
    assert index.marker_steps("boot", "action") == built_index.marker_steps("boot", "action")


def test_parts_worked_out_while_the_run_is_being_stored_are_kept_too(
        pool: BuildPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run is stored after it is served; its index (from the worker) and a layout a
    request works out meanwhile come before it is, and parts are kept beside stored runs
    only: they must be kept once it is."""
    job = _job()
    store = RunStore(tmp_path / "runs", max_bytes=1 << 30)
    real_save = store.save
    stored = threading.Event()

    def slow_save(digest: str, payload: bytes) -> None:
        time.sleep(1.0)  # the worker's index (a few ms of scanning here) comes meanwhile
        real_save(digest, payload)
        stored.set()

    monkeypatch.setattr(store, "save", slow_save)
    entry = RunCache(pool=pool, store=store).get(job.key, job)
    run_layout_of(entry)  # laid out here, before the run is stored
    assert not stored.is_set()
    digest = job.digest(model_fingerprint())
    for part in (INDEX, LAYOUT):
        _wait_for(lambda part=part: store.load_part(digest, part, part_version(part)))


def test_a_built_runs_layout_is_encoded_once(
        pool: BuildPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A built run is laid out before it is stored, and its layout part is kept only once
    it is: the bytes encoded as it was laid out wait for that, rather than the layout
    being encoded a second time (0.1 s of the first view's server time at 100k pages)."""
    encoded: list[int] = []

    def counting(layout: Layout) -> bytes:
        encoded.append(1)
        return encode_layout(layout)

    monkeypatch.setattr(run_parts, "encode_layout", counting)
    monkeypatch.setattr(app.runs, "encode_layout", counting)
    job = _job()
    store = RunStore(tmp_path / "runs", max_bytes=1 << 30)
    built = run_layout_of(RunCache(pool=pool, store=store).get(job.key, job))
    digest = job.digest(model_fingerprint())
    _wait_for(lambda: store.load_part(digest, LAYOUT, part_version(LAYOUT)))
    _wait_for(lambda: pool.in_flight() == 0)
    stored = store.load_part(digest, LAYOUT, part_version(LAYOUT))
    assert stored is not None
    _same_layout(decode_layout(stored), built)
    assert encoded == [1]


def test_a_part_of_another_version_is_worked_out_again(
        pool: BuildPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = _job()
    store = RunStore(tmp_path / "runs", max_bytes=1 << 30)
    run_layout_of(RunCache(pool=pool, store=store).get(job.key, job))
    _wait_for(lambda: pool.in_flight() == 0)  # the build's own keeping is done
    laid_out: list[int] = []

    def counting(run: object) -> Layout:
        laid_out.append(1)
        return layout_for_run(run)  # type: ignore[arg-type]

    monkeypatch.setattr(run_parts, "layout_for_run", counting)
    monkeypatch.setattr(app.runs, "part_version", lambda part: "a-newer-layout")
    run_layout_of(RunCache(pool=pool, store=store).get(job.key, job))
    assert laid_out == [1]  # the stored layout was of the old version: not read


def test_a_stored_part_that_does_not_decode_is_worked_out_again(
        pool: BuildPool, tmp_path: Path) -> None:
    job = _job()
    store = RunStore(tmp_path / "runs", max_bytes=1 << 30)
    built = run_layout_of(RunCache(pool=pool, store=store).get(job.key, job))
    digest = job.digest(model_fingerprint())
    _wait_for(lambda: store.load_part(digest, LAYOUT, part_version(LAYOUT)))
    # Checks out (its checksum is right) but is not a layout.
    store.save_part(digest, LAYOUT, part_version(LAYOUT), b"not a layout")
    _same_layout(run_layout_of(RunCache(pool=pool, store=store).get(job.key, job)), built)
    stored = store.load_part(digest, LAYOUT, part_version(LAYOUT))
    assert stored is not None
    _same_layout(decode_layout(stored), built)  # laid out again, and kept again


def test_the_workers_index_weighs_until_it_is_taken(pool: BuildPool) -> None:
    job = _job()
    cache = RunCache(pool=pool)
    entry = cache.get(job.key, job)
    run = entry.run
    data = entry._parts[INDEX].result(timeout=60)
    assert data is not None
    _wait_for(lambda: INDEX in entry._part_nbytes)  # its callback has weighed it
    # Landed: the run's own bytes, its layout (laid out while the worker scanned), and the
    # index bytes waiting to be taken.
    layout = run_layout_of(entry)
    laid_out = len(layout.pos) * LAYOUT_BYTES_PER_PAGE
    assert entry.nbytes == run_nbytes(run) + laid_out + len(data)
    index = run_index(entry)
    arrays = [*index.events.values(), *index.action_marks.values(), index.loud_actions,
              index.touch_start, index.touch_events]
    taken = sum(a.itemsize * len(a) + 64 for a in arrays)
    assert entry.nbytes == run_nbytes(run) + laid_out + taken


def test_a_value_two_requests_derive_at_once_is_built_once() -> None:
    entry = RunEntry(key="k", run=run_named("teaching-small"))
    builds: list[int] = []

    def slow() -> int:
        builds.append(1)
        time.sleep(0.2)
        return 42

    got: list[int] = []
    threads = [threading.Thread(target=lambda: got.append(entry.derive("x", slow)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [42, 42]
    assert builds == [1]


# -- the layout's columns -----------------------------------------------------------------
def _reference_layout(pages: list[tuple[int, int, int]]) -> Layout:
    """The layout as the module docstring of app/graph.py states it, one page at a time:
    slots; each page centred over the slots its range covers (Layout.place); the pages of
    one level at one x stacked in id order, STACK_DY apart (closer past ROW_DEPTH),
    spread at most max(STACK_WIDTH, slots covered / 2) to the right."""
    from app.graph import ROW_DEPTH, STACK_DX, STACK_DY, STACK_WIDTH

    slots_only = build_layout([(level, gfn) for _, level, gfn in pages])
    layout = Layout(slots_only.slots)
    at: dict[tuple[int, float], list[tuple[int, int]]] = {}
    for sp_id, level, gfn in sorted(pages):
        x, covers = layout.place(level, gfn)
        at.setdefault((level, x), []).append((sp_id, covers))
    for (level, x), stack in at.items():
        if len(stack) == 1:
            layout.pos[stack[0][0]] = (x, level)
            continue
        n = len(stack) - 1
        dy = min(STACK_DY, ROW_DEPTH / n)
        dx = min(STACK_DX, max(STACK_WIDTH, stack[0][1] / 2) / n)
        for k, (sp_id, _) in enumerate(stack):
            layout.pos[sp_id] = (x + dx * k, level - dy * k)
    return layout


def test_the_layout_is_the_one_a_page_at_a_time_gives() -> None:
    rng = random.Random(11)
    starts = [0, 5, 512, 700, 1024, 512 * 512, 512 * 513, 3 * 512**3]
    for _ in range(400):
        n = rng.randint(1, 25)
        ids = rng.sample(range(100), n)
        pages = [(sp_id, rng.randint(1, 4), rng.choice(starts)) for sp_id in ids]
        _same_layout(build_layout(pages), _reference_layout(pages))
    pages = run_named(STACKED).all_pages()
    _same_layout(build_layout(pages), _reference_layout(pages))


# -- the collector ------------------------------------------------------------------------
def test_the_server_collects_young_objects_less_often_and_not_its_start_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = gc.get_threshold()
    freezes: list[int] = []
    monkeypatch.setattr(app.gc_policy.gc, "freeze", lambda: freezes.append(1))
    monkeypatch.setattr(app.gc_policy, "_frozen", False)
    try:
        gc.set_threshold(700, 10, 10)
        tune_the_collector()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)  # the older ratios stay
        tune_the_collector()  # a second app in the process (tests): nothing more frozen
        assert freezes == [1]
    finally:
        gc.set_threshold(*before)


def _wait_for(check: Callable[[], object], timeout: float = 30.0) -> None:
    """Parts are stored from the pool's thread, after the run is served."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not stored in time"
        time.sleep(0.05)
