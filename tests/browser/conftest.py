"""Fixtures for the browser tests: the real server, headless Chromium, a fresh page.

- ``server_url``: the app run as ``python -m uvicorn app.main:create_app --factory``
  on a free loopback port with its own SQLite file (MMU_VIZ_DB), once per session.
- ``browser``: Debian's Chromium (``CHROMIUM_PATH``, else /usr/bin/chromium) driven by
  Playwright. Missing Chromium fails the tests when REQUIRE_BROWSER=1 or CI=true,
  and skips them otherwise.
- ``page``: a new context (1400x900, base_url = server_url) and page per test, with
  ``page.console_errors`` (console errors and uncaught page errors) and
  ``page.requests`` (every request URL) for the test to assert on; a failing test
  leaves a screenshot in artifacts/screenshots.
- ``artifacts_dir``: artifacts/screenshots, gitignored.

Every test under tests/browser is marked ``browser`` and runs after all others.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DEFAULT_CHROMIUM = "/usr/bin/chromium"
SERVER_START_TIMEOUT_S = 60.0
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 900}

_outcome_key = pytest.StashKey[dict[str, pytest.TestReport]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests in this directory `browser` and move them to the end of the run.

    They are the slowest, and running them last keeps Playwright's event loop away
    from every other test.
    """
    del config
    browser_items = []
    other_items = []
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            browser_items.append(item)
        else:
            other_items.append(item)
    items[:] = other_items + browser_items


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so `page` can tell that its test failed."""
    del call
    report: pytest.TestReport = yield
    item.stash.setdefault(_outcome_key, {})[report.when] = report
    return report


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _must_have_browser() -> bool:
    return os.environ.get("REQUIRE_BROWSER") == "1" or os.environ.get("CI") == "true"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """artifacts/screenshots at the repository root (gitignored), created if needed."""
    path = ROOT / "artifacts" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start the real server on a free port and yield its base URL, e.g. http://127.0.0.1:PORT.

    Waits until GET /healthz answers 200; fails with the server's output if it
    exits or does not answer within 60 s. The server is stopped at session end.
    """
    work = tmp_path_factory.mktemp("server")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MMU_VIZ_DB": str(work / "traces.sqlite3"), "PYTHONUNBUFFERED": "1"}
    log_path = work / "server.log"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_healthy(proc, f"{base_url}/healthz", log_path)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_until_healthy(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"server exited with code {proc.returncode} before {url} answered\n"
                f"--- server output ---\n{log_path.read_text(errors='replace')}",
                pytrace=False,
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
                last_error = f"status {response.status}"
        except urllib.error.HTTPError as exc:
            last_error = f"status {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last_error = repr(exc)
        time.sleep(0.2)
    pytest.fail(
        f"server did not answer 200 on {url} within {SERVER_START_TIMEOUT_S:.0f} s "
        f"(last: {last_error})\n--- server output ---\n{log_path.read_text(errors='replace')}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium from CHROMIUM_PATH (default /usr/bin/chromium), via sync Playwright."""
    executable = os.environ.get("CHROMIUM_PATH") or DEFAULT_CHROMIUM
    if not Path(executable).is_file():
        reason = f"Chromium not found at {executable} (apt-get install chromium, or CHROMIUM_PATH)"
        if _must_have_browser():
            pytest.fail(f"{reason}; browser tests are required here (REQUIRE_BROWSER/CI)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(
    request: pytest.FixtureRequest, browser: Any, server_url: str, artifacts_dir: Path
) -> Iterator[Any]:
    """A page in a fresh context (1400x900, base_url = server_url).

    page.console_errors: console errors as "text [source url]" (a 404 names the missing
        URL; note Chromium asks for /favicon.ico) and uncaught page errors as "uncaught: ...".
    page.requests: URL of every request the page made, in order.
    page.server_url: the base URL.
    page.foreign_requests(): the requests that went to any host but the test server.
    """
    context = browser.new_context(viewport=VIEWPORT, base_url=server_url)
    pg = context.new_page()
    pg.console_errors = []
    pg.requests = []
    pg.server_url = server_url
    pg.foreign_requests = lambda: foreign_requests(pg.requests, server_url)

    def on_console(message: Any) -> None:
        if message.type == "error":
            where = message.location.get("url")
            pg.console_errors.append(f"{message.text} [{where}]" if where else message.text)

    pg.on("console", on_console)
    pg.on("pageerror", lambda error: pg.console_errors.append(f"uncaught: {error}"))
    pg.on("request", lambda req: pg.requests.append(req.url))
    try:
        yield pg
    finally:
        reports = request.node.stash.get(_outcome_key, {})
        if any(report.failed for report in reports.values()):
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
            try:
                pg.screenshot(path=str(artifacts_dir / f"FAILED-{name}.png"), full_page=True)
            except Exception as exc:  # a crashed page must not hide the test's own failure
                sys.stderr.write(f"could not take a failure screenshot: {exc}\n")
        context.close()


def foreign_requests(requests: list[str], server_url: str) -> list[str]:
    """The request URLs that went anywhere but the test server (data: and blob: are local)."""
    return [
        url
        for url in requests
        if not (url.startswith((f"{server_url}/", "data:", "blob:")) or url == server_url)
    ]
