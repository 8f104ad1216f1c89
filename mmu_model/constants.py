"""Kernel constants the model uses, with the kernel's names (arch/x86/kvm/mmu/*)."""

from __future__ import annotations

from typing import Final

PG_LEVEL_4K: Final = 1
PG_LEVEL_2M: Final = 2
PG_LEVEL_1G: Final = 3

SPTE_ENT_PER_PAGE: Final = 512
PAGE_SHIFT: Final = 12
SPTE_BYTES: Final = 8

KVM_MMU_HASH_SHIFT: Final = 12
KVM_NUM_MMU_PAGES: Final = 1 << KVM_MMU_HASH_SHIFT
GOLDEN_RATIO_64: Final = 0x61C8864680B583EB

KVM_MIN_FREE_MMU_PAGES: Final = 5
KVM_REFILL_PAGES: Final = 25
KVM_MIN_ALLOC_MMU_PAGES: Final = 64
KVM_MEMSLOT_PAGES_TO_MMU_PAGES_RATIO: Final = 50
KVM_MMU_NUM_PREV_ROOTS: Final = 3
RMAP_RECYCLE_THRESHOLD: Final = 1000  # mmu.c: __rmap_add() zaps a longer chain

ACC_EXEC_MASK: Final = 1
ACC_WRITE_MASK: Final = 2
ACC_USER_MASK: Final = 4
ACC_ALL: Final = ACC_EXEC_MASK | ACC_WRITE_MASK | ACC_USER_MASK

# Values L1's TDP MMU writes into EPT12 entries (arch/x86/kvm/mmu/spte.h): with EPT the
# non-present value has "suppress #VE" (bit 63) set, and a table being torn down gets the
# frozen marker.  Both are non-zero, so kvm_mmu_track_write() counts them in mmu_pde_zapped.
SHADOW_NONPRESENT_VALUE: Final = 1 << 63
FROZEN_SPTE: Final = SHADOW_NONPRESENT_VALUE | 0x1A0
EPT_PRESENT_MASK: Final = 0x7
EPT_LARGE_PAGE_MASK: Final = 1 << 7
EPT_TABLE_FLAGS: Final = 0xD07
EPT_LEAF_FLAGS: Final = 0xDF7 & ~EPT_LARGE_PAGE_MASK


# GOLDEN_RATIO_64 in 22-bit pieces, for hash_64() without arbitrary-precision products.
_GR_LO: Final = GOLDEN_RATIO_64 & 0x3FFFFF
_GR_MID: Final = (GOLDEN_RATIO_64 >> 22) & 0x3FFFFF
_GR_HI: Final = GOLDEN_RATIO_64 >> 44
_MASK_42: Final = (1 << 42) - 1


def hash_64(val: int, bits: int = KVM_MMU_HASH_SHIFT) -> int:
    """Model of include/linux/hash.h: hash_64() (the generic multiplicative hash).

    The top `bits` bits of (val * GOLDEN_RATIO_64) mod 2**64.  For gfns (below 2**40) the
    product is summed from 22-bit pieces of the constant, so no intermediate reaches 2**62
    and compiled code stays on machine words; the result is the same.
    """
    if 0 <= val < 1 << 40 and bits <= 42:
        # (val * GOLDEN_RATIO_64 mod 2**64) >> 22, i.e. its top 42 bits
        top = ((val * _GR_LO) >> 22) + (val * _GR_MID & _MASK_42) + (
            (val * _GR_HI & 0xFFFFF) << 22
        )
        return (top & _MASK_42) >> (42 - bits)
    return ((val * GOLDEN_RATIO_64) & 0xFFFFFFFFFFFFFFFF) >> (64 - bits)


def level_size_gfns(level: int) -> int:
    """Number of 4 KiB frames one entry of a level-`level` table maps."""
    return 1 << (9 * (level - 1))

# L1's page-allocator policies for its EPT12 table pages (guest.L1Guest says what each does).
L1_ALLOCATORS: Final = ("lifo", "lifo-tables", "uniform", "never-reuse")
