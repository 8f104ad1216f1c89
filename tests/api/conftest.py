"""Fixtures for the web layer's TestClient tests: an app on a temporary SQLite file."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # Starlette >= 1.x warns that its TestClient will move off httpx; it still works.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

HX = {"HX-Request": "true"}
HX_RESTORE = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
ROOT = Path(__file__).resolve().parents[2]
TOP_DOWN_TRACE = ROOT / "tests" / "fixtures" / "seed-top-down.trace"
BOTTOM_UP_TRACE = ROOT / "tests" / "fixtures" / "seed-bottom-up.trace"
# teaching-small booted three times: a quick multi-boot run.
MULTI_BOOT = "/?v=1&scenario=teaching-small&boots=3"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "db" / "traces.sqlite3")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for a whole module, so its run cache is reused across read-only tests."""
    db = tmp_path_factory.mktemp("shared") / "traces.sqlite3"
    with TestClient(create_app(Settings(db_path=db))) as test_client:
        yield test_client
