"""The nested-EPT page-fault path of arch/x86/kvm/mmu/paging_tmpl.h (FNAME = ept).

When L2 touches memory L0 has not shadowed yet, L0 walks L1's EPT12 tables (the guest
walk) and then FNAME(fetch) walks its own shadow tables from the root, creating and linking
one shadow page per guest table and finally installing leaf SPTEs.  Every shadow page the
walk passes through has its write_flooding_count cleared: that is what stops L1's normal
table updates from ever looking like flooding.
"""

from __future__ import annotations

from typing import Final

from .kvm import EventKind, Kvm
from .mmu import (
    clear_sp_write_flooding_count,
    drop_parent_pte,
    is_obsolete_sp,
    kvm_flush_remote_tlbs,
    kvm_mmu_commit_zap_page,
    kvm_mmu_get_shadow_page,
    link_shadow_page,
    make_mmu_pages_available,
    mmu_page_zap_pte,
    mmu_set_spte,
    mmu_sync_children,
)
from .page import KvmMmuPage
from .role import KvmMmuPageRole

__all__ = ["GuestWalk", "ept_page_fault", "shadow_page_table_clear_flood"]

# The events this module emits (Kvm.event(); Kvm.event_ints() for mmu_set_spte, whose
# arguments are all ints): each kind's argument names, in order.
_SET_SPTE: Final = EventKind("mmu_set_spte", "sp", "count", "level")
_GET_CHILD_PAGE: Final = EventKind("kvm_mmu_get_page", "sp", "created", "parent", "index",
                                   "relinked_orphan")


class GuestWalk:
    """Result of FNAME(walk_addr) for one L2 address: the EPT12 table at each level.

    table_gfns[level - 1] is the L1 gfn of the table *at* that level (root first in use);
    ``level`` is the level whose entry maps the memory (1 = 4 KiB leaf, 2 = 2 MiB leaf).
    A walk is used up by the fault it describes (the caller may reuse table_gfns after).
    """

    __slots__ = ("l2_gfn", "leaf_count", "leaf_gfn_base", "leaf_mask", "level", "page_count",
                 "page_mask", "table_gfns")

    def __init__(self, l2_gfn: int, table_gfns: list[int], level: int, leaf_mask: int,
                 leaf_count: int, leaf_gfn_base: int, page_mask: int = 0,
                 page_count: int = 0) -> None:
        self.l2_gfn = l2_gfn
        self.table_gfns = table_gfns
        self.level = level
        self.leaf_mask = leaf_mask
        self.leaf_count = leaf_count  # bits set in leaf_mask
        self.leaf_gfn_base = leaf_gfn_base
        # For a 2 MiB guest leaf: the 4 KiB pages of it L2 touched (what L0 maps if it
        # backs L1 with 4 KiB pages, see fetch()'s direct loop), and how many.
        self.page_mask = page_mask
        self.page_count = page_count


def fetch(kvm: Kvm, walk: GuestWalk) -> KvmMmuPage:
    """Model of paging_tmpl.h: FNAME(fetch): build the shadow path, install the leaves."""
    root = kvm.root
    assert root is not None, "FNAME(fetch) needs a loaded root"
    # is_page_fault_stale() would retry the fault; the guest reloads the root before it.
    assert not is_obsolete_sp(kvm, root), "FNAME(fetch) on an obsolete root"
    kvm.enter("FNAME(fetch)")
    sp = root
    level = sp.role.level
    l2_gfn, table_gfns, leaf_level = walk.l2_gfn, walk.table_gfns, walk.level
    while True:
        clear_sp_write_flooding_count(kvm, sp)
        if level == leaf_level:
            break
        index = (l2_gfn >> (9 * (level - 1))) & 511
        table_gfn = table_gfns[level - 2]
        child = sp.spt[index]
        if child is not None and child.gfn == table_gfn:  # kvm_mmu_get_child_sp(): -EEXIST
            sp = child
            level -= 1
            continue
        span = 9 * (level - 1)
        sp = _get_and_link_child(kvm, sp, index, table_gfn, sp.role.child(),
                                 (l2_gfn >> span) << span)
        level -= 1
    mask, count, base = walk.leaf_mask, walk.leaf_count, walk.leaf_gfn_base
    if leaf_level > kvm.host_mapping_level:
        sp, mask, count, base = fetch_direct(kvm, sp, walk)
    installed = mmu_set_spte(kvm, sp, mask, base, count)
    if installed:
        kvm.event_ints(_SET_SPTE, sp.id, installed, sp.role.level)
    kvm.leave()
    return sp


