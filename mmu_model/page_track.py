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

from typing import Literal

from .constants import PAGE_SHIFT, SPTE_BYTES
from .kvm import Kvm
from .mmu import kvm_mmu_track_write, mmu_try_to_unsync_pages

__all__ = ["l1_store", "l1_store_many"]

Outcome = Literal["emulated", "fault", "native"]


def l1_store(kvm: Kvm, gfn: int, index: int, new: int) -> Outcome:
    """One 8-byte store by L1 to entry `index` of its page `gfn` (already in memory)."""
    if kvm.write_track.get(gfn):
        kvm.path.append("kvm_page_track_write")
        kvm_mmu_track_write(kvm, (gfn << PAGE_SHIFT) | index * SPTE_BYTES, new, SPTE_BYTES)
        kvm.path.pop()
        return "emulated"
    if gfn in kvm.l1_wp:
        kvm.path.append("make_spte")
        unsync_before = kvm.stat.mmu_unsync
        mmu_try_to_unsync_pages(kvm, gfn)
        kvm.l1_wp.discard(gfn)
        kvm.path.pop()
        if kvm.stat.mmu_unsync == unsync_before:
            kvm.path.append("make_spte")
            kvm.emit("make_spte_writable", gfn=gfn)
            kvm.path.pop()
        return "fault"
    return "native"


def l1_store_many(kvm: Kvm, gfn: int, mask: int, new: int) -> int:
    """Stores of `new` to the entries of page `gfn` set in `mask`, lowest index first;
    returns how many L0 saw (emulated or faulted).

    Once a store lands natively, the rest of the run does too: nothing in between can make
    the page read-only again.
    """
    seen = 0
    while mask:
        low = mask & -mask
        mask ^= low
        outcome = l1_store(kvm, gfn, low.bit_length() - 1, new)
        if outcome == "native":
            break
        seen += 1
        if outcome == "fault":
            break
    return seen
