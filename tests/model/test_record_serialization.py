"""Run.to_bytes() / Run.from_bytes(): the run file the web layer stores (mmu_model/run_format.py).

A round trip must be exact: every field of the Run, every event view, every action view,
the counters after every action and snapshots of both grains come back equal, and the
decoded run serializes to the very same bytes.  Bytes that are not such a file (another
magic, another format version, truncated, padded, flipped) are refused with
RunFormatError, whose message says which, before anything is decoded.
"""

from __future__ import annotations

import dataclasses
import struct
import tracemalloc
import zlib

import pytest

import mmu_model
from mmu_model import MmuModelError, Run
from mmu_model.exceptions import RunFormatError
from mmu_model.run_format import FORMAT_VERSION, MAGIC

HEADER = struct.Struct("<8sIIQ")  # magic, version, CRC-32 of the body, body length


def _runs() -> dict[str, Run]:
    return {
        "teaching-small": mmu_model.run_named("teaching-small"),
        "seed-bottom-up": mmu_model.run_named("seed-bottom-up"),  # a replay, with a report
        "loop": mmu_model.run_scenario(mmu_model.get_scenario("boot-loop-bottom-up").spec
                                       .replace(boots=6, huge_share=0.25,
                                                flood_clear_prob=0.3, mode="shared")),
    }


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    return _runs()


def _same_run(a: Run, b: Run) -> None:
    for f in dataclasses.fields(Run):
        if f.name != "timeline":
            assert getattr(a, f.name) == getattr(b, f.name), f.name
    assert a.events(0, a.n_events) == b.events(0, b.n_events)
    assert [a.action(i) for i in range(a.n_actions)] == [b.action(i) for i in range(b.n_actions)]
    assert a.all_pages() == b.all_pages()
    assert a.timeline is not None
    assert b.timeline is not None
    assert list(a.timeline.action_counters()) == list(b.timeline.action_counters())
    for grain in ("action", "op"):
        last = a.last_step(grain)
        for step in sorted({0, 1, last // 3, last // 2, last - 1, last}):
            assert a.snapshot(step, grain) == b.snapshot(step, grain), (grain, step)


@pytest.mark.parametrize("name", ["teaching-small", "seed-bottom-up", "loop"])
def test_round_trip_is_exact(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    data = run.to_bytes()
    back = Run.from_bytes(data)
    _same_run(run, back)
    assert back.to_bytes() == data


def test_an_unrecorded_run_round_trips_too() -> None:
    run = mmu_model.run_named("teaching-small", record=False)
    back = Run.from_bytes(run.to_bytes())
    assert back.timeline is None
    assert back.final_stats == run.final_stats
    assert back.orphans == run.orphans
    with pytest.raises(MmuModelError, match="not recorded"):
        back.snapshot(0)


def test_the_header_is_the_documented_one(runs: dict[str, Run]) -> None:
    data = runs["teaching-small"].to_bytes()
    magic, version, crc, length = HEADER.unpack_from(data)
    assert (magic, version) == (MAGIC, FORMAT_VERSION)
    assert length == len(data) - HEADER.size
    assert crc == zlib.crc32(data[HEADER.size:])


def _with_header(data: bytes, **changes: int | bytes) -> bytes:
    fields = dict(zip(("magic", "version", "crc", "length"), HEADER.unpack_from(data),
                      strict=True))
    fields.update(changes)
    return HEADER.pack(*fields.values()) + data[HEADER.size:]


@pytest.mark.parametrize(("mangle", "message"), [
    (lambda d: b"", "truncated"),
    (lambda d: d[:10], "truncated"),
    (lambda d: d[:-1], "truncated"),
    (lambda d: d[:len(d) // 2], "truncated"),
    (lambda d: d + b"\0", "padded"),
    (lambda d: b"PK\x03\x04" + d[4:], "not a run record"),
    (lambda d: _with_header(d, version=FORMAT_VERSION + 1), "version"),
    (lambda d: _with_header(d, version=0), "version"),
    # One bit flipped in the middle of the body: the CRC catches it.
    (lambda d: d[:len(d) // 2] + bytes([d[len(d) // 2] ^ 1]) + d[len(d) // 2 + 1:], "CRC"),
])
def test_foreign_truncated_or_corrupt_bytes_are_refused(runs, mangle, message) -> None:
    data = runs["loop"].to_bytes()
    with pytest.raises(RunFormatError, match=message) as info:
        Run.from_bytes(mangle(data))
    assert isinstance(info.value, MmuModelError)
    assert info.value.field == "run"


def test_a_body_that_passes_the_crc_but_does_not_decode_is_refused(runs) -> None:
    """A writer bug (a column cut short) behind a valid header: refused, not half-read."""
    data = runs["teaching-small"].to_bytes()
    body = bytearray(data[HEADER.size:])
    name = b"action_first"
    at = body.index(struct.pack("<H", len(name)) + name) + 2 + len(name)
    (size,) = struct.unpack_from("<Q", body, at)
    # Drop the column's last int64 and shrink its declared size to match.
    struct.pack_into("<Q", body, at, size - 8)
    del body[at + 8 + size - 8:at + 8 + size]
    forged = HEADER.pack(MAGIC, FORMAT_VERSION, zlib.crc32(body), len(body)) + bytes(body)
    with pytest.raises(RunFormatError, match="corrupt"):
        Run.from_bytes(forged)


def test_nbytes_is_what_the_run_holds(runs) -> None:
    """Run.nbytes counts the record's columns and streams as allocated: it agrees with what
    tracemalloc sees the interpreter hold for a freshly decoded run (the decoded run holds
    exactly the record, without recording-time buffers), to within a fifth."""
    data = runs["loop"].to_bytes()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    run = Run.from_bytes(data)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert 0.8 * held <= run.nbytes <= 1.2 * held, (run.nbytes, held)
    # And the record is compact: far below the ~1 KiB per event of one object per event.
    assert run.nbytes < 150 * run.n_events
