"""The 23 items of the reference's §13 "Model checklist", one named test (or more) each.

Every state is built with the model's own functions: a Kvm driven by NestedGuest (L1
running L2, see conftest.World), or kernel functions called directly where the guest
model never makes the shape needed.  Each expected number is reasoned out in the test
from the kernel semantics of /work/shared/reference/kvm-shadow-mmu.md, and the shadow
MMU's invariants are checked after every guest action (conftest ``invariants``).
"""

from __future__ import annotations

import pytest

import mmu_model.page_track as page_track
from mmu_model import mmu
from mmu_model.constants import (
    ACC_EXEC_MASK,
    ACC_USER_MASK,
    FROZEN_SPTE,
    KVM_MIN_ALLOC_MMU_PAGES,
    KVM_MIN_FREE_MMU_PAGES,
    KVM_REFILL_PAGES,
    PAGE_SHIFT,
    SHADOW_NONPRESENT_VALUE,
    hash_64,
)
from mmu_model.fixes import DEFAULT_FIXES
from mmu_model.kvm import Kvm
from mmu_model.paging_tmpl import shadow_page_table_clear_flood
from mmu_model.scenario import GIB_PAGES, ScenarioSpec
from mmu_model.simulate import run_scenario

PRE_PATCH = DEFAULT_FIXES
POST_PATCH = DEFAULT_FIXES | {"track-write-zap"}
FIXES = pytest.mark.parametrize("fixes", [PRE_PATCH, POST_PATCH], ids=["pre-patch", "post-patch"])

NP = SHADOW_NONPRESENT_VALUE  # what L1's TDP MMU writes to zap an entry (non-zero: bit 63)
OTHER_ACCESS = ACC_EXEC_MASK | ACC_USER_MASK  # a second role word for the same gfn


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def in_hash(kvm, sp) -> bool:
    return any(other is sp for other in kvm.mmu_page_hash[hash_64(sp.gfn)])


def reachable(root) -> set[int]:
    """Ids of the pages a walk from `root` can reach (the vCPU walks only its own root)."""
    seen, stack = set(), [root] if root is not None else []
    while stack:
        sp = stack.pop()
        if sp.id not in seen:
            seen.add(sp.id)
            stack.extend(child for _, child in sp.children())
    return seen


# -- 1. lookup key ------------------------------------------------------------------------------
def test_checklist_01_lookup_is_keyed_by_gfn_and_role_word(make_world):
    """A hit on (gfn, role.word) returns the page and counts nothing; a miss counts
    mmu_cache_miss and puts a new page at the head of active_mmu_pages."""
    w = make_world()
    kvm = w.kvm
    w.step()
    root = mmu.kvm_mmu_load(kvm, 0x1000)
    # Empty hash: the root lookup misses; one page, with gptes (shadow EPT root is indirect).
    s = w.stats()
    assert (s["mmu_cache_miss"], s["mmu_shadow_pages"], kvm.indirect_shadow_pages) == (1, 1, 1)

    w.step()
    pdpt = w.link_new(root, 0, 0x2000)
    s = w.stats()
    assert (s["mmu_cache_miss"], s["mmu_shadow_pages"], kvm.indirect_shadow_pages) == (2, 2, 2)
    # list_add() puts a new page at the head; the model keeps the list oldest first.
    assert list(kvm.active_mmu_pages)[-1] is pdpt
    assert in_hash(kvm, pdpt)

    w.step()
    before, n_pages = w.stats(), len(kvm.sps)
    again, created = mmu.kvm_mmu_get_shadow_page(kvm, 0x2000, root.role.child(), 0)
    assert again is pdpt
    assert not created
    assert w.stats() == before  # a hit increments nothing
    assert len(kvm.sps) == n_pages

    # Same gfn, another role word (different access): a different page, and a miss.
    w.step()
    other = w.link_new(root, 1, 0x2000, access=OTHER_ACCESS)
    assert other is not pdpt
    assert other.role.word != pdpt.role.word
    assert delta(before, w.stats()) == {"mmu_cache_miss": 1, "mmu_shadow_pages": 1}
    assert kvm.indirect_shadow_pages == 3

    # Same role, other gfn: a miss.  A direct page has no gptes: not an indirect page.
    w.step()
    before = w.stats()
    w.link_new(root, 2, 0x3000)
    w.link_new(root, 3, 0x4000, direct=True)
    # account_shadowed() of the indirect one write-protects gfn 0x3000, which L0 mapped
    # writable, and so requests a flush (kvm_mmu_slot_gfn_write_protect() returned true).
    assert delta(before, w.stats()) == {"mmu_cache_miss": 2, "mmu_shadow_pages": 2,
                                        "remote_tlb_flush_requests": 1}
    assert kvm.indirect_shadow_pages == 4

    # A prepared-but-uncommitted page stays in its bucket, but role.invalid hides it:
    # the same lookup now misses and builds a new page.
    w.step()
    invalid_list: list = []
    other_role = other.role
    mmu.kvm_mmu_prepare_zap_page(kvm, other, invalid_list)
    assert in_hash(kvm, other)
    fresh, created = mmu.kvm_mmu_get_shadow_page(kvm, 0x2000, other_role, 0)
    assert created
    assert fresh is not other
    mmu.kvm_mmu_commit_zap_page(kvm, invalid_list)
    mmu.link_shadow_page(kvm, root, 1, fresh)
    assert not in_hash(kvm, other)
    assert other.freed


# -- 2. write tracking vs write protection ----------------------------------------------------
def test_checklist_02_upper_level_pages_are_write_tracked_level_1_only_protected(make_world):
    """Level >= 2 shadow pages write-track their gfn; a level-1 page only write-protects
    it, until L1's next write."""
    w = make_world()
    w.boot()
    w.touch(0, [0])
    kvm = w.kvm
    root_t, pdpt_t, pd_t, pt_t = (w.table(0, 4), w.table(0, 3), w.pd(0), w.pt(0, 0))
    # One shadow page of level >= 2 per upper table: write-track count 1 each.
    for table in (root_t, pdpt_t, pd_t):
        assert kvm.write_track[table.gfn] == 1
    assert pt_t.gfn not in kvm.write_track
    assert pt_t.gfn in kvm.l1_wp  # account_shadowed() write-protected the PT page

    assert w.l1_write(pd_t, 100, NP) == "emulated"
    assert w.l1_write(pt_t, 100, NP) == "fault"  # the one write fault, which unsyncs
    assert w.l1_write(pt_t, 101, NP) == "native"
    assert pt_t.gfn not in kvm.l1_wp
    assert pt_t.gfn not in kvm.write_track
    assert w.sp(pt_t).unsync


