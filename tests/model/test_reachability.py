"""Pages reachable from no valid root: orphans, ex-roots, and what hangs below them.

An orphan is a valid non-root page with no parent SPTE.  When a trapped L1 write zaps the
SPTE to an upper-level child (mmu_page_zap_pte() with invalid_list == NULL before patch
1/2), drop_parent_pte() only removes that one link: the child keeps its own spt[] and its
children keep their parent_ptes, so a whole subtree hangs under the orphan, valid and
accounted, and no walk from a root the vCPU holds reaches any of it.
"""

from __future__ import annotations

from mmu_model.constants import SHADOW_NONPRESENT_VALUE
from mmu_model.scenario import ScenarioSpec
from mmu_model.simulate import run_scenario

NP = SHADOW_NONPRESENT_VALUE


def test_a_subtree_under_an_orphaned_pd_is_unreachable(make_world):
    """PDPTE 0 is zapped by a trapped write (the PDPT's flood count goes 0 -> 1, no flood):
    the PD loses its only parent and becomes the one orphan, with PTs 0, 1 and 2 still
    linked below it: 4 unreachable pages.  PT 1 was unsynced by a 4 KiB write fault before
    (mmu_try_to_unsync_pages()), so 1 of them is unsync, though no orphan is."""
    w = make_world()
    w.boot()
    w.touch(0, [0, 1, 2])
    assert w.l1_unmap(w.pt(0, 1), 0, NP) == "fault"  # unsyncs PT 1
    pd, pts = w.sp(w.pd(0)), [w.sp(w.pt(0, i)) for i in range(3)]
    assert w.l1_unmap(w.table(0, 3), 0, NP) == "emulated"
    w.step()
    kvm = w.kvm
    assert set(kvm.orphans) == {pd}
    summary = kvm.orphan_summary()
    assert (summary.total, summary.unsync) == (1, 0)
    assert (summary.unreachable, summary.unreachable_unsync) == (4, 1)
    assert set(kvm.unreachable_pages()) == {pd, *pts}


def test_ex_roots_and_orphans_are_unreachable_in_a_boot_loop(invariants):
    """One boot of a 1 GiB L2 (3 PTs under one PD, 4-level EPT), exclusive mode, bottom-up,
    two root zaps.  Per root zap: the 2M pass orphans the PTs of the PD's first two written
    PDEs (2 unsync orphans) and its third write flood-zaps the PD; the 1G pass's PDPTE
    write finds that SPTE already gone; the root pass's PML4E write (root count 0 -> 1)
    zaps the root's SPTE to the PDPT, orphaning it (level 3).  The old root stays valid
    with root_count 0 (an ex-root: mmu_free_root_page() keeps a valid root).  After the
    boot's last INVEPT the vCPU holds no root at all, so every page left is unreachable:
    2 x (2 + 1) orphans + 2 ex-roots = 8, the 4 PTs unsync."""
    spec = ScenarioSpec(l2_mem_gib=1, pdes_per_pd=3, ptes_per_pt=8, ept_levels=4,
                        order="bottom-up", mode="exclusive", root_zaps_per_boot=2, boots=1)
    run = run_scenario(spec, record=True)
    assert (run.orphans.total, run.orphans.unsync) == (6, 4)
    assert run.orphans.by_level == {"1": 4, "3": 2}
    assert (run.orphans.unreachable, run.orphans.unreachable_unsync) == (8, 4)
    assert run.final_stats["mmu_shadow_pages"] == 8
    # The recorded run's last snapshot derives the same counts from its page views.
    assert run.timeline is not None
    last = run.snapshot(run.timeline.last_step("action"), "action")
    assert (last.orphans.unreachable, last.orphans.unreachable_unsync) == (
        run.orphans.unreachable, run.orphans.unreachable_unsync)
    assert run.orphans.as_dict()["unreachable"] == run.orphans.unreachable
