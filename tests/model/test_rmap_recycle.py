"""__rmap_add()'s recycle at RMAP_RECYCLE_THRESHOLD (arch/x86/kvm/mmu/mmu.c).

__rmap_add() adds the new leaf SPTE to its gfn's rmap with pte_list_add(), which returns
the chain's length *before* the add, and records that as max_mmu_rmap_size.  When it is
over RMAP_RECYCLE_THRESHOLD (1000), kvm_zap_all_rmap_sptes() clears every SPTE of the chain
(mmu_spte_clear_track_bits(): rmap entry and pages_* count gone, the new SPTE included) and
kvm_flush_remote_tlbs_gfn() flushes.  So the peak stops at 1001: the 1002nd SPTE of one gfn
finds 1001 before it and recycles the chain.
"""

from __future__ import annotations

from mmu_model import mmu
from mmu_model.constants import PG_LEVEL_4K, RMAP_RECYCLE_THRESHOLD
from mmu_model.invariants import check_invariants
from mmu_model.kvm import Kvm
from mmu_model.narration import narrate
from mmu_model.role import shadow_ept_root_role
from mmu_model.scenario import ScenarioSpec
from mmu_model.simulate import run_scenario

LEAF_BASE = 1 << 20  # the L1 run every page below maps (one 512-gfn chunk)


def _level1_page(w, gfn: int):
    role = shadow_ept_root_role(w.levels)
    for _ in range(w.levels - PG_LEVEL_4K):
        role = role.child()
    sp, created = mmu.kvm_mmu_get_shadow_page(w.kvm, gfn, role, 0)
    assert created
    w.kvm.update_orphan(sp)  # never linked: an orphan, as a leaked PT is
    return sp


def test_rmap_recycle_zaps_the_whole_chain_of_the_1002nd_spte(make_world, event_log):
    """1001 level-1 pages each map L1 gfn LEAF_BASE with one leaf: the chain is 1001 long and
    the peak 1000 (the 1001st add found 1000 before it, not over the threshold).  The 1002nd
    page's add finds 1001 > 1000: all 1002 SPTEs go, the peak is 1001, and one flush is
    requested for the one gfn.  (The pages are made directly and their gfns were never
    write-protected, so account_shadowed() requests a flush for each of them too.)"""
    w = make_world()
    kvm = w.kvm
    kvm.recorder = event_log
    pages = []
    w.step()
    for i in range(RMAP_RECYCLE_THRESHOLD + 1):
        sp = _level1_page(w, (1 << 22) + i)
        assert mmu.mmu_set_spte(kvm, sp, 0b1, LEAF_BASE, 1) == 1
        pages.append(sp)
    stats = w.stats()
    assert stats["pages_4k"] == kvm.rmaps.entries == RMAP_RECYCLE_THRESHOLD + 1
    assert stats["max_mmu_rmap_size"] == RMAP_RECYCLE_THRESHOLD
    assert not event_log.of("kvm_zap_all_rmap_sptes")

    w.step()
    last = _level1_page(w, (1 << 22) + 5000)
    before = w.stats()
    # A second leaf at index 1 maps another gfn, whose chain is 0 long: it stays.
    assert mmu.mmu_set_spte(kvm, last, 0b11, LEAF_BASE, 2) == 2
    after = w.stats()
    assert after["max_mmu_rmap_size"] == RMAP_RECYCLE_THRESHOLD + 1
    assert after["pages_4k"] == 1 == kvm.rmaps.entries  # only gfn LEAF_BASE + 1's leaf left
    assert last.leaf_bitmap == 0b10
    assert all(sp.leaf_bitmap == 0 for sp in pages)
    # kvm_flush_remote_tlbs_gfn() for the one gfn: one request (no IPI, one vCPU).
    assert after["remote_tlb_flush_requests"] - before["remote_tlb_flush_requests"] == 1
    assert after["remote_tlb_flush"] == before["remote_tlb_flush"]
    assert after["mmu_shadow_pages"] == before["mmu_shadow_pages"]  # the pages all stay
    (event,) = event_log.of("kvm_zap_all_rmap_sptes")
    assert event == {"sp": last.id, "level": 1, "gfns": 1, "sptes": RMAP_RECYCLE_THRESHOLD + 2}
    text = narrate("kvm_zap_all_rmap_sptes", event, lambda i: f"sp #{i}")
    assert f"sp #{last.id}" in text
    assert "all 1002 SPTEs" in text


def test_boot_loop_peak_rmap_size_stops_at_1001(monkeypatch):
    """A 1 GiB L2 at the seed density, bottom-up: each root zap leaks the PTs of the PD's
    first two written PDEs with their stale leaves, and those regions are the same every
    boot (a fixed working set, L2 backed at a fixed offset), so the chain of each gfn of the
    first region gains one entry per root zap, 2 per boot: 2 x 600 - 1 = 1199 entries by
    the last table L2 faults in, less the few orphans L1's uniform allocator happens to
    hand out again (rediscovered, about 0.5%).  The chain passes 1001 long before that, and
    from then on the peak is pinned at 1001: it grows by one per add, and the add that
    finds 1001 recycles the chain.  The quota (5 GiB / 50 = 26,214 pages) is never
    reached, so nothing else trims the chains.

    1,000 root zaps with a check after every action would take minutes; the invariants are
    checked once, at the end of the run (the recycle path itself is checked after every
    step above).
    """
    original_release = Kvm.release

    def release(kvm: Kvm) -> None:
        assert check_invariants(kvm) == []
        original_release(kvm)

    monkeypatch.setattr(Kvm, "release", release)
    spec = ScenarioSpec(l2_mem_gib=1, pdes_per_pd=3, boots=600, order="bottom-up",
                        mode="exclusive", ept_levels=4)
    run = run_scenario(spec, record=False)
    assert run.final_stats["max_mmu_rmap_size"] == RMAP_RECYCLE_THRESHOLD + 1
    assert run.final_stats["mmu_recycled"] == 0
