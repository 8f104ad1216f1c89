"""Benchmark the model: boot loops, a fully populated L2, and seeking in a long run.

Each case runs in its own process so its peak RSS is its own, once on the source model and
once on the mypyc-compiled build (build/compiled, `make compiled`) that `make run` and
`make cli` use.  Prints a table; the numbers go in README.  Not a test: nothing here
asserts a time.
Usage: python scripts/bench_model.py [--quick] [--build source|compiled|both]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COMPILED = ROOT / "build" / "compiled"
# Which mmu_model a case imports is decided by PYTHONPATH alone (cases run with python -P).
BUILD_PATHS = {"source": str(ROOT), "compiled": f"{COMPILED}{os.pathsep}{ROOT}"}


def case(name: str, boots: int) -> dict[str, Any]:
    import mmu_model.mmu
    from mmu_model import get_scenario, run_scenario

    out: dict[str, Any] = {"model": mmu_model.mmu.__file__}
    if name in ("loop", "populated"):
        scenario = "boot-loop-bottom-up" if name == "loop" else "populated-16g"
        spec = get_scenario(scenario).spec
        assert spec is not None
        t0 = time.perf_counter()
        run = run_scenario(spec.replace(boots=boots), record=False)
        out["seconds"] = time.perf_counter() - t0
        out["detail"] = (f"{run.n_events:,} events, {run.orphans.unsync:,} unsync orphans, "
                         f"{run.final_stats['mmu_shadow_pages']:,} shadow pages at the end")
    else:  # seek
        spec = get_scenario("boot-loop-bottom-up").spec
        assert spec is not None
        t0 = time.perf_counter()
        run = run_scenario(spec.replace(boots=boots), record=True)
        out["seconds"] = time.perf_counter() - t0
        # What the web layer does once per run it caches (app/runs.py): freeze the recorded
        # run out of the collector's sight (a run leaves no cycles, so there is nothing to
        # collect first).  Without it, the first collections after the run walk every
        # recorded object and stall whatever request triggers them for seconds.
        s0 = time.perf_counter()
        gc.freeze()
        settle = time.perf_counter() - s0
        timeline = run.timeline
        assert timeline is not None
        rng = random.Random(1)
        seeks = []
        for _ in range(200):
            step = rng.randrange(run.n_events + 1)
            s0 = time.perf_counter()
            timeline.counters_at(step)
            seeks.append((time.perf_counter() - s0) * 1e3)
        snaps = []
        for _ in range(20):
            step = rng.randrange(run.n_actions + 1)
            s0 = time.perf_counter()
            snap = run.snapshot(step, "action")
            snaps.append((time.perf_counter() - s0) * 1e3)
        seeks.sort()
        snaps.sort()
        out["detail"] = (
            f"{run.n_events:,} events recorded; seek (state + counters) to a random op step: "
            f"p50 {statistics.median(seeks):.1f} ms, p95 {seeks[189]:.1f} ms, max "
            f"{seeks[-1]:.1f} ms; full snapshot with all page views: p50 "
            f"{statistics.median(snaps):.0f} ms, max {snaps[-1]:.0f} ms "
            f"({len(snap.pages):,} pages in the last one); freezing the run once it is "
            f"built, as the web layer does: {settle * 1e3:.0f} ms"
        )
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller runs (smoke test)")
    parser.add_argument("--build", choices=("source", "compiled", "both"), default="both",
                        help="which model to time (default: both)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--boots", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(case(args.case, args.boots)))
        return
    builds = ["source", "compiled"] if args.build == "both" else [args.build]
    if "compiled" in builds and not (COMPILED / "mmu_model").is_dir():
        parser.exit(2, "bench_model.py: build/compiled is missing: run `make compiled`\n")
    scale = 10 if args.quick else 1
    plan = [
        ("loop", 1000 // scale, "boot-loop-bottom-up, headless (target: 1,000 boots <= 5 s)"),
        ("populated", 100 // scale,
         "populated-16g, 512 PTs per PD, headless (target: 100 boots <= 30 s)"),
        ("seek", 700 // scale, "boot-loop-bottom-up, recorded (target: seek <= 50 ms)"),
    ]
    for name, boots, title in plan:
        print(title)
        for build in builds:
            env = {**os.environ, "PYTHONPATH": BUILD_PATHS[build]}
            proc = subprocess.run(
                [sys.executable, "-P", __file__, "--case", name, "--boots", str(boots)],
                capture_output=True, text=True, check=True, env=env,
            )
            res = json.loads(proc.stdout)
            expected = ".so" if build == "compiled" else ".py"
            assert res["model"].endswith(expected), f"{build} case imported {res['model']}"
            print(f"  {build:8s} {boots} boots: {res['seconds']:.1f} s, peak RSS "
                  f"{res['peak_rss_mib']:.0f} MiB\n           {res['detail']}")


if __name__ == "__main__":
    main()