# -- 3. first write to a level-1-only gfn -------------------------------------------------------
def test_checklist_03_write_to_synced_level_1_gfn_faults_once_and_unsyncs_all(make_world):
    """Two synced level-1 pages (two role words) shadow one gfn: L1's write faults once,
    unsyncs both (mmu_unsync += 2) without kvm_mmu_track_write; later writes are unseen
    until a sync write-protects the gfn again."""
    w = make_world()
    w.boot()
    w.touch(0, [0])
    kvm = w.kvm
    pd_sp = w.sp(w.pd(0))
    gfn = 0x3F_0000
    w.step()
    a = w.link_new(pd_sp, 200, gfn)
    b = w.link_new(pd_sp, 201, gfn, access=OTHER_ACCESS)
    assert gfn not in kvm.write_track
    assert not a.unsync
    assert not b.unsync

    before = w.stats()
    assert w.l1_write(gfn, 0, NP) == "fault"
    assert delta(before, w.stats()) == {"mmu_unsync": 2}  # no mmu_pte_write: not emulated
    assert a.unsync
    assert b.unsync

    before = w.stats()
    assert w.l1_write(gfn, 1, NP) == "native"
    assert w.l1_write(gfn, 2, NP) == "native"
    assert w.stats() == before

    # kvm_mmu_sync_roots() follows the unsync bitmaps root -> PDPT -> PD to both pages,
    # syncs them and write-protects the gfn: the next write faults (and unsyncs) again.
    w.step()
    assert mmu.kvm_mmu_sync_roots(kvm) == 2
    assert not a.unsync
    assert not b.unsync
    assert gfn in kvm.l1_wp
    before = w.stats()
    assert w.l1_write(gfn, 3, NP) == "fault"
    assert delta(before, w.stats()) == {"mmu_unsync": 2}


# -- 4. unsync propagation --------------------------------------------------------------------
def test_checklist_04_mark_unsync_sets_parent_bits_and_recurses_only_on_first(make_world):
    """kvm_unsync_page() sets the bit of the page's index in each parent; a parent's count
    rises only for a clear bit, and the walk goes up only on the parent's 0 -> 1."""
    w = make_world()
    w.boot()
    w.touch(1, [5, 9, 14])  # GiB 1: root[0] -> PDPT[1] -> PD[5, 9, 14]
    root_sp, pdpt_sp, pd_sp = w.sp(w.table(1, 4)), w.sp(w.table(1, 3)), w.sp(w.pd(1))
    assert (root_sp.unsync_children, pdpt_sp.unsync_children, pd_sp.unsync_children) == (0, 0, 0)

    assert w.l1_write(w.pt(1, 5), 0, NP) == "fault"
    assert pd_sp.unsync_child_bitmap == {5}
    assert pd_sp.unsync_children == 1
    assert pdpt_sp.unsync_child_bitmap == {1}
    assert pdpt_sp.unsync_children == 1
    assert root_sp.unsync_child_bitmap == {0}
    assert root_sp.unsync_children == 1

    # Second child: PD goes 1 -> 2, not 0 -> 1, so PDPT and root are left alone.
    assert w.l1_write(w.pt(1, 9), 0, NP) == "fault"
    assert pd_sp.unsync_child_bitmap == {5, 9}
    assert pd_sp.unsync_children == 2
    assert (pdpt_sp.unsync_child_bitmap, pdpt_sp.unsync_children) == ({1}, 1)
    assert (root_sp.unsync_child_bitmap, root_sp.unsync_children) == ({0}, 1)

    # mark_unsync() on a bit already set changes nothing.
    w.step()
    mmu.mark_unsync(w.kvm, pd_sp, 5)
    assert pd_sp.unsync_children == 2

    # An orphan has no parent: making it unsync touches no other page.
    pt14 = w.sp(w.pt(1, 14))
    assert w.l1_unmap(w.pd(1), 14, NP) == "emulated"
    assert pt14.orphan
    assert not pt14.unsync
    # frozenset: a snapshot, not the live set
    others = {sp.id: (sp.unsync, frozenset(sp.unsync_child_bitmap), sp.unsync_children)
              for sp in w.kvm.sps if sp is not pt14}
    assert w.l1_write(pt14.gfn, 0, NP) == "fault"
    assert pt14.unsync
    assert others == {sp.id: (sp.unsync, frozenset(sp.unsync_child_bitmap), sp.unsync_children)
                      for sp in w.kvm.sps if sp is not pt14}


# -- 5. emulation and the early exit ---------------------------------------------------------
def test_checklist_05_tracked_write_is_emulated_into_kvm_mmu_track_write(make_world, event_log):
    """A store to a write-tracked gfn is emulated and runs kvm_mmu_track_write()."""
    w = make_world()
    w.boot()
    w.touch(0, [0])
    w.kvm.recorder = event_log
    before = w.stats()
    assert w.l1_write(w.pd(0), 300, 0) == "emulated"
    assert delta(before, w.stats()) == {"mmu_pte_write": 1}
    assert event_log.of("kvm_mmu_track_write") == [
        {"gpa": w.pd(0).gfn << PAGE_SHIFT | 300 * 8, "new": 0}]


def test_checklist_05_no_indirect_pages_means_nothing_changes(make_world):
    """With indirect_shadow_pages == 0 kvm_mmu_track_write() returns before counting."""
    w = make_world()
    w.boot()
    w.touch(0, [0, 1])
    pd_gfn = w.pd(0).gfn
    w.step("memslot_change")
    mmu.kvm_mmu_zap_all_fast(w.kvm)
    w.guest.invept(reload=False)  # drops the invalid root: its second, final zap
    assert w.kvm.indirect_shadow_pages == 0
    assert not w.kvm.sps
    w.step()
    before, hashed = w.stats(), sum(len(b) for b in w.kvm.mmu_page_hash)
    mmu.kvm_mmu_track_write(w.kvm, pd_gfn << PAGE_SHIFT, FROZEN_SPTE)
    assert w.stats() == before
    assert sum(len(b) for b in w.kvm.mmu_page_hash) == hashed == 0


# -- 6. mmu_pte_write -------------------------------------------------------------------------
def test_checklist_06_each_track_write_counts_mmu_pte_write_once(make_world):
    """mmu_pte_write += 1 per kvm_mmu_track_write() past the early exit: one for a gfn
    with two shadow pages, one for a gfn with none, one for a write that floods."""
    w = make_world()
    w.boot()
    w.touch(0, [0])
    kvm = w.kvm
    pdpt_sp = w.sp(w.table(0, 3))
    gfn = 0x3F_1000
    w.step()
    a = w.link_new(pdpt_sp, 300, gfn)
    b = w.link_new(pdpt_sp, 301, gfn, access=OTHER_ACCESS)  # two level-2 pages, one gfn

    for n in (1, 2):
        before = w.stats()
        assert w.l1_write(gfn, 10 + n, 0) == "emulated"
        assert delta(before, w.stats()) == {"mmu_pte_write": 1}
        assert a.write_flooding_count == b.write_flooding_count == n

    before = w.stats()
    assert w.l1_write(gfn, 13, 0) == "emulated"  # third write: both pages flood
    d = delta(before, w.stats())
    assert d["mmu_pte_write"] == 1
    assert d["mmu_flooded"] == 2

    w.step()
    before = w.stats()
    mmu.kvm_mmu_track_write(kvm, 0x3F_2000 << PAGE_SHIFT, 0)  # no page shadows this gfn
    assert delta(before, w.stats()) == {"mmu_pte_write": 1}


