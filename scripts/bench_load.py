"""Load on loopback, bounded: a closed loop of clients, a lecture hall, and an attack.

Against a server you started (the way users run it: `make run PORT=8801`):

    python scripts/bench_load.py --url http://127.0.0.1:8801 closed --clients 50
    python scripts/bench_load.py --url http://127.0.0.1:8801 closed --clients 200
    python scripts/bench_load.py --url http://127.0.0.1:8801 hall
    python scripts/bench_load.py --url http://127.0.0.1:8801 attack --pid <server pid>

closed  each client sends its next GET as soon as the last one answered, for --seconds
        (default 20): a mix of the page, the htmx step fragment, /api/snapshot and
        /api/events at random steps of a few built-ins (MIX below).
hall    a lecture hall: --clients (default 200) open the same teaching-small link within
        the first 2 s, as a browser does (the page, then each script and stylesheet it
        names, gzip accepted), then step once every 2 s (the Next button's htmx request,
        plus the boots panel when the fragment has one) for --seconds (default 30):
        about 100 requests/s.
attack  the killer URL of issue 11 and 6 concurrent distinct boots=10000 specs: how long
        each takes to be refused, /healthz latency meanwhile (probed every 50 ms), and the
        server's RSS (its process and its children, with --pid).

Every mode also probes /healthz every 0.5 s. Reports p50/p95/max latency per request kind
and errors (any status >= 400 or transport error; in attack mode, refusals are counted as
expected). Refuses any host but loopback, more than 500 clients or 120 s. Not a timed
test: figures depend on the machine (2 cores shared here) and go in README.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import random
import re
import ssl
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from bench_web import pct  # the script directory is on sys.path

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_CLIENTS = 500
MAX_SECONDS = 120.0
HX = {"HX-Request": "true", "HX-Target": "view"}
LINK = "/?v=1&scenario=teaching-small"
MIX_SCENARIOS = ("teaching-small", "seed-bottom-up", "boot-loop-bottom-up")
MIX: dict[str, float] = {"fragment": 0.4, "page": 0.2, "snapshot": 0.2, "events": 0.2}
KILLER = ("/api/snapshot?scenario=populated-16g&huge_share=1&l2_mem_gib=1024"
          "&root_zaps_per_boot=16&boots=24&step=0")
# The view the page has drawn: static/app.js sends it as X-Mmu-Drawn with each step, and
# the step fragment is the tree's delta from it (the response cache keys on it too).
_DRAWN = re.compile(r'id="tree-panel"[^>]*?data-url="([^"]*)"', re.S)
_NEXT = re.compile(r'id="btn-next"[^>]*?hx-get="([^"]+)"')
_BOOTS = re.compile(r'id="boots-panel"[^>]*?hx-get="([^"]+)"')
_ASSETS = re.compile(r'<(?:script[^>]*?src|link[^>]*?href)="(/static/[^"]+)"')


@dataclass
class Tally:
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    bytes_in: int = 0
    refusals_expected: bool = False  # attack: a 4xx or 503 is the right answer

    async def get(self, client: httpx.AsyncClient, kind: str, url: str,
                  headers: dict[str, str] | None = None, *, raw: bool = False
                  ) -> httpx.Response | None:
        """GET and time it; `raw`: read the body as sent, without unpacking it (what a
        browser's cache keeps of a script; spares this process the gunzip)."""
        started = time.perf_counter()
        try:
            if raw:
                async with client.stream("GET", url, headers=headers) as response:
                    async for _ in response.aiter_raw():
                        pass
            else:
                response = await client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            self.errors[f"{kind}: {type(exc).__name__}"] += 1
            return None
        self.times[kind].append(time.perf_counter() - started)
        self.statuses[response.status_code] += 1
        self.bytes_in += int(response.headers.get("content-length")
                             or response.num_bytes_downloaded)
        refused = response.status_code in (422, 429, 503) and kind != "healthz"
        if response.status_code >= 400 and not (refused and self.refusals_expected):
            self.errors[f"{kind}: {response.status_code}"] += 1
        return response


def report(tally: Tally, seconds: float) -> None:
    every = [t for kind, ts in tally.times.items() if kind != "healthz" for t in ts]
    print(f"{'kind':<12} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for kind, ts in sorted(tally.times.items()):
        print(f"{kind:<12} {len(ts):>6} {statistics.median(ts) * 1e3:>8.1f} "
              f"{pct(ts, 0.95) * 1e3:>8.1f} {max(ts) * 1e3:>8.1f}")
    if every:
        print(f"{'all but hz':<12} {len(every):>6} {statistics.median(every) * 1e3:>8.1f} "
              f"{pct(every, 0.95) * 1e3:>8.1f} {max(every) * 1e3:>8.1f}")
    print(f"{len(every) / seconds:.1f} req/s over {seconds:.1f} s, "
          f"{tally.bytes_in / 1e6:.1f} MB received; statuses {dict(tally.statuses)}")
    print(f"errors: {sum(tally.errors.values())} {dict(tally.errors) or ''}")


async def probe_health(client: httpx.AsyncClient, tally: Tally, stop: asyncio.Event,
                       every_s: float) -> None:
    while not stop.is_set():
        await tally.get(client, "healthz", "/healthz")
        await asyncio.sleep(every_s)


_NO_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # loopback HTTP: never used, but httpx
#                   would otherwise load the CA bundle for every client (~15 ms of CPU each)


def client_for(base: str, timeout: float = 60.0) -> httpx.AsyncClient:
    """One browser: its own connection (browsers open up to 6; one is the harder case)."""
    return httpx.AsyncClient(base_url=base, timeout=timeout, verify=_NO_TLS,
                             limits=httpx.Limits(max_connections=1),
                             headers={"Accept-Encoding": "gzip"})


async def run_clients(base: str, tally: Tally, stop: asyncio.Event,
                      clients: list[Coroutine[Any, Any, None]], seconds: float) -> None:
    """Run the clients (and a /healthz probe) for `seconds`, then stop them and report."""
    started = time.perf_counter()
    async with client_for(base) as probe:
        tasks = [asyncio.create_task(c) for c in clients]
        health = asyncio.create_task(probe_health(probe, tally, stop, 0.5))
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks, health)
    report(tally, time.perf_counter() - started)


# ------------------------------------------------------------------------------ closed loop
async def last_steps(base: str) -> dict[str, int]:
    async with client_for(base, timeout=120) as client:
        out = {}
        for name in MIX_SCENARIOS:
            response = await client.get(f"/api/snapshot?v=1&scenario={name}")
            response.raise_for_status()
            out[name] = int(response.json()["last_step"])
        return out


async def closed(base: str, clients: int, seconds: float) -> None:
    last = await last_steps(base)  # also builds (or loads) the runs, untimed
    tally = Tally()
    stop = asyncio.Event()
    kinds, weights = list(MIX), list(MIX.values())

    async def one(seed: int) -> None:
        rng = random.Random(seed)
        async with client_for(base) as client:
            while not stop.is_set():
                name = rng.choice(MIX_SCENARIOS)
                query = f"v=1&scenario={name}&step={rng.randint(0, last[name])}"
                kind = rng.choices(kinds, weights)[0]
                if kind == "fragment":
                    await tally.get(client, kind, f"/?{query}", HX)
                elif kind == "page":
                    await tally.get(client, kind, f"/?{query}")
                elif kind == "snapshot":
                    await tally.get(client, kind, f"/api/snapshot?{query}")
                else:
                    await tally.get(client, kind, f"/api/events?{query}&start=0&count=100")

    print(f"closed loop: {clients} clients, mix {MIX} over {', '.join(MIX_SCENARIOS)}")
    await run_clients(base, tally, stop, [one(i) for i in range(clients)], seconds)


# ------------------------------------------------------------------------------ lecture hall
async def hall(base: str, clients: int, seconds: float, every_s: float) -> None:
    tally = Tally()
    stop = asyncio.Event()

    async def student(n: int) -> None:
        rng = random.Random(n)
        await asyncio.sleep(rng.uniform(0, every_s))  # the class clicks within 2 s
        async with client_for(base) as client:
            page = await tally.get(client, "page", LINK)
            if page is None or page.status_code != 200:
                return
            for asset in dict.fromkeys(_ASSETS.findall(page.text)):
                await tally.get(client, "asset", html.unescape(asset), raw=True)
            text = page.text
            while not stop.is_set():
                await asyncio.sleep(every_s)
                found = _NEXT.search(text)
                if found is None or stop.is_set():
                    return  # the last step: this student is done
                # Steps while the class is still loading the page (the first 6 s) apart.
                kind = "step" if time.perf_counter() - opened > 6.0 else "step (open)"
                drawn = _DRAWN.search(text)
                headers = {**HX, "X-Mmu-Drawn": html.unescape(drawn.group(1))} if drawn else HX
                step = await tally.get(client, kind, html.unescape(found.group(1)), headers)
                if step is None or step.status_code != 200:
                    continue
                text = step.text
                boots = _BOOTS.search(text)
                if boots is not None:
                    await tally.get(client, "boots", html.unescape(boots.group(1)), HX)

    async with client_for(base, timeout=120) as warm:
        (await warm.get(LINK)).raise_for_status()  # the link's run, built or loaded
    opened = time.perf_counter()
    print(f"lecture hall: {clients} clients open {LINK}, then one step every {every_s:g} s")
    await run_clients(base, tally, stop, [student(i) for i in range(clients)], seconds)


# ------------------------------------------------------------------------------ attack
def rss_mib(pid: int) -> float:
    """RSS of `pid` and its children (the build workers), in MiB."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pids.extend(int(c) for c in children)
        except (OSError, AttributeError):
            continue
    return total / 1024


async def attack(base: str, pid: int | None) -> None:
    tally = Tally(refusals_expected=True)
    stop = asyncio.Event()
    peak = [0.0]

    async def watch_rss() -> None:
        while pid and not stop.is_set():
            peak[0] = max(peak[0], rss_mib(pid))
            await asyncio.sleep(0.05)

    async def hit(kind: str, url: str) -> None:
        async with client_for(base) as client:
            response = await tally.get(client, kind, url)
            if response is not None:
                print(f"  {kind}: {response.status_code} "
                      f"{response.headers.get('retry-after', '')} "
                      f"{response.text[:160]!r}")

    urls = [("killer", KILLER)] + [
        (f"boots10k-{seed}",
         f"/api/snapshot?scenario=boot-loop-bottom-up&boots=10000&seed={seed}&step=0")
        for seed in range(1, 7)]
    before = rss_mib(pid) if pid else 0.0
    async with client_for(base) as probe:
        health = asyncio.create_task(probe_health(probe, tally, stop, 0.05))
        rss = asyncio.create_task(watch_rss())
        started = time.perf_counter()
        await asyncio.gather(*(hit(kind, url) for kind, url in urls))
        elapsed = time.perf_counter() - started
        await asyncio.sleep(2)  # and /healthz a little longer
        stop.set()
        await asyncio.gather(health, rss)
    print(f"attack: all {len(urls)} answered within {elapsed:.2f} s")
    if pid:
        print(f"server RSS (with its workers): {before:.0f} MiB before, "
              f"peak {peak[0]:.0f} MiB")
    report(tally, elapsed + 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the server, on loopback")
    sub = parser.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("closed")
    c.add_argument("--clients", type=int, default=50)
    c.add_argument("--seconds", type=float, default=20)
    h = sub.add_parser("hall")
    h.add_argument("--clients", type=int, default=200)
    h.add_argument("--seconds", type=float, default=30)
    h.add_argument("--every", type=float, default=2.0, help="seconds between steps")
    a = sub.add_parser("attack")
    a.add_argument("--pid", type=int, help="the server's pid, to read its RSS")
    args = parser.parse_args()
    host = urlsplit(args.url).hostname
    if host not in LOOPBACK:
        print(f"bench_load: --url must be on loopback ({', '.join(sorted(LOOPBACK))}), "
              f"got {host!r}", file=sys.stderr)
        return 2
    clients = getattr(args, "clients", 1)
    seconds = getattr(args, "seconds", 1.0)
    if not 1 <= clients <= MAX_CLIENTS or not 0 < seconds <= MAX_SECONDS:
        print(f"bench_load: --clients must be 1..{MAX_CLIENTS} and --seconds at most "
              f"{MAX_SECONDS:g}", file=sys.stderr)
        return 2
    base = args.url.rstrip("/")
    print(f"bench_load {args.mode} against {base} (load generator pid {os.getpid()})")
    if args.mode == "closed":
        asyncio.run(closed(base, clients, seconds))
    elif args.mode == "hall":
        asyncio.run(hall(base, clients, seconds, args.every))
    else:
        asyncio.run(attack(base, args.pid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