def fetch_direct(kvm: Kvm, sp: KvmMmuPage, walk: GuestWalk) -> tuple[KvmMmuPage, int, int, int]:
    """Model of paging_tmpl.h: FNAME(fetch)'s second loop, for a 2 MiB guest leaf that L0
    maps with 4 KiB pages (kvm_mmu_hugepage_adjust(): L0 backs L1's memory with 4 KiB
    pages, so goal_level is 1).

    At the guest's leaf level, validate_direct_spte() drops a direct child of another
    access, then kvm_mmu_get_child_sp(base_gfn, direct) finds or builds a *direct* level-1
    page for the 2 MiB of L1 memory (keyed by that run's first L1 gfn) and links it; its
    4 KiB SPTEs then map the pages L2 touched.  A direct page has no gptes: never
    write-tracked, never unsync, but a guest_mode page like the others, so zapping its
    parent PDE orphans it the same way.  Returns (page, leaf mask, count, leaf gfn base).
    """
    index = (walk.l2_gfn >> 9) & 511
    base_gfn = walk.leaf_gfn_base + index * 512  # the 2 MiB run of L1 memory
    role = sp.role.child(direct=True)
    child = sp.spt[index]
    if child is not None and child.role != role:  # validate_direct_spte()
        drop_parent_pte(kvm, child, sp, index)
        kvm_flush_remote_tlbs(kvm)
        child = None
    if child is None or child.gfn != base_gfn:  # else kvm_mmu_get_child_sp(): -EEXIST
        child = _get_and_link_child(kvm, sp, index, base_gfn, role, walk.l2_gfn)
    return child, walk.page_mask, walk.page_count, base_gfn


def _get_and_link_child(kvm: Kvm, sp: KvmMmuPage, index: int, gfn: int,
                        role: KvmMmuPageRole, l2_gfn: int) -> KvmMmuPage:
    """kvm_mmu_get_child_sp() + link_shadow_page() at SPTE `index` of sp, in either loop of
    FNAME(fetch).  __link_shadow_page() first zaps what the SPTE maps (with an
    invalid_list); in the kernel a trapped L1 write has usually zapped it already, so that
    runs only after a fix changed what L1's writes did, or over a 2 MiB SPTE from before.
    An upper-level child with unsync children is synced before it is linked."""
    if sp.spt[index] is not None or sp.leaf_bitmap >> index & 1:
        invalid_list: list[KvmMmuPage] = []
        mmu_page_zap_pte(kvm, sp, index, invalid_list)
        kvm_mmu_commit_zap_page(kvm, invalid_list)
    kvm.enter("kvm_mmu_get_child_sp")
    child, created = kvm_mmu_get_shadow_page(kvm, gfn, role, l2_gfn)
    kvm.leave()
    if child.unsync_children:
        mmu_sync_children(kvm, child)
    was_orphan = child.orphan
    link_shadow_page(kvm, sp, index, child)
    if kvm.recording:
        kvm.event(_GET_CHILD_PAGE, (child.id, created, sp.id, index, was_orphan))
    else:
        kvm.count_event()
    return child


def ept_page_fault(kvm: Kvm, walk: GuestWalk) -> KvmMmuPage:
    """Model of paging_tmpl.h: FNAME(page_fault) for an EPT violation L0 can resolve."""
    kvm.enter("FNAME(page_fault)")
    make_mmu_pages_available(kvm)
    sp = fetch(kvm, walk)
    kvm.leave()
    return sp


def shadow_page_table_clear_flood(kvm: Kvm, l2_gfn: int, level: int) -> list[int]:
    """Model of mmu.c: shadow_page_table_clear_flood(): clear every page on a walk path.

    The lockless walk starts at the vCPU's current root and follows `l2_gfn` down to the
    page at `level`, so only pages that root reaches (never an orphan, never an old tree
    L2 no longer runs on) are cleared.  Returns the ids whose count was non-zero.
    """
    cleared: list[int] = []
    sp = kvm.root
    while sp is not None:
        if sp.write_flooding_count:
            cleared.append(sp.id)
            clear_sp_write_flooding_count(kvm, sp)
        if sp.role.level <= level:
            break
        sp = sp.spt[(l2_gfn >> (9 * (sp.role.level - 1))) & 511]
    return cleared
