"""Runs persist: stored beside the database, keyed by the build and the model's
fingerprint, so a second app (a restart, another worker or instance) serves a run without
building it; a corrupt file is ignored and the run built again."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from app.build_jobs import ScenarioBuild
from app.builds import BuildPool
from app.main import create_app
from app.run_store import RunStore, fingerprint_of, model_fingerprint
from app.runs import RunCache
from app.settings import Settings
from mmu_model import get_scenario

ROOT = Path(__file__).resolve().parents[2]
COMPILED = ROOT / "build" / "compiled"
VIEW = "/?v=1&scenario=teaching-small&boots=2"


def _settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "db" / "traces.sqlite3")


def _view(settings: Settings) -> tuple[str, dict[str, int]]:
    """Open VIEW in a fresh app: where its run came from, and the app's build counters."""
    with TestClient(create_app(settings)) as client:
        response = client.get(VIEW)
        assert response.status_code == 200
        return response.headers["x-run-source"], client.get("/healthz").json()["builds"]


def test_the_store_lives_beside_the_database(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert settings.runs_dir == tmp_path / "db" / "traces.runs"


def test_a_second_app_serves_the_run_from_the_store_without_building(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    source, builds = _view(settings)
    assert (source, builds["built"]) == ("built", 1)
    files = list(settings.runs_dir.glob("*.run"))
    assert len(files) == 1
    assert not list(settings.runs_dir.glob(".tmp-*"))  # written atomically, nothing left
    source, builds = _view(settings)  # a restart: empty memory, same files
    assert (source, builds["built"]) == ("store", 0)


def test_a_corrupt_file_is_ignored_and_the_run_built_again(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _view(settings)
    (path,) = settings.runs_dir.glob("*.run")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    source, builds = _view(settings)
    assert (source, builds["built"]) == ("built", 1)
    source, _ = _view(settings)  # the rebuilt file is good
    assert source == "store"


def test_a_file_that_checks_out_but_does_not_decode_is_rebuilt(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs", max_bytes=1 << 30)
    job = ScenarioBuild(get_scenario("teaching-small").spec)  # type: ignore[arg-type]
    digest = job.digest(model_fingerprint())
    store.save(digest, b"not a run file")
    pool = BuildPool(workers=1, max_in_flight=1, cpu_limit_s=30)
    try:
        cache = RunCache(pool=pool, store=store)
        assert cache.get(job.key, job).run.n_events > 0
        assert cache.counts == {"memory": 0, "store": 0, "built": 1, "store_rejected": 1}
    finally:
        pool.close()


def test_a_changed_model_has_another_fingerprint(tmp_path: Path) -> None:
    package = tmp_path / "mmu_model"
    shutil.copytree(ROOT / "mmu_model", package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    before = fingerprint_of(package, "0.1.0")
    assert fingerprint_of(package, "0.2.0") != before  # the version counts
    (package / "fast.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "mmu.cpython-311.pyc").write_bytes(b"stale")
    assert fingerprint_of(package, "0.1.0") == before  # compiled files do not
    mmu = package / "mmu.py"
    mmu.write_text(mmu.read_text() + "\n# one more line\n")
    assert fingerprint_of(package, "0.1.0") != before  # any source change does
    job = ScenarioBuild(get_scenario("teaching-small").spec)  # type: ignore[arg-type]
    assert job.digest(before) != job.digest(fingerprint_of(package, "0.1.0"))


def test_the_store_is_bounded_and_drops_the_least_recently_used(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs", max_bytes=2500)
    for name in ("a", "b"):
        store.save(name, b"x" * 1000)
    os.utime(store.path("a"), (1, 1))
    os.utime(store.path("b"), (2, 2))
    assert store.load("a") is not None  # touched: now the most recently used
    store.save("c", b"x" * 1000)  # 3 x (1000 + header) > 2500: one must go
    assert sorted(p.stem for p in store.directory.glob("*.run")) == ["a", "c"]


@pytest.mark.skipif(not (COMPILED / "mmu_model").is_dir(), reason="make compiled first")
def test_a_run_of_the_compiled_model_encodes_and_decodes() -> None:
    """The run format round-trips runs of the mypyc-compiled model too (in a fresh interpreter that
    imports the compiled build first, the way `make run` does)."""
    script = (
        "import mmu_model.mmu as m; assert not m.__file__.endswith('.py'), m.__file__\n"
        "from app.run_codec import decode_run, encode_run\n"
        "from mmu_model import run_named\n"
        "run = run_named('boot-loop-bottom-up')\n"
        "back = decode_run(encode_run(run))\n"
        "step = run.last_step() // 2\n"
        "assert back.snapshot(step) == run.snapshot(step)\n"
        "assert back.per_boot == run.per_boot and back.final_stats == run.final_stats\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{COMPILED}:{ROOT}"}
    result = subprocess.run([sys.executable, "-P", "-c", script], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_warming_builds_into_the_store_what_it_does_not_hold(tmp_path: Path) -> None:
    """The built-ins are built once, at first start: a second start finds them stored."""
    store = RunStore(tmp_path / "runs", max_bytes=1 << 30)
    small = get_scenario("teaching-small").spec
    assert small is not None
    jobs = [ScenarioBuild(small), ScenarioBuild(small.replace(boots=2))]
    pool = BuildPool(workers=1, max_in_flight=1, cpu_limit_s=30)
    try:
        cache = RunCache(pool=pool, store=store)
        assert cache.warm(jobs) == 2
        assert store.count() == 2
        assert len(cache) == 0  # into the store, not into memory
        assert RunCache(pool=pool, store=store).warm(jobs) == 0
        assert pool.counts["built"] == 2
    finally:
        pool.close()
