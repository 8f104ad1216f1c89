"""The recorder's byte streams, byte for byte, against encoders written out here from the
format mmu_model/record.py's docstrings describe; and the recording bookkeeping that lives
on the model's objects (Kvm.touched, KvmMmuPage.recorded_*).

The state stream of an event is its changed pages, its counter deltas, a 0.  A page change
is the varint (sp id << 2 | mask) + 129, then the new state word if mask bit 0, the new
parent code if mask bit 1 (mask 0: the page was freed).  A counter delta is one varint
(i << 2 | k) + 1, 1 to 128, where k 0, 1, 2 stand for +1, -1, +2 (the deltas nearly every
event has: a page made, a page zapped, one more SPTE) and k 3 for any other delta, whose
zigzag varint follows.  An int argument in the args stream is the varint of
zigzag(v) << 3 | 7, but for an int of 2**63 or more: the byte 8, then that varint of
v - 2**63.
"""

from __future__ import annotations

import random

import pytest

import mmu_model
from mmu_model.guest import L1Guest, NestedGuest
from mmu_model.kvm import Kvm
from mmu_model.record import EventRecord, _pack, counters_of
from mmu_model.timeline import Timeline


def _varint(v: int) -> bytes:
    """LEB128, seven bits a byte, low bits first."""
    assert v >= 0
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _int_bytes(v: int) -> bytes:
    """An int argument's bytes."""
    if v >= 1 << 63:
        return b"\x08" + _varint(_zigzag(v - (1 << 63)) << 3 | 7)
    return _varint(_zigzag(v) << 3 | 7)


def _state_bytes(changes: list[tuple[int, int, int, int]], deltas: list[tuple[int, int]]) -> bytes:
    out = bytearray()
    for sp_id, mask, word, pcode in changes:
        out += _varint((sp_id << 2 | mask) + 129)
        if mask & 1:
            out += _varint(word)
        if mask & 2:
            out += _varint(pcode)
    for i, d in deltas:
        k = {1: 0, -1: 1, 2: 2}.get(d, 3)
        out += _varint((i << 2 | k) + 1)
        if k == 3:
            out += _varint(_zigzag(d))
    out.append(0)
    return bytes(out)


def _runs() -> list[EventRecord]:
    runs = [mmu_model.run_named("teaching-small"), mmu_model.run_named("seed-bottom-up"),
            mmu_model.run_scenario(mmu_model.get_scenario("boot-loop-bottom-up").spec
                                   .replace(boots=3, flood_clear_prob=0.3, mode="shared"))]
    records = []
    for run in runs:
        assert run.timeline is not None
        records.append(run.timeline.events)
    return records


@pytest.fixture(scope="module")
def records() -> list[EventRecord]:
    return _runs()


def test_state_stream_is_the_documented_encoding(records: list[EventRecord]) -> None:
    """Every event's state bytes are what the format above gives for its decoded changes."""
    seen_k: set[int] = set()
    for record in records:
        data = record.state_stream
        pos = 0
        for _ in range(record.n_events):
            changes, deltas, end = record.changes_at(pos)
            assert data[pos:end] == _state_bytes(changes, deltas)
            seen_k.update({1: 0, -1: 1, 2: 2}.get(d, 3) for _, d in deltas)
            pos = end
        assert pos == len(data)
    assert seen_k == {0, 1, 2, 3}  # every kind of delta entry was checked


def test_a_delta_of_one_takes_one_byte(records: list[EventRecord]) -> None:
    """An event that changes no page and one counter by +1 is two bytes: the entry, 0
    (kvm_flush_remote_tlbs() without an IPI target only counts remote_tlb_flush_requests)."""
    record = records[0]
    requests = record.counter_names.index("remote_tlb_flush_requests")
    pos = 0
    found = 0
    for _ in range(record.n_events):
        changes, deltas, end = record.changes_at(pos)
        if not changes and deltas == [(requests, 1)]:
            assert record.state_stream[pos:end] == bytes([(requests << 2) + 1, 0])
            found += 1
        pos = end
    assert found


def test_int_arguments_are_zigzag_tagged_varints(records: list[EventRecord]) -> None:
    """Every event whose arguments are all ints is its shape id, then per argument the varint
    of zigzag(v) << 3 | 7 (see _int_bytes): the 64-bit EPT entries written out in three
    steps by record._put_int included."""
    wide = 0
    for record in records:
        data = record.args_stream
        pos = 0
        for _ in range(record.n_events):
            shape_id = data[pos]
            kind, _, args, end = record.event_at(pos)
            if shape_id < 0x80 and all(type(v) is int for v in args.values()):
                expected = bytes([shape_id]) + b"".join(_int_bytes(v) for v in args.values())
                assert data[pos:end] == expected, kind
                wide += sum(1 for v in args.values() if abs(v) >= 1 << 60)
            pos = end
    assert wide  # some arguments were EPT entries with their high bits set


@pytest.mark.parametrize("v", [0, 1, 7, 8, -1, -8, -9, 63, 64, -65, 1 << 20, (1 << 63) + 5,
                               (1 << 64) - 1, -(1 << 63), 1 << 70, -(1 << 70) + 3])
def test_put_int_matches_the_varint_of_the_tagged_value(v: int) -> None:
    from mmu_model.record import _put_int

    buf: list[int] = []
    _put_int(buf, v)
    assert bytes(buf) == _int_bytes(v)


