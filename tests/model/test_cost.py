"""mmu_model.cost: the work a spec causes, counted before it is built.

The counts are derived here from the spec as the simulation (mmu_model/simulate.py,
guest.py) does the work: per root life, every GiB of L2 is one PD; each of its
regions_per_pd touched regions is either a 2 MiB leaf (huge_share of them, rounded) or a
PT page; a spec has boots x root_zaps_per_boot root lives.
"""

from __future__ import annotations

import pytest

from mmu_model import BUILTINS, InvalidSpec, ScenarioSpec, get_scenario, run_scenario
from mmu_model.cost import DEFAULT_MAX_EVENTS, build_cost, check_cost

# Issue 11's killer URL: populated-16g (512 regions per GiB) at 1024 GiB, every region a
# 2 MiB leaf, 16 root zaps in each of 24 boots.
KILLER = get_scenario("populated-16g").spec.replace(  # type: ignore[union-attr]
    huge_share=1, l2_mem_gib=1024, root_zaps_per_boot=16, boots=24)


def test_the_killer_spec_counts_its_2mib_leaf_regions_and_root_lives() -> None:
    cost = build_cost(KILLER)
    assert cost.root_lives == 16 * 24
    assert cost.huge_regions == 1024 * 512  # every region of every GiB is a 2 MiB leaf
    assert cost.pt_regions == 0  # ... so none has a PT page: what estimated_shadow_pages saw
    # Each leaf region is at least one EPT violation (one event) in every root life.
    assert cost.events >= cost.root_lives * cost.huge_regions


def test_the_killer_spec_is_refused_naming_l2_mem_gib_and_the_limit() -> None:
    # One root life alone is over a million events (524,288 leaf regions, each a fault, a
    # leaf store and a zap), so the field to lower is the tree's size, not the boots.
    with pytest.raises(InvalidSpec) as refused:
        check_cost(KILLER)
    assert refused.value.field == "l2_mem_gib"
    assert f"{DEFAULT_MAX_EVENTS:,} events" in refused.value.message
    assert "2 MiB leaf regions" in refused.value.message


def test_ten_thousand_boots_are_refused_naming_boots() -> None:
    # boot-loop-bottom-up's root is small (48 PT regions) but 10,000 boots x 2 root zaps
    # are 20,000 root lives: the number of lives is what to lower.
    spec = get_scenario("boot-loop-bottom-up").spec.replace(boots=10_000)  # type: ignore[union-attr]
    with pytest.raises(InvalidSpec) as refused:
        check_cost(spec)
    assert refused.value.field == "boots"


def test_many_root_zaps_in_few_boots_are_refused_naming_root_zaps_per_boot() -> None:
    spec = ScenarioSpec(l2_mem_gib=64, pdes_per_pd=512, ptes_per_pt=1, root_zaps_per_boot=16,
                        boots=2)
    # 64 x 512 = 32,768 PT regions per root (~270k events), times 32 lives: over the limit,
    # and root_zaps_per_boot (16) is the larger factor of the lives.
    with pytest.raises(InvalidSpec) as refused:
        check_cost(spec)
    assert refused.value.field == "root_zaps_per_boot"


@pytest.mark.parametrize("name", [n for n, i in BUILTINS.items() if i.spec is not None])
def test_every_builtin_scenario_is_within_the_limit(name: str) -> None:
    spec = BUILTINS[name].spec
    assert spec is not None
    assert check_cost(spec).events < DEFAULT_MAX_EVENTS


@pytest.mark.parametrize(
    "changes",
    [
        {},  # PT regions only
        {"huge_share": 1.0},  # 2 MiB leaves
        {"mode": "shared"},  # frozen runs
        {"flood_clear_prob": 1.0},  # an L2 walk before every zapped entry
        {"quota": 64},  # far over the quota: kvm_mmu_zap_oldest_mmu_pages
        {"ept_levels": 5},
        {"root_zaps_per_boot": 4, "boots": 3},
        {"fixes": frozenset(), "boots": 6},  # leaks
    ],
    ids=lambda c: ",".join(c) or "pt-regions",
)
def test_the_estimate_is_close_to_what_the_run_records(changes: dict[str, object]) -> None:
    """Each kind of work, alone on a small spec: the estimate is at most 30% above the
    events the run records and at most 10% below (refusing is cheap, overrunning is not)."""
    spec = ScenarioSpec(l2_mem_gib=2, pdes_per_pd=32, ptes_per_pt=4, ept_levels=4,
                        mode="exclusive", root_zaps_per_boot=1).replace(**changes)
    measured = run_scenario(spec, record=True).n_events
    estimated = build_cost(spec).events
    assert 0.9 * measured <= estimated <= 1.3 * measured, (estimated, measured)
