"""Kernel constants the model uses, with the kernel's names (arch/x86/kvm/mmu/*)."""

from __future__ import annotations

PG_LEVEL_4K = 1
PG_LEVEL_2M = 2
PG_LEVEL_1G = 3

SPTE_ENT_PER_PAGE = 512
PAGE_SHIFT = 12
SPTE_BYTES = 8

KVM_MMU_HASH_SHIFT = 12
KVM_NUM_MMU_PAGES = 1 << KVM_MMU_HASH_SHIFT
GOLDEN_RATIO_64 = 0x61C8864680B583EB

KVM_MIN_FREE_MMU_PAGES = 5
KVM_REFILL_PAGES = 25
KVM_MIN_ALLOC_MMU_PAGES = 64
KVM_MEMSLOT_PAGES_TO_MMU_PAGES_RATIO = 50
KVM_MMU_NUM_PREV_ROOTS = 3

ACC_EXEC_MASK = 1
ACC_WRITE_MASK = 2
ACC_USER_MASK = 4
ACC_ALL = ACC_EXEC_MASK | ACC_WRITE_MASK | ACC_USER_MASK

# Values L1's TDP MMU writes into EPT12 entries (arch/x86/kvm/mmu/spte.h): with EPT the
# non-present value has "suppress #VE" (bit 63) set, and a table being torn down gets the
# frozen marker.  Both are non-zero, so kvm_mmu_track_write() counts them in mmu_pde_zapped.
SHADOW_NONPRESENT_VALUE = 1 << 63
FROZEN_SPTE = SHADOW_NONPRESENT_VALUE | 0x1A0
EPT_PRESENT_MASK = 0x7
EPT_LARGE_PAGE_MASK = 1 << 7
EPT_TABLE_FLAGS = 0xD07
EPT_LEAF_FLAGS = 0xDF7 & ~EPT_LARGE_PAGE_MASK


def hash_64(val: int, bits: int = KVM_MMU_HASH_SHIFT) -> int:
    """Model of include/linux/hash.h: hash_64() (the generic multiplicative hash)."""
    return ((val * GOLDEN_RATIO_64) & 0xFFFFFFFFFFFFFFFF) >> (64 - bits)


def level_size_gfns(level: int) -> int:
    """Number of 4 KiB frames one entry of a level-`level` table maps."""
    return 1 << (9 * (level - 1))
