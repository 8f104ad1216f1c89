"""Benchmark the model: boot loops, a fully populated L2, recording, seeking and (de)serializing.

Each case runs in its own process so its peak RSS is its own, once on the source model and
once on the mypyc-compiled build (build/compiled, `make compiled`) that `make run` and
`make cli` use.  Prints a table; the numbers go in README.  Not a test: nothing here
asserts a time.

The recording cases time the same spec headless and recorded in one process, alternately,
REPEATS times each, and take the ratio of the least CPU times (time.process_time: what the
recording costs, which other work on a shared machine inflates less than wall time; the
least of a few runs is the one that machine disturbed least), measure what the recorded
run keeps in memory with tracemalloc (every byte the interpreter allocated for the run and
still holds once it is built, divided by its events), and time seeks, full snapshots and
the run's serialization (Run.to_bytes / Run.from_bytes, when the model has them).
Usage: python scripts/bench_model.py [--quick] [--build source|compiled|both] [--only NAME]
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
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COMPILED = ROOT / "build" / "compiled"
# Which mmu_model a case imports is decided by PYTHONPATH alone (cases run with python -P).
BUILD_PATHS = {"source": str(ROOT), "compiled": f"{COMPILED}{os.pathsep}{ROOT}"}
SCENARIOS = {"loop": "boot-loop-bottom-up", "populated": "populated-16g"}
REPEATS = 3  # headless and recorded runs per recording case, alternately


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _headless(scenario: str, boots: int) -> dict[str, Any]:
    from mmu_model import get_scenario, run_scenario

    spec = get_scenario(scenario).spec
    assert spec is not None
    t0 = time.perf_counter()
    run = run_scenario(spec.replace(boots=boots), record=False)
    return {"seconds": time.perf_counter() - t0,
            "detail": (f"{run.n_events:,} events, {run.orphans.unsync:,} unsync orphans, "
                       f"{run.final_stats['mmu_shadow_pages']:,} shadow pages at the end")}


def _record(scenario: str, boots: int) -> dict[str, Any]:
    from mmu_model import get_scenario, run_scenario

    spec = get_scenario(scenario).spec
    assert spec is not None
    spec = spec.replace(boots=boots)
    out: dict[str, Any] = {}
    headless_cpu, recorded_cpu, walls = [], [], []
    for _ in range(REPEATS):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        run_scenario(spec, record=False)
        headless_cpu.append(time.process_time() - c0)
        walls.append(time.perf_counter() - t0)
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        run = run_scenario(spec, record=True)
        recorded_cpu.append(time.process_time() - c0)
        walls.append(time.perf_counter() - t0)
        if len(recorded_cpu) < REPEATS:
            del run
    out["headless_s"] = headless = min(headless_cpu)
    out["seconds"] = recorded = min(recorded_cpu)
    # What the web layer does once per run it caches (app/runs.py): freeze the recorded
    # run out of the collector's sight.
    s0 = time.perf_counter()
    gc.freeze()
    settle = time.perf_counter() - s0
    timeline = run.timeline
    assert timeline is not None
    rng = random.Random(1)
    seeks, seeks_cpu = [], []
    for _ in range(200):
        step = rng.randrange(run.n_events + 1)
        s0, c0 = time.perf_counter(), time.thread_time()
        timeline.counters_at(step)  # the state of every page and every counter at `step`
        seeks_cpu.append((time.thread_time() - c0) * 1e3)
        seeks.append((time.perf_counter() - s0) * 1e3)
    snaps = []
    for _ in range(20):
        step = rng.randrange(run.n_actions + 1)
        s0 = time.perf_counter()
        snap = run.snapshot(step, "action")
        snaps.append((time.perf_counter() - s0) * 1e3)
    lines = [
        f"{run.n_events:,} events; CPU time, least of {REPEATS}: headless {headless:.3f} s, "
        f"recorded {recorded:.3f} s ({recorded / headless:.2f}x; medians "
        f"{statistics.median(headless_cpu):.3f} / {statistics.median(recorded_cpu):.3f} s, "
        f"{statistics.median(recorded_cpu) / statistics.median(headless_cpu):.2f}x; wall "
        f"{walls[0]:.2f} / {walls[1]:.2f} s the first time)",
        f"seek (every page's state + counters) to a random op step: p50 "
        f"{statistics.median(seeks):.2f} ms, p95 {_pct(seeks, 0.95):.2f} ms, max "
        f"{max(seeks):.2f} ms (CPU time, which a busy machine does not inflate: p95 "
        f"{_pct(seeks_cpu, 0.95):.2f} ms, max {max(seeks_cpu):.2f} ms)",
        f"full snapshot (all page views) at a random action step: p50 "
        f"{statistics.median(snaps):.0f} ms, max {max(snaps):.0f} ms ({len(snap.pages):,} "
        f"pages in the last one); gc.freeze() after the build: {settle * 1e3:.0f} ms",
    ]
    if hasattr(run, "to_bytes"):
        encode, decode = [], []
        for _ in range(3):
            s0 = time.perf_counter()
            data = run.to_bytes()
            encode.append(time.perf_counter() - s0)
            s0 = time.perf_counter()
            back = type(run).from_bytes(data)
            decode.append(time.perf_counter() - s0)
            del back
        best = min(decode)
        lines.append(
            f"to_bytes {len(data) / 2**20:.1f} MiB ({len(data) / run.n_events:.1f} B per "
            f"event) in {min(encode) * 1e3:.0f} ms; from_bytes min {best * 1e3:.1f} ms, "
            f"median {statistics.median(decode) * 1e3:.1f} ms ({len(data) / best / 2**20:,.0f} "
            f"MiB/s)")
        out["nbytes"] = run.nbytes
    del run, timeline, snap
    gc.collect()
    # The run's size: what the interpreter allocated for it and still holds afterwards.
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    run = run_scenario(spec, record=True)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    out["bytes_per_event"] = held / run.n_events
    size = f"held by the recorded run (tracemalloc): {held / 2**20:.1f} MiB, " \
           f"{held / run.n_events:.0f} B per event"
    if "nbytes" in out:
        size += f"; Run.nbytes {out['nbytes'] / 2**20:.1f} MiB"
    lines.append(size)
    out["detail"] = "\n           ".join(lines)
    return out


def case(name: str, boots: int) -> dict[str, Any]:
    import mmu_model.mmu

    kind, _, scenario = name.partition(":")
    out = _headless(SCENARIOS[scenario], boots) if kind == "headless" else _record(
        SCENARIOS[scenario], boots)
    out["model"] = mmu_model.mmu.__file__
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


PLAN = [
    ("headless:loop", 1000, "boot-loop-bottom-up, headless (target: 1,000 boots <= 5 s)"),
    ("headless:populated", 100,
     "populated-16g, 512 PTs per PD, headless (target: 100 boots <= 30 s)"),
    ("record:loop", 100, "boot-loop-bottom-up (built-in, 100 boots), recorded (targets: <= 2x "
     "headless, <= 150 B per event, seek <= 5 ms)"),
    ("record:populated", 1, "populated-16g (built-in, 1 boot), recorded"),
    ("record:loop", 700, "boot-loop-bottom-up, 700 boots, recorded"),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller runs (smoke test)")
    parser.add_argument("--build", choices=("source", "compiled", "both"), default="both",
                        help="which model to time (default: both)")
    parser.add_argument("--only", choices=sorted({n for n, _, _ in PLAN}),
                        help="run only this case")
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
    for name, boots, title in PLAN:
        if args.only and name != args.only:
            continue
        boots = max(1, boots // scale)
        print(title)
        for build in builds:
            env = {**os.environ, "PYTHONPATH": BUILD_PATHS[build]}
            proc = subprocess.run(
                [sys.executable, "-P", __file__, "--case", name, "--boots", str(boots)],
                capture_output=True, text=True, check=False, env=env,
            )
            if proc.returncode:
                sys.exit(f"bench_model.py: case {name} failed:\n{proc.stderr[-3000:]}")
            res = json.loads(proc.stdout)
            expected = ".so" if build == "compiled" else ".py"
            assert res["model"].endswith(expected), f"{build} case imported {res['model']}"
            print(f"  {build:8s} {boots} boots: {res['seconds']:.1f} s, peak RSS "
                  f"{res['peak_rss_mib']:.0f} MiB\n           {res['detail']}", flush=True)


if __name__ == "__main__":
    main()