# -- 7. flooding -------------------------------------------------------------------------------
def test_checklist_07_third_trapped_write_floods(make_world):
    """Writes #1 and #2 bump write_flooding_count; #3 zaps the PD page and its five
    single-parent PT children (mmu_shadow_zapped += 1 + 5) instead of zapping its SPTE."""
    w = make_world()
    w.boot()
    w.touch(0, range(5))  # 5 PTs, 2 leaves each, one parent each
    pd_t = w.pd(0)
    pd_sp = w.sp(pd_t)
    pts = [w.sp(w.pt(0, i)) for i in range(5)]
    pdpt_sp = w.sp(w.table(0, 3))
    assert pd_sp.write_flooding_count == 0  # the last fault walked through it

    for n, index in ((1, 100), (2, 101)):  # non-present entries: nothing else to zap
        before = w.stats()
        assert w.l1_write(pd_t, index, FROZEN_SPTE) == "emulated"
        assert pd_sp.write_flooding_count == n
        assert delta(before, w.stats()) == {"mmu_pte_write": 1, "mmu_pde_zapped": 1}

    # #3 hits the present PDE 0: flooding wins, so PT 0 is zapped with the rest, not
    # orphaned, and the write's SPTE is not processed (no mmu_pde_zapped).
    before = w.stats()
    assert w.l1_unmap(pd_t, 0, FROZEN_SPTE) == "emulated"
    assert delta(before, w.stats()) == {
        "mmu_pte_write": 1,
        "mmu_flooded": 1,
        "mmu_shadow_zapped": 1 + 5,
        "mmu_shadow_pages": -(1 + 5),
        "pages_4k": -5 * 2,
        # One commit of the invalid_list: one kvm_flush_remote_tlbs() request, and no
        # remote_tlb_flush, which counts only requests that IPI another vCPU's CPU (the
        # one vCPU flushes from its own exit).
        "remote_tlb_flush_requests": 1,
    }
    assert pd_sp.freed
    assert all(sp.freed for sp in pts)
    assert not w.kvm.orphans
    assert pdpt_sp.spt[0] is None  # kvm_mmu_unlink_parents() cleared the PDPTE


# -- 8. writes #1 and #2 ----------------------------------------------------------------------
@FIXES
def test_checklist_08_writes_1_and_2_zap_one_spte_orphaning_or_zapping_the_child(
        make_world, fixes):
    """Pre-patch the child whose only parent SPTE was zapped is orphaned, untouched;
    post-patch it is zapped in the same kvm_mmu_track_write()."""
    w = make_world(fixes=fixes)
    w.boot()
    w.touch(0, range(4))
    kvm = w.kvm
    pd_t = w.pd(0)
    pd_sp = w.sp(pd_t)
    pt0, pt1 = w.sp(w.pt(0, 0)), w.sp(w.pt(0, 1))
    assert w.l1_unmap(w.pt(0, 0), 0, NP) == "fault"  # PT 0 unsync, PT 1 stays synced
    assert pt0.unsync
    assert not pt1.unsync
    post = "track-write-zap" in fixes

    for n, sp, was_unsync in ((1, pt0, True), (2, pt1, False)):
        before, indirect = w.stats(), kvm.indirect_shadow_pages
        assert w.l1_unmap(pd_t, n - 1, NP) == "emulated"
        assert pd_sp.write_flooding_count == n
        # just the written SPTE is gone
        assert [i for i, _ in pd_sp.children()] == list(range(n, 4))
        d = delta(before, w.stats())
        if post:
            # The child is prepare-zapped and committed: unaccounted, unsync cleared, its
            # two leaves and their rmap entries dropped, freed after one flush.
            assert sp.freed
            assert not in_hash(kvm, sp)
            assert sp not in kvm.sps
            assert d == {
                "mmu_pte_write": 1, "mmu_pde_zapped": 1, "mmu_shadow_zapped": 1,
                "mmu_shadow_pages": -1, "pages_4k": -2,
                "remote_tlb_flush_requests": 1,  # no IPI: remote_tlb_flush stays
                **({"mmu_unsync": -1} if was_unsync else {}),
            }
            assert kvm.indirect_shadow_pages == indirect - 1
            assert not kvm.orphans
        else:
            # Orphaned: valid, accounted, hashed, on active_mmu_pages, leaves kept, and
            # its unsync flag as it was.  The zapped SPTE was present: one flush.
            assert sp.orphan
            assert not sp.role.invalid
            assert not sp.parent_ptes
            assert in_hash(kvm, sp)
            assert sp in kvm.active_mmu_pages
            assert sp.unsync is was_unsync
            assert sp.n_leaves == 2
            assert d == {"mmu_pte_write": 1, "mmu_pde_zapped": 1,
                         "remote_tlb_flush_requests": 1}
            assert kvm.indirect_shadow_pages == indirect


# -- 9. level 1 and misaligned writes -------------------------------------------------------
@pytest.mark.parametrize(
    ("offset", "nbytes", "misaligned"),
    [
        (0, 8, False), (8, 8, False), (4, 8, True),   # an 8-byte write straddling two ptes
        (0, 4, False), (4, 4, False), (6, 4, True),   # 6..9 crosses the pte at 8
        (0, 1, False), (8, 1, False),                 # 1-byte writes at a pte start are fine
        (3, 1, True), (4, 1, True), (0, 2, True),     # otherwise fewer than 4 bytes is
    ],
)
def test_checklist_09_detect_write_misaligned(make_world, offset, nbytes, misaligned):
    """detect_write_misaligned() for 8-byte gptes: a write crossing a pte boundary, or of fewer
    than 4 bytes unless 1 byte at a pte start."""
    w = make_world()
    w.boot()
    gpa = 0x1234 << PAGE_SHIFT | offset
    assert mmu.detect_write_misaligned(w.kvm.root, gpa, nbytes) is misaligned


def test_checklist_09_level_1_pages_never_flood_but_misaligned_writes_zap_them(make_world):
    """A gfn shadowed both as a PD (level 2) and as a synced PT (level 1): trapped writes
    bump and flood only the level-2 page; the level-1 page processes each written SPTE
    and goes only when a misaligned write zaps it (counted in mmu_flooded)."""
    w = make_world()
    w.boot()
    w.touch(0, [0, 1])
    kvm = w.kvm
    pt_t = w.pt(0, 0)
    gfn = pt_t.gfn
    l1_sp = w.sp(pt_t)
    w.step()
    # L1 reuses that page as a PD too.  The lookup for the level-2 role finds a synced
    # level-1 page (only unsync ones are zapped), so both live and the gfn is tracked.
    l2_sp = w.link_new(w.sp(w.table(0, 3)), 300, gfn)
    assert not l1_sp.role.invalid
    assert kvm.write_track[gfn] == 1

    for n, index in ((1, 0), (2, 1)):  # entries 0 and 1 are the level-1 page's leaves
        before = w.stats()
        assert w.l1_write(gfn, index, FROZEN_SPTE) == "emulated"
        assert (l2_sp.write_flooding_count, l1_sp.write_flooding_count) == (n, 0)
        # the level-2 page counts mmu_pde_zapped (non-zero value); the leaf goes
        assert delta(before, w.stats())["pages_4k"] == -1
    before = w.stats()
    assert w.l1_write(gfn, 2, FROZEN_SPTE) == "emulated"
    assert l2_sp.freed
    assert not l1_sp.role.invalid
    assert delta(before, w.stats())["mmu_flooded"] == 1

    # More trapped writes reaching the level-1 page (the kernel processes whatever trapped
    # write names its gfn): never counted, never flood-zapped.
    for index in range(3, 9):
        w.step()
        mmu.kvm_mmu_track_write(kvm, gfn << PAGE_SHIFT | index * 8, FROZEN_SPTE)
        assert l1_sp.write_flooding_count == 0
        assert not l1_sp.role.invalid
    assert w.stats()["mmu_flooded"] == before["mmu_flooded"] + 1

    w.step()
    before = w.stats()
    mmu.kvm_mmu_track_write(kvm, gfn << PAGE_SHIFT | 4, FROZEN_SPTE, 8)  # straddles 2 ptes
    assert l1_sp.freed
    d = delta(before, w.stats())
    assert d["mmu_flooded"] == 1
    assert d["mmu_shadow_zapped"] == 1


