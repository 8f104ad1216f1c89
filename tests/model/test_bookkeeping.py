"""The model's shortcuts agree with the plain definitions they stand in for.

hash_64() avoids big-number products for gfns, and Rmaps keeps per-chunk page lists instead
of one list per gfn; both must give exactly what the straightforward formula gives.
run_scenario() pauses the cyclic garbage collector, which is only sound if reference
counting alone frees every zapped page; and a finished run leaves no cycles behind.
Pages cache their rmap chunk, level-1 pages share one empty spt and L1's PTs one entry
list: check_invariants() must notice if any of these goes wrong.
"""

from __future__ import annotations

import gc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmu_model import get_scenario, run_named, run_scenario
from mmu_model.constants import GOLDEN_RATIO_64, hash_64
from mmu_model.fixes import DEFAULT_FIXES
from mmu_model.invariants import check_invariants
from mmu_model.page import KvmMmuPage
from mmu_model.rmap import Rmaps
from mmu_model.role import shadow_ept_root_role
from mmu_model.scenario import ScenarioSpec
from tests.model.conftest import InvariantWatch


def plain_hash_64(val: int, bits: int) -> int:
    # include/linux/hash.h: hash_64_generic() is (val * GOLDEN_RATIO_64) >> (64 - bits)
    # in u64 arithmetic, i.e. the product taken mod 2**64.
    return ((val * GOLDEN_RATIO_64) % 2**64) >> (64 - bits)


@given(st.one_of(st.integers(0, 2**40 - 1), st.integers(0, 2**64 - 1)), st.integers(1, 64))
def test_hash_64_is_the_u64_multiplicative_hash(val: int, bits: int) -> None:
    assert hash_64(val, bits) == plain_hash_64(val, bits)


def test_hash_64_at_the_edges_of_the_fast_path() -> None:
    for val in (0, 1, 2**22 - 1, 2**22, 2**40 - 1, 2**40, 2**52 + 3, 2**64 - 1):
        assert hash_64(val) == plain_hash_64(val, 12)


# One chunk of 16 gfns is enough to exercise the splitting; pages are sp ids 1..4.
ops = st.lists(
    st.tuples(st.booleans(), st.integers(1, 4), st.integers(1, 2**16 - 1)), max_size=40
)
BASE = 0x4000


def leaf_page(sp_id: int) -> KvmMmuPage:
    sp = KvmMmuPage(sp_id, 0x100 + sp_id, shadow_ept_root_role(1), 0, 0)
    sp.leaf_gfn_base = BASE
    return sp


@given(ops, st.integers(0, 3))
def test_rmap_chain_lengths_match_a_list_per_gfn(
    sequence: list[tuple[bool, int, int]], floor: int
) -> None:
    """Replays leaf installs and drops, in the order mmu_set_spte() and drop_spte() make
    them, against a per-gfn set of sp ids (the kernel's rmap list, as a set since one sp
    maps one gfn once): entries, each chain length and the longest chain a new batch
    joins must all agree (unless both are at most `floor`, max_mmu_rmap_size so far, when
    the search may be skipped)."""
    rmaps = Rmaps()
    lists: dict[int, set[int]] = {gfn: set() for gfn in range(16)}
    pages = {sp_id: leaf_page(sp_id) for sp_id in range(1, 5)}
    for is_add, sp_id, mask in sequence:
        sp = pages[sp_id]
        if is_add:
            new = mask & ~sp.leaf_bitmap
            if not new:
                continue
            gfns = [g for g in range(16) if new >> g & 1]
            expected = max(len(lists[g]) for g in gfns)
            got = rmaps.add(sp, new, len(gfns), floor)
            assert got == expected or (got <= floor and expected <= floor)
            sp.leaf_bitmap |= new
            for g in gfns:
                lists[g].add(sp_id)
        else:
            gone = mask & sp.leaf_bitmap
            if not gone:
                continue
            gfns = [g for g in range(16) if gone >> g & 1]
            old = sp.leaf_bitmap
            sp.leaf_bitmap &= ~gone
            rmaps.remove(sp, old, len(gfns))
            for g in gfns:
                lists[g].discard(sp_id)
        assert rmaps.entries == sum(len(s) for s in lists.values())
        for g in range(16):
            assert rmaps.chain_length(1, BASE + g, 1) == len(lists[g])
        assert {sp.id for sp in rmaps.pages_at(1, BASE)} == {
            i for i, sp in pages.items() if sp.leaf_bitmap
        }
        for chunk in rmaps.chunks.values():  # the one chunk, at BASE
            if chunk.tally is not None:
                bitmaps = [sp.leaf_bitmap for sp in chunk.pages]
                assert chunk.tally == {b: bitmaps.count(b) for b in bitmaps}


