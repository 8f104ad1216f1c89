"""Reverse maps of leaf SPTEs (mmu.c: rmap_add / rmap_remove / pte_list_add), as counts.

The kernel keeps, per (level, gfn), a list of the leaf SPTEs mapping that gfn.  The model
needs only how long each list is: the rmap entry total and the peak chain length
(max_mmu_rmap_size).  A shadow page's leaves map one aligned run of 512 gfns (one "chunk",
at sp.leaf_gfn_base), so per chunk the model keeps the pages with leaves in it; their
leaf_bitmaps say which gfns each maps.  The chain length of one gfn is how many of those
bitmaps contain its bit; the longest chain a new batch of leaves joins is found by
splitting the batch along the few distinct bitmaps.
"""

from __future__ import annotations

from .page import KvmMmuPage

__all__ = ["Rmaps"]


def _chunk_key(level: int, base_gfn: int) -> int:
    return base_gfn << 3 | level


def _longest(pages: list[KvmMmuPage], mask: int) -> int:
    """Longest chain among the gfns of `mask`: the most leaf bitmaps any one bit is in."""
    tally: dict[int, int] = {}
    for sp in pages:
        value = sp.leaf_bitmap
        if value & mask:
            tally[value] = tally.get(value, 0) + 1
    parts = [(mask, 0)]
    for value, count in tally.items():
        split = []
        for bits, n in parts:
            inside = bits & value
            if inside:
                split.append((inside, n + count))
            outside = bits & ~value
            if outside:
                split.append((outside, n))
        parts = split
    return max(n for _, n in parts)


class Rmaps:
    __slots__ = ("chunks", "entries")

    def __init__(self) -> None:
        # by _chunk_key(level, leaf_gfn_base): the pages with leaves in that run
        self.chunks: dict[int, list[KvmMmuPage]] = {}
        self.entries = 0

    def add(self, sp: KvmMmuPage, mask: int, count: int, floor: int = 0) -> int:
        """pte_list_add() for the `count` leaves in `mask` that sp is about to install
        (at sp.leaf_gfn_base, none of them in sp.leaf_bitmap yet).  Returns the longest
        chain joined (its old length) if it is longer than `floor`, else at most `floor`."""
        self.entries += count
        key = _chunk_key(sp.role.level, sp.leaf_gfn_base)
        pages = self.chunks.get(key)
        if pages is None:
            self.chunks[key] = [sp]
            return 0
        # No chain in the chunk is longer than the number of pages with leaves in it.
        longest = _longest(pages, mask) if len(pages) > floor else 0
        if not sp.leaf_bitmap:
            pages.append(sp)
        return longest

    def remove(self, sp: KvmMmuPage, count: int) -> None:
        """pte_list_remove() for `count` leaves sp has just dropped from its leaf_bitmap."""
        self.entries -= count
        if sp.leaf_bitmap:
            return
        key = _chunk_key(sp.role.level, sp.leaf_gfn_base)
        pages = self.chunks[key]
        if len(pages) == 1:
            del self.chunks[key]
        else:
            pages.remove(sp)

    def pages_at(self, level: int, base_gfn: int) -> list[KvmMmuPage]:
        """The pages with leaves in the run of 512 level-`level` entries at `base_gfn`."""
        return self.chunks.get(_chunk_key(level, base_gfn), [])

    def chain_length(self, level: int, gfn: int, stride: int) -> int:
        """Number of rmap entries for one gfn (stride = gfns per leaf at that level)."""
        span = stride * 512
        base = gfn - gfn % span
        bit = (gfn - base) // stride
        return sum(1 for sp in self.pages_at(level, base) if sp.leaf_bitmap >> bit & 1)
