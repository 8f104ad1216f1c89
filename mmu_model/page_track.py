"""How an L1 store into one of its own (shadowed) page-table pages reaches L0's shadow MMU.

L0 maps L1's memory with its TDP MMU.  A table page L0 shadows is mapped read-only:
 - write-tracked (an upper-level shadow page exists; page_track.c) => the store faults, is
   emulated (x86.c emulator_write_phys) and kvm_page_track_write() calls
   kvm_mmu_track_write();
 - only write-protected (level-1 shadow pages, or protection left over after the shadow
   page went away) => the store faults once; make_spte() calls mmu_try_to_unsync_pages(),
   which unsyncs the level-1 pages and lets L0 map the page writable;
 - writable => L0 never sees the store.
"""

from __future__ import annotations

from typing import Final, Literal

from .bitmap import for_each_set_bit
from .constants import PAGE_SHIFT, SPTE_BYTES
from .kvm import EventKind, Kvm
from .mmu import kvm_mmu_track_write, kvm_mmu_unprotect_gfn_and_retry, mmu_try_to_unsync_pages

__all__ = ["l1_store", "l1_store_many", "l1_write_fault", "l1_zero_page"]

Outcome = Literal["emulated", "fault", "native"]

_MAKE_SPTE_WRITABLE: Final = EventKind("make_spte_writable", "gfn")  # see Kvm.event()


def l1_store(kvm: Kvm, gfn: int, index: int, new: int) -> Outcome:
    """One 8-byte store by L1 to entry `index` of its page `gfn` (already in memory)."""
    if kvm.write_track.get(gfn):
        kvm.enter("kvm_page_track_write")
        kvm_mmu_track_write(kvm, (gfn << PAGE_SHIFT) | index * SPTE_BYTES, new, SPTE_BYTES)
        kvm.leave()
        return "emulated"
    return "fault" if l1_write_fault(kvm, gfn) else "native"


def l1_write_fault(kvm: Kvm, gfn: int) -> bool:
    """A store by L1 to its page `gfn`, which L0 does not write-track: returns whether it
    faulted.  It does if L0 maps the page read-only; make_spte() then unsyncs the page's
    level-1 shadow pages and maps it writable.  Which entry was written does not matter."""
    protected = len(kvm.l1_wp)
    kvm.l1_wp.discard(gfn)  # mapped writable from now on
    if len(kvm.l1_wp) == protected:
        return False
    kvm.enter("make_spte")
    unsync_before = kvm.stat.mmu_unsync
    mmu_try_to_unsync_pages(kvm, gfn)
    if kvm.stat.mmu_unsync == unsync_before:
        kvm.event(_MAKE_SPTE_WRITABLE, (gfn,))
    kvm.leave()
    return True


def l1_store_many(kvm: Kvm, gfn: int, mask: int, new: int) -> int:
    """Stores of `new` to the entries of page `gfn` set in `mask`, lowest index first;
    returns how many L0 saw (emulated or faulted).

    Once a store faults or lands natively, the rest of the run lands natively: nothing in
    between can make the page read-only again.
    """
    if not mask:
        return 0
    if not kvm.write_track.get(gfn):
        return 1 if l1_write_fault(kvm, gfn) else 0
    seen = 0
    for index in for_each_set_bit(mask):
        outcome = l1_store(kvm, gfn, index, new)
        if outcome == "native":
            break
        seen += 1
        if outcome == "fault":
            break
    return seen


def l1_zero_page(kvm: Kvm, gfn: int) -> Outcome:
    """L1 fills a page it reuses with ``rep stos`` (clear_page(), or memset64() of
    SHADOW_NONPRESENT_VALUE when KVM's mmu_shadow_page_cache is topped up).

    Write-tracked => the store faults and x86_emulate_instruction(), seeing an instruction
    that does not write page tables, unprotects the gfn (zapping all its shadow pages) and
    retries it; the retried store then faults once more on the read-only mapping and
    make_spte() makes the page writable.  Otherwise it is an ordinary store to an untracked
    page: it faults once if L0 maps the page read-only (unsyncing its level-1 pages), and
    is invisible to L0 if the page is writable already (an unsync level-1 orphan's is).
    """
    if kvm.write_track.get(gfn):
        kvm.enter("x86_emulate_instruction")
        kvm_mmu_unprotect_gfn_and_retry(kvm, gfn)
        kvm.leave()
        l1_write_fault(kvm, gfn)
        return "emulated"
    return "fault" if l1_write_fault(kvm, gfn) else "native"
