"""Reverse maps of leaf SPTEs (mmu.c: rmap_add / rmap_remove / pte_list_add), as counts.

The kernel keeps, per (level, gfn), a list of the leaf SPTEs mapping that gfn.  The model
needs only how long each list is: the rmap entry total and the peak chain length
(max_mmu_rmap_size).  A shadow page's leaves map one aligned run of 512 gfns (one "chunk"),
so per chunk the model keeps each page's leaf bitmap, and a tally of the distinct bitmaps.
The chain length of one gfn is how many of those bitmaps contain its bit; the longest chain
a new batch of leaves joins is found by splitting the batch along the few distinct bitmaps.
"""

from __future__ import annotations

__all__ = ["Rmaps"]


class _Chunk:
    __slots__ = ("by_sp", "values")

    def __init__(self) -> None:
        self.by_sp: dict[int, int] = {}
        self.values: dict[int, int] = {}

    def _move(self, sp_id: int, old: int, new: int) -> None:
        if old:
            left = self.values[old] - 1
            if left:
                self.values[old] = left
            else:
                del self.values[old]
        if new:
            self.values[new] = self.values.get(new, 0) + 1
            self.by_sp[sp_id] = new
        else:
            self.by_sp.pop(sp_id, None)

    def longest(self, mask: int) -> int:
        parts = [(mask, 0)]
        for value, count in self.values.items():
            if not value & mask:
                continue
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
        self.chunks: dict[int, _Chunk] = {}  # by _key(level, base_gfn)
        self.entries = 0

    def add(self, level: int, base_gfn: int, sp_id: int, mask: int, floor: int = 0) -> int:
        """pte_list_add() for each set bit; returns the longest chain joined (its old length)
        if it is longer than `floor`, else at most `floor`."""
        key = base_gfn << 3 | level
        chunk = self.chunks.get(key)
        if chunk is None:
            chunk = self.chunks[key] = _Chunk()
        # No chain in the chunk is longer than the number of pages with leaves in it.
        longest = chunk.longest(mask) if len(chunk.by_sp) > floor else 0
        old = chunk.by_sp.get(sp_id, 0)
        chunk._move(sp_id, old, old | mask)
        self.entries += mask.bit_count()
        return longest

    def remove(self, level: int, base_gfn: int, sp_id: int, mask: int) -> None:
        """pte_list_remove() for each set bit."""
        key = base_gfn << 3 | level
        chunk = self.chunks[key]
        old = chunk.by_sp.get(sp_id, 0)
        chunk._move(sp_id, old, old & ~mask)
        if not chunk.by_sp:
            del self.chunks[key]
        self.entries -= mask.bit_count()

    def chain_length(self, level: int, gfn: int, stride: int) -> int:
        """Number of rmap entries for one gfn (stride = gfns per leaf at that level)."""
        span = stride * 512
        base = gfn - gfn % span
        bit = (gfn - base) // stride
        chunk = self.chunks.get(base << 3 | level)
        if chunk is None:
            return 0
        return sum(c for v, c in chunk.values.items() if v >> bit & 1)
