"""The guest side as L0 sees it: L1's EPT12 tables for L2, and what L1 and L2 do to them.

L1 is a KVM host using its TDP MMU for L2, so its tables change the way
arch/x86/kvm/mmu/tdp_mmu.c changes them: L2's EPT violations make L1 fill in tables
top-down; a root zap (tdp_mmu_zap_root, since 8ca983631f3c) runs passes 4K -> 2M -> 1G ->
root, or 1G -> root with CONFIG_KVM_PROVE_MMU ("top-down"), and every removed table has its
entries overwritten with the frozen marker by handle_removed_pt(): all 512 in shared mode,
only the present ones in exclusive mode.

Each L1 store goes to L0 through page_track.l1_store(); each L2 access goes through
paging_tmpl.ept_page_fault().  Guest actions are cut by guest-side events only (never by
what L0 did), so two runs of one scenario with different fixes have the same actions.

Simplifications, stated once: L2 memory is backed by L1 in aligned 2 MiB runs at a fixed
offset, so one shadow page's leaves map one aligned run of L1 frames; a region L2 touches
is faulted in as a batch (one EPT violation plus prefetch, as one operation); L1's page
allocator (L1Guest) hands out table pages from the L1 memory not backing L2, and L1's only
allocations are its EPT table pages.
"""

from __future__ import annotations

import random
from array import array
from typing import Final

from .bitmap import for_each_set_bit, lowest_set_bit
from .constants import (
    EPT_LARGE_PAGE_MASK,
    EPT_LEAF_FLAGS,
    EPT_TABLE_FLAGS,
    FROZEN_SPTE,
    L1_ALLOCATORS,
    SHADOW_NONPRESENT_VALUE,
    SPTE_ENT_PER_PAGE,
    level_size_gfns,
)
from .exceptions import InvalidSpec
from .kvm import EventKind, GuestMemory, Kvm
from .mmu import handle_invept, kvm_mmu_load, kvm_mmu_new_pgd, kvm_mmu_reload
from .page_track import l1_store, l1_store_many, l1_zero_page
from .paging_tmpl import GuestWalk, ept_page_fault, shadow_page_table_clear_flood

__all__ = ["L1_ALLOCATORS", "NO_CHILD_TABLES", "Ept12Table", "L1Guest", "NestedGuest"]


# An EPT12 entry is one of these plus the target frame << 12 (one wide OR in compiled code).
_TABLE_ENTRY_BITS: Final = SHADOW_NONPRESENT_VALUE | EPT_TABLE_FLAGS
_LEAF_ENTRY_BITS: Final = SHADOW_NONPRESENT_VALUE | EPT_LEAF_FLAGS
_HUGE_LEAF_ENTRY_BITS: Final = _LEAF_ENTRY_BITS | EPT_LARGE_PAGE_MASK
_EVERY_ENTRY: Final = (1 << SPTE_ENT_PER_PAGE) - 1

# The guest actions (and the one kernel event) this module records (Kvm.action(),
# Kvm.event()): each kind's argument names, in order.
_REUSE_FREED_PAGES: Final = EventKind("l1_reuse_freed_pages", "boot", "pages")
_VM_ENTRY: Final = EventKind("l2_vm_entry", "boot", "root_gfn")
_TOUCH: Final = EventKind("l2_touch", "gib", "regions", "second")
_INVEPT: Final = EventKind("l1_invept", "reload", "eptp_gfn")
_NEW_EPTP: Final = EventKind("l1_new_eptp", "root_gfn", "old_root_gfn")
_ZAP_4K: Final = EventKind("l1_zap_4k", "gfn", "tables", "entries")
_L2_ACTIVITY: Final = EventKind("l2_activity", "gfn")
_CLEAR_FLOOD: Final = EventKind("clear_sp_write_flooding_count", "gfn", "cleared")
_ZAP_ENTRY: Final = EventKind("l1_zap_entry", "gfn", "level", "index", "new", "frozen", "pass")
_FREEZE_PT: Final = EventKind("l1_freeze_pt", "gfn", "entries")
_FREEZE_RUN: Final = EventKind("l1_freeze_run", "gfn", "level", "first", "last")


