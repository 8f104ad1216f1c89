"""Server time to build the step fragment and the snapshot JSON at ~1k, ~10k and ~100k pages,
on the server as users run it: this script starts `make run` (the compiled model, a fresh
database in a temporary directory) on a free loopback port and times HTTP requests to it.

For each size: the first page (GET /?..., the run built in a worker, stored, loaded, its
layout and first tree computed: cold), with the CPU seconds it cost the server process and
its build workers (from /proc: what a shared machine does not inflate, unlike the wall
time), then
  - the htmx step fragment: GET /?...&step=s with HX-Request and X-Mmu-Drawn naming the
                            step drawn before, as the page sends it (what a Next click costs),
  - the snapshot JSON:      GET /api/snapshot?...&step=s (every page of the step),
over `--repeat` consecutive, distinct steps from the step the tree is fully built at (so no
per-step cache helps). Prints p50/p95 in ms, the fragment and JSON sizes as sent (gzip) and
unpacked, and JSON bytes per shadow page. Not a timed test: numbers depend on the machine.

    python scripts/bench_web.py                 # all three sizes (100k takes about a minute)
    python scripts/bench_web.py --sizes 1k 10k --repeat 50
    python scripts/bench_web.py --url http://127.0.0.1:8000   # a server already running
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx

ROOT = Path(__file__).resolve().parent.parent
# pdes_per_pd=512 puts a PT page under every PDE: about 513 shadow pages per GiB of L2.
SIZES: dict[str, dict[str, str]] = {
    "1k": {"l2_mem_gib": "2"},
    "10k": {"l2_mem_gib": "20"},
    "100k": {"l2_mem_gib": "195"},
}
COMMON = {"pdes_per_pd": "512", "ptes_per_pt": "1", "boots": "1", "root_zaps_per_boot": "1",
          "mode": "exclusive", "huge_share": "0", "ept_levels": "4"}
BASE = "populated-16g"  # any simulated scenario: every spec field is overridden below
HX = {"HX-Request": "true", "HX-Target": "view"}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:8.1f} {pct(values, 0.95) * 1e3:8.1f}"


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, user + system CPU seconds) of every process we may read."""
    out: dict[int, tuple[int, float]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS)
    return out


def server_cpu(root: int) -> tuple[float, float] | None:
    """CPU seconds so far of the server (the process running uvicorn under `root`, the pid
    of make) and of all its descendants (the fork server and the build workers); None when
    /proc does not show them (a --url server, another OS)."""
    procs = _cpu_seconds()
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in procs.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    servers = [pid for pid in tree if pid != root and _is_uvicorn(pid)]
    if not servers:
        return None
    server = min(servers)
    return procs[server][1], sum(procs[p][1] for p in tree
                                 if p not in (root, server) and p in procs)


