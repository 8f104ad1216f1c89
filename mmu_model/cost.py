"""What a scenario spec costs to build, counted from the spec before anything is built.

A simulation's time and the size of its record both follow the number of events it
records (2-4 us per recorded event with the compiled model, 34-89 bytes per event in the
compact run record), and every kind of work a spec asks for adds events. Per root
life (one EPT root L1 builds and tears down; a spec has boots x root_zaps_per_boot of them):

| work, per root life                                   | events each | from            |
|-------------------------------------------------------|-------------|-----------------|
| the root itself: vm entry, INVEPTs, root zap passes   | 3 x levels+1| ept_levels      |
| a GiB of L2 (its PD: walk, link, zap, free)           | 11          | l2_mem_gib      |
| a 2 MiB region behind a PT page (fault, leaves, zap)  | 8.1         | pdes_per_pd     |
| ... touched a second time (ptes_per_pt > 1)           | 3.0         | ptes_per_pt     |
| a 2 MiB leaf region (huge_share)                      | 4.2         | huge_share      |
| a run of frozen entries (shared mode)                 | 1.2         | mode            |
| a flood-count clear draw that hits (an L2 walk)       | 3.0         | flood_clear_prob|
| a shadow page over the quota (kvm_mmu_zap_oldest...)  | 0.5         | quota           |

Without one of the default fixes, leaked pages stay on the hash chains and in the zap
walks: every life then costs up to a fifth more (boot-loop-bottom-up with no fixes: 798
events per life against 755, flat from 50 to 400 boots; 4 GiB x 64 PT regions: 2,368 to
2,467 against 2,113, growing a little with the boots), plus 0.01 x l2_mem_gib events for
every earlier life.

Calibration (`python scripts/bench_cost.py`, compiled model, recorded runs, 2-core host):

| spec                                     | estimated | measured events | build s |
|------------------------------------------|-----------|-----------------|---------|
| teaching-small                           |       403 |             407 |    0.00 |
| boot-loop-bottom-up (100 boots)          |   144,960 |         150,951 |    0.40 |
| boot-loop-top-down                       |   144,960 |         134,979 |    0.27 |
| populated-16g                            |   201,958 |         197,095 |    0.48 |
| large-10k                                |   113,900 |         112,906 |    0.29 |
| 4 GiB x 64 PT regions, 16 zaps x 8 boots |   272,717 |         271,039 |    0.65 |
| 4 GiB x 64 PT regions, no fixes, 50 boots|   127,885 |         118,475 |    0.33 |
| boot-loop-bottom-up, 200 boots, no fixes |   360,672 |         319,447 |    0.72 |
| 100k pages (bench_web's 100k spec)       |   810,862 |         800,886 |    2.20 |

(2 MiB leaves, shared mode, flood clears, a 64-page quota and 5-level EPT each on the
4 GiB spec: estimates 1.01-1.18x the measured events.) The killer spec of issue 11
(populated-16g at 1024 GiB, all 2 MiB leaves, 16 root zaps x 24 boots) comes to about
1.09 billion events: refused, naming l2_mem_gib.

The estimate is meant to be a little high, never far low: refusing is cheap, a build that
runs into the CPU limit is not.
"""

from __future__ import annotations

from dataclasses import dataclass

from .exceptions import InvalidSpec
from .fixes import DEFAULT_FIXES
from .scenario import ScenarioSpec

__all__ = ["DEFAULT_MAX_EVENTS", "SECONDS_PER_EVENT", "BuildCost", "build_cost", "check_cost"]

# Events recorded per unit of work, per root life (the table above).
EVENTS_PER_GIB = 11.0
EVENTS_PER_PT_REGION = 8.1
EVENTS_PER_SECOND_TOUCH = 3.0
EVENTS_PER_HUGE_REGION = 4.2
EVENTS_PER_FROZEN_RUN = 1.2
EVENTS_PER_FLOOD_CLEAR = 3.0
EVENTS_PER_PAGE_OVER_QUOTA = 0.5
LEAK_FACTOR = 1.2
LEAK_EVENTS_PER_GIB_PER_EARLIER_LIFE = 0.01

SECONDS_PER_EVENT = 3e-6  # compiled model, recording (2.3-3.4 us measured); source ~3x
# 1,000,000 events: the 100k-page spec the UI is built for (800,886 events, 2.2 s) fits.
DEFAULT_MAX_EVENTS = 1_000_000