def table_entry(child_gfn: int) -> int:
    """The EPT12 entry that points at the table in L1 frame `child_gfn`."""
    return _TABLE_ENTRY_BITS | child_gfn << 12


def leaf_entry(target_gfn: int, huge: bool) -> int:
    """The EPT12 entry that maps L1 frame `target_gfn` (a 2 MiB or 1 GiB page if `huge`)."""
    return (_HUGE_LEAF_ENTRY_BITS if huge else _LEAF_ENTRY_BITS) | target_gfn << 12


class Ept12Table:
    """One page of L1's EPT12 for L2: its 512 entries as child tables (None where an entry
    is not a table pointer) plus a bitmap of leaves."""

    __slots__ = ("children", "gfn", "l2_gfn", "leaf_bitmap", "leaf_gfn_base", "level", "reused")

    def __init__(self, gfn: int, level: int, l2_gfn: int = 0) -> None:
        self.gfn = gfn
        self.reused = False  # the page held a table of L1's before (see L1Guest.alloc_table)
        self.level = level
        self.l2_gfn = l2_gfn  # first L2 frame this table maps
        self.children: list[Ept12Table | None] = (
            [None] * SPTE_ENT_PER_PAGE if level > 1 else NO_CHILD_TABLES
        )
        self.leaf_bitmap = 0
        self.leaf_gfn_base = -1

    def child_tables(self) -> list[tuple[int, Ept12Table]]:
        """(index, table) for every entry pointing at a child table, in index order."""
        return [(index, child) for index, child in enumerate(self.children)
                if child is not None]

    def present(self) -> list[int]:
        return sorted({*(i for i, _ in self.child_tables()),
                       *for_each_set_bit(self.leaf_bitmap)})


# Entries of a level-1 table are leaves or nothing: every PT shares this all-None list.
NO_CHILD_TABLES: Final[list[Ept12Table | None]] = [None] * SPTE_ENT_PER_PAGE




_USED: Final = 1  # L1Guest.pool_state: the page has held a table
_HELD: Final = 2  # ... and holds one now
_DENSE_POOL: Final = 1 << 23

# random.Random.getrandbits(k) for k <= 32 is the top k bits of one 32-bit output of the
# generator, and getrandbits(32 * n) is n such outputs, the first in the lowest 32 bits.
_BATCH: Final = 1024


class RandomWords:
    """`rng.getrandbits(k)`, call after call, for its one user: the same values in the same
    order, taken from outputs of the generator drawn 1,024 at a time (one call into the
    generator instead of one per value).  The generator runs ahead of what was used, so
    nothing else may draw from `rng`."""

    def __init__(self, rng: random.Random, k: int) -> None:
        self.rng = rng
        self.k = k
        self.shift = 32 - k
        self.batched = 0 < k <= 32 and _BATCHES_MATCH
        self.words = array("I")
        self.at = 0

    def next(self) -> int:
        if not self.batched:
            return self.rng.getrandbits(self.k)
        if self.at == len(self.words):
            self.words = array("I", self.rng.getrandbits(32 * _BATCH).to_bytes(
                4 * _BATCH, "little"))
            self.at = 0
        word: int = self.words[self.at]
        self.at += 1
        return word >> self.shift


def _batches_match() -> bool:
    """Whether this interpreter's generator gives the same values both ways."""
    if array("I").itemsize != 4:
        return False
    one, many = random.Random(2), random.Random(2)
    words = array("I", many.getrandbits(32 * 8).to_bytes(32, "little"))
    return [one.getrandbits(20) for _ in range(8)] == [w >> 12 for w in words]


_BATCHES_MATCH: Final = _batches_match()


