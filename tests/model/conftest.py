"""Fixtures for the pure model tests: every Kvm a test builds has its invariants checked.

- ``invariants``: for the length of one test, ``Kvm.begin_action`` (and ``Kvm.action``, its
  positional twin) runs ``check_invariants(kvm)`` before the next guest action starts (so
  after every completed action), and every Kvm created during the test -- directly, by
  ``run_scenario`` or by a trace replay -- is checked once more when the test ends.  A
  violation fails the test with the list of violations.  Invariants hold only at action
  boundaries: between a prepare-zap and its commit inside one action they need not, so
  nothing checks there.
  Tests that call kernel functions directly mark their steps with ``world.step()`` (a
  ``begin_action``), or call ``invariants.check(kvm)``.
- ``make_world``: a Kvm driven by the model's own NestedGuest (L1, a KVM with the TDP MMU,
  running L2), plus helpers to find L1's tables and the shadow pages that shadow them.
- ``EventLog``: a recorder for Kvm that keeps every (kind, args) it is given.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from mmu_model import mmu
from mmu_model.constants import SPTE_ENT_PER_PAGE
from mmu_model.fixes import DEFAULT_FIXES, FixSet
from mmu_model.guest import Ept12Table, L1Guest, NestedGuest
from mmu_model.invariants import check_invariants
from mmu_model.kvm import EventKind, Kvm, Recorder
from mmu_model.page import KvmMmuPage
from mmu_model.page_track import l1_store
from mmu_model.scenario import GIB_PAGES

L2_GIB_MAX = 8
L2_BACKING_BASE = GIB_PAGES  # as simulate.py: L1 backs L2 from its second GiB on
POOL_LO = L2_BACKING_BASE + L2_GIB_MAX * GIB_PAGES  # L1 allocates its tables above that
POOL_HI = POOL_LO + GIB_PAGES

PRE_PATCH = DEFAULT_FIXES
POST_PATCH = DEFAULT_FIXES | {"track-write-zap"}


class InvariantViolation(AssertionError):
    pass


class InvariantWatch:
    """Runs check_invariants() on every Kvm of one test (see the module docstring)."""

    def __init__(self) -> None:
        self.kvms: list[Kvm] = []
        self.checks = 0

    def check(self, kvm: Kvm, when: str = "") -> None:
        self.checks += 1
        bad = check_invariants(kvm)
        if bad:
            raise InvariantViolation(
                f"shadow MMU invariants violated {when}:\n  " + "\n  ".join(bad)
            )

    def finish(self, kvm: Kvm) -> None:
        """Final check of one Kvm now, and forget it (for long property tests)."""
        self.check(kvm, "at the end of the run")
        self.kvms = [k for k in self.kvms if k is not kvm]


@pytest.fixture
def invariants(monkeypatch: pytest.MonkeyPatch) -> Iterator[InvariantWatch]:
    watch = InvariantWatch()
    original_init = Kvm.__init__
    original_begin = Kvm.begin_action
    original_action = Kvm.action
    original_count_action = Kvm.count_action
    original_release = Kvm.release

    def init(self: Kvm, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        watch.kvms.append(self)

    def begin_action(self: Kvm, kind: str, **args: Any) -> None:
        watch.check(self, f"after action #{self.actions_emitted} (before {kind!r} starts)")
        original_begin(self, kind, **args)

    def action(self: Kvm, kind: EventKind, values: tuple[object, ...]) -> None:
        watch.check(self, f"after action #{self.actions_emitted} (before {kind.name!r} starts)")
        original_action(self, kind, values)

    def count_action(self: Kvm) -> None:  # an action of a run that records nothing
        watch.check(self, f"after action #{self.actions_emitted}")
        original_count_action(self)

    def release(self: Kvm) -> None:
        watch.check(self, "at the end of the run (before Kvm.release())")
        original_release(self)

    monkeypatch.setattr(Kvm, "__init__", init)
    monkeypatch.setattr(Kvm, "begin_action", begin_action)
    monkeypatch.setattr(Kvm, "action", action)
    monkeypatch.setattr(Kvm, "count_action", count_action)
    monkeypatch.setattr(Kvm, "release", release)
    yield watch
    for kvm in watch.kvms:
        if not kvm.released:  # a released Kvm was checked just before it let go
            watch.check(kvm, "at the end of the test")


class EventLog(Recorder):
    """A Kvm recorder (kvm.Recorder) that keeps every event as (kind, args, is_action);
    events given positionally reach it as dicts (Recorder.record_values)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], bool]] = []

    def record(self, kvm: Kvm, kind: str, args: dict[str, Any]) -> None:
        self.events.append((kind, dict(args), False))

    def begin_action(self, kvm: Kvm, kind: str, args: dict[str, Any]) -> None:
        self.events.append((kind, dict(args), True))

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.events]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [args for k, args, _ in self.events if k == kind]


