"""The model's shortcuts agree with the plain definitions they stand in for.

hash_64() avoids big-number products for gfns, and Rmaps keeps per-chunk bitmaps instead
of one list per gfn; both must give exactly what the straightforward formula gives.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mmu_model.constants import GOLDEN_RATIO_64, hash_64
from mmu_model.rmap import Rmaps


def plain_hash_64(val: int, bits: int) -> int:
    # include/linux/hash.h: hash_64_generic() is (val * GOLDEN_RATIO_64) >> (64 - bits)
    # in u64 arithmetic, i.e. the product taken mod 2**64.
    return ((val * GOLDEN_RATIO_64) % 2**64) >> (64 - bits)


@given(st.one_of(st.integers(0, 2**40 - 1), st.integers(0, 2**64 - 1)), st.integers(1, 64))
def test_hash_64_is_the_u64_multiplicative_hash(val: int, bits: int) -> None:
    assert hash_64(val, bits) == plain_hash_64(val, bits)


def test_hash_64_at_the_edges_of_the_fast_path() -> None:
    for val in (0, 1, 2**22 - 1, 2**22, 2**40 - 1, 2**40, 2**52 + 3, 2**64 - 1):
        assert hash_64(val) == plain_hash_64(val, 12)


# One chunk of 16 gfns is enough to exercise the splitting; pages are sp ids 1..4.
ops = st.lists(
    st.tuples(st.booleans(), st.integers(1, 4), st.integers(1, 2**16 - 1)), max_size=40
)


@given(ops)
def test_rmap_chain_lengths_match_a_list_per_gfn(sequence: list[tuple[bool, int, int]]) -> None:
    """Replays adds and removes against a per-gfn set of sp ids (the kernel's rmap list,
    as a set since one sp maps one gfn once): entries, each chain length and the
    longest chain a new batch joins must all agree."""
    rmaps = Rmaps()
    lists: dict[int, set[int]] = {gfn: set() for gfn in range(16)}
    held: dict[int, int] = {}  # sp id -> its leaf bitmap, as mmu_set_spte/drop_spte keep it
    for is_add, sp_id, mask in sequence:
        have = held.get(sp_id, 0)
        if is_add:
            new = mask & ~have
            if not new:
                continue
            gfns = [g for g in range(16) if new >> g & 1]
            expected = max(len(lists[g]) for g in gfns)
            assert rmaps.add(1, 0x4000, sp_id, new, len(gfns)) == expected
            for g in gfns:
                lists[g].add(sp_id)
            held[sp_id] = have | new
        else:
            gone = mask & have
            if not gone:
                continue
            gfns = [g for g in range(16) if gone >> g & 1]
            rmaps.remove(1, 0x4000, sp_id, gone, len(gfns))
            for g in gfns:
                lists[g].discard(sp_id)
            held[sp_id] = have & ~gone
        assert rmaps.entries == sum(len(s) for s in lists.values())
        for g in range(16):
            assert rmaps.chain_length(1, 0x4000 + g, 1) == len(lists[g])
    assert bool(rmaps.chunks) == any(held.values())


def test_rmap_floor_skips_the_search_only_when_it_cannot_matter() -> None:
    # Two pages already map gfn 0: a chain of 2.  With floor 2 the search may be skipped
    # (2 pages cannot make a chain longer than 2), so the answer is at most the floor.
    rmaps = Rmaps()
    rmaps.add(1, 0, 1, 0b1, 1)
    rmaps.add(1, 0, 2, 0b1, 1)
    assert rmaps.add(1, 0, 3, 0b1, 1, floor=0) == 2
    assert rmaps.add(1, 0, 4, 0b1, 1, floor=3) <= 3