class L1Guest(GuestMemory):
    """L1's memory as far as its EPT12 tables go, and the page allocator they come from.

    L1's KVM gets each table page from its mmu_shadow_page_cache (tdp_mmu_alloc_sp()),
    which the page allocator refills, and gives it back with free_page() once an RCU grace
    period has passed (tdp_mmu_free_sp()).  `allocator` says which page comes next:
    "lifo": Linux's per-CPU free lists hand out the most recently freed page first, and
    they are shared with all of L1's memory: when L2 boots again, its RAM (millions of
    pages against a few hundred tables) is faulted in from them and takes every table page
    freed since, each cleared by clear_page() (L2_memory_takes_freed_pages()); KVM's table
    pages then come from pages that never held a table.  "lifo-tables": the same free list
    used by KVM's tables alone (the most recently freed table page first), so L1 reuses
    its freed pages as tables.  "uniform": a uniform draw from the pool, freed or not.
    "never-reuse": freed pages are never touched again.
    """

    def __init__(self, *, pool_lo: int, pool_hi: int, rng: random.Random,
                 allocator: str = "uniform") -> None:
        if allocator not in L1_ALLOCATORS:
            raise ValueError(f"unknown L1 allocator {allocator!r}")
        self.tables: dict[int, Ept12Table] = {}
        self.pool_lo = pool_lo
        self.pool_hi = pool_hi
        self.rng = rng
        self.allocator = allocator
        self.free_list: list[int] = []  # "lifo": freed table pages, most recent last
        # Every page that has held a table: those of the pool in pool_state (when there is
        # one), the others in this set.  (A set of every page ever used grew by two
        # hundred pages a boot, without bound, and outgrew the caches on long runs.)
        self.used_outside: set[int] = set()
        self.used_in_pool = 0  # how many pages of [pool_lo, pool_hi) have held a table
        self.tables_in_pool = 0  # pages of the pool holding a table now
        self.reused = 0  # freed table pages handed out again (as tables or as L2's RAM)
        # Per page of the pool, what a draw checks: _USED | _HELD (the same facts as `used`
        # and `tables`, read with one byte load per candidate instead of two hash lookups),
        # for pools up to _DENSE_POOL pages (32 GiB); a larger one is checked by lookups.
        width = pool_hi - pool_lo
        self.pool_state = bytearray(width) if 0 < width <= _DENSE_POOL else None
        self.draws = RandomWords(rng, (pool_hi - pool_lo).bit_length())

    # GuestMemory
    def read_gpte(self, gfn: int, index: int) -> int:
        table = self.tables.get(gfn)
        if table is None:
            return SHADOW_NONPRESENT_VALUE
        child = table.children[index]
        if child is not None:
            return table_entry(child.gfn)
        if table.leaf_bitmap >> index & 1:
            target = table.leaf_gfn_base + index * level_size_gfns(table.level)
            return leaf_entry(target, table.level > 1)
        return SHADOW_NONPRESENT_VALUE

    def present_leaves(self, gfn: int, leaf_gfn_base: int, level: int) -> int:
        table = self.tables.get(gfn)
        if table is None or table.leaf_gfn_base != leaf_gfn_base or table.level != level:
            return 0
        return table.leaf_bitmap

    # L1's page allocator
    def alloc_table(self, level: int) -> Ept12Table:
        """A new table page; `reused` says whether it held a table before (L1 then clears
        it first, see NestedGuest._clear_reused)."""
        if self.allocator == "lifo-tables" and self.free_list:
            gfn = self.free_list.pop()
        else:
            gfn = self._draw(fresh=self.allocator != "uniform")
        table = Ept12Table(gfn, level)
        table.reused = self.was_used(gfn)
        self.reused += table.reused
        self._mark_used(gfn)
        self._hold(gfn, table)
        return table

    def _in_pool(self, gfn: int) -> bool:
        return self.pool_lo <= gfn < self.pool_hi

    def was_used(self, gfn: int) -> bool:
        """Whether page `gfn` has held a table (now or before)."""
        state = self.pool_state
        if state is not None and self.pool_lo <= gfn < self.pool_hi:
            return bool(state[gfn - self.pool_lo] & _USED)
        return gfn in self.used_outside

    def _mark_used(self, gfn: int) -> None:
        if self.was_used(gfn):
            return
        if self._in_pool(gfn):
            self.used_in_pool += 1
            if self.pool_state is not None:
                self.pool_state[gfn - self.pool_lo] |= _USED
                return
        self.used_outside.add(gfn)

    def _hold(self, gfn: int, table: Ept12Table) -> None:
        self.tables[gfn] = table
        if self._in_pool(gfn):
            self.tables_in_pool += 1
            if self.pool_state is not None:
                self.pool_state[gfn - self.pool_lo] |= _HELD

    def _draw(self, fresh: bool) -> int:
        """A uniform draw among the pool's pages not in use (and, if `fresh`, never used).

        Once every page of the pool has held a table, `fresh` can no longer be honoured and
        the draw is among the pages not in use: a page that held a table before comes back
        (alloc_table marks it reused, and L1 clears it first).  A pool with no page free at
        all is L1 out of memory, refused rather than searched for ever.
        """
        width = self.pool_hi - self.pool_lo
        if self.tables_in_pool >= width:
            raise InvalidSpec("l1_mem_gib", f"L1 has no free page left for an EPT12 table "
                              f"(all {width:,} pages of its table pool hold one)")
        if fresh and self.used_in_pool >= width:
            fresh = False
        # A candidate is refused while it holds a table (and, if `fresh`, if it ever did).
        refused = _USED | _HELD if fresh else _HELD
        state = self.pool_state
        draws = self.draws
        while True:
            # random.randrange(pool_lo, pool_hi), spelled out as CPython does it
            # (Random._randbelow_with_getrandbits) so the sequence is the same, but
            # without the interpreted frames.
            r = draws.next()
            while r >= width:
                r = draws.next()
            if state is not None:
                if not state[r] & refused:
                    return self.pool_lo + r
                continue
            gfn = self.pool_lo + r
            if gfn not in self.tables and not (fresh and gfn in self.used_outside):
                return gfn

    def adopt_table(self, gfn: int, level: int) -> Ept12Table:
        table = self.tables.get(gfn)
        if table is None:
            table = Ept12Table(gfn, level)
            self._hold(gfn, table)
            self._mark_used(gfn)
        return table

    def free_table(self, table: Ept12Table) -> None:
        if self.tables.pop(table.gfn, None) is None:
            return
        if self._in_pool(table.gfn):
            self.tables_in_pool -= 1
            if self.pool_state is not None:
                self.pool_state[table.gfn - self.pool_lo] &= ~_HELD
        if self.allocator.startswith("lifo"):
            self.free_list.append(table.gfn)

    def l2_memory_takes_freed_pages(self) -> list[int]:
        """"lifo": L2's memory is faulted in from the free list first, taking (newest
        first) every page freed since; returns them.  Other allocators: none."""
        if self.allocator != "lifo":
            return []
        taken = self.free_list[::-1]
        self.free_list.clear()
        self.reused += len(taken)
        return taken


