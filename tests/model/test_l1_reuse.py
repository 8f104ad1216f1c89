"""L1 reusing the EPT table pages it freed, and what L0 still shadows there.

L1's KVM frees a table page with tdp_mmu_free_sp() (free_page() after an RCU grace
period) and gets new ones from its mmu_shadow_page_cache, which the page allocator refills
(tdp_mmu_alloc_sp(); the cache memset64()s each page to SHADOW_NONPRESENT_VALUE, and an
anonymous page for L2's RAM is cleared by clear_page(): both ``rep stos``).  A page L0
still write-tracks (an upper-level shadow page: an ex-root or an orphan at level >= 2)
makes that store fault; x86_emulate_instruction() sees an instruction that does not write
page tables and, L1 not being in guest mode, takes __kvm_mmu_unprotect_gfn_and_retry():
every shadow page of the gfn is zapped and the store retried.  A level-1 page L0 unsynced
is mapped writable, so clearing it is invisible to L0: that leak stands.  Reused as a
table again, the page is looked up by gfn and role in FNAME(fetch): the same level-1 role
finds (rediscovers) the unsync page and relinks it; an upper-level role zaps it
(kvm_mmu_find_shadow_page()).
"""

from __future__ import annotations

import random

import pytest

from mmu_model.exceptions import InvalidSpec
from mmu_model.guest import L1Guest
from mmu_model.scenario import ScenarioSpec
from mmu_model.simulate import run_scenario

POST_PATCH_FIXES = frozenset({"unlink-children-zap", "flood-detection", "track-write-zap"})


def _torn_down(w):
    """One L2 life on 3 PTs under one PD (4-level EPT), torn down bottom-up with the old
    root dropped by INVEPT.  Pre-patch this leaves, of L0's pages: PT 0 and PT 1 unsync
    orphans (2M pass, PDE writes #1 and #2), the PD flood-zapped (write #3, taking PT 2),
    the PDPT orphaned by the root pass's PML4E write, and the root an ex-root (valid,
    root_count 0).  L1 freed PT 0, PT 1, PT 2, PD, PDPT, root, in that order."""
    root_t = w.boot()
    w.touch(0, [0, 1, 2])
    pdpt_t, pd_t = w.table(0, 3), w.pd(0)
    pt_ts = [w.pt(0, i) for i in range(3)]
    sps = {"root": w.sp(root_t), "pdpt": w.sp(pdpt_t), "pt0": w.sp(pt_ts[0]),
           "pt1": w.sp(pt_ts[1])}
    gfns = {"root": root_t.gfn, "pdpt": pdpt_t.gfn, "pd": pd_t.gfn,
            **{f"pt{i}": t.gfn for i, t in enumerate(pt_ts)}}
    w.guest.zap_root(root_t, "bottom-up")
    w.guest.invept(reload=False)
    kvm = w.kvm
    assert {sp.id for sp in kvm.orphans} == {sps["pdpt"].id, sps["pt0"].id, sps["pt1"].id}
    assert sps["root"].root_count == 0
    assert not sps["root"].role.invalid
    return sps, gfns


def test_lifo_tables_reuse_of_the_ex_root_unprotects_and_zaps_it(make_world, event_log):
    """"lifo-tables": L1's next root is the page it freed last, the old root.  Clearing it
    traps (the ex-root is write-tracked) and the unprotect path zaps the ex-root, so the
    new EPTP gets a new shadow root instead of the stale one (which a lookup by gfn and
    role would otherwise have found and reused)."""
    w = make_world(allocator="lifo-tables")
    sps, gfns = _torn_down(w)
    w.kvm.recorder = event_log
    root_t = w.boot()
    assert root_t.gfn == gfns["root"]
    assert sps["root"].freed
    unprotects = event_log.of("kvm_mmu_unprotect_gfn_and_retry")
    assert unprotects[0] == {"gfn": gfns["root"], "zapped": [sps["root"].id]}
    assert w.sp(root_t) is not sps["root"]
    assert w.sp(root_t).root_count == 1


def test_lifo_clears_freed_pages_as_l2_memory_and_the_level_1_leak_stands(make_world):
    """"lifo": at the next boot L2's RAM takes every freed page (newest first), each
    cleared.  Write-tracked ones (the ex-root, the level-3 orphan) are unprotect-zapped;
    PT 0 and PT 1 are unsync, hence mapped writable: clearing them never reaches L0, so
    they stay the 2 unsync orphans they were."""
    w = make_world(allocator="lifo")
    sps, _ = _torn_down(w)
    before = w.stats()["mmu_shadow_zapped"]
    w.boot()
    assert sps["root"].freed
    assert sps["pdpt"].freed
    # ex-root and PDPT: one prepare-zap each (root_count 0, no children left under them).
    assert w.stats()["mmu_shadow_zapped"] - before == 2
    assert w.unsync_orphans() == {sps["pt0"].id, sps["pt1"].id}
    assert w.l1.free_list == []


