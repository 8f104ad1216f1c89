"""Run a scenario spec: L2 boots on L1, L1 zaps its roots, L0's shadow MMU reacts."""

from __future__ import annotations

import gc
import random
from collections.abc import Callable

from .fixes import FixSet
from .guest import L1Guest, NestedGuest
from .kvm import Kvm
from .run import BootStats, Run
from .scenario import GIB_PAGES, ScenarioSpec
from .timeline import Timeline

__all__ = ["BootProgress", "run_scenario", "working_set"]

# Called after each L2 boot with that boot's stats and the number of boots in the run.
BootProgress = Callable[[BootStats, int], None]

L2_BACKING_BASE = GIB_PAGES  # L1 backs L2 memory from its second GiB on


def working_set(spec: ScenarioSpec) -> list[list[tuple[int, bool, int, int]]]:
    """Per GiB of L2: (region index, huge?, first-touch page mask, second-touch mask)."""
    rng = random.Random(spec.seed * 7919 + 17)
    n = spec.regions_per_pd
    half = spec.ptes_per_pt // 2 or spec.ptes_per_pt
    first = (1 << half) - 1
    second = ((1 << spec.ptes_per_pt) - 1) & ~first
    out = []
    for _ in range(spec.l2_mem_gib):
        indices = sorted(rng.sample(range(512), n))
        n_huge = round(n * spec.huge_share)
        huge = set(rng.sample(indices, n_huge)) if n_huge else set()
        out.append([(i, i in huge, first, second) for i in indices])
    return out


def run_scenario(spec: ScenarioSpec, *, record: bool = True,
                 progress: BootProgress | None = None) -> Run:
    """Simulate `spec` and return the run (with a seekable timeline when `record`).

    `progress`, if given, is called after every boot (the CLI's progress line).

    The cyclic garbage collector is paused meanwhile: a zapped page is unlinked from its
    parents, children and rmap chunk before it is freed, so reference counting frees it,
    and a collection would only walk the ever larger heap of live pages and recorded
    events.  At the end the pages that still have leaves let go of their rmap chunks, which
    refer back to them, so a finished run leaves nothing for the collector either.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _run_scenario(spec, record, progress)
    finally:
        if collecting:
            gc.enable()


def _run_scenario(spec: ScenarioSpec, record: bool, progress: BootProgress | None) -> Run:
    fixes = FixSet.from_names(spec.fixes)
    l1_pages = spec.l1_gib * GIB_PAGES
    pool_lo = L2_BACKING_BASE + spec.l2_mem_gib * GIB_PAGES
    l1 = L1Guest(pool_lo=pool_lo, pool_hi=l1_pages, rng=random.Random(spec.seed),
                 allocator=spec.l1_allocator)
    kvm = Kvm(fixes=fixes, n_max_mmu_pages=spec.n_max_mmu_pages, root_level=spec.ept_levels,
              guest=l1)
    kvm.host_mapping_level = 1 if spec.l1_backing == "4K" else 2
    timeline = Timeline(kvm) if record else None
    kvm.recorder = timeline
    guest = NestedGuest(kvm, l1, ept_levels=spec.ept_levels, l2_backing_base=L2_BACKING_BASE,
                        shared=spec.mode == "shared", flood_clear_prob=spec.flood_clear_prob,
                        seed=spec.seed, single_context=spec.invept == "single-context")
    plan = working_set(spec)
    # Every root's life sees the same touches: build their region lists once.
    first_touches = [[(i, huge, m1) for i, huge, m1, _ in regions] for regions in plan]
    second_touches = [[(i, False, m2) for i, huge, _, m2 in regions if not huge and m2]
                      for regions in plan]
    per_boot: list[BootStats] = []
    default_step = 0
    for boot in range(1, spec.boots + 1):
        if timeline is not None:
            timeline.boot = boot
        walked_before = kvm.hash_walked
        guest.vm_entry(boot)
        for zap in range(spec.root_zaps_per_boot):
            for gib, regions in enumerate(first_touches):
                guest.touch(gib, regions, second=False)
            for gib, regions in enumerate(second_touches):
                if regions:
                    guest.touch(gib, regions, second=True)
            guest.invept(reload=True)
            # L1 tears down the current root at L2's shutdown, else the one it replaces.
            last = zap == spec.root_zaps_per_boot - 1
            doomed = guest.root if last else guest.new_eptp()
            assert doomed is not None
            default_step = default_step or kvm.actions_emitted
            guest.zap_root(doomed, spec.order)
            guest.invept(reload=not last)
        per_boot.append(BootStats(
            boot=boot, shadow_pages=kvm.stat.mmu_shadow_pages, unsync=kvm.stat.mmu_unsync,
            orphans=kvm.n_orphans, orphans_unsync=kvm.orphans_unsync,
            rmap_entries=kvm.rmaps.entries, hash_walked=kvm.hash_walked - walked_before,
            action_step=kvm.actions_emitted,
        ))
        if progress is not None:
            progress(per_boot[-1], spec.boots)
    run = Run(
        kind="simulate", spec=spec, fixes=fixes.names, final_stats=kvm.stat.as_dict(),
        orphans=kvm.orphan_summary(),
        n_events=kvm.events_emitted, n_actions=kvm.actions_emitted, timeline=timeline,
        per_boot=per_boot, default_step=default_step, hash_walked=kvm.hash_walked,
    )
    kvm.release()
    return run
