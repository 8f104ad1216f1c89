"""Direct shadow pages from FNAME(fetch)'s second loop (paging_tmpl.h).

When L1 maps 2 MiB of L2 with one EPT12 leaf but L0 backs that L1 memory with 4 KiB pages,
kvm_mmu_hugepage_adjust() leaves goal_level at 1, so below the guest's leaf level FNAME(fetch)
runs its second loop: validate_direct_spte(), then kvm_mmu_get_child_sp(base_gfn,
direct=true) builds a direct level-1 page (keyed by the 2 MiB run's first L1 gfn) and the
4 KiB SPTEs go there.  A direct page has no gptes (never write-tracked, never unsync), but it
is a guest_mode child like any other: a trapped write that zaps its parent PDE orphans it
before patch 1/2 (mmu_page_zap_pte() with invalid_list NULL), and zaps it with the patch.
"""

from __future__ import annotations

import pytest

from mmu_model.fixes import DEFAULT_FIXES

PRE_PATCH = DEFAULT_FIXES
POST_PATCH = DEFAULT_FIXES | {"track-write-zap"}


def _world(make_world, fixes, host_level):
    """GiB 0: regions 0 and 1 mapped by 2 MiB EPT12 leaves, region 2 by a PT; L2 touches
    pages 0 and 1 (mask 0b11) of each."""
    w = make_world(fixes=fixes)
    w.kvm.host_mapping_level = host_level
    w.boot()
    w.touch(0, [0, 1, 2], huge=[0, 1])
    return w


def test_4k_backing_shadows_a_2m_leaf_with_a_direct_page(make_world):
    """With 4 KiB backing each 2 MiB leaf gets a direct level-1 page holding the 2 touched
    4 KiB SPTEs: 2 direct pages + the PT = 3 level-1 pages, pages_4k 3 x 2, pages_2m 0."""
    w = _world(make_world, PRE_PATCH, 1)
    pd = w.sp(w.pd(0))
    direct = [child for _, child in pd.children() if child.role.direct]
    assert [i for i, c in pd.children() if c.role.direct] == [0, 1]
    assert all(sp.role.level == 1 and sp.role.guest_mode and sp.n_leaves == 2 for sp in direct)
    s = w.stats()
    assert (s["pages_4k"], s["pages_2m"]) == (3 * 2, 0)
    # Direct pages have no gptes: not write-tracked, not counted in indirect_shadow_pages.
    assert w.kvm.indirect_shadow_pages == s["mmu_shadow_pages"] - 2


def test_2m_backing_keeps_one_2m_spte(make_world):
    """With 2 MiB backing the guest's 2 MiB leaf is one 2 MiB SPTE in the PD page."""
    w = _world(make_world, PRE_PATCH, 2)
    pd = w.sp(w.pd(0))
    assert not any(c.role.direct for _, c in pd.children())
    s = w.stats()
    assert (s["pages_4k"], s["pages_2m"]) == (2, 2)


@pytest.mark.parametrize(("fixes", "host_level", "orphans"), [
    # 2M pass, exclusive mode: PDE 0 (count 0 -> 1) and PDE 1 (-> 2) each zap one SPTE of
    # the PD page, PDE 2 (-> 3) floods it (and zaps the unsync PT under it).
    (PRE_PATCH, 1, 2),   # 4 KiB backing: PDEs 0 and 1 pointed at direct pages: 2 orphans
    (PRE_PATCH, 2, 0),   # 2 MiB backing: they were 2 MiB leaves: nothing to orphan
    (POST_PATCH, 1, 0),  # patch 1/2: the direct pages are zapped with their last parent
])
def test_zapping_the_pde_orphans_the_direct_page(make_world, fixes, host_level, orphans):
    """Bottom-up teardown of that GiB: the direct children of the first two written PDEs
    are orphaned before the patch (not unsync: direct pages never are)."""
    w = _world(make_world, fixes, host_level)
    w.guest.zap_root(w.guest.root, "bottom-up")
    leaked = [sp for sp in w.kvm.orphans if sp.role.level == 1]
    assert len(leaked) == orphans
    assert all(sp.role.direct and not sp.unsync for sp in leaked)