def test_lifo_tables_rediscovers_an_orphan_reused_as_pt_and_zaps_one_reused_as_pd(
        make_world, event_log):
    """"lifo-tables", then L2 touches region 0 of GiB 0, 1 and 2.  L1 allocates top-down
    and LIFO hands out root, PDPT, PD (GiB 0), PT 2 (region 0 of GiB 0), then PT 1 as
    GiB 1's PD, then PT 0 as its PT, then fresh pages for GiB 2.
    - PT 1's gfn looked up with a level-2 role: kvm_mmu_find_shadow_page() zaps the unsync
      level-1 page (the new PD will write-protect the gfn), then builds a PD page.
    - PT 0's gfn looked up with the level-1 role it has: found, kvm_sync_page() drops its
      stale leaves (they mapped GiB 0's region 0, the walk maps GiB 1's), and it is linked
      again: rediscovered, no longer an orphan."""
    w = make_world(allocator="lifo-tables")
    sps, gfns = _torn_down(w)
    w.kvm.recorder = event_log
    w.boot()
    for gib in range(3):
        w.touch(gib, [0])
    assert w.pd(1).gfn == gfns["pt1"]
    assert w.pt(1, 0).gfn == gfns["pt0"]
    assert sps["pt1"].freed
    assert w.sp(w.pd(1)).role.level == 2
    assert w.sp(w.pt(1, 0)) is sps["pt0"]
    relinked = [e for e in event_log.of("kvm_mmu_get_page") if e.get("relinked_orphan")]
    assert [e["sp"] for e in relinked] == [sps["pt0"].id]
    assert not w.kvm.orphans
    assert sps["pt0"].leaf_gfn_base == w.pt(1, 0).leaf_gfn_base


def test_boot_loop_with_the_fix_does_not_grow_and_without_it_leaks_64_per_boot(invariants):
    """boot-loop-bottom-up (16 GiB, 3 PTs per PD, 2 root zaps per boot) on the default
    "lifo" allocator, 6 boots.
    - With track-write-zap nothing is orphaned; what stays after a boot is its two dropped
      roots (ex-roots: both lives' roots were torn down and INVEPT dropped them).  The next
      boot's RAM clears both pages, which zaps them.  So 2 shadow pages after every boot.
    - Without it each root zap orphans 2 unsync PTs per GiB: 16 x 2 x 2 = 64 per boot, and
      "lifo" never hands a freed page back as a table (L2's RAM takes them all), so none
      is rediscovered: 64 x boot unsync orphans after boot `boot`."""
    base = ScenarioSpec(l2_mem_gib=16, pdes_per_pd=3, boots=6, order="bottom-up",
                        mode="exclusive")
    assert base.l1_allocator == "lifo"
    fixed = run_scenario(base.replace(fixes=POST_PATCH_FIXES), record=False)
    assert [b.shadow_pages for b in fixed.per_boot] == [2] * 6
    leaky = run_scenario(base, record=False)
    assert [b.orphans_unsync for b in leaky.per_boot] == [64 * b for b in range(1, 7)]


@pytest.mark.timeout(20)
def test_lifo_keeps_allocating_once_every_pool_page_has_held_a_table() -> None:
    """Under "lifo" KVM's table pages come from pages that never held a table, while there
    are any. A pool of 4 pages: 4 tables take every page; freed, L2's RAM takes them (each
    is cleared); 4 more tables can then only be those same pages again, each marked reused
    (L1 clears a reused page before it writes entries). A fifth table while 4 are held has
    no page at all: L1 is out of memory, a clear error rather than a search for ever (the
    draw used to loop until it found a never-used page: populated-16g hung at boot 48)."""
    l1 = L1Guest(pool_lo=100, pool_hi=104, rng=random.Random(0), allocator="lifo")
    first = [l1.alloc_table(1) for _ in range(4)]
    assert sorted(t.gfn for t in first) == [100, 101, 102, 103]
    assert not any(t.reused for t in first)
    for table in first:
        l1.free_table(table)
    assert sorted(l1.l2_memory_takes_freed_pages()) == [100, 101, 102, 103]
    second = [l1.alloc_table(1) for _ in range(4)]
    assert sorted(t.gfn for t in second) == [100, 101, 102, 103]
    assert all(t.reused for t in second)
    with pytest.raises(InvalidSpec, match="l1_mem_gib"):
        l1.alloc_table(1)
