"""Bitmaps as Python ints: the kernel's for_each_set_bit() (include/linux/find.h)."""

from __future__ import annotations

from typing import Final

__all__ = ["for_each_set_bit", "lowest_set_bit"]

# Compiled code keeps ints below 2**62 in a machine word; wider ones are heap objects, so a
# wide bitmap is scanned one 62-bit word at a time.
_WORD_BITS: Final = 62
_WORD_MASK: Final = (1 << _WORD_BITS) - 1


def for_each_set_bit(mask: int) -> list[int]:
    """Model of find.h: for_each_set_bit(): the indices of the bits set in `mask`, lowest
    first (a non-negative `mask`)."""
    out: list[int] = []
    base = 0
    while mask:
        word = mask & _WORD_MASK
        mask >>= _WORD_BITS
        while word:
            low = word & -word
            out.append(base + low.bit_length() - 1)
            word ^= low
        base += _WORD_BITS
    return out


def lowest_set_bit(mask: int) -> int:
    """Model of bitops.h: __ffs(): the index of the lowest bit set in `mask` (non-zero)."""
    return (mask & -mask).bit_length() - 1
