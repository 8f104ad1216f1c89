"""Reverse maps of leaf SPTEs (mmu.c: rmap_add / rmap_remove / pte_list_add), as counts.

The kernel keeps, per (level, gfn), a list of the leaf SPTEs mapping that gfn.  The model
needs only how long each list is: the rmap entry total and the peak chain length
(max_mmu_rmap_size).  A shadow page's leaves map one aligned run of 512 gfns (one "chunk"),
so per chunk the model keeps each page's leaf bitmap.  The chain length of one gfn is how
many of those bitmaps contain its bit; the longest chain a new batch of leaves joins is
found by splitting the batch along the few distinct bitmaps.
"""

from __future__ import annotations

__all__ = ["Rmaps"]


def _longest(by_sp: dict[int, int], mask: int) -> int:
    """Longest chain among the gfns of `mask`: the most bitmaps any one bit is in."""
    tally: dict[int, int] = {}
    for value in by_sp.values():
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
        # by base_gfn << 3 | level: each page's leaf bitmap in that run (sp id -> bitmap)
        self.chunks: dict[int, dict[int, int]] = {}
        self.entries = 0

    def add(self, level: int, base_gfn: int, sp_id: int, mask: int, count: int,
            floor: int = 0) -> int:
        """pte_list_add() for each of the `count` bits set in `mask` (none of them already
        set for sp_id); returns the longest chain joined (its old length) if it is longer
        than `floor`, else at most `floor`."""
        self.entries += count
        key = base_gfn << 3 | level
        by_sp = self.chunks.get(key)
        if by_sp is None:
            self.chunks[key] = {sp_id: mask}
            return 0
        # No chain in the chunk is longer than the number of pages with leaves in it.
        longest = _longest(by_sp, mask) if len(by_sp) > floor else 0
        by_sp[sp_id] = by_sp.get(sp_id, 0) | mask
        return longest

    def remove(self, level: int, base_gfn: int, sp_id: int, mask: int, count: int) -> None:
        """pte_list_remove() for each of the `count` bits set in `mask` (all set for sp_id)."""
        self.entries -= count
        key = base_gfn << 3 | level
        by_sp = self.chunks[key]
        left = by_sp[sp_id] & ~mask
        if left:
            by_sp[sp_id] = left
        elif len(by_sp) > 1:
            del by_sp[sp_id]
        else:
            del self.chunks[key]

    def chain_length(self, level: int, gfn: int, stride: int) -> int:
        """Number of rmap entries for one gfn (stride = gfns per leaf at that level)."""
        span = stride * 512
        base = gfn - gfn % span
        bit = (gfn - base) // stride
        by_sp = self.chunks.get(base << 3 | level)
        if by_sp is None:
            return 0
        return sum(1 for v in by_sp.values() if v >> bit & 1)
