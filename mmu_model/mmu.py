"""The shadow-MMU operations of arch/x86/kvm/mmu/mmu.c that decide whether a shadow page
lives, dies or leaks when L1 tears its EPT tables down.

Every function named like a kernel function models that function and says so in its first
docstring line.  Semantics follow the 2026 tree just before the "Plug an unsync shadow page
leak" series; the fix toggles in ``kvm.fixes`` switch the code paths the series and commit
2de4085cccea changed.

Two-phase zap: kvm_mmu_prepare_zap_page() unlinks a page, drops its leaves, unaccounts it
and marks it invalid; it then waits on the caller's ``invalid_list`` until
kvm_mmu_commit_zap_page() flushes TLBs and frees it.  A root still referenced by a vCPU
(root_count > 0) stays allocated and accounted until the last reference is dropped.

Ordering note: the kernel bumps some stats (mmu_shadow_zapped, mmu_flooded) at the start
of an operation; the model bumps them where it records the operation as an event, so each
event's stat deltas belong to it.  Nothing outside mmu_lock can observe the difference.
"""

from __future__ import annotations

from typing import Final

from .constants import (
    KVM_MIN_FREE_MMU_PAGES,
    KVM_MMU_NUM_PREV_ROOTS,
    KVM_NUM_MMU_PAGES,
    KVM_REFILL_PAGES,
    PAGE_SHIFT,
    PG_LEVEL_1G,
    PG_LEVEL_2M,
    PG_LEVEL_4K,
    RMAP_RECYCLE_THRESHOLD,
    hash_64,
)
from .kvm import EventKind, Kvm
from .page import EMPTY_SPT, KvmMmuPage
from .role import KvmMmuPageRole, shadow_ept_root_role

EPERM = -1
ENOSPC = -28

InvalidList = list[KvmMmuPage]

# The events this module emits (Kvm.event(), Kvm.event_ints() for the hottest, whose
# arguments are all ints): each kind's argument names, in order.
_ZAP_ALL_RMAP_SPTES: Final = EventKind("kvm_zap_all_rmap_sptes", "sp", "level", "gfns", "sptes")
_UNSYNC_PAGE: Final = EventKind("kvm_mmu_unsync_page", "sp")
_SYNC_PAGE: Final = EventKind("kvm_mmu_sync_page", "sp", "parent")
_SYNC_PAGE_ZAPPING: Final = EventKind("kvm_mmu_sync_page", "sp", "zapping")
_PREPARE_ZAP_PAGE: Final = EventKind("kvm_mmu_prepare_zap_page", "sp", "nr_zapped", "leaves",
                                     "parents", "was_unsync", "rooted", "again")
_COMMIT_ZAP_PAGE: Final = EventKind("kvm_mmu_commit_zap_page", "freed")
_FLUSH_REMOTE_TLBS: Final = EventKind("kvm_flush_remote_tlbs")
_TRACK_WRITE: Final = EventKind("kvm_mmu_track_write", "gpa", "new")
_MISALIGNED: Final = EventKind("detect_write_misaligned", "sp", "flood_before", "gpa")
_FLOODING: Final = EventKind("detect_write_flooding", "sp", "flood_before", "gpa")
_ZAP_PTE: Final = EventKind("mmu_page_zap_pte", "sp", "index", "flood_before", "flood", "child",
                            "child_orphaned", "child_zapped", "was_leaf")
_UNPROTECT_GFN: Final = EventKind("kvm_mmu_unprotect_gfn_and_retry", "gfn", "zapped")
_ZAP_OLDEST: Final = EventKind("kvm_mmu_zap_oldest_mmu_pages", "nr_to_zap", "total")
_ZAP_ALL_FAST: Final = EventKind("kvm_mmu_zap_all_fast", "mmu_valid_gen", "used_pages")
_FREE_ROOTS: Final = EventKind("kvm_mmu_free_roots", "roots")
_GET_ROOT_PAGE: Final = EventKind("kvm_mmu_get_page", "sp", "created", "root")
_NEW_PGD: Final = EventKind("kvm_mmu_new_pgd", "root_gfn", "reused")


# -- lookup and creation ---------------------------------------------------------------
def is_obsolete_sp(kvm: Kvm, sp: KvmMmuPage) -> bool:
    """Model of mmu.c: is_obsolete_sp(): invalid, or built before the last fast zap."""
    return sp.role.invalid or sp.mmu_valid_gen != kvm.mmu_valid_gen


def for_each_gfn_valid_sp_with_gptes(kvm: Kvm, gfn: int) -> list[KvmMmuPage]:
    """Model of mmu.c: for_each_gfn_valid_sp_with_gptes(): walk gfn's hash bucket.

    Callers re-check validity per page, since zapping one page can zap later ones.
    """
    kvm.hash_walked += len(kvm.mmu_page_hash[hash_64(gfn)])
    same_gfn = kvm.gfn_sps.get(gfn)
    if same_gfn is None:
        return []
    gen = kvm.mmu_valid_gen
    # The chain runs newest first; most gfns have a single page, which needs no reversing.
    chain = same_gfn if len(same_gfn) == 1 else same_gfn[::-1]
    return [sp for sp in chain
            if not sp.role.invalid and sp.mmu_valid_gen == gen and not sp.role.direct]


def kvm_flush_remote_tlbs(kvm: Kvm) -> None:
    """Model of kvm_main.c: kvm_flush_remote_tlbs(): every call is a request; a flush is
    counted only if kvm_make_all_cpus_request(KVM_REQ_TLB_FLUSH) sent an IPI.

    On x86 without Hyper-V, kvm_arch_flush_remote_tlbs() returns -ENOTSUPP, so
    remote_tlb_flush counts only requests that kicked another CPU: one running a vCPU in
    guest mode that is not the requester's.  The model's one vCPU requests its flushes
    from its own exits (kvm.ipi_targets 0); a memslot change comes from the VMM's thread
    while the vCPU runs (kvm_mmu_zap_all_fast() sets it to 1).
    """
    kvm.stat.remote_tlb_flush_requests += 1
    if kvm.ipi_targets:
        kvm.stat.remote_tlb_flush += 1


def clear_sp_write_flooding_count(kvm: Kvm, sp: KvmMmuPage) -> None:
    """Model of mmu.c: __clear_sp_write_flooding_count(): KVM just used this page."""
    if sp.write_flooding_count:
        sp.write_flooding_count = 0
        kvm.touch(sp)