def test_put_int_on_random_values() -> None:
    from mmu_model.record import _put_int

    rng = random.Random(11)
    for _ in range(2000):
        v = rng.randrange(-(1 << rng.randrange(1, 80)), 1 << rng.randrange(1, 80))
        buf: list[int] = []
        _put_int(buf, v)
        assert bytes(buf) == _int_bytes(v), v


# -- bookkeeping on the model's objects ------------------------------------------------------

def _world() -> tuple[Kvm, NestedGuest]:
    l1 = L1Guest(pool_lo=1 << 22, pool_hi=1 << 23, rng=random.Random(3))
    kvm = Kvm(fixes=mmu_model.FixSet.from_names(mmu_model.DEFAULT_FIXES), n_max_mmu_pages=64,
              root_level=4, guest=l1)
    guest = NestedGuest(kvm, l1, ept_levels=4, l2_backing_base=1 << 18, shared=False)
    return kvm, guest


def test_touched_lists_a_page_once_per_event_in_first_touch_order() -> None:
    kvm, guest = _world()
    kvm.recorder = Timeline(kvm)
    guest.vm_entry(1)
    guest.touch(0, [(0, False, 0b11)], False)  # below the root: a PDPT, a PD, a PT
    a, b = kvm.live_pages()[:2]
    kvm.begin_action("test_step")
    for sp in (b, a, b, b, a):
        kvm.touch(sp)
    assert kvm.touched == [b, a]
    kvm.begin_action("test_step")  # an event: its pages are recorded, the list starts over
    assert kvm.touched == []
    kvm.touch(a)
    assert kvm.touched == [a]


def test_nothing_is_listed_headless() -> None:
    kvm, guest = _world()
    guest.vm_entry(1)
    guest.touch(0, [(i, False, 0b11) for i in range(4)], False)
    assert kvm.touched == []
    assert all(sp.touched_at == -1 and sp.recorded_by == 0 for sp in kvm.live_pages())


def test_a_second_record_of_the_same_pages_stores_their_whole_state() -> None:
    """A page's last stored state is kept on the page, marked with the record that stored
    it: a record attached later must not take another record's state for its own, or it
    would leave out the pages whose state the first one had already stored."""
    kvm, guest = _world()
    first = Timeline(kvm)
    kvm.recorder = first
    guest.vm_entry(1)
    guest.touch(0, [(i, False, 0b11) for i in range(4)], False)
    second = Timeline(kvm)
    kvm.recorder = second
    kvm.begin_action("test_step")
    pages = kvm.live_pages()
    for sp in pages:
        kvm.touch(sp)
    kvm.begin_action("test_step")
    states, _ = second.events.seek(second.n_events)
    for sp in pages:
        assert states.get(sp.id)[0] == _pack(sp), sp
        assert second.events.static(sp.id) >= 0
    assert first.n_events > 0


def test_counters_of_a_fresh_record_are_the_kvm_s() -> None:
    kvm, guest = _world()
    guest.vm_entry(1)
    record = EventRecord(counters_of(kvm))
    assert record.cp_counters.tolist() == counters_of(kvm)


def test_counting_actions_while_recording_leaves_the_record_open() -> None:
    """While recording, the per-action column grows in a list that joins its array when the
    record is sealed: n_actions counts as it goes without sealing, and reading the column
    itself seals the record (it is complete only then), after which recording refuses."""
    kvm, guest = _world()
    timeline = Timeline(kvm)
    kvm.recorder = timeline
    guest.vm_entry(1)  # l2_vm_entry, one action
    guest.touch(0, [(0, False, 0b11)], False)  # l2_touch, one more
    assert timeline.n_actions == kvm.actions_emitted == 2
    assert not timeline.events.sealed
    kvm.begin_action("test_step")  # still recording
    assert timeline.n_actions == 3
    first = timeline.events.action_first  # each action's first event, as emitted
    assert timeline.events.sealed
    assert len(first) == 3
    assert first[0] == 0  # l2_vm_entry is the first event
    assert first[0] < first[1] < first[2]  # the VM entry loads a root: events of its own
    assert first[2] == kvm.events_emitted - 1  # test_step is the last event
    with pytest.raises(mmu_model.RecordError, match="sealed"):
        kvm.begin_action("test_step")


def test_a_call_path_follows_each_function_entered_from_the_same_caller() -> None:
    """Kvm.enter() remembers, per node of its trie of call paths, the function last entered
    from it and the node that led to (checked by identity before the node's dict): another
    function entered from the same caller must still get its own node, and an equal name
    that is another str object the node the first one made."""
    kvm, _ = _world()
    kvm.recorder = Timeline(kvm)
    kvm.enter("kvm_mmu_load")
    assert kvm.path == ("kvm_mmu_load",)
    kvm.leave()
    kvm.enter("kvm_mmu_new_pgd")
    assert kvm.path == ("kvm_mmu_new_pgd",)
    kvm.leave()
    kvm.enter("kvm_mmu_load")
    kvm.enter("mmu_alloc_shadow_roots")
    assert kvm.path == ("kvm_mmu_load", "mmu_alloc_shadow_roots")
    kvm.leave()
    kvm.leave()
    assert kvm.path == ()
    nodes = len(kvm.path_tuples)  # the root and the three paths above
    assert nodes == 4
    kvm.enter("".join(["kvm_mmu_", "load"]))  # equal to, but not, the literal above
    assert kvm.path == ("kvm_mmu_load",)
    assert len(kvm.path_tuples) == nodes
