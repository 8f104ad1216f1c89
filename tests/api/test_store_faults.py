"""Storage faults on a real SQLite file: 503 with Retry-After, then recovery without restart.

Each test breaks the app's own database file the way an operator or another process
would, checks what the API and /healthz answer meanwhile, mends it, and checks that the
same app instance serves again.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import HX, TOP_DOWN_TRACE

LINE = "gpa = {gpa:x}, old = 0, new = 0, level = 1, flood = 0\n"


def _upload(client: Any, gpa: int) -> Any:
    return client.post("/api/traces", json={"text": LINE.format(gpa=gpa)})


@pytest.fixture
def stored(client: Any, settings: Any) -> tuple[Any, str]:
    """The client, with one trace stored, its store's busy wait cut to 0.2 s."""
    client.app.state.services.store.busy_timeout = 0.2
    created = _upload(client, 0x1000)
    assert created.status_code == 201
    return client, created.json()["id"]


def _assert_503(response: Any, state_words: str) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["field"] == "store"
    assert state_words in body["detail"]


def test_a_database_locked_by_another_process(stored: tuple[Any, str], settings: Any) -> None:
    """Another connection holds the write lock: writes are 503, reads still work (WAL).

    In WAL mode a reader never waits for a writer, so a stored trace and the page stay
    available; a new upload waits the busy timeout, then is told to retry.
    """
    client, trace_id = stored
    other = sqlite3.connect(settings.db_path)
    other.execute("BEGIN EXCLUSIVE")
    try:
        _assert_503(_upload(client, 0x2000), "locked")
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json()["store"]["state"] == "locked"
        assert client.get(f"/api/traces/{trace_id}").status_code == 200
        page = client.post("/traces", data={"text": LINE.format(gpa=0x3000)}, headers=HX)
        assert page.status_code == 503
        assert int(page.headers["retry-after"]) > 0
        assert "locked" in page.text
    finally:
        other.rollback()
        other.close()
    assert _upload(client, 0x2000).status_code == 201
    assert client.get("/healthz").json()["store"]["state"] == "ok"


@contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """Make `path` unwritable: chmod for a normal user; root ignores modes, so chattr +i."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)],
                                        check=False).returncode != 0:
        pytest.skip("running as root on a filesystem without chattr +i: cannot make the "
                    "database read-only")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_a_read_only_database(stored: tuple[Any, str], settings: Any) -> None:
    """A read-only file: new uploads 503, re-uploading a stored trace still 200, reads work."""
    client, trace_id = stored
    with _read_only(settings.db_path):
        _assert_503(_upload(client, 0x2000), "read-only")
        again = _upload(client, 0x1000)
        assert again.status_code == 200
        assert again.json()["id"] == trace_id
        assert client.get(f"/api/traces/{trace_id}").status_code == 200
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json()["store"]["state"] == "read-only"
    assert _upload(client, 0x2000).status_code == 201
    assert client.get("/healthz").status_code == 200


def test_a_deleted_database_is_made_again_and_the_loss_is_reported(
        stored: tuple[Any, str], settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The file is deleted under the running app: the schema is made again on demand.

    The trace stored before is gone (404), and that is not silent: the log says so and
    /healthz carries the notice, naming how many traces the old file held when last
    counted (1: the fixture's upload; /healthz counts them).
    """
    client, trace_id = stored
    assert client.get("/healthz").json()["store"]["traces"] == 1
    for suffix in ("", "-wal", "-shm"):
        Path(f"{settings.db_path}{suffix}").unlink(missing_ok=True)
    assert client.get(f"/api/traces/{trace_id}").status_code == 404
    created = client.post("/api/traces", json={"text": TOP_DOWN_TRACE.read_text()})
    assert created.status_code == 201
    health = client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["store"]["traces"] == 1
    assert "vanished" in health["store"]["notice"]
    assert "held 1 trace" in health["store"]["notice"]
    assert any("vanished" in r.getMessage() for r in caplog.records)


def test_a_database_directory_that_cannot_be_made(client: Any, tmp_path: Path) -> None:
    """The database's directory is under a regular file: 503 naming the store, not a 500."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    client.app.state.services.store.path = blocker / "db" / "traces.sqlite3"
    _assert_503(_upload(client, 0x1000), "directory")
    assert client.get("/healthz").json()["store"]["state"] == "unavailable"