def pool_state_problems(l1: L1Guest) -> list[str]:
    """What is wrong with L1's allocator bookkeeping: the pool's counts must say what its
    per-page state (or, for a pool without one, `used_outside`) and `tables` say, and a page
    holding a table must be marked used (check_invariants() runs this)."""
    bad: list[str] = []
    lo, hi = l1.pool_lo, l1.pool_hi
    held = [gfn for gfn in l1.tables if lo <= gfn < hi]
    state = l1.pool_state
    if state is None:
        used = sum(1 for gfn in l1.used_outside if lo <= gfn < hi)
    else:
        used = state.count(_USED) + state.count(_USED | _HELD)
        if any(lo <= gfn < hi for gfn in l1.used_outside):
            bad.append("L1Guest.used_outside holds pages of the pool, which pool_state keeps")
        if state.count(_HELD) or state.count(_USED | _HELD) != len(held) or any(
                not state[gfn - lo] & _HELD for gfn in held):
            bad.append("L1 pool_state's pages holding a table differ from L1Guest.tables")
    if (l1.used_in_pool, l1.tables_in_pool) != (used, len(held)):
        bad.append(f"L1 pool counts (used {l1.used_in_pool}, held {l1.tables_in_pool}) "
                   f"differ from its pages (used {used}, held {len(held)})")
    if not all(l1.was_used(gfn) for gfn in l1.tables):
        bad.append("L1 holds a table in a page not marked as used")
    return bad