def kvm_vcpu_write_protect_gfn(kvm: Kvm, gfn: int) -> bool:
    """Model of mmu.c: kvm_vcpu_write_protect_gfn(): make L1's mapping of gfn read-only;
    true if that changed a mapping (the caller then flushes)."""
    if gfn in kvm.l1_wp:
        return False
    kvm.l1_wp.add(gfn)
    return True


def account_shadowed(kvm: Kvm, sp: KvmMmuPage) -> None:
    """Model of mmu.c: account_shadowed(): level >= 2 is write-tracked, level 1 protected.

    Both leave L1's own mapping of the table page read-only in L0; for level 1 only until
    L1's next write to it, which unsyncs the page instead of trapping.
    """
    kvm.indirect_shadow_pages += 1
    if sp.role.level > PG_LEVEL_4K:
        kvm.write_track[sp.gfn] = kvm.write_track.get(sp.gfn, 0) + 1
    # kvm_mmu_slot_gfn_write_protect() (for level >= 2 inside __kvm_write_track_add_gfn())
    # returns true if it made a writable mapping read-only, and then the caller flushes.
    if kvm_vcpu_write_protect_gfn(kvm, sp.gfn):
        kvm_flush_remote_tlbs(kvm)


def unaccount_shadowed(kvm: Kvm, sp: KvmMmuPage) -> None:
    """Model of mmu.c: unaccount_shadowed(): undo account_shadowed() for a zapped page."""
    kvm.indirect_shadow_pages -= 1
    if sp.role.level > PG_LEVEL_4K:
        left = kvm.write_track[sp.gfn] - 1
        if left:
            kvm.write_track[sp.gfn] = left
        else:
            del kvm.write_track[sp.gfn]


def kvm_mmu_alloc_shadow_page(
    kvm: Kvm, gfn: int, bucket: list[KvmMmuPage], role: KvmMmuPageRole, l2_gfn: int
) -> KvmMmuPage:
    """Model of mmu.c: kvm_mmu_alloc_shadow_page(): new page at the head of the lists."""
    sp = KvmMmuPage(kvm.next_sp_id, gfn, role, kvm.mmu_valid_gen, l2_gfn)
    kvm.next_sp_id += 1
    kvm.page_added(sp)
    kvm.stat.mmu_shadow_pages += 1  # kvm_account_mmu_page()
    kvm.hash_add(sp, bucket)
    if role.has_gptes:
        account_shadowed(kvm, sp)
    kvm.touch(sp)
    return sp


def kvm_sync_page(kvm: Kvm, sp: KvmMmuPage, invalid_list: InvalidList) -> bool:
    """Model of mmu.c: kvm_sync_page(): re-read each gpte behind a present SPTE.

    FNAME(sync_spte) drops a leaf whose gpte is no longer present or now maps elsewhere.
    Returns whether a TLB flush is needed.  The page's unsync flag is left alone.
    """
    if not sp.leaf_bitmap:
        return False
    still = kvm.guest.present_leaves(sp.gfn, sp.leaf_gfn_base, sp.role.level)
    if still == sp.leaf_bitmap:
        return False
    stale = sp.leaf_bitmap & ~still
    if stale:
        drop_spte(kvm, sp, stale)
        return True
    return False


def kvm_mmu_find_shadow_page(
    kvm: Kvm, gfn: int, index: int, bucket: list[KvmMmuPage], role: KvmMmuPageRole
) -> KvmMmuPage | None:
    """Model of mmu.c: kvm_mmu_find_shadow_page(): hash lookup by (gfn, role.word).

    A hit clears the page's write_flooding_count (after syncing an unsync level-1 page,
    which stays unsync); a miss counts mmu_cache_miss.  Looking up an upper-level role zaps
    unsync pages of the same gfn, because the new page will write-protect the gfn.
    """
    if gfn not in kvm.gfn_sps:
        # No page of this gfn in the bucket (the common miss): the walk would skip the
        # invalid pages and count every other one as a collision.  Obsolete pages are all
        # invalid here (kvm_mmu_zap_all_fast() invalidates the old generation at once).
        walked = len(bucket)
        kvm.hash_walked += walked
        kvm.stat.mmu_cache_miss += 1
        collisions = walked - kvm.mmu_page_hash_invalid[index]
        if collisions > kvm.stat.max_mmu_page_hash_collisions:
            kvm.stat.max_mmu_page_hash_collisions = collisions
        return None
    invalid_list: InvalidList = []
    collisions = 0
    found: KvmMmuPage | None = None
    # Newest first.  Nothing below changes the chain: zapped pages leave it at the commit.
    for i in range(len(bucket) - 1, -1, -1):
        sp = bucket[i]
        kvm.hash_walked += 1
        if is_obsolete_sp(kvm, sp):
            continue
        if sp.gfn != gfn:
            collisions += 1
            continue
        if sp.role != role:
            if role.level > PG_LEVEL_4K and sp.unsync:
                kvm.enter("kvm_mmu_find_shadow_page")
                kvm_mmu_prepare_zap_page(kvm, sp, invalid_list)
                kvm.leave()
            continue
        if sp.role.direct:
            found = sp
            break
        if sp.unsync and kvm_sync_page(kvm, sp, invalid_list):
            kvm_flush_remote_tlbs(kvm)
        clear_sp_write_flooding_count(kvm, sp)
        found = sp
        break
    else:
        kvm.stat.mmu_cache_miss += 1
    kvm_mmu_commit_zap_page(kvm, invalid_list)
    if collisions > kvm.stat.max_mmu_page_hash_collisions:
        kvm.stat.max_mmu_page_hash_collisions = collisions
    return found


def kvm_mmu_get_shadow_page(
    kvm: Kvm, gfn: int, role: KvmMmuPageRole, l2_gfn: int
) -> tuple[KvmMmuPage, bool]:
    """Model of mmu.c: kvm_mmu_get_shadow_page(): find, else allocate.  Returns (sp, created).

    The caller records the kvm_mmu_get_page event once the page is linked or rooted.
    """
    index = hash_64(gfn)  # the bucket, and its count of invalid pages
    bucket = kvm.mmu_page_hash[index]
    sp = kvm_mmu_find_shadow_page(kvm, gfn, index, bucket, role)
    if sp is not None:
        return sp, False
    return kvm_mmu_alloc_shadow_page(kvm, gfn, bucket, role, l2_gfn), True


