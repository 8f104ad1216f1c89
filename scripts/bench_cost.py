"""How close mmu_model.cost's estimate is to what runs record, and what a build costs.

For every built-in simulation and a few specs that stress one kind of work each, build the
run (recorded, as the server does) and print the estimated events beside the measured
events, the ratio, and the build time. Run it with the model `make run` serves:

    PYTHONPATH=build/compiled:. .venv/bin/python -P scripts/bench_cost.py
    PYTHONPATH=build/compiled:. .venv/bin/python -P scripts/bench_cost.py --quick

Not a timed test: numbers depend on the machine. The table in mmu_model/cost.py comes
from this script.
"""

from __future__ import annotations

import argparse
import time

import mmu_model
from mmu_model import ScenarioSpec, get_scenario, list_scenarios, run_scenario
from mmu_model.cost import build_cost


def specs(quick: bool) -> list[tuple[str, ScenarioSpec]]:
    out = [(i.name, i.spec) for i in list_scenarios() if i.spec is not None]
    boot_loop = get_scenario("boot-loop-bottom-up").spec
    assert boot_loop is not None
    small = ScenarioSpec(l2_mem_gib=4, pdes_per_pd=64, ptes_per_pt=1, ept_levels=4,
                         mode="exclusive", root_zaps_per_boot=1)
    out += [
        ("4 GiB x 64 PT regions", small),
        ("... 2 MiB leaves", small.replace(huge_share=1)),
        ("... shared mode", small.replace(mode="shared")),
        ("... flood clears p=1", small.replace(flood_clear_prob=1.0)),
        ("... quota 64", small.replace(quota=64)),
        ("... 5-level EPT", small.replace(ept_levels=5)),
        ("... 16 root zaps x 8 boots", small.replace(root_zaps_per_boot=16, boots=8)),
        ("... no fixes, 50 boots", small.replace(fixes=frozenset(), boots=50)),
        ("boot-loop, 200 boots, no fixes",
         boot_loop.replace(boots=200, fixes=frozenset())),
    ]
    if not quick:
        out.append(("100k pages (bench_web)", ScenarioSpec(
            l2_mem_gib=195, pdes_per_pd=512, ptes_per_pt=1, ept_levels=4, mode="exclusive",
            root_zaps_per_boot=1)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 100k-page spec")
    args = parser.parse_args()
    print(f"model: {mmu_model.__file__}")
    print(f"{'spec':<34} {'estimated':>10} {'measured':>10} {'ratio':>6} {'build s':>8} "
          f"{'us/event':>8}")
    for name, spec in specs(args.quick):
        estimated = build_cost(spec).events
        started = time.process_time()
        run = run_scenario(spec, record=True)
        seconds = time.process_time() - started
        print(f"{name:<34} {estimated:>10,} {run.n_events:>10,} "
              f"{estimated / run.n_events:>6.2f} {seconds:>8.2f} "
              f"{seconds / run.n_events * 1e6:>8.1f}")
        del run


if __name__ == "__main__":
    main()
