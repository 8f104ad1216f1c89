"""Property tests: random guest workloads keep the shadow MMU sound, and patch 1/2 closes
the only way a trapped write could orphan a shadow page (checklist item 23).

A workload is a random sequence of guest actions on one L0 Kvm: L2 touches of random
regions (4 KiB or 2 MiB mapped), L1 stores into random entries of its live EPT12 tables
(0, the non-present value or the frozen marker; a present entry's subtree is then torn
down like handle_removed_pt() does), new EPT roots, teardowns of old or current roots in
either order and mode, L2 reboots (which make L1 reuse the pages it freed: unprotect-and-
retry zaps and rediscovered pages, watched by watch_reuse()), INVEPT,
kvm_mmu_zap_all_fast(), quota changes, with small quotas that force recycling.  The
invariants are checked after every action (conftest ``invariants``) and after every
trapped write.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import mmu_model.page_track as page_track
import mmu_model.paging_tmpl as paging_tmpl
from mmu_model import mmu
from mmu_model.constants import FROZEN_SPTE, PAGE_SHIFT, SHADOW_NONPRESENT_VALUE
from mmu_model.fixes import DEFAULT_FIXES

PRE_PATCH = DEFAULT_FIXES
POST_PATCH = DEFAULT_FIXES | {"track-write-zap"}

REGIONS = (0, 1, 2, 3, 5, 8, 200, 511)
HUGE = frozenset({3, 200})  # L1 maps these 2 MiB regions with a 2 MiB leaf, always
ENTRIES = (*REGIONS, 4, 6, 7, 9)
VALUES = (0, SHADOW_NONPRESENT_VALUE, FROZEN_SPTE)
ORDERS = ("bottom-up", "top-down")

touch = st.tuples(st.just("touch"), st.integers(0, 2),
                  st.lists(st.sampled_from(REGIONS), min_size=1, max_size=5, unique=True),
                  st.sampled_from((0b1, 0b11, 0b1100, 0xFF)), st.booleans())
store = st.tuples(st.just("store"), st.booleans(), st.integers(0, 1 << 16),
                  st.sampled_from(ENTRIES), st.sampled_from(VALUES))
zap = st.tuples(st.sampled_from(("zap_old", "zap_current", "teardown", "teardown",
                                 "reboot")),
                st.sampled_from(ORDERS), st.booleans())
action = st.one_of(
    touch, touch, touch, store, store, zap, zap,
    st.tuples(st.just("new_eptp")),
    st.tuples(st.just("invept"), st.booleans()),
    st.tuples(st.just("zap_all_fast")),
    st.tuples(st.just("vm_entry")),
    st.tuples(st.just("quota"), st.integers(8, 120)),
)
world_params = st.fixed_dictionaries({
    "levels": st.sampled_from((4, 5)),
    "shared": st.booleans(),
    "quota": st.sampled_from((8, 16, 40, 100_000, 100_000)),
    "seed": st.integers(0, 1000),
    "flood_clear_prob": st.sampled_from((0.0, 0.5)),
    # How L1 reuses the table pages it frees (guest.L1Guest): "lifo-tables" hands them
    # straight back as new tables (rediscovery, lookups of a reused gfn with another role),
    # "lifo" clears them all at the next vm_entry (kvm_mmu_unprotect_gfn_and_retry()).
    "allocator": st.sampled_from(("uniform", "lifo", "lifo-tables", "lifo-tables",
                                  "never-reuse")),
    # 1: L0 backs L1 with 4 KiB pages, so 2 MiB leaves get direct pages (FNAME(fetch)).
    "host_level": st.sampled_from((1, 2)),
})
# Every workload first builds some tree (L2 touching 3+ regions in a GiB or more), then
# plays random actions, with root switches and teardowns mixed in often.
prelude = st.lists(
    st.tuples(st.just("touch"), st.integers(0, 2),
              st.lists(st.sampled_from(REGIONS), min_size=3, max_size=6, unique=True),
              st.just(0b11), st.just(False)),
    min_size=1, max_size=3)
workload = st.tuples(prelude, st.lists(action, min_size=3, max_size=30)).map(
    lambda parts: parts[0] + parts[1])

# MODEL_PROPERTY_EXAMPLES=2000 for a deeper search than the default run's 60 examples.
PROPERTY = settings(max_examples=int(os.environ.get("MODEL_PROPERTY_EXAMPLES", "60")),
                    deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


class Driver:
    """Plays one workload on a World; old roots wait in `pending` for their teardown."""

    def __init__(self, world):
        self.w = world
        self.pending = []

    def ensure_root(self):
        if self.w.guest.root is None:
            self.w.boot()

    def play(self, step):
        w, guest, kind = self.w, self.w.guest, step[0]
        if kind == "touch":
            _, gib, regions, mask, second = step
            self.ensure_root()
            w.touch(gib, regions, mask=mask, huge=HUGE & set(regions), second=second)
        elif kind == "store":
            _, upper, pick, index, value = step
            tables = sorted((t for t in w.l1.tables.values() if t.level > 1 or not upper),
                            key=lambda t: t.gfn)
            if tables:
                guest._zap_entry(tables[pick % len(tables)], index, value, "random")
        elif kind == "new_eptp":
            self.ensure_root()
            self.pending.append(guest.new_eptp())
        elif kind == "teardown":  # L1 switches L2 to a new root and zaps the oldest one
            self.ensure_root()
            self.pending.append(guest.new_eptp())
            guest.shared = step[2]
            guest.zap_root(self.pending.pop(0), step[1])
        elif kind == "zap_old":
            if self.pending:
                guest.shared = step[2]
                guest.zap_root(self.pending.pop(0), step[1])
        elif kind == "reboot":  # L2 shuts down (its root torn down) and boots again
            if guest.root is not None:
                guest.shared = step[2]
                guest.zap_root(guest.root, step[1])
                guest.invept(reload=False)
            w.boot()
        elif kind == "zap_current":
            if guest.root is not None:
                guest.shared = step[2]
                guest.zap_root(guest.root, step[1])
        elif kind == "invept":
            guest.invept(reload=step[1])
        elif kind == "zap_all_fast":
            w.step("memslot_change")
            mmu.kvm_mmu_zap_all_fast(w.kvm)
        elif kind == "vm_entry":
            if guest.root is not None:
                self.pending.append(guest.root)
            w.boot()
        elif kind == "quota":
            w.step("set_quota")
            mmu.kvm_mmu_change_mmu_pages(w.kvm, step[1])


def parentless(kvm) -> set[int]:
    """Valid guest_mode pages below the root level that no root holds and no SPTE points
    to: unreachable from every root (the leak).  A dropped root (an ex-root, at the root
    level) is a separate, pre-existing category and not counted."""
    return {sp.id for sp in kvm.sps
            if not sp.role.invalid and not sp.root_count and sp.role.guest_mode
            and sp.role.level < kvm.root_level and not sp.parent_ptes}


def watch_trapped_writes(monkeypatch, invariants, tally):
    """Wrap every trapped write (kvm_mmu_track_write() as page_track calls it): the pages
    it leaves parentless must be exactly the children whose every parent SPTE was the
    written one and that survived the write -- one per cleared last parent before the
    patch, none after it."""
    original = page_track.kvm_mmu_track_write

    def track_write(kvm, gpa, new, nbytes=8):
        gfn, index = gpa >> PAGE_SHIFT, (gpa & 0xFFF) // 8
        lone = [sp for sp in kvm.sps if sp.parent_ptes and all(
            p.gfn == gfn and i == index and not p.role.invalid for p, i in sp.parent_ptes)]
        before = parentless(kvm)
        original(kvm, gpa, new, nbytes)
        left = parentless(kvm) - before
        survivors = {sp.id for sp in lone if not sp.freed and not sp.role.invalid}
        assert left == survivors
        if kvm.fixes.track_write_zap:
            assert not left, "post-patch, a trapped write left a parentless page"
        tally["writes"] += 1
        tally["orphaned"] += len(left)
        invariants.check(kvm, f"after the trapped write to {gpa:#x}")

    monkeypatch.setattr(page_track, "kvm_mmu_track_write", track_write)


def watch_reuse(monkeypatch, invariants, tally):
    """Wrap the two paths L1's reuse of a freed page takes into L0 (guest.L1Guest):

    - a clear of a write-tracked page (``rep stos``) goes through
      __kvm_mmu_unprotect_gfn_and_retry(), which prepare-zaps every valid page of the gfn
      that has gptes (for_each_gfn_valid_sp_with_gptes), so afterwards none is left, the
      gfn is not write-tracked (unaccount_shadowed() of each), and the invariants hold;
    - a page reused as a table of the same role is found by gfn and role
      (kvm_mmu_find_shadow_page()) and relinked by link_shadow_page(): an orphan found
      that way ("rediscovered") has the SPTE as its parent afterwards, so it is no orphan.
    """
    unprotect = page_track.kvm_mmu_unprotect_gfn_and_retry
    link = paging_tmpl.link_shadow_page

    def unprotect_gfn_and_retry(kvm, gfn):
        zapped = unprotect(kvm, gfn)
        assert all(not sp.role.has_gptes for sp in kvm.mmu_page_hash_get(gfn))
        assert not kvm.write_track.get(gfn)
        tally["unprotect_zaps"] += zapped
        invariants.check(kvm, f"after unprotecting gfn {gfn:#x}")
        return zapped

    def link_shadow_page(kvm, parent, index, sp):
        was_orphan = sp.orphan
        link(kvm, parent, index, sp)
        assert parent.spt[index] is sp
        assert (parent, index) in sp.parent_ptes
        assert not sp.orphan
        tally["rediscovered"] += was_orphan

    monkeypatch.setattr(page_track, "kvm_mmu_unprotect_gfn_and_retry", unprotect_gfn_and_retry)
    monkeypatch.setattr(paging_tmpl, "link_shadow_page", link_shadow_page)


@PROPERTY
@given(params=world_params, fixes=st.sampled_from((PRE_PATCH, POST_PATCH)),
       flood_detection=st.booleans(), steps=workload)
def test_random_workloads_keep_invariants_and_the_fix_leaves_no_orphan(
        make_world, invariants, monkeypatch, params, fixes, flood_detection, steps):
    """Random workloads keep the invariants; every trapped write orphans exactly its lone
    children pre-patch and nothing post-patch."""
    tally = {"writes": 0, "orphaned": 0, "unprotect_zaps": 0, "rediscovered": 0}
    with monkeypatch.context() as patch:
        watch_trapped_writes(patch, invariants, tally)
        watch_reuse(patch, invariants, tally)
        names = fixes if flood_detection else fixes - {"flood-detection"}
        w = make_world(fixes=names, **params)
        driver = Driver(w)
        for step in steps:
            driver.play(step)
            if "track-write-zap" in names:
                # Post-patch nothing else leaves one either: every other path that clears
                # a last parent passes an invalid_list (2de4085cccea).
                assert not parentless(w.kvm), step
            assert parentless(w.kvm) == {sp.id for sp in w.kvm.orphans}
        invariants.finish(w.kvm)
        stats = w.kvm.stat
        event(f"trapped writes: {min(tally['writes'], 50) // 10 * 10}+")
        event(f"orphaning writes: {'some' if tally['orphaned'] else 'none'}")
        event(f"recycled: {'yes' if stats.mmu_recycled else 'no'}")
        event(f"flooded: {'yes' if stats.mmu_flooded else 'no'}")
        event(f"shadow pages built: {min(stats.mmu_cache_miss, 100) // 20 * 20}+")
        event(f"allocator {params['allocator']}: reused {'some' if w.l1.reused else 'no'} "
              "freed pages")
        event(f"unprotect-and-retry zaps: {'some' if tally['unprotect_zaps'] else 'none'}")
        event(f"orphans rediscovered: {'some' if tally['rediscovered'] else 'none'}")


reboot = st.tuples(st.just("reboot"), st.sampled_from(ORDERS), st.booleans())
reuse_workload = st.tuples(prelude, st.lists(st.one_of(touch, touch, reboot, reboot, store, zap),
                                             min_size=4, max_size=24)).map(
    lambda parts: [*parts[0], *parts[1]])


@PROPERTY
@given(params=world_params, allocator=st.sampled_from(("lifo", "lifo-tables")),
       fixes=st.sampled_from((PRE_PATCH, POST_PATCH)), steps=reuse_workload)
def test_l1_reusing_its_pages_keeps_invariants(make_world, invariants, monkeypatch, params,
                                               allocator, fixes, steps):
    """L2 reboots under the allocators that reuse freed pages (L2's RAM clearing them, or
    L1 taking them back as tables): every unprotect-and-retry and every rediscovery keeps
    the invariants and its own postcondition (watch_reuse), every trapped write orphans
    exactly its lone children (none post-patch), and the orphans are the parentless pages
    after every action."""
    tally = {"writes": 0, "orphaned": 0, "unprotect_zaps": 0, "rediscovered": 0}
    with monkeypatch.context() as patch:
        watch_trapped_writes(patch, invariants, tally)
        watch_reuse(patch, invariants, tally)
        w = make_world(fixes=fixes, **{**params, "allocator": allocator})
        driver = Driver(w)
        for step in steps:
            driver.play(step)
            assert parentless(w.kvm) == {sp.id for sp in w.kvm.orphans}
        invariants.finish(w.kvm)
        event(f"{allocator}: unprotect-and-retry zaps: "
              f"{'some' if tally['unprotect_zaps'] else 'none'}")
        event(f"{allocator}: orphans rediscovered: "
              f"{'some' if tally['rediscovered'] else 'none'}")


@pytest.mark.parametrize("fixes", [PRE_PATCH, POST_PATCH], ids=["pre-patch", "post-patch"])
def test_teardown_workload_orphans_exactly_the_lone_children(make_world, invariants,
                                                             monkeypatch, fixes):
    """A fixed workload with the oracle above, so the property has teeth: pre-patch the
    bottom-up teardown of 3 GiB (3 PTs per PD) orphans 2 PTs per PD, one per write."""
    tally = {"writes": 0, "orphaned": 0}
    watch_trapped_writes(monkeypatch, invariants, tally)
    w = make_world(fixes=fixes)
    driver = Driver(w)
    for gib in range(3):
        driver.play(("touch", gib, [0, 5, 8], 0b11, False))
    driver.play(("invept", True))
    driver.play(("new_eptp",))
    driver.play(("zap_old", "bottom-up", False))
    assert tally["writes"] > 0
    assert tally["orphaned"] == (0 if "track-write-zap" in fixes else 3 * 2)


@pytest.mark.parametrize("allocator", ["lifo", "lifo-tables"])
def test_reuse_workload_reaches_the_unprotect_path(make_world, invariants, monkeypatch,
                                                   allocator):
    """A fixed workload through the reuse watcher, so its checks have teeth: L1 tears the
    old root down after switching to a new one; the old root's shadow page stays as an
    ex-root (mmu_free_root_page() does not free a valid root), level 4, so write-tracked
    (account_shadowed()).  Its page is the last one L1 freed, so the next table L1 takes
    ("lifo-tables") or L2's RAM at the next boot ("lifo") gets it and clears it with
    ``rep stos``: one unprotect-and-retry that zaps it, after which it is freed."""
    tally = {"unprotect_zaps": 0, "rediscovered": 0}
    watch_reuse(monkeypatch, invariants, tally)
    w = make_world(fixes=PRE_PATCH, allocator=allocator)
    driver = Driver(w)
    for gib in range(2):
        driver.play(("touch", gib, [0, 5, 8], 0b11, False))
    driver.play(("invept", True))
    old_root = w.sp(w.guest.root)
    driver.play(("teardown", "bottom-up", False))
    driver.play(("invept", False))
    assert old_root.root_count == 0  # an ex-root: valid, held by no root pointer
    assert not old_root.role.invalid
    assert tally["unprotect_zaps"] == 0
    driver.play(("vm_entry",))
    assert old_root.freed
    assert tally["unprotect_zaps"] >= 1
