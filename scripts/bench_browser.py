"""Browser timings of the visualizer page, in Debian's Chromium, against a real server.

The server is started the way `make run` starts it (the mypyc-compiled model first on
PYTHONPATH, `python -P`, an --app-dir that does not put the checkout ahead of it), on a free
loopback port with its own temporary data directory. For each case it reports:

  first tree, cold  navigation -> the tree first drawn, on a server just started (the run
                    is built by that request)
  first tree, warm  the same, in a new browser context (empty HTTP cache) on the warm server
  step              ArrowRight -> the tree figure updated and no request pending, over
                    `--steps` consecutive steps: median and p95
  bytes/step        bytes received per step (headers and bodies, as sent on the wire:
                    compressed when the server compresses), median and max
  server CPU/step   CPU time the server process spent over the steps, per step (from
                    /proc: unlike wall time, it does not grow with the machine's load)

"Figure updated" is the last plotly_afterplot / plotly_restyle / plotly_update /
plotly_relayout event of #tree after the key press, or #tree's data-drawn-url naming the
new view (set once it is drawn; a step that changes nothing drawn makes no Plotly call);
"no request pending" counts every XMLHttpRequest and fetch the page makes. Both are
observed in the page, so the figures hold for any version of the page (they are used to
compare branches side by side).

    python scripts/bench_browser.py                         # this checkout
    python scripts/bench_browser.py --root /work/main       # another checkout, its own venv
    python scripts/bench_browser.py --cases teaching-small large-10k --steps 20

Not a test: figures depend on the machine (2 shared cores here; they drift 25%).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]
BIG_SPEC = ("scenario=populated-16g&l2_mem_gib=195&pdes_per_pd=512&ptes_per_pt=1&boots=1"
            "&root_zaps_per_boot=1&mode=exclusive&huge_share=0&ept_levels=4")


@dataclass(frozen=True)
class Case:
    name: str
    query: str  # the view, without step
    boot: int | None = None  # start `steps` actions before the end of this L2 boot
    start: int | None = None  # or start at this step
    zoom: float | None = None  # step on the plot zoomed in by this factor (x axis)


CASES = {
    "teaching-small": Case("teaching-small", "scenario=teaching-small"),
    # A lecture's flow: the link opens at step 0, an empty tree, and the class steps on.
    "teaching-small@0": Case("teaching-small@0", "scenario=teaching-small", start=0),
    "large-10k": Case("large-10k", "scenario=large-10k"),
    "boot-loop@50": Case("boot-loop@50", "scenario=boot-loop-bottom-up", boot=50),
    "boot-loop@100": Case("boot-loop@100", "scenario=boot-loop-bottom-up", boot=100),
    "100k-pages": Case("100k-pages", BIG_SPEC),
    # A reader zoomed in on part of a big tree while stepping.
    "large-10k-zoomed": Case("large-10k-zoomed", "scenario=large-10k", zoom=4),
}

# Zooms #tree's x axis in on the middle of the tree (a relayout of its range, as the
# modebar's zoom makes).
ZOOM_JS = """(factor) => { const gd = document.getElementById("tree");
  const [lo, hi] = gd._fullLayout.xaxis.range, half = (hi - lo) / 2 / factor;
  return Plotly.relayout(gd, {"xaxis.range": [(lo + hi) / 2 - half, (lo + hi) / 2 + half]})
    .then(() => true); }"""

# Counts requests in flight and stamps the last time #tree was redrawn, from the first
# script of every document on.
INIT_JS = """
(() => {
  window.__bench = {pending: 0, lastRequestEnd: 0, lastPlot: 0, keyAt: 0};
  const b = window.__bench;
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (...args) {
    b.pending++;
    this.addEventListener("loadend", () => { b.pending--; b.lastRequestEnd = performance.now(); });
    return send.apply(this, args);
  };
  const fetch0 = window.fetch;
  window.fetch = function (...args) {
    b.pending++;
    return fetch0.apply(this, args).then(async (r) => {
      // the body counts: a fetch is pending until it has been read
      const clone = r.clone();
      clone.arrayBuffer().finally(() => { b.pending--; b.lastRequestEnd = performance.now(); });
      return r;
    }, (e) => { b.pending--; b.lastRequestEnd = performance.now(); throw e; });
  };
  // On window, capturing, added before the page's scripts: the first listener a key press
  // reaches (static/nav.js takes the arrows on window when quiet steps are skipped).
  window.addEventListener("keydown", () => { b.keyAt = performance.now(); }, true);
  const hook = () => {
    const gd = document.getElementById("tree");
    if (!gd || !gd.on || gd.__benchHooked) return;
    gd.__benchHooked = true;
    for (const name of ["plotly_afterplot", "plotly_restyle", "plotly_update",
                        "plotly_relayout", "plotly_react"]) {
      gd.on(name, () => { b.lastPlot = performance.now(); });
    }
    // The page marks the view it has drawn (data-drawn-url, as the browser tests wait for):
    // a step that changes nothing drawn is up to date without a Plotly call.
    new MutationObserver(() => { b.lastPlot = performance.now(); })
      .observe(gd, {attributes: true, attributeFilter: ["data-drawn-url"]});
  };
  setInterval(hook, 5);
})();
"""

DRAWN_JS = """() => {
  const gd = document.getElementById("tree");
  // A tree with points, or one the page has marked drawn (an empty tree, at step 0).
  return !!(gd && gd._fullLayout && gd.querySelector(".main-svg") && Array.isArray(gd.data)
            && (gd.data.some((t) => t.x && t.x.length > 0) || !!gd.dataset.drawnUrl));
}"""

# A step is done when the view shows a later step (with "skip the steps that change
# nothing" on, the default, ArrowRight goes to the next step that changes something), the
# tree is redrawn after the key press and no request is pending.
STEP_DONE_JS = """(current) => {
  const b = window.__bench;
  const panel = document.getElementById("tree-panel");
  return !!(panel && Number(panel.dataset.step) > current && b.pending === 0
            && b.lastPlot > b.keyAt);
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """The app as `make run` serves it: compiled model first on sys.path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.work = tempfile.TemporaryDirectory(prefix="bench-browser-")
        python = root / ".venv" / "bin" / "python"
        env = {**os.environ, "PYTHONPATH": f"{root / 'build' / 'compiled'}:{root}",
               "MMU_VIZ_DB": str(Path(self.work.name) / "traces.sqlite3")}
        command = [str(python), "-P", "-m", "uvicorn", "app.main:create_app", "--factory",
                   "--app-dir", str(root / "build" / "compiled"),
                   "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        self.log = open(Path(self.work.name) / "server.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(command, cwd=root, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: {Path(self.log.name).read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("server did not start within 60 s")

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=600) as response:
            text: str = response.read().decode()
            return text

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (nan without /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        self.work.cleanup()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_step(server: Server, case: Case, steps: int) -> int | None:
    """The step to start stepping from (None: the view's default step)."""
    if case.boot is None:
        return case.start
    rows = list(csv.DictReader(io.StringIO(server.get(f"/api/boots.csv?v=1&{case.query}"))))
    end = int(rows[case.boot - 1]["action_step"])
    return max(end - steps, 0)


def first_tree(browser: Any, url: str, timeout_ms: float) -> tuple[float, Any, Any]:
    """Seconds from navigation to the first tree drawn, in a new context (kept open)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_init_script(INIT_JS)
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=timeout_ms)
    page.wait_for_function(DRAWN_JS, timeout=timeout_ms, polling=10)
    return time.perf_counter() - started, context, page


def step_times(page: Any, context: Any, steps: int, timeout_ms: float) -> tuple[list[float],
                                                                                list[int]]:
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    received = [0]
    cdp.on("Network.loadingFinished",
           lambda event: received.__setitem__(0, received[0] + int(event["encodedDataLength"])))
    page.wait_for_function("() => window.__bench.pending === 0", timeout=timeout_ms)
    page.wait_for_timeout(300)  # let lazy panels (the per-boot chart) settle
    page.wait_for_function("() => window.__bench.pending === 0", timeout=timeout_ms)
    times: list[float] = []
    sizes: list[int] = []
    for _ in range(steps):
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        current = int(page.evaluate("() => document.getElementById('tree-panel').dataset.step"))
        received[0] = 0
        page.keyboard.press("ArrowRight")
        page.wait_for_function(STEP_DONE_JS, arg=current, timeout=timeout_ms, polling=5)
        page.wait_for_timeout(50)  # anything the step still sets off (a lazy refetch) counts
        page.wait_for_function("() => window.__bench.pending === 0", timeout=timeout_ms)
        done = page.evaluate(
            "() => Math.max(window.__bench.lastPlot, window.__bench.lastRequestEnd)"
            " - window.__bench.keyAt")
        times.append(done / 1e3)
        sizes.append(received[0])
    cdp.detach()
    return times, sizes


def bench_case(browser: Any, root: Path, case: Case, steps: int) -> dict[str, Any]:
    server = Server(root)
    timeout_ms = 300_000
    try:
        start = start_step(server, case, steps)
        # skip=0: every ArrowRight is one step, as in earlier rounds' figures (with quiet steps
        # skipped, teaching-small has 22 steps that change something: too few for 20 steps).
        url = (f"{server.url}/?v=1&{case.query}&skip=0"
               + ("" if start is None else f"&step={start}"))
        cold, context, page = first_tree(browser, url, timeout_ms)
        context.close()
        warm, context, page = first_tree(browser, url, timeout_ms)
        if case.zoom is not None:
            page.evaluate(ZOOM_JS, case.zoom)
        cpu = server.cpu_seconds()
        times, sizes = step_times(page, context, steps, timeout_ms)
        cpu = (server.cpu_seconds() - cpu) / steps
        context.close()
    finally:
        server.stop()
    return {"case": case.name, "cold": cold, "warm": warm,
            "median": statistics.median(times), "p95": pct(times, 0.95),
            "bytes_median": statistics.median(sizes), "bytes_max": max(sizes),
            "server_cpu": cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--root", type=Path, default=HERE,
                        help="checkout to serve (its .venv and build/compiled)")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    root = args.root.resolve()
    for need in (root / ".venv" / "bin" / "python", root / "build" / "compiled"):
        if not need.exists():
            parser.error(f"{need} is missing: run `make install compiled` in {root}")
    if not Path(CHROMIUM).is_file():
        parser.error(f"Chromium not found at {CHROMIUM} (set CHROMIUM_PATH)")
    from playwright.sync_api import sync_playwright

    print(f"root {root}, {args.steps} steps per case")
    print(f"{'case':<16}{'first tree cold s':>18}{'warm s':>8}{'step p50 ms':>13}"
          f"{'p95 ms':>8}{'bytes/step p50':>16}{'max':>9}{'server CPU ms/step':>20}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            for name in args.cases:
                r = bench_case(browser, root, CASES[name], args.steps)
                print(f"{r['case']:<16}{r['cold']:>18.2f}{r['warm']:>8.2f}"
                      f"{r['median'] * 1e3:>13.0f}{r['p95'] * 1e3:>8.0f}"
                      f"{r['bytes_median']:>16,.0f}{r['bytes_max']:>9,}"
                      f"{r['server_cpu'] * 1e3:>20.1f}", flush=True)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