def _coin(*key: int) -> float:
    """A deterministic uniform draw from guest-side identifiers (splitmix64)."""
    x = 0x9E3779B97F4A7C15
    for k in key:
        x = (x ^ (k & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 31)) / 2.0**64


class NestedGuest:
    """L1 running one L2 at a time on one vCPU, driving L0's shadow MMU (kvm)."""

    def __init__(
        self,
        kvm: Kvm,
        l1: L1Guest,
        *,
        ept_levels: int,
        l2_backing_base: int,
        shared: bool,
        flood_clear_prob: float = 0.0,
        seed: int = 0,
        single_context: bool = False,
    ) -> None:
        self.kvm = kvm
        self.single_context = single_context  # INVEPT single-context instead of global
        self.l1 = l1
        self.levels = ept_levels
        self.l2_backing_base = l2_backing_base
        self.shared = shared
        self.flood_clear_prob = flood_clear_prob
        self.seed = seed
        self.root: Ept12Table | None = None
        self.boot = 0
        self.zap_no = 0

    # -- L2 running -------------------------------------------------------------------------
    def vm_entry(self, boot: int) -> Ept12Table:
        """L1 creates L2's EPT root and enters L2 (nested VM-entry loads the EPTP)."""
        self.boot = boot
        taken = self.l1.l2_memory_takes_freed_pages()
        if taken:
            kvm = self.kvm
            if kvm.recording:
                kvm.action(_REUSE_FREED_PAGES, (boot, len(taken)))
            else:
                kvm.count_action()
            for gfn in taken:  # clear_page() of each as L2's RAM faults in: rep stos
                l1_zero_page(kvm, gfn)
        root = self.l1.alloc_table(self.levels)
        self.root = root
        self.kvm.action(_VM_ENTRY, (boot, root.gfn))
        self._clear_reused(root)
        kvm_mmu_new_pgd(self.kvm, root.gfn)
        return root

    def _clear_reused(self, table: Ept12Table) -> None:
        """L1 clears a table page it reuses before filling it in (memset64() of
        SHADOW_NONPRESENT_VALUE when its KVM tops up mmu_shadow_page_cache: rep stos).
        If L0 still shadows the page, that store traps (page_track.l1_zero_page)."""
        if table.reused:
            l1_zero_page(self.kvm, table.gfn)

    def _ensure_table(self, parent: Ept12Table, index: int) -> Ept12Table:
        child = parent.children[index]
        if child is None:
            child = self.l1.alloc_table(parent.level - 1)
            self._clear_reused(child)
            child.l2_gfn = parent.l2_gfn + index * level_size_gfns(parent.level)
            parent.children[index] = child
            l1_store(self.kvm, parent.gfn, index, table_entry(child.gfn))
        return child

    def _walk_tables(self, l2_gfn: int, stop_level: int) -> tuple[list[int], Ept12Table]:
        """L1's table walk for `l2_gfn` down to the table at `stop_level`, filling in
        missing tables on the way; returns each level's table gfn and the last table."""
        assert self.root is not None
        table = self.root
        gfns = [0] * self.levels
        level = table.level
        gfns[level - 1] = table.gfn
        while level > stop_level:
            table = self._ensure_table(table, (l2_gfn >> (9 * (level - 1))) & 511)
            level -= 1
            gfns[level - 1] = table.gfn
        return gfns, table

    def touch(self, gib: int, regions: list[tuple[int, bool, int]], second: bool) -> None:
        """L2 touches memory in one GiB: per region (index, huge, page mask) L1 maps what is
        missing and L0 resolves the EPT violation."""
        assert self.root is not None
        kvm = self.kvm
        kvm.action(_TOUCH, (gib, len(regions), second))
        kvm_mmu_reload(kvm, self.root.gfn)
        if not regions:
            return
        gib_l2_gfn = gib * SPTE_ENT_PER_PAGE * SPTE_ENT_PER_PAGE
        # Every region of the GiB sits under one PD: walk (and fill) down to it once.
        # table_gfns[0] is the PT of the region at hand (unused for a 2 MiB leaf).
        table_gfns, pd = self._walk_tables(gib_l2_gfn, 2)
        # The regions of one touch mostly share one page mask: count its bits and find its
        # lowest bit once (wide-int arithmetic allocates).
        known_mask = mask_count = mask_lowest = 0
        for index, huge, mask in regions:
            l2_gfn = gib_l2_gfn + index * SPTE_ENT_PER_PAGE
            if mask != known_mask:
                known_mask = mask
                mask_count, mask_lowest = mask.bit_count(), lowest_set_bit(mask)
            if huge:
                base = self.l2_backing_base + gib_l2_gfn
                if not pd.leaf_bitmap >> index & 1:
                    pd.leaf_bitmap |= 1 << index
                    pd.leaf_gfn_base = base
                    l1_store(kvm, pd.gfn, index, leaf_entry(base + index * SPTE_ENT_PER_PAGE, True))
                walk = GuestWalk(l2_gfn, table_gfns, 2, 1 << index, 1, base, mask, mask_count)
            else:
                pt = self._ensure_table(pd, index)
                base = self.l2_backing_base + l2_gfn
                old = pt.leaf_bitmap
                if old and mask & old:
                    new = mask & ~old
                    first = lowest_set_bit(new) if new else 0
                else:  # none of the pages mapped yet: no wide-int arithmetic
                    new, first = mask, mask_lowest
                pt.leaf_bitmap = old | mask if old else mask
                pt.leaf_gfn_base = base
                if new:
                    l1_store_many(kvm, pt.gfn, new, leaf_entry(base + first, False))
                table_gfns[0] = pt.gfn
                walk = GuestWalk(l2_gfn, table_gfns, 1, mask, mask_count, base)
            # L1 resumes L2, which faults: the VM entry first frees a root that L1's stores
            # just made obsolete (KVM_REQ_MMU_FREE_OBSOLETE_ROOTS) and loads a new one.
            kvm_mmu_reload(kvm, self.root.gfn)
            ept_page_fault(kvm, walk)

    def invept(self, reload: bool, eptp_gfn: int | None = None) -> None:
        """L1 flushes L2's TLB: L0 drops guest_mmu roots (handle_invept).

        With `single_context` L1 issues INVEPT single-context for the EPTP `eptp_gfn`
        (default: L2's current root), as vmx_flush_tlb_current() -> ept_sync_context()
        does; otherwise global, as vmx_flush_tlb_all() -> ept_sync_global() does for a
        KVM_REQ_TLB_FLUSH.  Single-context frees only the matching roots.
        """
        kvm = self.kvm
        target: int | None = None
        if self.single_context:
            target = eptp_gfn if eptp_gfn is not None else (
                self.root.gfn if self.root is not None else -1)
        kvm.action(_INVEPT, (reload, target if target is not None else -1))  # -1: global
        handle_invept(kvm, target)
        if reload and self.root is not None:
            kvm_mmu_load(kvm, self.root.gfn)

    def new_eptp(self) -> Ept12Table:
        """L1 invalidates L2's root and builds a new one; returns the old root table."""
        old = self.root
        assert old is not None
        root = self.l1.alloc_table(self.levels)
        self.root = root
        self.kvm.action(_NEW_EPTP, (root.gfn, old.gfn))
        self._clear_reused(root)
        kvm_mmu_new_pgd(self.kvm, root.gfn)
        return old

    # -- L1 tearing a root down (tdp_mmu_zap_root) ---------------------------------------------
    def zap_root(self, root: Ept12Table, order: str) -> None:
        self.zap_no += 1
        levels = [1, 2, 3, root.level] if order == "bottom-up" else [3, root.level]
        names = {1: "4K", 2: "2M", 3: "1G", root.level: "root"}
        for zap_level in levels:
            self._zap_pass(root, zap_level, names[zap_level])
        self.l1.free_table(root)
        if self.root is root:
            self.root = None

    def _zap_pass(self, table: Ept12Table, zap_level: int, name: str) -> None:
        if table.level == zap_level:
            for index in table.present():
                self._zap_entry(table, index, SHADOW_NONPRESENT_VALUE, name)
            return
        if zap_level == 1 and table.level == 2:
            pts = [pt for _, pt in table.child_tables() if pt.leaf_bitmap]
            if not pts:
                return
            kvm = self.kvm
            if kvm.recording:
                kvm.action(_ZAP_4K, (table.gfn, len(pts),
                                     sum(pt.leaf_bitmap.bit_count() for pt in pts)))
            else:
                kvm.count_action()
            for pt in pts:
                present = pt.leaf_bitmap
                pt.leaf_bitmap = 0
                l1_store_many(kvm, pt.gfn, present, SHADOW_NONPRESENT_VALUE)
            return
        for index, _ in table.child_tables():
            child = table.children[index]  # still there unless an earlier pass removed it
            if child is not None:
                self._zap_pass(child, zap_level, name)

    def _maybe_l2_activity(self, table: Ept12Table, index: int) -> None:
        if self.flood_clear_prob <= 0.0:
            return
        if _coin(self.seed, self.boot, self.zap_no, table.gfn, index) >= self.flood_clear_prob:
            return
        kvm = self.kvm
        kvm.action(_L2_ACTIVITY, (table.gfn,))
        kvm.enter("shadow_page_table_clear_flood")
        cleared = shadow_page_table_clear_flood(kvm, table.l2_gfn, table.level)
        kvm.event(_CLEAR_FLOOD, (table.gfn, cleared))
        kvm.leave()

    def _zap_entry(self, table: Ept12Table, index: int, new: int, name: str) -> None:
        self._maybe_l2_activity(table, index)
        if self.kvm.recording:
            self.kvm.action(_ZAP_ENTRY, (table.gfn, table.level, index, new,
                                         new == FROZEN_SPTE, name))
        else:
            self.kvm.count_action()
        child = table.children[index]
        if child is not None:
            table.children[index] = None
        if table.leaf_bitmap:
            table.leaf_bitmap &= ~(1 << index)
        l1_store(self.kvm, table.gfn, index, new)
        if child is not None:
            self._handle_removed_pt(child)

    def _handle_removed_pt(self, table: Ept12Table) -> None:
        kvm = self.kvm
        if table.level == 1:
            mask = table.leaf_bitmap
            count = SPTE_ENT_PER_PAGE if self.shared else mask.bit_count()
            if count:
                if kvm.recording:
                    kvm.action(_FREEZE_PT, (table.gfn, count))
                else:
                    kvm.count_action()
                table.leaf_bitmap = 0
                entries = _EVERY_ENTRY if self.shared else mask
                l1_store_many(kvm, table.gfn, entries, FROZEN_SPTE)
        else:
            prev = -1
            for index in table.present():
                if self.shared and index > prev + 1:
                    self._freeze_run(table, prev + 1, index - 1)
                self._zap_entry(table, index, FROZEN_SPTE, "removed")
                prev = index
            if self.shared and prev < SPTE_ENT_PER_PAGE - 1:
                self._freeze_run(table, prev + 1, SPTE_ENT_PER_PAGE - 1)
        self.l1.free_table(table)

    def _freeze_run(self, table: Ept12Table, first: int, last: int) -> None:
        self.kvm.action(_FREEZE_RUN, (table.gfn, table.level, first, last))
        l1_store_many(self.kvm, table.gfn, (1 << (last + 1)) - (1 << first), FROZEN_SPTE)
