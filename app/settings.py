"""Settings read from the environment once, at app creation.

MMU_VIZ_DB          SQLite file of stored traces (default ./data/traces.sqlite3; made on first use)
MMU_VIZ_ROOT        holds templates/, static/ and node_modules/ (default: the checkout)
HTMX_JS             htmx.min.js (default: node_modules/htmx.org/dist/htmx.min.js under the root)
MMU_VIZ_MAX_PAGES   largest estimated shadow page count a run may have (default 150000)
MMU_VIZ_RUN_CACHE   how many runs the in-memory cache keeps (default 12)
MMU_VIZ_RUN_CACHE_MB     bytes of runs the in-memory cache keeps, in MiB (default 256)
MMU_VIZ_RESPONSE_CACHE_MB bytes of whole responses kept for repeated GETs, in MiB (default 64)
MMU_VIZ_RUN_STORE_MB     bytes of runs kept on disk beside the database, in MiB (default 2048)
MMU_VIZ_BUILD_WORKERS    build worker processes (default: the cores this process may use)
MMU_VIZ_BUILDS_IN_FLIGHT builds running or queued at once; more get 503 (default 2 x workers)
MMU_VIZ_BUILD_CPU_S      CPU seconds one build may use before its worker is killed (default 30)
MMU_VIZ_BUILD_MEMORY_MB  address space of a build worker, in MiB (default 3072)
MMU_VIZ_MAX_EVENTS       largest estimated run, in recorded events (default 1000000)
MMU_VIZ_BUILDS_PER_MIN   new builds one client may start per minute; more get 429 (default 30)
MMU_VIZ_WARM             1: build the built-in scenarios into the run store at start-up,
                         in the background (default 1; Settings() in tests: off)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import plotly

from mmu_model.cost import DEFAULT_MAX_EVENTS

__all__ = ["DEFAULT_MAX_SHADOW_PAGES", "Settings"]

# Runs estimated above this many shadow pages are refused with a 422: 100,000 pages is the
# size the UI is built to stay interactive at, and the estimate is not exact.
DEFAULT_MAX_SHADOW_PAGES = 150_000


def _project_root() -> Path:
    """The directory with templates/ and static/: the checkout, or the working directory."""
    env = os.environ.get("MMU_VIZ_ROOT")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "templates").is_dir():
        return checkout
    return Path.cwd()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    db_path: Path = field(default_factory=lambda: Path("data/traces.sqlite3"))
    root: Path = field(default_factory=_project_root)
    htmx_js: Path | None = None
    plotly_js: Path = field(
        default_factory=lambda: Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    )
    max_shadow_pages: int = DEFAULT_MAX_SHADOW_PAGES
    run_cache_size: int = 12
    run_cache_mb: int = 256
    run_store_mb: int = 2048
    response_cache_mb: int = 64
    build_workers: int = field(default_factory=_cores)
    builds_in_flight: int = 0  # 0: twice the workers
    build_cpu_s: int = 30
    build_memory_mb: int = 3072
    max_events: int = DEFAULT_MAX_EVENTS
    builds_per_client_minute: int = 30
    warm_builtins: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        root = _project_root()
        htmx = os.environ.get("HTMX_JS")
        return cls(
            db_path=Path(os.environ.get("MMU_VIZ_DB") or "data/traces.sqlite3"),
            root=root,
            htmx_js=Path(htmx) if htmx else None,
            max_shadow_pages=_env_int("MMU_VIZ_MAX_PAGES", DEFAULT_MAX_SHADOW_PAGES),
            run_cache_size=_env_int("MMU_VIZ_RUN_CACHE", 12),
            run_cache_mb=_env_int("MMU_VIZ_RUN_CACHE_MB", 256),
            run_store_mb=_env_int("MMU_VIZ_RUN_STORE_MB", 2048),
            response_cache_mb=_env_int("MMU_VIZ_RESPONSE_CACHE_MB", 64),
            build_workers=_env_int("MMU_VIZ_BUILD_WORKERS", _cores()),
            builds_in_flight=_env_int("MMU_VIZ_BUILDS_IN_FLIGHT", 0),
            build_cpu_s=_env_int("MMU_VIZ_BUILD_CPU_S", 30),
            build_memory_mb=_env_int("MMU_VIZ_BUILD_MEMORY_MB", 3072),
            max_events=_env_int("MMU_VIZ_MAX_EVENTS", DEFAULT_MAX_EVENTS),
            builds_per_client_minute=_env_int("MMU_VIZ_BUILDS_PER_MIN", 30),
            warm_builtins=_env_int("MMU_VIZ_WARM", 1) != 0,
        )

    @property
    def runs_dir(self) -> Path:
        """The run store: beside the database (data/traces.sqlite3 -> data/traces.runs)."""
        return self.db_path.with_name(self.db_path.stem + ".runs")

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def static_dir(self) -> Path:
        return self.root / "static"

    @property
    def htmx_path(self) -> Path:
        if self.htmx_js is not None:
            return self.htmx_js
        return self.root / "node_modules" / "htmx.org" / "dist" / "htmx.min.js"
