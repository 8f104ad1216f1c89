"""Server time to build the step fragment and the snapshot JSON at ~1k, ~10k and ~100k pages.

For each size: run the scenario once (timed, then cached like the server does), then time
  - the htmx step fragment: GET /?...&step=s with HX-Request (what a Next click costs),
  - the snapshot JSON:      GET /api/snapshot?...&step=s,
  - the model alone:        run.snapshot(s) (the part of both that is not the web layer),
over `--repeat` consecutive, distinct steps from the step the tree is fully built at (so no
per-step cache helps), in process through Starlette's TestClient. Prints p50/p95 in ms, the
fragment and JSON sizes, and JSON bytes per shadow page. Not a timed test: numbers depend on
the machine.

    python scripts/bench_web.py                 # all three sizes (100k takes about 2 minutes)
    python scripts/bench_web.py --sizes 1k 10k --repeat 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from app.main import create_app
from app.resolve import run_entry, source_of
from app.settings import Settings
from app.viewstate import parse_query

# pdes_per_pd=512 puts a PT page under every PDE: about 513 shadow pages per GiB of L2.
SIZES: dict[str, dict[str, str]] = {
    "1k": {"l2_mem_gib": "2"},
    "10k": {"l2_mem_gib": "20"},
    "100k": {"l2_mem_gib": "195"},
}
COMMON = {"pdes_per_pd": "512", "ptes_per_pt": "1", "boots": "1", "root_zaps_per_boot": "1",
          "mode": "exclusive", "huge_share": "0", "ept_levels": "4"}
BASE = "populated-16g"  # any simulated scenario: every spec field is overridden below


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:8.1f} {pct(values, 0.95) * 1e3:8.1f}"


@dataclass
class Result:
    size: str
    pages: int
    run_s: float
    frag: list[float]
    json: list[float]
    model: list[float]
    frag_kb: float
    json_kb: float
    bytes_per_page: float
    url: str


def bench(client: TestClient, size: str, repeat: int) -> Result:
    params = {"v": "1", "scenario": BASE, **COMMON, **SIZES[size]}
    query = urlencode(params)
    app = client.app
    services = app.state.services  # type: ignore[attr-defined]

    started = time.perf_counter()
    first = client.get(f"/api/snapshot?{query}")
    first.raise_for_status()
    run_s = time.perf_counter() - started
    data = first.json()
    step0 = data["step"]
    pages = len(data["pages"])

    state, _ = parse_query(params.items())
    run = run_entry(services, source_of(services, state), state.fix_set).run  # cached
    last = run.last_step("action")
    steps = [min(step0 + 1 + i, last) for i in range(2 * repeat)]
    frag_steps, json_steps = steps[0::2], steps[1::2]

    # Untimed: compiles the templates and computes the run's layout, both done once.
    client.get(f"/?{query}&step={step0}", headers={"HX-Request": "true"}).raise_for_status()

    frag_t: list[float] = []
    frag_bytes: list[int] = []
    for s in frag_steps:
        t = time.perf_counter()
        r = client.get(f"/?{query}&step={s}", headers={"HX-Request": "true"})
        frag_t.append(time.perf_counter() - t)
        r.raise_for_status()
        frag_bytes.append(len(r.content))

    json_t: list[float] = []
    json_bytes: list[int] = []
    json_pages: list[int] = []
    for s in json_steps:
        t = time.perf_counter()
        r = client.get(f"/api/snapshot?{query}&step={s}")
        json_t.append(time.perf_counter() - t)
        r.raise_for_status()
        json_bytes.append(len(r.content))
        json_pages.append(len(r.json()["pages"]))

    model_t: list[float] = []
    for s in frag_steps:
        t = time.perf_counter()
        run.snapshot(s)
        model_t.append(time.perf_counter() - t)

    return Result(
        size=size, pages=pages, run_s=run_s, frag=frag_t, json=json_t, model=model_t,
        frag_kb=statistics.median(frag_bytes) / 1024,
        json_kb=statistics.median(json_bytes) / 1024,
        bytes_per_page=statistics.median(
            b / max(p, 1) for b, p in zip(json_bytes, json_pages, strict=True)
        ),
        url=state.url(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeat", type=int, default=30, help="steps timed per measure")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db_path=Path(tmp) / "bench.sqlite3", run_cache_size=2)
        with TestClient(create_app(settings)) as client:
            rows = [bench(client, size, args.repeat) for size in args.sizes]

    print(f"step fragment and snapshot JSON, {args.repeat} distinct steps each; times in ms")
    print(f"{'size':>5} {'pages':>7} {'run s':>6} | {'fragment p50':>12} {'p95':>8} "
          f"{'KiB':>6} | {'json p50':>8} {'p95':>8} {'KiB':>7} {'B/page':>6} | "
          f"{'model p50':>9} {'p95':>8}")
    for r in rows:
        print(f"{r.size:>5} {r.pages:>7} {r.run_s:>6.1f} | "
              f"    {ms(r.frag)} {r.frag_kb:>6.0f} | "
              f"{ms(r.json)} {r.json_kb:>7.0f} {r.bytes_per_page:>6.0f} | "
              f" {ms(r.model)}")
    for r in rows:
        print(f"{r.size:>5}: {r.url}")
    print("target: fragment p95 <= 50 ms at 1k pages")


if __name__ == "__main__":
    main()