def test_checklist_09_misaligned_write_zaps_without_bumping_the_count(make_world):
    """detect_write_misaligned() short-circuits detect_write_flooding(); a 1-byte write
    at a pte start is an ordinary (counted) write."""
    w = make_world()
    w.boot()
    w.touch(0, [0])
    kvm = w.kvm
    pd_gfn = w.pd(0).gfn
    pd_sp = w.sp(pd_gfn)
    w.step()
    mmu.kvm_mmu_track_write(kvm, pd_gfn << PAGE_SHIFT | 100 * 8, 0, 1)
    assert pd_sp.write_flooding_count == 1
    assert not pd_sp.role.invalid
    w.step()
    before = w.stats()
    mmu.kvm_mmu_track_write(kvm, pd_gfn << PAGE_SHIFT | 100 * 8, 0, 2)
    assert pd_sp.freed
    assert pd_sp.write_flooding_count == 1
    assert delta(before, w.stats())["mmu_flooded"] == 1


def test_checklist_09_long_mode_4_byte_write_is_widened_before_the_misaligned_check(
        make_world):
    """§2 step 3: mmu_pte_write_fetch_gpte() runs before the loop and, for a vCPU in
    PAE/long mode (L1 is a 64-bit KVM), rounds a 4-byte write's gpa down to 8 and makes
    it 8 bytes ("a 32-bit guest writing two halves of a 64-bit gpte");
    detect_write_misaligned() and get_written_sptes() see the widened write.  So a 4-byte
    store at offset 6 is an ordinary write to entry 0: counted, not a flood-zap."""
    w = make_world()
    w.boot()
    w.touch(0, [0])
    pd_gfn = w.pd(0).gfn
    pd_sp = w.sp(pd_gfn)
    w.step()
    before = w.stats()
    mmu.kvm_mmu_track_write(w.kvm, pd_gfn << PAGE_SHIFT | 6, 0, 4)
    assert not pd_sp.role.invalid, "zapped as misaligned: the 4-byte write was not widened"
    assert pd_sp.write_flooding_count == 1
    assert "mmu_flooded" not in delta(before, w.stats())


# -- 10. mmu_pde_zapped ------------------------------------------------------------------------
def test_checklist_10_pde_zapped_counts_processed_upper_sptes_with_nonzero_value(make_world):
    """mmu_pde_zapped counts each SPTE of a level >= 2 page that a write processes, iff the
    value written is non-zero; flooded writes and level-1 pages never count."""
    w = make_world()
    w.boot()
    w.touch(0, [0, 1])
    pd_t = w.pd(0)
    pd_sp = w.sp(pd_t)

    def pde_zapped(table, index, new):
        before = w.stats()["mmu_pde_zapped"]
        if table.children[index] is not None:
            w.l1_unmap(table, index, new)
        else:
            w.l1_write(table, index, new)
        return w.stats()["mmu_pde_zapped"] - before

    assert pde_zapped(pd_t, 300, 0) == 0  # a zeroing write does not count
    assert pde_zapped(pd_t, 301, FROZEN_SPTE) == 1  # non-present SPTE, non-zero value
    w.touch(0, [1])  # a fault through the PD clears its count (2 -> 0)
    assert pd_sp.write_flooding_count == 0
    assert pde_zapped(pd_t, 0, NP) == 1  # present PDE, "suppress #VE" value
    assert pde_zapped(pd_t, 302, 0) == 0
    assert pd_sp.write_flooding_count == 2
    assert pde_zapped(pd_t, 303, FROZEN_SPTE) == 0  # flooded: the SPTE is not processed
    assert pd_sp.freed

    # Level 1: never counted, whatever the value.
    pt_gfn = w.pt(0, 1).gfn
    w.step()
    before = w.stats()["mmu_pde_zapped"]
    for index in range(3):
        mmu.kvm_mmu_track_write(w.kvm, pt_gfn << PAGE_SHIFT | index * 8, FROZEN_SPTE)
    assert w.stats()["mmu_pde_zapped"] == before


# -- 11. flood count resets -------------------------------------------------------------------
def _flood_world(make_world):
    w = make_world()
    w.boot()
    w.touch(0, [0, 1, 3], huge=[3])  # region 3: a 2 MiB leaf in PD 0
    w.touch(1, [0])
    tables = {"root": w.table(0, 4), "pdpt": w.table(0, 3), "pd0": w.pd(0), "pd1": w.pd(1)}
    sps = {name: w.sp(t) for name, t in tables.items()}

    def bump(*names):
        """Two trapped writes to non-present entries of each table: count 2."""
        for name in names:
            for index in (500, 501):
                w.l1_write(tables[name], index, FROZEN_SPTE)

    def counts():
        return {name: sp.write_flooding_count for name, sp in sps.items()}

    return w, sps, bump, counts


def test_checklist_11_lookup_hit_clears_the_flood_count(make_world):
    """A kvm_mmu_find_shadow_page() hit clears the found page's count (and only its)."""
    w, sps, bump, counts = _flood_world(make_world)
    bump("pd0", "pd1")
    w.step()
    hit, created = mmu.kvm_mmu_get_shadow_page(w.kvm, sps["pd0"].gfn, sps["pd0"].role, 0)
    assert hit is sps["pd0"]
    assert not created
    assert counts() == {"root": 0, "pdpt": 0, "pd0": 0, "pd1": 2}


def test_checklist_11_fetch_walk_clears_every_page_on_its_path(make_world):
    """FNAME(fetch) clears every page from the root to the leaf level on the faulting path."""
    w, _sps, bump, counts = _flood_world(make_world)
    bump("root", "pdpt", "pd0", "pd1")
    assert counts() == {"root": 2, "pdpt": 2, "pd0": 2, "pd1": 2}
    w.touch(0, [1])  # L2 faults in GiB 0: FNAME(fetch) walks root -> PDPT -> PD 0 -> PT
    assert counts() == {"root": 0, "pdpt": 0, "pd0": 0, "pd1": 2}
    # The clear comes before the level check, so the page at the guest's leaf level is
    # cleared too: for the 2 MiB region that is PD 0 itself.
    bump("pd0")
    w.touch(0, [3], huge=[3])
    assert counts()["pd0"] == 0


def test_checklist_11_shadow_page_table_clear_flood_clears_its_path(make_world):
    """shadow_page_table_clear_flood() clears the pages on one path, not its neighbours."""
    w, _sps, bump, counts = _flood_world(make_world)
    bump("root", "pdpt", "pd0", "pd1")
    w.step()
    pt = w.sp(w.pt(0, 0))  # the walk for an address under PT 0 of GiB 0, from the root
    shadow_page_table_clear_flood(w.kvm, pt.l2_gfn, pt.role.level)
    assert counts() == {"root": 0, "pdpt": 0, "pd0": 0, "pd1": 2}


def test_checklist_11_new_pgd_clears_the_reused_root(make_world):
    """kvm_mmu_new_pgd() switching back to a cached root clears that root's count."""
    w, sps, bump, _counts = _flood_world(make_world)
    old_root = w.table(0, 4)
    w.guest.new_eptp()  # the old root waits in prev_roots
    bump("root")  # still shadowed, so still tracked
    assert sps["root"].write_flooding_count == 2
    w.step()
    mmu.kvm_mmu_new_pgd(w.kvm, old_root.gfn)
    assert w.kvm.root is sps["root"]
    assert sps["root"].write_flooding_count == 0


