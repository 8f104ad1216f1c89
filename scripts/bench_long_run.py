"""How the model's cost grows with the length of a boot loop: 1,000 vs 3,000 boots.

Each case runs in its own process on the mypyc-compiled build (build/compiled, `make
compiled`) unless --build source, next to a calibration loop (3M iterations of one dict
store and one dict lookup) in the same process, so machines and runs compare by ratio.
Prints min/median/max seconds per case and the 3,000 / 1,000 ratio of medians.  Not a test:
nothing here asserts a time.
Usage: python scripts/bench_long_run.py [--repeat N] [--build source|compiled]
       [--scenario NAME] [--fix NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPILED = ROOT / "build" / "compiled"
BUILD_PATHS = {"source": str(ROOT), "compiled": f"{COMPILED}{os.pathsep}{ROOT}"}
CALIBRATION_ITERATIONS = 3_000_000


def calibrate() -> float:
    store: dict[int, int] = {}
    t0 = time.process_time()
    for i in range(CALIBRATION_ITERATIONS):
        store[i & 1023] = i
        _ = store.get(i & 511)
    return time.process_time() - t0


def child(scenario: str, boots: int, fixes: list[str]) -> None:
    import mmu_model.mmu
    from mmu_model import get_scenario, run_scenario

    spec = get_scenario(scenario).spec
    assert spec is not None
    spec = spec.replace(boots=boots, fixes=spec.fixes | frozenset(fixes))
    calibration = calibrate()
    t0, c0 = time.perf_counter(), time.process_time()
    run = run_scenario(spec, record=False)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"model": mmu_model.mmu.__file__, "seconds": seconds, "cpu": cpu,
                      "calibration": calibration,
                      "shadow_pages": run.final_stats["mmu_shadow_pages"]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--build", choices=sorted(BUILD_PATHS), default="compiled")
    parser.add_argument("--scenario", default="boot-loop-bottom-up")
    parser.add_argument("--fix", action="append", default=[])
    parser.add_argument("--boots", type=int, nargs=2, default=[1000, 3000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.scenario, args.child, args.fix)
        return
    env = {**os.environ, "PYTHONPATH": BUILD_PATHS[args.build]}
    medians: dict[int, float] = {}
    cpus: dict[int, float] = {}
    for boots in args.boots:
        results = []
        for _ in range(args.repeat):
            cmd = [sys.executable, "-P", __file__, "--child", str(boots),
                   "--scenario", args.scenario, *(f"--fix={f}" for f in args.fix)]
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            results.append(json.loads(out.stdout))
        secs = sorted(r["seconds"] for r in results)
        cal = statistics.median(r["calibration"] for r in results)
        cpu = sorted(r["cpu"] for r in results)
        medians[boots] = statistics.median(secs)
        cpus[boots] = statistics.median(cpu)
        print(f"{args.scenario} {boots:>6,} boots ({args.build}): wall min {secs[0]:.2f} s, "
              f"median {medians[boots]:.2f} s, max {secs[-1]:.2f} s; CPU min {cpu[0]:.2f} s, "
              f"median {cpus[boots]:.2f} s, max {cpu[-1]:.2f} s; calibration CPU {cal:.2f} s "
              f"(run CPU x{cpus[boots] / cal:.1f}); {results[0]['shadow_pages']:,} shadow "
              f"pages; {results[0]['model']}")
    low, high = args.boots
    print(f"ratio {high:,} / {low:,} boots: wall medians {medians[high] / medians[low]:.2f}, "
          f"CPU medians {cpus[high] / cpus[low]:.2f}")


if __name__ == "__main__":
    main()
