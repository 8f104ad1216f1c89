"""Reverse maps of leaf SPTEs (mmu.c: rmap_add / rmap_remove / pte_list_add), as counts.

The kernel keeps, per (level, gfn), a list of the leaf SPTEs mapping that gfn.  The model
needs only how long each list is: the rmap entry total and the peak chain length
(max_mmu_rmap_size).  A shadow page's leaves map one aligned run of 512 gfns (one "chunk",
at sp.leaf_gfn_base), so per chunk the model keeps the pages with leaves in it; their
leaf_bitmaps say which gfns each maps.  The chain length of one gfn is how many of those
bitmaps contain its bit.  Once a chunk has been searched for its longest chain it also
keeps a tally of its distinct bitmaps, so that later searches split a new batch of leaves
along those few bitmaps instead of visiting every page (leaked pages pile up in a chunk,
all with the same bitmap).  A chunk emptied of pages is kept for the next page that maps
the run; there are at most as many as 512-entry runs of L1 memory.
"""

from __future__ import annotations

from collections.abc import Iterable

from .page import KvmMmuPage

__all__ = ["RmapChunk", "Rmaps"]


class RmapChunk:
    __slots__ = ("pages", "tally")

    def __init__(self, sp: KvmMmuPage) -> None:
        # An ordered set (insertion order, O(1) removal): leaked pages pile up here.
        self.pages: dict[KvmMmuPage, None] = {sp: None}
        self.tally: dict[int, int] | None = None  # leaf bitmap -> pages with it

    def count(self, bitmap: int, delta: int) -> None:
        assert self.tally is not None
        left = self.tally.get(bitmap, 0) + delta
        if left:
            self.tally[bitmap] = left
        else:
            del self.tally[bitmap]

    def longest(self, mask: int) -> int:
        """Longest chain among the gfns of `mask`: the most leaf bitmaps any bit is in."""
        return max(n for _, n in self.chains(mask))

    def longer_than(self, mask: int, length: int) -> int:
        """The gfns of `mask` (as bits) whose chain is longer than `length`."""
        out = 0
        for bits, n in self.chains(mask):
            if n > length:
                out |= bits
        return out

    def pages_with(self, gfns: int) -> list[KvmMmuPage]:
        """The pages with a leaf for any of `gfns` (bits), as a new list."""
        return [sp for sp in self.pages if sp.leaf_bitmap & gfns]

    def chains(self, mask: int) -> list[tuple[int, int]]:
        """`mask` split into (bits, chain length shared by those gfns)."""
        if self.tally is None:
            self.tally = tally_of(self.pages)
        parts = [(mask, 0)]
        for value, count in self.tally.items():
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
        return parts


def tally_of(pages: Iterable[KvmMmuPage]) -> dict[int, int]:
    """How many of `pages` have each distinct leaf bitmap."""
    tally: dict[int, int] = {}
    for sp in pages:
        tally[sp.leaf_bitmap] = tally.get(sp.leaf_bitmap, 0) + 1
    return tally


def _chunk_key(level: int, base_gfn: int) -> int:
    return base_gfn << 3 | level


class Rmaps:
    __slots__ = ("chunks", "entries")

    def __init__(self) -> None:
        self.chunks: dict[int, RmapChunk] = {}  # by _chunk_key(level, leaf_gfn_base)
        self.entries = 0

    def add(self, sp: KvmMmuPage, mask: int, count: int, floor: int = 0) -> int:
        """pte_list_add() for the `count` leaves in `mask` that sp is about to install
        (at sp.leaf_gfn_base, none of them in sp.leaf_bitmap yet).  Returns the longest
        chain joined (its old length) if it is longer than `floor`, else at most `floor`."""
        self.entries += count
        old = sp.leaf_bitmap
        chunk = sp.rmap_chunk
        if chunk is None:  # the page's first leaves
            key = _chunk_key(sp.role.level, sp.leaf_gfn_base)
            chunk = self.chunks.get(key)
            if chunk is None:
                self.chunks[key] = sp.rmap_chunk = RmapChunk(sp)
                return 0
            sp.rmap_chunk = chunk
        # No chain in the chunk is longer than the number of pages with leaves in it.
        longest = chunk.longest(mask) if len(chunk.pages) > floor else 0
        if chunk.tally is not None:
            if old:
                chunk.count(old, -1)
            chunk.count(old | mask, 1)
        if not old:
            chunk.pages[sp] = None
        return longest

    def remove(self, sp: KvmMmuPage, old: int, count: int) -> None:
        """pte_list_remove() for `count` leaves sp has just dropped: its leaf_bitmap was
        `old` before."""
        self.entries -= count
        chunk = sp.rmap_chunk
        assert chunk is not None, "rmap_remove() of a page without leaves"
        if chunk.tally is not None:
            chunk.count(old, -1)
            if sp.leaf_bitmap:
                chunk.count(sp.leaf_bitmap, 1)
        if not sp.leaf_bitmap:
            del chunk.pages[sp]
            sp.rmap_chunk = None
            if not chunk.pages:
                chunk.tally = None

    def release(self) -> None:
        """The run is over: drop every chunk, and each page's reference to its chunk, so that
        no page and chunk keep each other alive and reference counting frees them all."""
        for chunk in self.chunks.values():
            for sp in chunk.pages:
                sp.rmap_chunk = None
        self.chunks.clear()

    def chunk_at(self, level: int, base_gfn: int) -> RmapChunk | None:
        """The chunk of the run of 512 level-`level` entries at `base_gfn`, if any."""
        return self.chunks.get(_chunk_key(level, base_gfn))

    def pages_at(self, level: int, base_gfn: int) -> Iterable[KvmMmuPage]:
        """The pages with leaves in the run of 512 level-`level` entries at `base_gfn`."""
        chunk = self.chunk_at(level, base_gfn)
        return chunk.pages if chunk is not None else ()

    def chain_length(self, level: int, gfn: int, stride: int) -> int:
        """Number of rmap entries for one gfn (stride = gfns per leaf at that level)."""
        span = stride * 512
        base = gfn - gfn % span
        bit = (gfn - base) // stride
        return sum(1 for sp in self.pages_at(level, base) if sp.leaf_bitmap >> bit & 1)