def test_checklist_11_nothing_else_clears_the_flood_count(make_world):
    """L1 4 KiB writes, other tables' trapped writes, syncs, root frees, zaps elsewhere and
    faults in other GiBs leave PD 0's count alone."""
    w, sps, bump, _counts = _flood_world(make_world)
    bump("pd0")
    pt_t = w.pt(0, 0)
    w.l1_unmap(pt_t, 0, NP)  # fault: unsync
    w.l1_unmap(pt_t, 1, NP)  # native
    w.l1_write(w.pd(1), 400, FROZEN_SPTE)  # trapped, other PD
    w.step()
    mmu.kvm_mmu_sync_roots(w.kvm)
    w.guest.invept(reload=True)  # frees roots; the reload's lookup clears only the root
    w.touch(1, [0, 7])
    w.l1_write(w.table(0, 3), 9, NP)  # trapped PDPT write to a non-present entry
    w.guest.new_eptp()
    w.touch(0, [3])  # a fault under the new root
    assert sps["pd0"].write_flooding_count == 2


def test_checklist_11_l2_activity_never_clears_pages_unreachable_from_the_root(
        make_world, monkeypatch):
    """shadow_page_table_clear_flood(vcpu, addr) and FNAME(fetch) walk from the vCPU's
    current root, so L2 activity can clear only pages that root reaches: never an orphan,
    never a page of an old tree L2 no longer runs on."""
    bad: list[str] = []
    original_event = Kvm.event
    seen = [0]

    def event(self, kind, values):
        if kind.name == "clear_sp_write_flooding_count":
            seen[0] += 1
            on_path = reachable(self.root)
            for sp_id in dict(zip(kind.args, values, strict=True))["cleared"]:
                if sp_id not in on_path:
                    sp = next(sp for sp in self.sps if sp.id == sp_id)
                    why = "an orphan" if sp.orphan else "not under the current root"
                    bad.append(f"{sp!r} ({why}) cleared, action #{self.actions_emitted}")
        original_event(self, kind, values)

    monkeypatch.setattr(Kvm, "event", event)
    for order in ("bottom-up", "top-down"):
        run_scenario(ScenarioSpec(l2_mem_gib=3, pdes_per_pd=4, ptes_per_pt=2, ept_levels=4,
                                  order=order, mode="exclusive", flood_clear_prob=1.0,
                                  boots=1), record=False)
    orphans = sum("an orphan" in line for line in bad)
    assert seen[0], "no L2 activity cleared flood counts: the check above never ran"
    assert not bad, (f"{len(bad)} flood counts cleared off the current root's paths "
                     f"({orphans} of them orphans'):\n" + "\n".join(bad[:8]))


# -- 12. prepare-zap -------------------------------------------------------------------------
def _zap_world(make_world, **kw):
    """PD 0 with PTs 0 (unsync), 1 (synced, one parent), 2 (a second parent in PD 1) and a
    2 MiB leaf at entry 7; PD 1 with PT 0."""
    w = make_world(**kw)
    w.boot()
    w.touch(0, [0, 1, 2, 7], huge=[7])
    w.touch(1, [0])
    assert w.l1_unmap(w.pt(0, 0), 0, NP) == "fault"
    pd0, pd1 = w.sp(w.pd(0)), w.sp(w.pd(1))
    w.step()
    shared = w.link_new(pd1, 300, w.pt(0, 2).gfn)  # find hit: the same page, 2nd parent
    assert shared is w.sp(w.pt(0, 2))
    assert len(shared.parent_ptes) == 2
    return w, pd0, pd1


def test_checklist_12_prepare_zap_unlinks_everything_and_zaps_lone_children(make_world):
    """Prepare-zap: unsync descendants, leaves, lone guest_mode children and parent SPTEs go; a
    child with another parent is only unlinked."""
    w, pd0, pd1 = _zap_world(make_world)
    kvm = w.kvm
    pt0, pt1, pt2 = (w.sp(w.pt(0, i)) for i in range(3))
    pdpt = w.sp(w.table(0, 3))
    w.step()
    before = w.stats()
    invalid_list: list = []
    nr_zapped = mmu.__kvm_mmu_prepare_zap_page(kvm, pd0, invalid_list)
    # __kvm_mmu_prepare_zap_page()'s *nr_zapped: PT 0 by mmu_zap_unsync_children (reachable
    # through PD 0's bitmap, zapped++), PT 1 by the 2de4085cccea recursion (its last parent
    # is gone; mmu_page_zap_pte() returns that zap's bool, 1), PD 0 itself.  PT 2 keeps PD 1.
    assert nr_zapped == 3
    assert {sp.id for sp in invalid_list} == {pd0.id, pt0.id, pt1.id}
    assert pd0.role.invalid
    assert pt0.role.invalid
    assert pt1.role.invalid
    assert not pt2.role.invalid
    assert pt2.parent_ptes == [(pd1, 300)]
    assert not pd0.children()
    assert not pd0.leaf_bitmap
    assert not pd0.parent_ptes
    assert pdpt.spt[0] is None  # the parent SPTE is cleared
    assert not pt0.unsync
    assert delta(before, w.stats()) == {
        "mmu_shadow_zapped": 3,
        "mmu_shadow_pages": -3,
        "mmu_unsync": -1,       # PT 0's own unsync cleared
        "pages_2m": -1,         # PD 0's 2 MiB leaf
        "pages_4k": -2 * 2,     # the two leaves of each of PT 0 and PT 1
    }
    mmu.kvm_mmu_commit_zap_page(kvm, invalid_list)
    assert pd0.freed
    assert pt0.freed
    assert pt1.freed
    assert not pt2.freed


def test_checklist_12_zapping_an_unsync_page_emits_kvm_mmu_sync_page(make_world, event_log):
    """§5 step 7 / §12: kvm_unlink_unsync_page() fires the kvm_mmu_sync_page tracepoint,
    on a sync *and* when an unsync page is zapped."""
    w, pd0, _ = _zap_world(make_world)
    pt0 = w.sp(w.pt(0, 0))
    assert pt0.unsync
    w.kvm.recorder = event_log
    w.step()
    invalid_list: list = []
    mmu.kvm_mmu_prepare_zap_page(w.kvm, pd0, invalid_list)
    mmu.kvm_mmu_commit_zap_page(w.kvm, invalid_list)
    assert [a["sp"] for a in event_log.of("kvm_mmu_sync_page")] == [pt0.id], event_log.kinds()


@pytest.mark.parametrize("what", ["tdp disabled", "not guest_mode"])
def test_checklist_12_recursion_needs_tdp_enabled_and_guest_mode(make_world, what):
    """The 2de4085cccea recursion needs tdp_enabled and a guest_mode child: otherwise the child
    is orphaned."""
    w = make_world()
    w.boot()
    w.touch(0, [0])
    kvm = w.kvm
    pd = w.sp(w.pd(0))
    w.step()
    if what == "tdp disabled":
        kvm.tdp_enabled = False
        lone = w.sp(w.pt(0, 0))
    else:
        lone = w.link_new(pd, 9, 0x3F_3000, guest_mode=False)
    invalid_list: list = []
    mmu.kvm_mmu_prepare_zap_page(kvm, pd, invalid_list)
    mmu.kvm_mmu_commit_zap_page(kvm, invalid_list)
    # Its last parent is gone but the 2de4085cccea rule does not apply: an orphan.
    assert lone.orphan
    assert not lone.role.invalid
    kvm.tdp_enabled = True