class World:
    """L0's Kvm with L1 (NestedGuest) running one L2; tables are found through L1's root."""

    def __init__(
        self,
        *,
        fixes: Iterable[str] = PRE_PATCH,
        quota: int = 100_000,
        levels: int = 4,
        shared: bool = False,
        seed: int = 1,
        flood_clear_prob: float = 0.0,
        allocator: str = "uniform",
        host_level: int = 2,
    ) -> None:
        self.l1 = L1Guest(pool_lo=POOL_LO, pool_hi=POOL_HI, rng=random.Random(seed),
                          allocator=allocator)
        self.kvm = Kvm(fixes=FixSet.from_names(fixes), n_max_mmu_pages=quota,
                       root_level=levels, guest=self.l1)
        self.kvm.host_mapping_level = host_level  # 1: L0 backs L1 with 4 KiB pages
        self.guest = NestedGuest(self.kvm, self.l1, ept_levels=levels,
                                 l2_backing_base=L2_BACKING_BASE, shared=shared,
                                 flood_clear_prob=flood_clear_prob, seed=seed)
        self.levels = levels
        self.boots = 0

    # -- guest actions ----------------------------------------------------------------------
    def boot(self) -> Ept12Table:
        self.boots += 1
        return self.guest.vm_entry(self.boots)

    def touch(self, gib: int, indices: Iterable[int], mask: int = 0b11,
              huge: Iterable[int] = (), second: bool = False) -> None:
        """L2 touches the 2 MiB regions `indices` of GiB `gib` (4 KiB pages `mask`)."""
        big = set(huge)
        self.guest.touch(gib, [(i, i in big, mask) for i in indices], second)

    def step(self, kind: str = "test_step", **args: Any) -> None:
        """Mark an action boundary (the invariants are checked here)."""
        self.kvm.begin_action(kind, **args)

    def l1_write(self, table: Ept12Table | int, index: int, new: int) -> str:
        """One L1 store into entry `index` of its table page, as a guest action.

        L1's own copy of the table is left alone: the tests that use this write
        non-present values to entries L1 considers gone, or probe a single store.
        """
        gfn = table if isinstance(table, int) else table.gfn
        self.step("l1_zap_entry", gfn=gfn, level=0, index=index, new=new, frozen=False,
                  **{"pass": "test"})
        return l1_store(self.kvm, gfn, index, new)

    def l1_unmap(self, table: Ept12Table, index: int, new: int) -> str:
        """L1 drops entry `index` of `table` from its tables and stores `new` there."""
        table.children[index] = None
        table.leaf_bitmap &= ~(1 << index)
        return self.l1_write(table, index, new)

    # -- L1's tables --------------------------------------------------------------------------
    def table(self, gib: int, level: int, region: int | None = None) -> Ept12Table:
        """L1's table at `level` on the path to GiB `gib` (and 2 MiB region `region`)."""
        table = self.guest.root
        assert table is not None, "L2 has no EPT root"
        l2_gfn = gib * SPTE_ENT_PER_PAGE * SPTE_ENT_PER_PAGE + (region or 0) * SPTE_ENT_PER_PAGE
        while table.level > level:
            table = table.children[(l2_gfn >> (9 * (table.level - 1))) & 511]
        return table

    def pd(self, gib: int) -> Ept12Table:
        return self.table(gib, 2)

    def pt(self, gib: int, region: int) -> Ept12Table:
        return self.pd(gib).children[region]

    # -- L0's shadow pages ------------------------------------------------------------------
    def sp(self, table: Ept12Table | int, level: int | None = None) -> KvmMmuPage:
        """The one valid shadow page of a table gfn (at `level`, if given)."""
        gfn = table if isinstance(table, int) else table.gfn
        found = [sp for sp in self.kvm.mmu_page_hash_get(gfn)
                 if level is None or sp.role.level == level]
        assert len(found) == 1, f"{len(found)} valid shadow pages for gfn {gfn:#x}"
        return found[0]

    def valid(self, sp: KvmMmuPage) -> bool:
        return not sp.freed and not sp.role.invalid

    def unsync_orphans(self) -> set[int]:
        return {sp.id for sp in self.kvm.orphans if sp.unsync}

    def stats(self) -> dict[str, int]:
        return self.kvm.stat.as_dict()


    # -- building shapes the guest model never makes ------------------------------------------
    def link_new(self, parent: KvmMmuPage, index: int, gfn: int, **role: Any) -> KvmMmuPage:
        """Shadow table `gfn` below `parent` at `index`, as FNAME(fetch) links a child
        (kvm_mmu_get_child_sp() + link_shadow_page()); `role` changes fields of the
        child's role (kvm_mmu_child_role()), e.g. ``access=`` or ``guest_mode=``."""
        child_role = dataclasses.replace(parent.role.child(), **role)
        child, _ = mmu.kvm_mmu_get_shadow_page(self.kvm, gfn, child_role, parent.l2_gfn)
        mmu.link_shadow_page(self.kvm, parent, index, child)
        return child

    def reachable(self, root: KvmMmuPage | None = None) -> set[int]:
        """Ids of the shadow pages a walk from `root` (default: the vCPU's root) reaches."""
        start = self.kvm.root if root is None else root
        seen: set[int] = set()
        stack = [start] if start is not None else []
        while stack:
            sp = stack.pop()
            if sp.id not in seen:
                seen.add(sp.id)
                stack.extend(child for _, child in sp.children())
        return seen


@pytest.fixture
def make_world(invariants: InvariantWatch) -> Callable[..., World]:
    """World factory; requesting it also turns the invariant watch on."""
    return World


@pytest.fixture
def event_log() -> EventLog:
    return EventLog()