@dataclass(frozen=True, slots=True)
class BuildCost:
    """The work a spec causes, per root life and in all."""

    root_lives: int
    pt_regions: int  # per root life: 2 MiB regions mapped through a PT page
    huge_regions: int  # per root life: 2 MiB leaf regions
    second_touches: int
    frozen_runs: int
    flood_clears: float  # expected L2 walks that clear flood counts
    pages_over_quota: int
    leaks: bool  # a default fix is off: leaked pages make every later life dearer
    events_per_life: int
    events: int

    @property
    def seconds(self) -> float:
        """Expected build time with the compiled model on the calibration host."""
        return self.events * SECONDS_PER_EVENT

    def describe(self) -> str:
        parts = [f"{self.pt_regions:,} PT regions"]
        if self.huge_regions:
            parts.append(f"{self.huge_regions:,} 2 MiB leaf regions")
        if self.flood_clears >= 1:
            parts.append(f"{self.flood_clears:,.0f} flood-count clears")
        if self.pages_over_quota:
            parts.append(f"{self.pages_over_quota:,} pages over the quota")
        return (f"{self.root_lives:,} root lives x about {self.events_per_life:,} events "
                f"({', '.join(parts)} per root)" + (", plus leaked pages" if self.leaks else ""))


def build_cost(spec: ScenarioSpec) -> BuildCost:
    """Count the work `spec` causes (an estimate of the events its run records)."""
    gib = spec.l2_mem_gib
    regions = spec.regions_per_pd
    huge_per_pd = round(regions * spec.huge_share)
    pt_regions = gib * (regions - huge_per_pd)
    huge_regions = gib * huge_per_pd
    second = pt_regions if spec.ptes_per_pt > 1 else 0
    tables = gib + spec.ept_levels
    frozen = tables + pt_regions + huge_regions if spec.mode == "shared" else 0
    zapped_entries = tables + pt_regions + huge_regions
    flood_clears = zapped_entries * spec.flood_clear_prob
    over_quota = max(0, spec.estimated_shadow_pages - spec.n_max_mmu_pages)
    leaks = not spec.fixes >= DEFAULT_FIXES
    per_life = (
        3 * spec.ept_levels + 1
        + EVENTS_PER_GIB * gib
        + EVENTS_PER_PT_REGION * pt_regions
        + EVENTS_PER_SECOND_TOUCH * second
        + EVENTS_PER_HUGE_REGION * huge_regions
        + EVENTS_PER_FROZEN_RUN * frozen
        + EVENTS_PER_FLOOD_CLEAR * flood_clears
        + EVENTS_PER_PAGE_OVER_QUOTA * over_quota
    ) * (LEAK_FACTOR if leaks else 1.0)
    lives = spec.boots * spec.root_zaps_per_boot
    events = per_life * lives
    if leaks:
        events += LEAK_EVENTS_PER_GIB_PER_EARLIER_LIFE * gib * lives * (lives - 1) / 2
    return BuildCost(
        root_lives=lives, pt_regions=pt_regions, huge_regions=huge_regions,
        second_touches=second, frozen_runs=frozen, flood_clears=flood_clears,
        pages_over_quota=over_quota, leaks=leaks, events_per_life=round(per_life),
        events=round(events),
    )


def check_cost(spec: ScenarioSpec, max_events: int = DEFAULT_MAX_EVENTS) -> BuildCost:
    """The spec's cost, or InvalidSpec naming the field to lower when it is over the limit.

    The field named is the one that makes the cost: the size of one root's tree
    (l2_mem_gib) when a single root life is already over the limit, else the number of
    root lives (boots, or root_zaps_per_boot when that is the larger factor).
    """
    cost = build_cost(spec)
    if cost.events <= max_events:
        return cost
    if cost.events_per_life > max_events:
        field = "l2_mem_gib"
        advice = "lower l2_mem_gib, pdes_per_pd or huge_share"
    elif spec.boots >= spec.root_zaps_per_boot:
        field, advice = "boots", "lower boots or root_zaps_per_boot"
    else:
        field, advice = "root_zaps_per_boot", "lower root_zaps_per_boot or boots"
    raise InvalidSpec(field, (
        f"this spec would record about {cost.events:,} events ({cost.describe()}), about "
        f"{cost.seconds:,.0f} s of model time; this server builds runs of at most "
        f"{max_events:,} events: {advice}"))