# -- 13. accounting at prepare, freeing at commit ---------------------------------------------
def test_checklist_13_prepare_unaccounts_commit_flushes_once_then_frees(make_world, monkeypatch):
    """mmu_shadow_pages drops at prepare; the commit flushes remote TLBs once, then frees."""
    w = make_world()
    w.boot()
    w.touch(0, [0, 1, 2])
    kvm = w.kvm
    pt1, pt2 = w.sp(w.pt(0, 1)), w.sp(w.pt(0, 2))
    w.step()
    before = w.stats()
    invalid_list: list = []
    for sp in (pt1, pt2):
        mmu.kvm_mmu_prepare_zap_page(kvm, sp, invalid_list)
    d = delta(before, w.stats())
    assert d["mmu_shadow_pages"] == -2
    assert "remote_tlb_flush" not in d
    assert all(not sp.freed and in_hash(kvm, sp) and sp in kvm.sps for sp in (pt1, pt2))

    seen_at_flush: list[list[bool]] = []
    original = mmu.kvm_flush_remote_tlbs

    def flush(k):
        seen_at_flush.append([sp.freed for sp in (pt1, pt2)])
        original(k)

    monkeypatch.setattr(mmu, "kvm_flush_remote_tlbs", flush)
    mmu.kvm_mmu_commit_zap_page(kvm, invalid_list)
    assert seen_at_flush == [[False, False]]  # one flush, before anything is freed
    assert pt1.freed
    assert pt2.freed
    assert not in_hash(kvm, pt1)
    assert not in_hash(kvm, pt2)
    assert w.stats()["mmu_shadow_pages"] == before["mmu_shadow_pages"] - 2
    mmu.kvm_mmu_commit_zap_page(kvm, [])
    assert len(seen_at_flush) == 1  # an empty commit does not flush


# -- 14. zapping a live root ------------------------------------------------------------------
def test_checklist_14_live_root_stays_accounted_until_its_last_reference_goes(make_world):
    """A zapped live root stays allocated and accounted; dropping its last reference zaps it
    again and frees it."""
    w = make_world()
    root_t = w.boot()
    w.touch(0, [0])
    kvm = w.kvm
    root = w.sp(root_t)
    assert root.root_count == 1
    w.step()
    before = w.stats()
    invalid_list: list = []
    nr = mmu.kvm_mmu_prepare_zap_page(kvm, root, invalid_list)
    mmu.kvm_mmu_commit_zap_page(kvm, invalid_list)
    # The PDPT, PD and PT under it go (recursively), but the root's nr_zapped counts only
    # the PDPT: mmu_page_zap_pte() returns kvm_mmu_prepare_zap_page()'s bool (1), which
    # hides the PD and PT.  The root does not count itself (root_count > 0): it stays
    # allocated and accounted, off active_mmu_pages, invalid.
    assert nr == 1
    assert delta(before, w.stats())["mmu_shadow_zapped"] == 4
    assert delta(before, w.stats())["mmu_shadow_pages"] == -3
    assert root.role.invalid
    assert not root.freed
    assert root in kvm.sps
    assert root not in kvm.active_mmu_pages
    assert kvm.root_zapped

    w.step()
    before = w.stats()
    w.guest.invept(reload=False)  # the vCPU drops its reference
    d = delta(before, w.stats())
    assert d["mmu_shadow_zapped"] == 1  # zapped again
    assert d["mmu_shadow_pages"] == -1
    assert root.freed
    assert root not in kvm.sps


def test_checklist_14_a_root_flooded_by_l1_mid_touch_is_replaced_before_l2_faults(make_world):
    """L1's third store into its root table without an intervening use floods the root sp:
    it is zapped but stays allocated (root_count 1), invalid, with
    KVM_REQ_MMU_FREE_OBSOLETE_ROOTS pending.  If that store was L1 mapping a new PDPT for
    L2's fault, L2's next fault follows a VM entry that frees the obsolete root and loads
    a new one, so nothing is built below the invalid root (the kernel's
    is_page_fault_stale() retries a fault that raced with this)."""
    w = make_world()
    root_t = w.boot()
    w.touch(0, [0])
    old_root = w.sp(root_t)
    # L1 unmaps GiB 0 twice (entry 0 of the root table): flood count 1, then 2.
    w.guest._zap_entry(root_t, 0, NP, "test")
    w.guest._zap_entry(root_t, 0, NP, "test")
    assert old_root.write_flooding_count == 2
    # L2 touches GiB 0 again: L1's store of the new PDPT is the third write.
    w.touch(0, [0])
    assert old_root.freed
    new_root = w.kvm.root
    assert new_root is not None
    assert new_root is not old_root
    assert new_root.gfn == root_t.gfn
    assert not new_root.role.invalid
    # The new path root -> PDPT -> PD -> PT is built from valid pages only.
    path = [new_root]
    while path[-1].children():
        ((_, child),) = path[-1].children()
        path.append(child)
    assert [sp.role.level for sp in path] == [4, 3, 2, 1]
    assert not any(sp.role.invalid for sp in path)


# -- 15. an orphan stays -------------------------------------------------------------------
def _orphan_world(make_world, **kw):
    """PD 0 with PTs 0..3; PT 0 unsync and then orphaned by one trapped PDE write."""
    w = make_world(**kw)
    w.boot()
    w.touch(0, range(4))
    pt_t = w.pt(0, 0)
    orphan = w.sp(pt_t)
    w.l1_unmap(pt_t, 0, NP)  # fault: unsync (L0 keeps its stale SPTE for entry 0)
    w.l1_unmap(pt_t, 1, NP)  # native
    w.l1_unmap(w.pd(0), 0, NP)  # trapped: PD count 1, PT 0 loses its only parent
    assert orphan.orphan
    assert orphan.unsync
    return w, orphan, pt_t


def _orphan_state(w, sp):
    kvm = w.kvm
    return (
        sp.unsync, sp.orphan, sp.role.invalid, sp.freed, in_hash(kvm, sp),
        sp in kvm.active_mmu_pages, sp.n_leaves,
        [kvm.rmaps.chain_length(1, sp.leaf_gfn_base + i, 1) for i in range(2)],
    )


def test_checklist_15_unsync_orphan_keeps_everything_under_steady_state(make_world):
    """An unsync orphan keeps its flag, counts, hash entry and rmap entries while L1 and L2 go
    on."""
    w, orphan, _ = _orphan_world(make_world)
    kept = _orphan_state(w, orphan)
    # unsync, orphan, valid, not freed, hashed, listed, both stale leaves, one rmap each
    assert kept == (True, True, False, False, True, True, 2, [1, 1])
    for _ in range(3):  # L2 keeps running, L1 keeps updating and flushing
        w.touch(0, [1, 2, 3], mask=0b1100, second=True)
        w.l1_unmap(w.pt(0, 1), 2, NP)
        w.guest.invept(reload=True)
        w.touch(1, [4, 5])
        assert _orphan_state(w, orphan) == kept
    # Its contribution is still in every count (the invariants recount them per page).
    assert orphan in w.kvm.orphans
    assert w.kvm.orphans_unsync == 1