def link_shadow_page(kvm: Kvm, parent: KvmMmuPage, index: int, sp: KvmMmuPage) -> None:
    """Model of mmu.c: __link_shadow_page(): point parent's SPTE at sp, re-mark unsync."""
    parent.spt[index] = sp
    kvm.touch(parent)
    sp.parent_ptes.append((parent, index))  # mmu_page_add_parent_pte()
    kvm.update_orphan(sp)
    if sp.unsync_children or sp.unsync:
        mark_unsync(kvm, parent, index)


# -- leaves and rmaps ---------------------------------------------------------------------
def kvm_update_page_stats(kvm: Kvm, level: int, count: int) -> None:
    """Model of mmu.h: kvm_update_page_stats(): pages_4k/2m/1g by leaf level."""
    if level == PG_LEVEL_4K:
        kvm.stat.pages_4k += count
    elif level == PG_LEVEL_2M:
        kvm.stat.pages_2m += count
    elif level == PG_LEVEL_1G:
        kvm.stat.pages_1g += count


def mmu_set_spte(
    kvm: Kvm, sp: KvmMmuPage, mask: int, leaf_gfn_base: int, mask_count: int
) -> int:
    """Model of mmu.c: mmu_set_spte() + rmap_add(), for every leaf index set in `mask`.

    Leaf i maps L1 gfn ``leaf_gfn_base + i * (frames per entry)``.  Each new writable leaf
    also runs mmu_try_to_unsync_pages() on its target gfn, walking one hash bucket; for a
    batch the model charges the mean bucket length instead of hashing every gfn.
    `mask_count` is the number of bits set in `mask`.  Returns how many leaves were
    installed.
    """
    if sp.leaf_gfn_base != leaf_gfn_base and sp.leaf_bitmap:
        drop_spte(kvm, sp, sp.leaf_bitmap)
    sp.leaf_gfn_base = leaf_gfn_base
    old = sp.leaf_bitmap
    if old and mask & old:
        new = mask & ~old
        if not new:
            return 0
        count = new.bit_count()
    else:  # all of the mask is new
        new = mask
        count = mask_count
        if not count:
            return 0
    kvm_update_page_stats(kvm, sp.role.level, count)
    # A chain longer than the threshold must be found even once the peak is above it.
    floor = min(kvm.stat.max_mmu_rmap_size, RMAP_RECYCLE_THRESHOLD)
    longest = kvm.rmaps.add(sp, new, count, floor)
    if longest > kvm.stat.max_mmu_rmap_size:
        kvm.stat.max_mmu_rmap_size = longest
    sp.leaf_bitmap = old | new if old else new
    sp.n_leaves += count
    kvm.hash_walked += (count * kvm.n_sps + KVM_NUM_MMU_PAGES // 2) // KVM_NUM_MMU_PAGES
    kvm.touch(sp)
    if longest > RMAP_RECYCLE_THRESHOLD:
        rmap_recycle(kvm, sp, new)
    return count


def rmap_recycle(kvm: Kvm, sp: KvmMmuPage, new: int) -> None:
    """Model of mmu.c: __rmap_add()'s recycle: a chain past RMAP_RECYCLE_THRESHOLD goes.

    pte_list_add() returns the chain's length before the add; when that is over 1000,
    kvm_zap_all_rmap_sptes() clears every SPTE in the chain (the new one too) and
    kvm_flush_remote_tlbs_gfn() flushes, once per gfn.  So max_mmu_rmap_size stops at
    1001.  The pages whose leaves go stay, linked or orphaned as they were.
    """
    chunk = sp.rmap_chunk
    assert chunk is not None
    # Lengths before this page's leaves joined: one less than now for each gfn of `new`.
    gfns = chunk.longer_than(new, RMAP_RECYCLE_THRESHOLD + 1)
    if not gfns:
        return
    kvm.enter("__rmap_add")
    sptes = kvm_zap_all_rmap_sptes(kvm, chunk.pages_with(gfns), gfns)
    n_gfns = gfns.bit_count()
    for _ in range(n_gfns):
        kvm_flush_remote_tlbs(kvm)  # kvm_flush_remote_tlbs_gfn(): no ranged flush for EPT
    kvm.leave()
    kvm.event(_ZAP_ALL_RMAP_SPTES, (sp.id, sp.role.level, n_gfns, sptes))


def kvm_zap_all_rmap_sptes(kvm: Kvm, pages: list[KvmMmuPage], gfns: int) -> int:
    """Model of mmu.c: kvm_zap_all_rmap_sptes(): mmu_spte_clear_track_bits() on every SPTE
    of the rmaps of `gfns` (bits of one 512-entry run); `pages` hold those SPTEs.

    Returns how many SPTEs were cleared.  Each drops its rmap entry and pages_* count.
    """
    cleared = 0
    for page in pages:
        hit = page.leaf_bitmap & gfns
        cleared += hit.bit_count()
        drop_spte(kvm, page, hit)
    return cleared


def drop_spte(kvm: Kvm, sp: KvmMmuPage, mask: int) -> None:
    """Model of mmu.c: drop_spte(): clear leaf SPTEs and remove their rmap entries."""
    old = sp.leaf_bitmap
    if mask == old:  # all of them (the zap path), without wide-int arithmetic
        if not mask:
            return
        sp.leaf_bitmap = 0
        count = sp.n_leaves
    else:
        mask &= old
        if not mask:
            return
        sp.leaf_bitmap = old ^ mask
        count = mask.bit_count()
    sp.n_leaves -= count
    kvm_update_page_stats(kvm, sp.role.level, -count)
    kvm.rmaps.remove(sp, old, count)
    kvm.touch(sp)


# -- unsync -----------------------------------------------------------------------------------
def mark_unsync(kvm: Kvm, parent: KvmMmuPage, index: int) -> None:
    """Model of mmu.c: mark_unsync(): set the parent's bit; propagate on its 0 -> 1."""
    if index in parent.unsync_child_bitmap:
        return
    parent.unsync_child_bitmap.add(index)
    parent.unsync_children += 1
    kvm.touch(parent)
    if parent.unsync_children != 1:
        return
    kvm_mmu_mark_parents_unsync(kvm, parent)


def kvm_mmu_mark_parents_unsync(kvm: Kvm, sp: KvmMmuPage) -> None:
    """Model of mmu.c: kvm_mmu_mark_parents_unsync(): an orphan propagates nothing."""
    for parent, index in sp.parent_ptes:  # mark_unsync() changes bitmaps, not this list
        mark_unsync(kvm, parent, index)


def clear_unsync_child_bit(kvm: Kvm, sp: KvmMmuPage, index: int) -> None:
    """Model of mmu.c: clear_unsync_child_bit()."""
    if index in sp.unsync_child_bitmap:
        sp.unsync_child_bitmap.discard(index)
        sp.unsync_children -= 1
        kvm.touch(sp)


def kvm_unsync_page(kvm: Kvm, sp: KvmMmuPage) -> None:
    """Model of mmu.c: kvm_unsync_page(): tracepoint kvm_mmu_unsync_page."""
    kvm.stat.mmu_unsync += 1
    kvm.set_unsync(sp, True)
    kvm_mmu_mark_parents_unsync(kvm, sp)
    kvm.event_ints(_UNSYNC_PAGE, sp.id)


def mmu_try_to_unsync_pages(kvm: Kvm, gfn: int) -> int:
    """Model of mmu.c: mmu_try_to_unsync_pages(): may L0 map this L1 gfn writable?

    Write-tracked (an upper-level shadow page exists) => -EPERM, the write is emulated.
    Otherwise every synced level-1 page of the gfn goes unsync and the mapping becomes
    writable, so L1's later writes to that table are invisible to L0.
    """
    if kvm.write_track.get(gfn):
        return EPERM
    for sp in for_each_gfn_valid_sp_with_gptes(kvm, gfn):
        if sp.unsync or is_obsolete_sp(kvm, sp):
            continue
        kvm_unsync_page(kvm, sp)
    return 0


class UnsyncPath:
    """struct mmu_page_path, as a chain: the parent SPTE (page and index) that leads to an
    unsync page, then the one leading to that parent, and so on up to the walk's start."""

    __slots__ = ("index", "parent", "up")

    def __init__(self, up: UnsyncPath | None, parent: KvmMmuPage, index: int) -> None:
        self.up = up
        self.parent = parent
        self.index = index


def __mmu_unsync_walk(
    kvm: Kvm, sp: KvmMmuPage, path: UnsyncPath | None,
    out: list[tuple[KvmMmuPage, UnsyncPath]],
) -> int:
    """Model of mmu.c: __mmu_unsync_walk(): follow unsync_child_bitmap, clear stale bits."""
    found = 0
    for index in sorted(sp.unsync_child_bitmap):  # find_next_bit() order
        child = sp.spt[index]
        if child is None:
            clear_unsync_child_bit(kvm, sp, index)
            continue
        if child.unsync_children:
            sub = __mmu_unsync_walk(kvm, child, UnsyncPath(path, sp, index), out)
            if not sub:
                clear_unsync_child_bit(kvm, sp, index)
                continue
            found += sub
        elif child.unsync:
            found += 1
            out.append((child, UnsyncPath(path, sp, index)))
        else:
            clear_unsync_child_bit(kvm, sp, index)
    return found


def mmu_unsync_walk(kvm: Kvm, sp: KvmMmuPage) -> list[tuple[KvmMmuPage, UnsyncPath]]:
    """Model of mmu.c: mmu_unsync_walk(): unsync level-1 pages reachable from sp."""
    out: list[tuple[KvmMmuPage, UnsyncPath]] = []
    if sp.unsync_children:
        __mmu_unsync_walk(kvm, sp, None, out)
    return out


def mmu_pages_clear_parents(kvm: Kvm, path: UnsyncPath) -> None:
    """Model of mmu.c: mmu_pages_clear_parents(): clear bits upward while counts hit 0."""
    step: UnsyncPath | None = path
    while step is not None:
        clear_unsync_child_bit(kvm, step.parent, step.index)
        if step.parent.unsync_children:
            break
        step = step.up


def kvm_unlink_unsync_page(kvm: Kvm, sp: KvmMmuPage) -> None:
    """Model of mmu.c: kvm_unlink_unsync_page(): unsync = 0, --mmu_unsync."""
    kvm.set_unsync(sp, False)
    kvm.stat.mmu_unsync -= 1


def mmu_sync_children(kvm: Kvm, parent: KvmMmuPage) -> int:
    """Model of mmu.c: mmu_sync_children(): write-protect and sync what the bitmaps reach.

    Returns the number of pages synced.  Orphans have no parent bit and are never reached.
    """
    synced = 0
    kvm.enter("mmu_sync_children")
    while True:
        pages = mmu_unsync_walk(kvm, parent)
        if not pages:
            break
        invalid_list: InvalidList = []
        protected = False
        for sp, _ in pages:
            protected |= kvm_vcpu_write_protect_gfn(kvm, sp.gfn)
        if protected:
            kvm_flush_remote_tlbs(kvm)
        for sp, path in pages:
            kvm_unlink_unsync_page(kvm, sp)
            if kvm_sync_page(kvm, sp, invalid_list):
                kvm_flush_remote_tlbs(kvm)
            mmu_pages_clear_parents(kvm, path)
            kvm.event_ints(_SYNC_PAGE, sp.id, parent.id)
            synced += 1
        kvm_mmu_commit_zap_page(kvm, invalid_list)
    kvm.leave()
    return synced


def kvm_mmu_sync_roots(kvm: Kvm) -> int:
    """Model of mmu.c: kvm_mmu_sync_roots(): sync from the current root if it is unsync."""
    root = kvm.root
    if root is None or not (root.unsync or root.unsync_children):
        return 0
    kvm.enter("kvm_mmu_sync_roots")
    synced = mmu_sync_children(kvm, root)
    kvm.leave()
    return synced


# -- zapping ----------------------------------------------------------------------------------
def drop_parent_pte(kvm: Kvm, sp: KvmMmuPage, parent: KvmMmuPage, index: int) -> None:
    """Model of mmu.c: drop_parent_pte(): forget the parent SPTE and zero it.

    The parent's unsync_child_bitmap bit is deliberately left set (cleared lazily).
    """
    parent_ptes = sp.parent_ptes  # mmu_page_remove_parent_pte()
    for i in range(len(parent_ptes)):  # like list.remove(), without building the pair
        pte_parent, pte_index = parent_ptes[i]
        if pte_parent is parent and pte_index == index:
            del parent_ptes[i]
            break
    else:
        raise ValueError(f"{sp!r} has no parent SPTE {parent!r}[{index}]")
    parent.spt[index] = None  # mmu_spte_clear_no_track()
    kvm.touch(parent)
    kvm.update_orphan(sp)


def mmu_page_zap_pte(
    kvm: Kvm, sp: KvmMmuPage, index: int, invalid_list: InvalidList | None
) -> int:
    """Model of mmu.c: mmu_page_zap_pte(): zap one SPTE; returns 1 if it zapped the child.

    The count is kvm_mmu_prepare_zap_page()'s bool, so 0 or 1 whatever went with it.

    A leaf is dropped with its rmap entry.  A non-leaf is unlinked from its child; since
    2de4085cccea a guest_mode child left with no parent is zapped too, but only when the
    caller passes an invalid_list.  kvm_mmu_track_write() passes NULL before patch 1/2 of
    the series, which is how unsync children get orphaned.
    """
    child = sp.spt[index]
    if child is not None:
        drop_parent_pte(kvm, child, sp, index)
        if (
            kvm.fixes.unlink_children_zap
            and kvm.tdp_enabled
            and invalid_list is not None
            and child.role.guest_mode
            and not child.parent_ptes
        ):
            return kvm_mmu_prepare_zap_page(kvm, child, invalid_list)
        return 0
    if sp.leaf_bitmap >> index & 1:
        drop_spte(kvm, sp, 1 << index)
    return 0


def mmu_zap_unsync_children(kvm: Kvm, parent: KvmMmuPage, invalid_list: InvalidList) -> int:
    """Model of mmu.c: mmu_zap_unsync_children(): zap unsync pages the bitmaps reach."""
    if parent.role.level == PG_LEVEL_4K:
        return 0
    zapped = 0
    while True:
        pages = mmu_unsync_walk(kvm, parent)
        if not pages:
            return zapped
        kvm.enter("mmu_zap_unsync_children")
        for sp, path in pages:
            kvm_mmu_prepare_zap_page(kvm, sp, invalid_list)
            mmu_pages_clear_parents(kvm, path)  # records nothing itself
            zapped += 1
        kvm.leave()


def kvm_mmu_page_unlink_children(kvm: Kvm, sp: KvmMmuPage, invalid_list: InvalidList) -> int:
    """Model of mmu.c: kvm_mmu_page_unlink_children(): mmu_page_zap_pte() on all 512."""
    if sp.leaf_bitmap:
        drop_spte(kvm, sp, sp.leaf_bitmap)
    if sp.role.level == PG_LEVEL_4K:
        return 0
    zapped = 0
    kvm.enter("kvm_mmu_page_unlink_children")
    for index, _ in sp.children():
        kvm.enter("mmu_page_zap_pte")
        zapped += mmu_page_zap_pte(kvm, sp, index, invalid_list)
        kvm.leave()
    kvm.leave()
    return zapped


def kvm_mmu_unlink_parents(kvm: Kvm, sp: KvmMmuPage) -> None:
    """Model of mmu.c: kvm_mmu_unlink_parents(): zero every parent SPTE pointing at sp."""
    parent_ptes = sp.parent_ptes
    while parent_ptes:  # rmap_get_first(&sp->parent_ptes)
        parent, index = parent_ptes[0]
        drop_parent_pte(kvm, sp, parent, index)


def kvm_mmu_prepare_zap_page(kvm: Kvm, sp: KvmMmuPage, invalid_list: InvalidList) -> int:
    """Model of mmu.c: kvm_mmu_prepare_zap_page(): __kvm_mmu_prepare_zap_page() as a bool.

    The kernel declares it ``static bool`` and returns the int nr_zapped through it, so
    every caller that counts with it (mmu_page_zap_pte(), hence
    kvm_mmu_page_unlink_children()) gets 1 for a zapped page however many pages went with
    it, and 0 only for a live root (which does not count itself).
    """
    return 1 if __kvm_mmu_prepare_zap_page(kvm, sp, invalid_list) else 0


def __kvm_mmu_prepare_zap_page(kvm: Kvm, sp: KvmMmuPage, invalid_list: InvalidList) -> int:
    """Model of mmu.c: __kvm_mmu_prepare_zap_page(): returns the int *nr_zapped.

    nr_zapped is the unsync pages mmu_zap_unsync_children() zapped (each counted once, at
    any depth), plus kvm_mmu_page_unlink_children()'s count (one per child zapped with
    it: grandchildren are hidden by the bool above), plus this page unless it is a live
    root.  Only kvm_mmu_zap_oldest_mmu_pages() reads this int directly.
    """
    kvm.enter("kvm_mmu_prepare_zap_page")
    was_invalid = sp.role.invalid
    was_unsync = sp.unsync
    leaves = sp.n_leaves
    parents = [p.id for p, _ in sp.parent_ptes] if kvm.recording else []
    nr_zapped = mmu_zap_unsync_children(kvm, sp, invalid_list)
    nr_zapped += kvm_mmu_page_unlink_children(kvm, sp, invalid_list)
    kvm_mmu_unlink_parents(kvm, sp)
    if not was_invalid and sp.role.has_gptes:
        unaccount_shadowed(kvm, sp)
    if sp.unsync:
        kvm_unlink_unsync_page(kvm, sp)
        if kvm.recording:
            kvm.event(_SYNC_PAGE_ZAPPING, (sp.id, True))
        else:
            kvm.count_event()
    # list_del(&sp->link) if it was on active_mmu_pages: the role is invalidated below.
    root = sp.root_count > 0
    if not root:
        nr_zapped += 1
        invalid_list.append(sp)
        kvm.stat.mmu_shadow_pages -= 1  # kvm_unaccount_mmu_page()
    elif not is_obsolete_sp(kvm, sp):  # a rooted page stays allocated until released
        kvm.root_zapped = True  # KVM_REQ_MMU_FREE_OBSOLETE_ROOTS
    if not was_invalid:
        sp.role = sp.role.invalidated()
        kvm.mmu_page_hash_invalid[hash_64(sp.gfn)] += 1
    kvm.update_orphan(sp)
    kvm.stat.mmu_shadow_zapped += 1
    kvm.leave()
    if not kvm.recording:
        kvm.count_event()
        return nr_zapped
    kvm.event(_PREPARE_ZAP_PAGE,
              (sp.id, nr_zapped, leaves, parents, was_unsync, root, was_invalid))
    return nr_zapped


def kvm_mmu_commit_zap_page(kvm: Kvm, invalid_list: InvalidList) -> None:
    """Model of mmu.c: kvm_mmu_commit_zap_page(): one remote flush, then free the list."""
    if not invalid_list:
        return
    kvm_flush_remote_tlbs(kvm)
    for sp in invalid_list:
        # kvm_mmu_free_shadow_page(): hlist_del(hash_link), list_del(link), free spt
        # (every entry is clear by now: the shared all-None one takes its place).
        kvm.hash_del(sp)
        kvm.page_freed(sp)
        sp.spt = EMPTY_SPT
        sp.freed = True
        kvm.update_orphan(sp)
    if kvm.recording:
        kvm.event(_COMMIT_ZAP_PAGE, ([sp.id for sp in invalid_list],))
    else:
        kvm.count_event()
    invalid_list.clear()


def kvm_mmu_remote_flush_or_zap(kvm: Kvm, invalid_list: InvalidList, flush: bool) -> None:
    """Model of mmu.c: kvm_mmu_remote_flush_or_zap()."""
    if invalid_list:
        kvm_mmu_commit_zap_page(kvm, invalid_list)
    elif flush:
        kvm_flush_remote_tlbs(kvm)
        kvm.event(_FLUSH_REMOTE_TLBS, ())


# -- emulated writes to shadowed tables -------------------------------------------------
def detect_write_misaligned(sp: KvmMmuPage, gpa: int, nbytes: int) -> bool:
    """Model of mmu.c: detect_write_misaligned() for 8-byte gptes."""
    offset = gpa & 0xFFF
    pte_size = 8
    if not offset & (pte_size - 1) and nbytes == 1:
        return False
    misaligned = (offset ^ (offset + nbytes - 1)) & ~(pte_size - 1)
    return bool(misaligned) or nbytes < 4


def detect_write_flooding(kvm: Kvm, sp: KvmMmuPage) -> bool:
    """Model of mmu.c: detect_write_flooding(): level >= 2 only; the 3rd write floods."""
    if sp.role.level == PG_LEVEL_4K or not kvm.fixes.flood_detection:
        return False
    sp.write_flooding_count += 1
    kvm.touch(sp)
    return sp.write_flooding_count >= 3


def get_written_sptes(sp: KvmMmuPage, gpa: int, nbytes: int) -> int:
    """Model of mmu.c: get_written_sptes() for 8-byte gptes: the one SPTE index written."""
    return (gpa & 0xFFF) // 8


def mmu_pte_write_fetch_gpte(
    kvm: Kvm, gpa: int, new: int, nbytes: int
) -> tuple[int, int, int]:
    """Model of mmu.c: mmu_pte_write_fetch_gpte(): widen a 4-byte write, re-read the gpte.

    L1 is a 64-bit hypervisor (long mode, so is_pae()): a 4-byte write is handled as an
    8-byte write to the aligned entry, whose value is the old entry with the new bytes in.
    An 8-byte write re-reads exactly the bytes written.  Other sizes read nothing (0).
    """
    if nbytes == 4:
        shift = (gpa & 7) * 8
        gpa &= ~7
        current = kvm.guest.read_gpte(gpa >> PAGE_SHIFT, (gpa & 0xFFF) // 8)
        mask = (0xFFFFFFFF << shift) & 0xFFFFFFFFFFFFFFFF
        gentry = (current & ~mask) | ((new << shift) & mask)
        return gpa, 8, gentry
    if nbytes == 8:
        return gpa, nbytes, new
    return gpa, nbytes, 0


def kvm_mmu_track_write(kvm: Kvm, gpa: int, new: int, nbytes: int = 8) -> None:
    """Model of mmu.c: kvm_mmu_track_write(): L1 wrote a write-tracked table page.

    For each valid shadow page of the gfn: a misaligned write or the third write without an
    intervening use zaps the whole page (mmu_flooded); otherwise only the written SPTE is
    zapped.  Before patch 1/2 that zap gets no invalid_list, so a child whose last parent
    it was is left orphaned; with the fix it is zapped in the same call.
    """
    gfn = gpa >> PAGE_SHIFT
    if not kvm.indirect_shadow_pages:
        return
    kvm.enter("kvm_mmu_track_write")
    invalid_list: InvalidList = []
    flush = False
    gpa, nbytes, gentry = mmu_pte_write_fetch_gpte(kvm, gpa, new, nbytes)
    kvm.stat.mmu_pte_write += 1
    kvm.event_ints(_TRACK_WRITE, gpa, new)
    for sp in for_each_gfn_valid_sp_with_gptes(kvm, gfn):
        if is_obsolete_sp(kvm, sp):  # zapped by an earlier iteration of this loop
            continue
        before = sp.write_flooding_count
        misaligned = detect_write_misaligned(sp, gpa, nbytes)
        if misaligned or detect_write_flooding(kvm, sp):
            reason = _MISALIGNED if misaligned else _FLOODING
            kvm.stat.mmu_flooded += 1
            kvm.event_ints(reason, sp.id, before, gpa)
            kvm.enter(reason.name)
            kvm_mmu_prepare_zap_page(kvm, sp, invalid_list)
            kvm.leave()
            continue
        index = get_written_sptes(sp, gpa, nbytes)
        child = sp.spt[index]
        was_leaf = child is None and bool(sp.leaf_bitmap >> index & 1)
        was_present = child is not None or was_leaf
        kvm.enter("mmu_page_zap_pte")
        zapped = mmu_page_zap_pte(
            kvm, sp, index, invalid_list if kvm.fixes.track_write_zap else None
        )
        kvm.leave()
        if gentry and sp.role.level != PG_LEVEL_4K:
            kvm.stat.mmu_pde_zapped += 1
        if was_present:
            flush = True
        if not kvm.recording:
            kvm.count_event()
            continue
        kvm.event(_ZAP_PTE, (
            sp.id, index, before, sp.write_flooding_count,
            child.id if child is not None else None,
            bool(child is not None and child.orphan), zapped, was_leaf,
        ))
    kvm_mmu_remote_flush_or_zap(kvm, invalid_list, flush)
    kvm.leave()


def kvm_mmu_unprotect_gfn_and_retry(kvm: Kvm, gfn: int) -> bool:
    """Model of mmu.c: __kvm_mmu_unprotect_gfn_and_retry(): zap every page of the gfn.

    x86_emulate_instruction() takes this path for a write-protection fault on an
    instruction the emulator does not flag as page-table writing (``rep stos``: L1's
    clear_page / memset64 of a page it reuses), when not in guest mode: "the vCPU is
    likely no longer using the gfn as a page table".  Every valid shadow page of the gfn
    with gptes is prepare-zapped (for_each_gfn_valid_sp_with_gptes), so its write tracking
    goes, and the instruction is retried natively.  Returns whether anything was zapped.
    """
    if not kvm.indirect_shadow_pages:
        return False
    kvm.enter("__kvm_mmu_unprotect_gfn_and_retry")
    invalid_list: InvalidList = []
    for sp in for_each_gfn_valid_sp_with_gptes(kvm, gfn):
        if is_obsolete_sp(kvm, sp):  # zapped with an earlier page of the loop
            continue
        kvm_mmu_prepare_zap_page(kvm, sp, invalid_list)
    zapped = [sp.id for sp in invalid_list]
    kvm_mmu_commit_zap_page(kvm, invalid_list)
    kvm.leave()
    if zapped:
        kvm.event(_UNPROTECT_GFN, (gfn, zapped))
    return bool(zapped)


# -- recycling and zap-all ------------------------------------------------------------------
def kvm_mmu_available_pages(kvm: Kvm) -> int:
    """Model of mmu.c: kvm_mmu_available_pages(): quota minus mmu_shadow_pages, floor 0."""
    return max(kvm.n_max_mmu_pages - kvm.stat.mmu_shadow_pages, 0)


def kvm_mmu_zap_oldest_mmu_pages(kvm: Kvm, nr_to_zap: int) -> int:
    """Model of mmu.c: kvm_mmu_zap_oldest_mmu_pages(): oldest non-root pages first.

    Pure age order: orphans are not preferred.  Stops once the summed nr_zapped of the
    pages it prepare-zapped reaches `nr_to_zap`, and adds that sum to mmu_recycled.  A
    linked subtree counts its top page, its unsync pages and its direct children only,
    so a target can free many more pages than the count says.
    """
    invalid_list: InvalidList = []
    total = 0
    kvm.enter("kvm_mmu_zap_oldest_mmu_pages")
    # The oldest pages in age order: kvm.pages from its first page not yet freed, skipping
    # pages zapped already (invalid: off active_mmu_pages) and roots, which is what the
    # kernel's restart from the tail of active_mmu_pages finds.  Nothing is allocated or
    # freed before the commit below.
    pages = kvm.pages
    i = kvm.pages_head
    n = len(pages)
    while total < nr_to_zap and i < n:
        victim = pages[i]
        i += 1
        if victim is None or victim.role.invalid or victim.root_count:
            continue
        # The kernel calls __kvm_mmu_prepare_zap_page() here and adds its int nr_zapped:
        # the bool truncation happens one level down, in mmu_page_zap_pte().
        total += __kvm_mmu_prepare_zap_page(kvm, victim, invalid_list)
    kvm_mmu_commit_zap_page(kvm, invalid_list)
    kvm.stat.mmu_recycled += total
    kvm.leave()
    kvm.event(_ZAP_OLDEST, (nr_to_zap, total))
    return total


def make_mmu_pages_available(kvm: Kvm) -> int:
    """Model of mmu.c: make_mmu_pages_available(): refill to 25 free when under 5."""
    avail = kvm_mmu_available_pages(kvm)
    if avail >= KVM_MIN_FREE_MMU_PAGES:
        return 0
    kvm.enter("make_mmu_pages_available")
    kvm_mmu_zap_oldest_mmu_pages(kvm, KVM_REFILL_PAGES - avail)
    kvm.leave()
    return 0 if kvm_mmu_available_pages(kvm) else ENOSPC


def kvm_mmu_change_mmu_pages(kvm: Kvm, goal: int) -> None:
    """Model of mmu.c: kvm_mmu_change_mmu_pages(): set the quota, zapping any excess."""
    if kvm.stat.mmu_shadow_pages > goal:
        kvm_mmu_zap_oldest_mmu_pages(kvm, kvm.stat.mmu_shadow_pages - goal)
        goal = kvm.stat.mmu_shadow_pages
    kvm.n_max_mmu_pages = goal


def kvm_mmu_zap_all_fast(kvm: Kvm) -> None:
    """Model of mmu.c: kvm_mmu_zap_all_fast(): flip mmu_valid_gen, zap every obsolete page.

    Orphans are obsolete like everything else, so this (memslot changes) reclaims them.
    Live roots stay allocated until the vCPU drops them (kvm_mmu_free_obsolete_roots).
    """
    kvm.mmu_valid_gen = 0 if kvm.mmu_valid_gen else 1
    kvm.ipi_targets = 1  # the VMM's memslot ioctl, while the vCPU runs
    kvm.enter("kvm_mmu_zap_all_fast")
    kvm.event(_ZAP_ALL_FAST, (kvm.mmu_valid_gen, kvm.stat.mmu_shadow_pages))
    invalid_list: InvalidList = []
    kvm.enter("kvm_zap_obsolete_pages")
    for sp in kvm.live_pages():  # active_mmu_pages: those not invalid yet
        if sp.role.invalid or not is_obsolete_sp(kvm, sp):
            continue
        kvm_mmu_prepare_zap_page(kvm, sp, invalid_list)
    kvm.leave()
    kvm_mmu_commit_zap_page(kvm, invalid_list)
    kvm.leave()
    kvm.ipi_targets = 0
    kvm.root_zapped = True


# -- roots ----------------------------------------------------------------------------------
def mmu_free_root_page(kvm: Kvm, sp: KvmMmuPage, invalid_list: InvalidList) -> None:
    """Model of mmu.c: mmu_free_root_page(): drop one root reference.

    A valid root whose count reaches 0 is *not* freed: it stays, parentless, as an
    ex-root (not an orphan); an invalid one is zapped for the second and last time.
    """
    sp.root_count -= 1
    kvm.update_orphan(sp)
    if not sp.root_count and sp.role.invalid:
        kvm_mmu_prepare_zap_page(kvm, sp, invalid_list)


KVM_MMU_ROOT_CURRENT = 1


def KVM_MMU_ROOT_PREVIOUS(i: int) -> int:
    """Model of kvm_host.h: KVM_MMU_ROOT_PREVIOUS(i), the bit of prev_roots[i]."""
    return 1 << (i + 1)


KVM_MMU_ROOTS_ALL = (1 << (KVM_MMU_NUM_PREV_ROOTS + 1)) - 1


def kvm_mmu_free_roots(kvm: Kvm, roots_to_free: int = KVM_MMU_ROOTS_ALL) -> None:
    """Model of mmu.c: kvm_mmu_free_roots() for guest_mmu: drop the roots in the mask."""
    kvm.enter("kvm_mmu_free_roots")
    freed = _free_roots_in_mask(kvm, roots_to_free)
    kvm.leave()
    kvm.event(_FREE_ROOTS, (freed,))


def _free_roots_in_mask(kvm: Kvm, roots_to_free: int) -> list[int]:
    """Body shared by kvm_mmu_free_roots() and kvm_mmu_free_obsolete_roots(): drop the
    roots whose bit is set in `roots_to_free`, commit the zaps, return the freed ids."""
    invalid_list: InvalidList = []
    freed = []
    if roots_to_free & KVM_MMU_ROOT_CURRENT and kvm.root is not None:
        freed.append(kvm.root.id)
        mmu_free_root_page(kvm, kvm.root, invalid_list)
        kvm.root = None
    keep = []
    for i, sp in enumerate(kvm.prev_roots):
        if roots_to_free & KVM_MMU_ROOT_PREVIOUS(i):
            freed.append(sp.id)
            mmu_free_root_page(kvm, sp, invalid_list)
        else:
            keep.append(sp)
    kvm.prev_roots = keep
    kvm_mmu_commit_zap_page(kvm, invalid_list)
    return freed


def handle_invept(kvm: Kvm, single_context_eptp_gfn: int | None) -> None:
    """Model of vmx/nested.c: handle_invept() for L1's INVEPT.

    VMX_EPT_EXTENT_GLOBAL (`single_context_eptp_gfn` None) frees every guest_mmu root;
    VMX_EPT_EXTENT_CONTEXT frees only the current root and the prev_roots whose EPTP
    matches the operand's (nested_ept_root_matches()), leaving the others cached.
    """
    kvm.enter("handle_invept")
    if single_context_eptp_gfn is None:
        roots_to_free = KVM_MMU_ROOTS_ALL
    else:
        roots_to_free = 0
        if kvm.root is not None and kvm.root.gfn == single_context_eptp_gfn:
            roots_to_free |= KVM_MMU_ROOT_CURRENT
        for i, sp in enumerate(kvm.prev_roots):
            if sp.gfn == single_context_eptp_gfn:
                roots_to_free |= KVM_MMU_ROOT_PREVIOUS(i)
    if roots_to_free:
        kvm_mmu_free_roots(kvm, roots_to_free)
    kvm.leave()


def kvm_mmu_free_obsolete_roots(kvm: Kvm) -> None:
    """Model of mmu.c: kvm_mmu_free_obsolete_roots(): drop roots zapped or made obsolete."""
    kvm.root_zapped = False
    kvm.enter("kvm_mmu_free_obsolete_roots")
    roots_to_free = 0
    if kvm.root is not None and is_obsolete_sp(kvm, kvm.root):
        roots_to_free |= KVM_MMU_ROOT_CURRENT
    for i, sp in enumerate(kvm.prev_roots):
        if is_obsolete_sp(kvm, sp):
            roots_to_free |= KVM_MMU_ROOT_PREVIOUS(i)
    freed = _free_roots_in_mask(kvm, roots_to_free)
    kvm.leave()
    if freed:
        kvm.event(_FREE_ROOTS, (freed,))


def mmu_alloc_shadow_roots(kvm: Kvm, root_gfn: int) -> KvmMmuPage:
    """Model of mmu.c: mmu_alloc_shadow_roots() / mmu_alloc_root() for a shadow EPT root."""
    kvm.enter("mmu_alloc_shadow_roots")
    make_mmu_pages_available(kvm)
    sp, created = kvm_mmu_get_shadow_page(kvm, root_gfn, shadow_ept_root_role(kvm.root_level), 0)
    sp.root_count += 1
    kvm.update_orphan(sp)
    kvm.root = sp
    kvm.leave()
    kvm.event(_GET_ROOT_PAGE, (sp.id, created, True))
    return sp


def kvm_mmu_load(kvm: Kvm, root_gfn: int) -> KvmMmuPage:
    """Model of mmu.c: kvm_mmu_load() at nested VM-entry: free obsolete roots, allocate
    the root if there is none, then kvm_mmu_sync_roots()."""
    kvm.enter("kvm_mmu_load")
    if kvm.root_zapped:
        kvm_mmu_free_obsolete_roots(kvm)
    root = kvm.root
    if root is None or root.gfn != root_gfn:
        root = mmu_alloc_shadow_roots(kvm, root_gfn)
    kvm_mmu_sync_roots(kvm)
    kvm.leave()
    return root


def kvm_mmu_reload(kvm: Kvm, root_gfn: int) -> KvmMmuPage:
    """Model of mmu.h: kvm_mmu_reload(): at VM-entry, load a root only if there is none."""
    if kvm.root_zapped:
        kvm_mmu_free_obsolete_roots(kvm)
    if kvm.root is not None:
        return kvm.root
    return kvm_mmu_load(kvm, root_gfn)


def kvm_mmu_new_pgd(kvm: Kvm, root_gfn: int) -> None:
    """Model of mmu.c: kvm_mmu_new_pgd(): L1 gave L2 a new EPTP.

    fast_pgd_switch() rotates the current root through prev_roots looking for one it can
    reuse; if none fits, the least recently used cached root is freed and the next
    kvm_mmu_load() allocates the new root.  A reused root's flood count is cleared.
    """
    kvm.enter("kvm_mmu_new_pgd")
    role = shadow_ept_root_role(kvm.root_level)

    def usable(sp: KvmMmuPage | None) -> bool:
        return sp is not None and sp.gfn == root_gfn and sp.role == role and not is_obsolete_sp(
            kvm, sp
        )

    slots: list[KvmMmuPage | None] = [*kvm.prev_roots]
    slots += [None] * (KVM_MMU_NUM_PREV_ROOTS - len(slots))
    found = usable(kvm.root)
    if kvm.root is not None and not found:
        for i in range(KVM_MMU_NUM_PREV_ROOTS):
            kvm.root, slots[i] = slots[i], kvm.root
            if usable(kvm.root):
                found = True
                break
        if not found and kvm.root is not None:
            invalid_list: InvalidList = []
            mmu_free_root_page(kvm, kvm.root, invalid_list)
            kvm_mmu_commit_zap_page(kvm, invalid_list)
            kvm.root = None
    elif kvm.root is None:
        for i in range(KVM_MMU_NUM_PREV_ROOTS):
            if usable(slots[i]):
                kvm.root, slots[i] = slots[i], None
                found = True
                break
    kvm.prev_roots = [sp for sp in slots if sp is not None]
    if found and kvm.root is not None:
        clear_sp_write_flooding_count(kvm, kvm.root)
    else:
        kvm_mmu_load(kvm, root_gfn)
    kvm.leave()
    kvm.event(_NEW_PGD, (root_gfn, found))
