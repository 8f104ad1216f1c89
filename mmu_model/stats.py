"""struct kvm_vm_stat for x86 (kvm_host.h) in the order of kvm_vm_stats_desc (x86.c).

mmu_shadow_pages is the stat added by patch 2/2 of "Plug an unsync shadow page leak": the
live shadow page count that used to be the unexported kvm->arch.n_used_mmu_pages.

pages_4k / pages_2m / pages_1g are the shadow MMU's share only: kvm_update_page_stats() is
also called by L0's TDP MMU for its leaves mapping L1's own memory, which the model does
not build, so a real nested VM reports more.  remote_tlb_flush counts only flushes that
sent an IPI (see mmu.kvm_flush_remote_tlbs()).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["DISPLAY_ORDER", "STAT_KINDS", "STAT_NAMES", "KvmVmStat"]

StatKind = Literal["cumulative", "instant", "peak"]

STAT_KINDS: dict[str, StatKind] = {
    "remote_tlb_flush": "cumulative",
    "remote_tlb_flush_requests": "cumulative",
    "mmu_shadow_zapped": "cumulative",
    "mmu_pte_write": "cumulative",
    "mmu_pde_zapped": "cumulative",
    "mmu_flooded": "cumulative",
    "mmu_recycled": "cumulative",
    "mmu_cache_miss": "cumulative",
    "mmu_unsync": "instant",
    "mmu_shadow_pages": "instant",
    "pages_4k": "instant",
    "pages_2m": "instant",
    "pages_1g": "instant",
    "nx_lpage_splits": "instant",
    "max_mmu_rmap_size": "peak",
    "max_mmu_page_hash_collisions": "peak",
}
STAT_NAMES: tuple[str, ...] = tuple(STAT_KINDS)

# The order the web page and the CLI tables show them in (the leak's story first).
DISPLAY_ORDER: tuple[str, ...] = (
    "mmu_shadow_pages",
    "mmu_unsync",
    "mmu_shadow_zapped",
    "mmu_flooded",
    "mmu_pde_zapped",
    "mmu_pte_write",
    "mmu_recycled",
    "mmu_cache_miss",
    "pages_4k",
    "pages_2m",
    "pages_1g",
    "remote_tlb_flush",
    "remote_tlb_flush_requests",
    "max_mmu_rmap_size",
    "max_mmu_page_hash_collisions",
    "nx_lpage_splits",
)


class KvmVmStat:
    __slots__ = STAT_NAMES

    def __init__(self) -> None:
        for name in STAT_NAMES:
            setattr(self, name, 0)

    # mypy needs the attributes declared; __slots__ above creates them.
    remote_tlb_flush: int
    remote_tlb_flush_requests: int
    mmu_shadow_zapped: int
    mmu_pte_write: int
    mmu_pde_zapped: int
    mmu_flooded: int
    mmu_recycled: int
    mmu_cache_miss: int
    mmu_unsync: int
    mmu_shadow_pages: int
    pages_4k: int
    pages_2m: int
    pages_1g: int
    nx_lpage_splits: int
    max_mmu_rmap_size: int
    max_mmu_page_hash_collisions: int

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in STAT_NAMES}