# -- 16. syncing never reaches an orphan -------------------------------------------------------
def test_checklist_16_sync_reaches_only_linked_unsync_pages(make_world):
    """Syncs follow unsync_child_bitmap from linked pages: the linked unsync PT is synced, the
    orphan never."""
    w, orphan, _ = _orphan_world(make_world)
    linked = w.sp(w.pt(0, 1))
    w.l1_unmap(w.pt(0, 1), 0, NP)
    assert linked.unsync
    w.step()
    for sp in (w.sp(w.pd(0)), w.sp(w.table(0, 3))):
        mmu.mmu_sync_children(w.kvm, sp)
    assert mmu.kvm_mmu_sync_roots(w.kvm) == 0  # PD already synced the linked one
    assert not linked.unsync
    assert orphan.unsync


# -- 17. a lookup of the orphan's gfn ----------------------------------------------------------
def test_checklist_17_same_role_lookup_resyncs_and_relinks_the_orphan(make_world):
    """L1 reusing the orphan's page as a PT: the lookup hits, resyncs and relinks it, still
    unsync."""
    w, orphan, pt_t = _orphan_world(make_world)
    pd_t = w.pd(0)
    pd_sp = w.sp(pd_t)
    # L1 reuses the page as the PT of region 9 and L2 faults there.
    pd_t.children[9] = pt_t
    w.l1_write(pd_t, 9, NP | pt_t.gfn << PAGE_SHIFT | 0xD07)
    before = w.stats()
    w.touch(0, [9])
    # The lookup hits (no miss for it), kvm_sync_page() drops the stale leaves (the region
    # moved), the page stays unsync and linking it marks the PD.
    assert not orphan.orphan
    assert orphan.parent_ptes == [(pd_sp, 9)]
    assert orphan.unsync
    assert 9 in pd_sp.unsync_child_bitmap
    assert delta(before, w.stats()).get("mmu_cache_miss", 0) == 0
    assert orphan.leaf_gfn_base == pt_t.leaf_gfn_base


def test_checklist_17_upper_level_lookup_zaps_the_orphan(make_world):
    """L1 reusing the orphan's page as a PD: the level-2 lookup zaps the unsync orphan."""
    w, orphan, pt_t = _orphan_world(make_world)
    before = w.stats()
    w.step()
    pd_again = w.link_new(w.sp(w.table(0, 3)), 400, pt_t.gfn)  # L1 reuses it as a PD
    assert orphan.freed
    assert pd_again.role.level == 2
    d = delta(before, w.stats())
    assert d["mmu_unsync"] == -1
    assert d["mmu_cache_miss"] == 1
    assert not w.kvm.orphans


# -- 18 / 19. the leak per root zap -------------------------------------------------------------
@FIXES
def test_checklist_18_bottom_up_leaks_the_first_two_ptes_of_each_pd(make_world, fixes):
    """Bottom-up teardown: exactly the first two present PTs of each PD leak pre-patch, none
    post-patch."""
    w = make_world(fixes=fixes)
    w.boot()
    regions = {0: [3, 7, 9, 20], 1: [4, 8, 200]}
    for gib, indices in regions.items():
        w.touch(gib, indices)
    w.guest.invept(reload=True)
    # PDEs are written in GFN-ascending order: the first two present ones orphan their PT,
    # the third floods the PD (count 0 at the start: the last faults walked through it).
    leaked = {w.sp(w.pt(gib, i)).id for gib, indices in regions.items() for i in indices[:2]}
    assert all(w.sp(w.pd(gib)).write_flooding_count == 0 for gib in regions)
    old = w.guest.new_eptp()
    w.guest.zap_root(old, "bottom-up")
    assert w.unsync_orphans() == (set() if "track-write-zap" in fixes else leaked)


@FIXES
def test_checklist_19_top_down_leaks_four_per_pdpt(make_world, fixes):
    """Top-down teardown: the first two PTs of the first two PDs leak pre-patch (4 per PDPT),
    none post-patch."""
    w = make_world(fixes=fixes, shared=False)
    w.boot()
    for gib in range(3):
        w.touch(gib, [3, 7, 9])
    w.guest.invept(reload=True)
    # PDPTE 0 orphans PD 0; handle_removed_pt() then writes PD 0's present entries: 3 and 7
    # orphan their PTs, 9 floods PD 0.  PDPTE 1 repeats for PD 1.  PDPTE 2 floods the PDPT,
    # zapping PD 2 and its PTs before L1 writes them.
    leaked = {w.sp(w.pt(gib, i)).id for gib in (0, 1) for i in (3, 7)}
    old = w.guest.new_eptp()
    w.guest.zap_root(old, "top-down")
    assert w.unsync_orphans() == (set() if "track-write-zap" in fixes else leaked)
    assert all(sp.role.level == 1 for sp in w.kvm.orphans)


# -- 20. recycling ----------------------------------------------------------------------------
def test_checklist_20_recycling_zaps_oldest_non_roots_on_faults_only(make_world):
    """Under 5 free pages a shadow fault recycles oldest non-root pages until 25 - avail are
    zapped; trapped writes and 4 KiB write faults never recycle."""
    w = make_world()
    w.boot()
    w.touch(0, range(20))  # old tree: PDPT, PD, 20 PTs under root A
    old_root = w.sp(w.table(0, 4))
    w.guest.new_eptp()
    w.touch(0, range(3))  # new tree: PDPT, PD, 3 PTs under root B
    kvm = w.kvm
    old_tree = {sp.id for sp in kvm.sps if sp.id in w.reachable(old_root)} - {
        old_root.id}
    assert len(old_tree) == 22
    w.l1_unmap(w.pd(0), 0, NP)  # an orphan in the *new* tree (newer than the old tree)
    orphan = next(iter(kvm.orphans))

    used = w.stats()["mmu_shadow_pages"]
    w.step()
    mmu.kvm_mmu_change_mmu_pages(kvm, used + KVM_MIN_FREE_MMU_PAGES)
    w.touch(0, [1])  # avail 5: no recycling
    assert w.stats()["mmu_recycled"] == 0
    w.step()
    mmu.kvm_mmu_change_mmu_pages(kvm, w.stats()["mmu_shadow_pages"] + 4)  # avail 4
    w.l1_write(w.pd(0), 100, 0)  # trapped write: no recycling there
    w.l1_unmap(w.pt(0, 1), 0, NP)  # 4 KiB write fault: none either
    assert w.stats()["mmu_recycled"] == 0
    unsync_pt = w.sp(w.pt(0, 1))
    assert unsync_pt.unsync
    w.touch(0, [5])
    # The fault asks for 25 - 4 = 21 and kvm_mmu_zap_oldest_mmu_pages() adds up each
    # victim's __kvm_mmu_prepare_zap_page() nr_zapped, oldest non-root first (roots A and B
    # are skipped):
    #  - PDPT A: no unsync below; kvm_mmu_page_unlink_children() counts PD A once (the
    #    bool of its recursive zap hides PD A's 20 PTs); itself: 2.  Total 2.
    #  - PDPT B: mmu_zap_unsync_children() zaps the unsync PT (0, 1) (1); PD B through the
    #    bool (1), hiding PTs (0, 2); itself (1): 3.  Total 5.
    #  - the orphan PT (0, 0) of tree B, newer than PDPT B: itself, 1.  Total 6.
    # Nothing but the two roots is left, so the loop ends short of 21 with 6.
    assert w.stats()["mmu_recycled"] == 6
    assert not old_tree & {sp.id for sp in kvm.sps}
    assert unsync_pt.freed
    assert not old_root.freed
    assert orphan.freed  # reached by age, after the older tree B pages, not before them


