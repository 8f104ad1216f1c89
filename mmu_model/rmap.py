"""Reverse maps of leaf SPTEs (mmu.c: rmap_add / rmap_remove / pte_list_add), as counts.

The kernel keeps, per (level, gfn), a list of the leaf SPTEs mapping that gfn.  The model
needs only how long each list is: the rmap entry total and the peak chain length
(max_mmu_rmap_size).  A shadow page's leaves map one aligned run of 512 gfns, so the lists
for that run are kept as *layers* of 512-bit masks: bit b is in layer j when gfn b has more
than j entries.  Adding or removing a whole page of leaves is then a few integer operations.
"""

from __future__ import annotations

__all__ = ["Rmaps"]


class Rmaps:
    __slots__ = ("entries", "layers")

    def __init__(self) -> None:
        self.layers: dict[tuple[int, int], list[int]] = {}
        self.entries = 0

    def add(self, level: int, base_gfn: int, bitmap: int) -> int:
        """pte_list_add() for every set bit; returns the largest pre-existing chain length."""
        key = (level, base_gfn)
        layers = self.layers.setdefault(key, [])
        longest = 0
        for j, layer in enumerate(layers):
            if layer & bitmap:
                longest = j + 1
            else:
                break
        carry = bitmap
        j = 0
        while carry:
            if j == len(layers):
                layers.append(carry)
                break
            overlap = layers[j] & carry
            layers[j] |= carry
            carry = overlap
            j += 1
        self.entries += bitmap.bit_count()
        return longest

    def remove(self, level: int, base_gfn: int, bitmap: int) -> None:
        """pte_list_remove() for every set bit."""
        key = (level, base_gfn)
        layers = self.layers[key]
        rem = bitmap
        for j in range(len(layers) - 1, -1, -1):
            here = layers[j] & rem
            if here:
                layers[j] ^= here
                rem ^= here
        while layers and not layers[-1]:
            layers.pop()
        if not layers:
            del self.layers[key]
        self.entries -= bitmap.bit_count()

    def chain_length(self, level: int, gfn: int, stride: int) -> int:
        """Number of rmap entries for one gfn (stride = gfns per leaf at that level)."""
        span = stride * 512
        base = gfn - gfn % span
        bit = (gfn - base) // stride
        return sum(1 for layer in self.layers.get((level, base), ()) if layer >> bit & 1)