def test_rmap_floor_skips_the_search_only_when_it_cannot_matter() -> None:
    # Pages join gfn 0 one by one, each told the chain it joins (its old length).  The
    # floor is max_mmu_rmap_size so far: the search must run whenever the chunk has more
    # pages than the floor (a longer chain may be news), and may be skipped otherwise
    # (n pages cannot make a chain longer than n), the answer then only bounded by the floor.
    rmaps = Rmaps()
    pages = [leaf_page(i) for i in range(1, 6)]

    def join(sp: KvmMmuPage, floor: int) -> int:
        longest = rmaps.add(sp, 0b1, 1, floor)
        sp.leaf_bitmap = 0b1  # as mmu_set_spte() does after rmap_add()
        return longest

    assert [join(sp, floor=0) for sp in pages[:3]] == [0, 1, 2]
    assert join(pages[3], floor=2) == 3  # 3 pages > floor 2: searched
    assert join(pages[4], floor=4) <= 4  # 4 pages, floor 4: may be skipped


def spec_of(name: str, **changes: object) -> ScenarioSpec:
    spec = get_scenario(name).spec
    assert spec is not None
    return spec.replace(**changes)


@pytest.mark.parametrize(("name", "fixes", "record"), [
    ("teaching-small", DEFAULT_FIXES, True),
    ("boot-loop-bottom-up", DEFAULT_FIXES, False),
    ("boot-loop-top-down", DEFAULT_FIXES | {"track-write-zap"}, True),
    ("seed-bottom-up", DEFAULT_FIXES, True),
])
def test_a_run_leaves_nothing_for_the_collector_and_restores_it(
    name: str, fixes: frozenset[str], record: bool
) -> None:
    # A zapped page is unlinked from its parents, its children and its rmap chunk before
    # it is freed, and at the end the pages still holding leaves let go of their chunks.
    # So reference counting alone frees every page, during the run (while the collector
    # is paused) and after it; the web layer relies on that to freeze runs uncollected.
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # keep what the collector finds, to look at it
    try:
        if get_scenario(name).kind == "replay":
            run = run_named(name, fixes=fixes, record=record)
        else:
            run = run_scenario(spec_of(name, boots=3, fixes=fixes), record=record)
        assert gc.isenabled()
        assert run.final_stats["mmu_shadow_pages"] > 0  # pages were alive at the end
        del run
        gc.collect()
        leftovers = [obj for obj in gc.garbage if type(obj).__module__.startswith("mmu_model")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert leftovers == []


def test_a_caller_that_paused_the_collector_keeps_it_paused() -> None:
    gc.disable()
    try:
        run_scenario(spec_of("teaching-small"), record=False)
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize(("shared", "message"), [
    ("spt", "shared empty spt"),  # the slot list every level-1 shadow page shares
    ("children", "PTs' shared entry list"),  # the entry list every L1 PT shares
])
def test_invariants_catch_an_entry_written_to_a_shared_empty_list(
    make_world, shared: str, message: str
) -> None:
    w = make_world()
    w.boot()
    w.touch(0, [0])
    pt_t = w.pt(0, 0)
    owner = w.sp(pt_t) if shared == "spt" else pt_t
    entries = getattr(owner, shared)
    assert check_invariants(w.kvm) == []
    entries[5] = owner
    try:
        assert any(message in line for line in check_invariants(w.kvm))
    finally:
        entries[5] = None


def test_invariants_catch_a_stale_rmap_chunk(make_world) -> None:
    w = make_world()
    w.boot()
    w.touch(0, [0])
    pt_sp = w.sp(w.pt(0, 0))
    assert pt_sp.leaf_bitmap
    chunk = pt_sp.rmap_chunk
    pt_sp.rmap_chunk = None
    try:
        assert any("rmap_chunk is not the chunk" in line for line in check_invariants(w.kvm))
    finally:
        pt_sp.rmap_chunk = chunk


def test_a_released_kvm_is_not_checked_as_if_it_were_live(make_world) -> None:
    w = make_world()
    w.boot()
    w.touch(0, [0])
    assert w.sp(w.pt(0, 0)).rmap_chunk is not None
    w.kvm.release()
    # Its pages no longer track their rmap chunks, so the rmap checks would fail; the
    # check says why instead.
    assert w.sp(w.pt(0, 0)).rmap_chunk is None
    assert check_invariants(w.kvm) == [
        "the Kvm was released at the end of its run: there is nothing left to check"
    ]


def test_invariants_catch_a_page_dropped_from_kvm_pages(make_world) -> None:
    """kvm.pages is the list of allocated pages by sp id (None once freed, see Kvm): a live
    page missing from it must be noticed, since active_mmu_pages and sps are read off it."""
    w = make_world()
    w.boot()
    w.touch(0, [0])
    kvm = w.kvm
    pt_sp = w.sp(w.pt(0, 0))
    i = pt_sp.id - kvm.pages_base
    assert kvm.pages[i] is pt_sp
    assert check_invariants(kvm) == []
    kvm.pages[i] = None
    try:
        assert any("n_sps is" in line for line in check_invariants(kvm))
    finally:
        kvm.pages[i] = pt_sp


def test_invariants_catch_a_page_at_another_ids_place(make_world) -> None:
    w = make_world()
    w.boot()
    w.touch(0, [0, 1])
    kvm = w.kvm
    a, b = w.sp(w.pt(0, 0)), w.sp(w.pt(0, 1))
    ia, ib = a.id - kvm.pages_base, b.id - kvm.pages_base
    kvm.pages[ia], kvm.pages[ib] = b, a
    try:
        assert any(f"kvm.pages[{ia}] holds sp #{b.id}" in line for line in check_invariants(kvm))
    finally:
        kvm.pages[ia], kvm.pages[ib] = a, b
    assert check_invariants(kvm) == []


def test_kvm_pages_drops_its_freed_front_and_keeps_ids_in_place(invariants) -> None:
    """With a small quota, kvm_mmu_zap_oldest_mmu_pages() frees the oldest pages, so the
    front of kvm.pages empties; once more than 4,096 entries there are freed and they are over
    half the list, page_added() drops them and pages_base moves past them.

    Each root zap of this boot loop (5-level EPT, 2 GiB, 3 PTs per PD) shadows 11 tables of
    L1's: the root, one level-4 table, one PDPT, one PD per GiB and 3 PTs under each, so a
    boot (2 root zaps) makes 22 pages and 300 boots make 6,600.  With at most 64 of them live,
    the front passes 4,096 freed entries long before that.  The invariants fixture checks
    after every action that every live page sits at its id's place and that nothing but None
    precedes pages_head."""
    spec = spec_of("boot-loop-bottom-up", l2_mem_gib=2, quota=64, boots=300)
    assert (spec.ept_levels, spec.regions_per_pd, spec.root_zaps_per_boot) == (5, 3, 2)
    run = run_scenario(spec, record=False)
    (kvm,) = invariants.kvms
    assert kvm.next_sp_id == 300 * 2 * (3 + 2 * (1 + 3)) + 1
    assert kvm.pages_base > 4096 + 1  # moved on by more than 4,096 entries
    assert run.final_stats["mmu_shadow_pages"] <= 64


@pytest.mark.parametrize("record", [True, False])
def test_the_invariants_are_checked_before_every_action_recorded_or_not(
        invariants: InvariantWatch, record: bool) -> None:
    """The fixture checks a Kvm as each guest action starts (so after the one before it)
    and once more before Kvm.release(): n actions, n + 1 checks, whether the run records
    its actions (Kvm.action, Kvm.begin_action) or only counts them (Kvm.count_action: the
    headless path, where L1's teardown actions go)."""
    before = invariants.checks
    spec = ScenarioSpec(l2_mem_gib=1, pdes_per_pd=3, ptes_per_pt=2, boots=2,
                        root_zaps_per_boot=1)
    run = run_scenario(spec, record=record)
    assert run.n_actions > 0
    assert invariants.checks - before == run.n_actions + 1
