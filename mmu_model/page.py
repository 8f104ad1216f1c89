"""struct kvm_mmu_page (arch/x86/kvm/mmu/mmu_internal.h), the fields the leak depends on.

Glossary (the kernel's words, used throughout the model):

sp
    a shadow page: one 4 KiB page of SPTEs that L0 built to shadow one guest table page.
spte
    a shadow page-table entry.  Here an spte is either non-present, a *non-leaf* entry
    pointing to a child sp (``spt[index]``: 512 slots as in the kernel, None where not
    present), or a *leaf* mapping guest memory (a bit in ``leaf_bitmap``).  Leaves are
    kept as a bitmap plus a base gfn, not one object each, so a fully populated 16 GiB
    guest (4 M leaf SPTEs) stays small.
gfn
    for a nested-EPT sp, the L1 frame holding the EPT12 table it shadows.
parent_ptes
    the reverse list of parent SPTEs pointing at this sp, as (parent sp, index) pairs.
    The spt arrays form a DAG: a page may have several parents.
unsync
    level-1 only: L1 may write the shadowed table without trapping; SPTEs may be stale.
orphan
    a valid sp below the root level, with root_count 0 and no parent SPTE: unreachable from
    every root.  An unsync orphan is the leak the patch series plugs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from .constants import PG_LEVEL_4K, SPTE_ENT_PER_PAGE
from .role import KvmMmuPageRole

if TYPE_CHECKING:
    from .rmap import RmapChunk

__all__ = ["EMPTY_SPT", "EMPTY_UNSYNC_CHILD_BITMAP", "KvmMmuPage"]

# A level-1 page never has child SPTEs, so all of them share these two empty containers
# instead of allocating their own (check_invariants() checks that they stay empty).
EMPTY_SPT: Final[list[KvmMmuPage | None]] = [None] * SPTE_ENT_PER_PAGE
EMPTY_UNSYNC_CHILD_BITMAP: Final[set[int]] = set()


class KvmMmuPage:
    __slots__ = (
        "freed",
        "gfn",
        "id",
        "l2_gfn",
        "leaf_bitmap",
        "leaf_gfn_base",
        "mmu_valid_gen",
        "n_leaves",
        "orphan",
        "parent_ptes",
        "recorded_by",
        "recorded_pcode",
        "recorded_word",
        "rmap_chunk",
        "role",
        "root_count",
        "spt",
        "touched_at",
        "unsync",
        "unsync_child_bitmap",
        "unsync_children",
        "write_flooding_count",
    )

    def __init__(
        self, sp_id: int, gfn: int, role: KvmMmuPageRole, mmu_valid_gen: int, l2_gfn: int
    ) -> None:
        self.id = sp_id
        self.gfn = gfn
        self.role = role
        self.mmu_valid_gen = mmu_valid_gen
        # Where in L2's guest-physical space this sp's coverage begins (for layout only).
        self.l2_gfn = l2_gfn
        self.spt: list[KvmMmuPage | None] = (
            [None] * SPTE_ENT_PER_PAGE if role.level > PG_LEVEL_4K else EMPTY_SPT
        )
        self.leaf_bitmap = 0
        self.n_leaves = 0  # bits set in leaf_bitmap, kept by mmu_set_spte() and drop_spte()
        self.leaf_gfn_base = -1
        # The rmap chunk holding this page while it has leaves (rmap.py), so that only its
        # first leaves look the chunk up.
        self.rmap_chunk: RmapChunk | None = None
        self.parent_ptes: list[tuple[KvmMmuPage, int]] = []
        self.unsync = False
        self.unsync_children = 0
        # The indices whose bit is set in the kernel's unsync_child_bitmap (a set: with
        # 512 bits, an int bitmap would be reallocated on every change).
        self.unsync_child_bitmap: set[int] = (
            set() if role.level > PG_LEVEL_4K else EMPTY_UNSYNC_CHILD_BITMAP
        )
        self.write_flooding_count = 0
        self.root_count = 0
        self.freed = False
        self.orphan = False
        # Model bookkeeping: Kvm.touch() listed the page for the event this many events
        # into the run (-1: never), so that a page is listed once per event.
        self.touched_at = -1
        # The recorder's (record.EventRecord) copy of the state it last stored for the page,
        # kept here, where an event's pages already are, rather than in lists by sp id:
        # the serial number of the record (0: none) and the page's state word and parent
        # code as that record last stored them.
        self.recorded_by = 0
        self.recorded_word = 0
        self.recorded_pcode = 0

    @property
    def level(self) -> int:
        return self.role.level

    def children(self) -> list[tuple[int, KvmMmuPage]]:
        """(index, child sp) for every non-leaf SPTE, in index order."""
        return [(index, child) for index, child in enumerate(self.spt) if child is not None]

    def __repr__(self) -> str:
        flag = " unsync" if self.unsync else ""
        return f"<sp #{self.id} gfn {self.gfn:#x} l{self.role.level}{flag}>"