def _is_uvicorn(pid: int) -> bool:
    """Whether `pid` is Python running uvicorn (not a shell starting it, not the fork
    server)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read().split(b"\0")
    except OSError:
        return False
    return b"python" in argv[0] and b"uvicorn" in argv and b"-m" in argv


@contextmanager
def make_run(work: Path) -> Iterator[tuple[str, int]]:
    """`make run` on a free loopback port with its database in `work`; yields its URL and
    the pid of make (whose descendants are the server and its build workers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MMU_VIZ_DB": str(work / "traces.sqlite3"), "MMU_VIZ_WARM": "0"}
    env.pop("PYTHONPATH", None)
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(["make", "-s", "run", "HOST=127.0.0.1", f"PORT={port}"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # make may compile the model first
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"make run did not start:\n{(work / 'server.log').read_text()}")
            try:
                model = httpx.get(f"{url}/healthz", timeout=2).json()["model"]
                break
            except (httpx.HTTPError, KeyError):
                time.sleep(0.3)
        print(f"make run on {url}: the {model['kind']} model from {model['package']}")
        yield url, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


@dataclass
class Result:
    size: str
    pages: int
    first_s: float
    first_cpu: tuple[float, float] | None  # server, build workers (CPU seconds)
    frag: list[float]
    json: list[float]
    frag_kb: float
    frag_sent_kb: float
    json_kb: float
    json_sent_kb: float
    bytes_per_page: float
    url: str


def _sent(response: httpx.Response) -> int:
    return int(response.headers.get("content-length") or len(response.content))


def bench(client: httpx.Client, size: str, repeat: int, pid: int | None) -> Result:
    params = {"v": "1", "scenario": BASE, **COMMON, **SIZES[size]}
    query = urlencode(params)

    cpu_before = server_cpu(pid) if pid is not None else None
    started = time.perf_counter()
    client.get(f"/?{query}").raise_for_status()
    first_s = time.perf_counter() - started
    cpu_after = server_cpu(pid) if pid is not None else None
    first_cpu = None
    if cpu_before is not None and cpu_after is not None:
        first_cpu = (cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1])
    first = client.get(f"/api/snapshot?{query}")  # untimed: the step and its pages
    first.raise_for_status()
    data = first.json()
    step0, last = data["step"], data["last_step"]
    pages = len(data["pages"])
    steps = [min(step0 + 1 + i, last) for i in range(2 * repeat)]
    frag_steps, json_steps = steps[0::2], steps[1::2]

    # Untimed: the drawn view the first step starts from (its canonical URL).
    start = client.get(f"/?{query}&step={step0}", headers=HX)
    start.raise_for_status()
    drawn = start.headers["HX-Push-Url"]

    frag_t: list[float] = []
    frag_bytes: list[tuple[int, int]] = []
    for s in frag_steps:
        t = time.perf_counter()
        r = client.get(f"/?{query}&step={s}", headers=HX | {"X-Mmu-Drawn": drawn})
        frag_t.append(time.perf_counter() - t)
        r.raise_for_status()
        drawn = r.headers["HX-Push-Url"]
        frag_bytes.append((len(r.content), _sent(r)))

    json_t: list[float] = []
    json_bytes: list[tuple[int, int]] = []
    json_pages: list[int] = []
    for s in json_steps:
        t = time.perf_counter()
        r = client.get(f"/api/snapshot?{query}&step={s}")
        json_t.append(time.perf_counter() - t)
        r.raise_for_status()
        json_bytes.append((len(r.content), _sent(r)))
        json_pages.append(len(r.json()["pages"]))

    return Result(
        size=size, pages=pages, first_s=first_s, first_cpu=first_cpu, frag=frag_t,
        json=json_t,
        frag_kb=statistics.median(b for b, _ in frag_bytes) / 1024,
        frag_sent_kb=statistics.median(s for _, s in frag_bytes) / 1024,
        json_kb=statistics.median(b for b, _ in json_bytes) / 1024,
        json_sent_kb=statistics.median(s for _, s in json_bytes) / 1024,
        bytes_per_page=statistics.median(
            b / max(p, 1) for (b, _), p in zip(json_bytes, json_pages, strict=True)
        ),
        url=f"/?{query}",
    )


def run_all(url: str, sizes: list[str], repeat: int, pid: int | None = None) -> list[Result]:
    with httpx.Client(base_url=url, timeout=300, headers={"Accept-Encoding": "gzip"}) as client:
        return [bench(client, size, repeat, pid) for size in sizes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeat", type=int, default=30, help="steps timed per measure")
    parser.add_argument("--url", help="time this (loopback) server instead of starting one")
    args = parser.parse_args()

    if args.url:
        rows = run_all(args.url, args.sizes, args.repeat)
    else:
        with tempfile.TemporaryDirectory() as tmp, make_run(Path(tmp)) as (url, pid):
            rows = run_all(url, args.sizes, args.repeat, pid)

    print(f"step fragment and snapshot JSON, {args.repeat} distinct steps each; times in ms; "
          "KiB unpacked/sent (gzip)")
    print(f"{'size':>5} {'pages':>7} {'page s':>7} | {'fragment p50':>12} {'p95':>8} "
          f"{'KiB':>11} | {'json p50':>8} {'p95':>8} {'KiB':>11} {'B/page':>6}")
    for r in rows:
        print(f"{r.size:>5} {r.pages:>7} {r.first_s:>7.1f} | "
              f"    {ms(r.frag)} {r.frag_kb:>5.0f}/{r.frag_sent_kb:<5.0f} | "
              f"{ms(r.json)} {r.json_kb:>5.0f}/{r.json_sent_kb:<5.0f} {r.bytes_per_page:>6.0f}")
    for r in rows:
        if r.first_cpu is not None:
            print(f"{r.size:>5}: first page {r.first_s:.2f} s; CPU {r.first_cpu[0]:.2f} s in "
                  f"the server, {r.first_cpu[1]:.2f} s in its build workers")
    for r in rows:
        print(f"{r.size:>5}: {r.url}")
    print("target: fragment p95 <= 50 ms at 1k pages")


if __name__ == "__main__":
    main()
