"""`make run` serves the compiled model: start the server exactly as `make run` does (the
make target itself) and ask it which model module it and its build workers loaded; and a
request that goes away cancels its build on the real server (uvicorn's disconnect)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_run_is_ready() -> bool:
    """`make run` would start at once: installed and compiled, nothing to rebuild."""
    return subprocess.run(["make", "-q", "install", "compiled"], cwd=ROOT,
                          capture_output=True).returncode == 0


class MakeRunServer:
    """`make run` on a free loopback port with its own database (MMU_VIZ_DB)."""

    def __init__(self, db: Path, env: dict[str, str] | None = None) -> None:
        self.db = db
        self.env = env or {}
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = db.parent / f"server-{self.port}.log"

    @contextmanager
    def running(self) -> Iterator[MakeRunServer]:
        env = {**os.environ, "MMU_VIZ_DB": str(self.db), "MMU_VIZ_WARM": "0",
               "PYTHONUNBUFFERED": "1", **self.env}
        env.pop("PYTHONPATH", None)  # as a user's shell: make sets it
        with self.log.open("wb") as log:
            proc = subprocess.Popen(
                ["make", "-s", "run", "HOST=127.0.0.1", f"PORT={self.port}"], cwd=ROOT,
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)  # its own process group: make, shell and uvicorn
        try:
            self._wait_healthy(proc)
            yield self
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def _wait_healthy(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"make run exited ({proc.returncode}):\n{self.output()}")
            try:
                self.health()
                return
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"make run did not answer /healthz in {START_TIMEOUT_S:.0f} s:\n"
                    f"{self.output()}")

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as response:
            health: dict[str, Any] = json.load(response)
            return health

    def output(self) -> str:
        return self.log.read_text(errors="replace")


needs_make_run = pytest.mark.skipif(
    not make_run_is_ready(), reason="make install compiled first (make test does)")


@needs_make_run
def test_make_run_serves_the_compiled_model(tmp_path: Path) -> None:
    with MakeRunServer(tmp_path / "traces.sqlite3").running() as server:
        health = server.health()
        compiled = str(ROOT / "build" / "compiled" / "mmu_model")
        assert health["model"] == {"kind": "compiled", "package": compiled}
        # The workers are forked for the first build (and at start-up): same model.
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/?v=1&scenario=teaching-small").status_code == 200
        assert server.health()["worker_model"] == {"kind": "compiled", "package": compiled}
        assert f"serving the compiled model from {compiled}" in server.output()


@needs_make_run
def test_a_request_that_goes_away_cancels_its_build(tmp_path: Path) -> None:
    # A 100,000-page tree (195 GiB, a PT under every PDE): about 800,000 events, some 2 s
    # to build with the compiled model, under the cost limit.
    slow = ("/api/snapshot?scenario=populated-16g&l2_mem_gib=195&ptes_per_pt=1&ept_levels=4"
            "&mode=exclusive&root_zaps_per_boot=1&step=0")
    with MakeRunServer(tmp_path / "traces.sqlite3").running() as server:
        with pytest.raises(httpx.ReadTimeout), httpx.Client(base_url=server.url) as client:
            client.get(slow, timeout=0.5)  # the client gives up after half a second
        deadline = time.monotonic() + 10
        while server.health()["builds"]["cancelled"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        builds = server.health()["builds"]
        assert builds["cancelled"] == 1
        assert builds["built"] == 0
        assert server.health()["builds_in_flight"] == 0