def test_checklist_20_recycling_counts_nr_zapped_through_the_bool(make_world):
    """mmu_recycled adds nr_zapped as the kernel counts it: a subtree counts its top page and
    the children zapped with it, not the grandchildren (kvm_mmu_prepare_zap_page() is
    ``static bool``, and mmu_page_zap_pte() returns it)."""
    w = make_world()
    w.boot()
    w.touch(0, range(20))  # root, PDPT, PD, 20 PTs: 23 pages
    kvm = w.kvm
    assert w.stats()["mmu_shadow_pages"] == 23
    w.step()
    mmu.kvm_mmu_change_mmu_pages(kvm, 23 + 4)  # avail 4 < KVM_MIN_FREE_MMU_PAGES
    w.guest.new_eptp()  # L1's new root: mmu_alloc_shadow_roots() -> make_mmu_pages_available()
    # The new root's allocation asks for 25 - 4 = 21.  The only non-root victim is PDPT A:
    # nr_zapped = 0 unsync + 1 (PD A, whose own 20 PTs are hidden by the bool) + 1 (itself)
    # = 2 < 21, and no other victim is left, so mmu_recycled is 2 while 22 pages go.  The
    # old full count would have been 22.
    assert w.stats()["mmu_recycled"] == 2 < KVM_REFILL_PAGES - 4
    assert w.stats()["mmu_shadow_pages"] == 23 - 22 + 1  # old root (in prev_roots) + new root


def test_checklist_20_zap_oldest_takes_age_order_not_orphans_first(make_world):
    """kvm_mmu_zap_oldest_mmu_pages() goes by age: an older linked page goes before a newer
    orphan."""
    w = make_world()
    w.boot()
    w.touch(0, [0])
    w.touch(1, [0])
    w.l1_unmap(w.pd(1), 0, NP)  # the newest pages include an orphan
    orphan = next(iter(w.kvm.orphans))
    w.step()
    total = mmu.kvm_mmu_zap_oldest_mmu_pages(w.kvm, 1)
    # The oldest non-root is the PDPT (created right after the root); it takes everything
    # still linked below it: PDPT, 2 PDs, PT (0, 0).  Its nr_zapped counts the two PDs
    # (mmu_page_zap_pte() returns the bool of each recursive zap, hiding PT (0, 0)) and
    # itself: 3 >= 1, so recycling stops.  The orphan is no longer below it and survives.
    assert total == 3
    assert not orphan.freed


# -- 21. the default quota ---------------------------------------------------------------------
@pytest.mark.parametrize(("l1_gib", "l2_gib"), [(None, 16), (64, 16), (3, 1)])
def test_checklist_21_default_quota_is_memslot_pages_over_50(l1_gib, l2_gib, invariants):
    """Default quota: L1's memslot pages / 50, at least 64; an explicit quota replaces it."""
    spec = ScenarioSpec(l2_mem_gib=l2_gib, l1_mem_gib=l1_gib)
    pages = (l1_gib if l1_gib is not None else l2_gib + 4) * GIB_PAGES  # L1's memslots
    assert spec.n_max_mmu_pages == max(pages // 50, KVM_MIN_ALLOC_MMU_PAGES)
    assert spec.replace(quota=100).n_max_mmu_pages == 100  # KVM_SET_NR_MMU_PAGES wins


def test_checklist_21_reference_example_quota(invariants):
    # §9: a 64 GiB L1 has 16,777,216 pages -> quota 335,544.
    """The reference's worked example: a 64 GiB L1 gets a quota of 335,544 pages."""
    assert ScenarioSpec(l2_mem_gib=16, l1_mem_gib=64).n_max_mmu_pages == 335_544


def test_checklist_21_change_mmu_pages_zaps_down_to_the_goal(make_world):
    """kvm_mmu_change_mmu_pages() below the used count zaps the oldest pages and keeps what is
    left as the goal."""
    w = make_world()
    w.boot()
    w.touch(0, range(6))
    used = w.stats()["mmu_shadow_pages"]
    w.step()
    mmu.kvm_mmu_change_mmu_pages(w.kvm, used - 1)
    # zap_oldest(1) takes the PDPT and everything below it; the goal becomes what is left.
    assert w.stats()["mmu_shadow_pages"] == 1
    assert w.kvm.n_max_mmu_pages == 1


# -- 22. fast zap-all ----------------------------------------------------------------------------
def test_checklist_22_zap_all_fast_zaps_everything_including_orphans(make_world, event_log):
    """kvm_mmu_zap_all_fast() toggles mmu_valid_gen 0 <-> 1 and zaps every page, orphans
    included; the live root waits for its reference."""
    w, orphan, _ = _orphan_world(make_world)
    kvm = w.kvm
    kvm.recorder = event_log
    root = kvm.root
    used = w.stats()["mmu_shadow_pages"]
    # mmu_valid_gen starts at 0 and each fast zap toggles it (only two generations live).
    for expected_gen in (1, 0, 1):
        w.step("memslot_change")
        mmu.kvm_mmu_zap_all_fast(kvm)
        assert kvm.mmu_valid_gen == expected_gen
    gens = [a["mmu_valid_gen"] for a in event_log.of("kvm_mmu_zap_all_fast")]
    assert gens == [1, 0, 1]
    assert event_log.of("kvm_mmu_zap_all_fast")[0]["used_pages"] == used  # before zapping
    assert orphan.freed
    assert not kvm.orphans
    # Everything but the vCPU's root is freed; the root waits for its reference to drop.
    assert set(kvm.sps) == {root}
    assert root.role.invalid
    w.touch(0, [0])  # next entry frees the obsolete root and builds a fresh tree
    assert root.freed


# -- 23. no orphan from a trapped write post-patch -------------------------------------------
@FIXES
def test_checklist_23_trapped_writes_leave_one_orphan_per_cleared_last_parent(
        make_world, monkeypatch, fixes):
    """Each trapped write orphans exactly the children whose last parent it cleared pre-patch,
    none post-patch; an ex-root is not an orphan."""
    w = make_world(fixes=fixes)
    w.boot()
    for gib in range(2):
        w.touch(gib, [3, 7, 9, 20])
    w.guest.invept(reload=True)
    orphaned: list[int] = []
    original = page_track.kvm_mmu_track_write

    def track_write(k, gpa, new, nbytes=8):
        gfn, index = gpa >> PAGE_SHIFT, (gpa & 0xFFF) // 8
        # children whose every parent SPTE is the one being written
        lone = [sp for sp in k.sps if sp.parent_ptes and all(
            p.gfn == gfn and i == index for p, i in sp.parent_ptes)]
        before = set(k.orphans)
        original(k, gpa, new, nbytes)
        new_orphans = set(k.orphans) - before
        assert new_orphans <= set(lone)
        orphaned.append(len(new_orphans))

    monkeypatch.setattr(page_track, "kvm_mmu_track_write", track_write)
    old = w.guest.new_eptp()
    w.guest.zap_root(old, "bottom-up")
    if "track-write-zap" in fixes:
        assert sum(orphaned) == 0
    else:
        # 2 PT orphans per PD (two PDs), plus the PDPT page orphaned by the root pass: with
        # two GiBs the 1G pass writes the PDPT page only twice, so it never floods.
        assert sorted(n for n in orphaned if n) == [1] * (2 * 2 + 1)
    # The old root, dropped by INVEPT, is a parentless ex-root, not an orphan.
    w.guest.invept(reload=True)
    ex_root = w.sp(old)
    assert ex_root.root_count == 0
    assert not ex_root.parent_ptes
    assert not ex_root.orphan
