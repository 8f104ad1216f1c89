"""Settings read from the environment once, at app creation.

MMU_VIZ_DB          SQLite file of stored traces (default ./data/traces.sqlite3; made on first use)
MMU_VIZ_ROOT        holds templates/, static/ and node_modules/ (default: the checkout)
HTMX_JS             htmx.min.js (default: node_modules/htmx.org/dist/htmx.min.js under the root)
PLOTLY_JS           the plotly.js bundle (default: npm's plotly.js-basic-dist-min under the root:
                    scatter and bar are all the page draws)
MMU_VIZ_MAX_PAGES   largest estimated shadow page count a run may have (default 150000)
MMU_VIZ_RUN_CACHE   how many runs the in-memory cache keeps (default 12)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

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
    plotly_js: Path | None = None
    max_shadow_pages: int = DEFAULT_MAX_SHADOW_PAGES
    run_cache_size: int = 12

    @classmethod
    def from_env(cls) -> Settings:
        root = _project_root()
        htmx = os.environ.get("HTMX_JS")
        plotly_js = os.environ.get("PLOTLY_JS")
        return cls(
            db_path=Path(os.environ.get("MMU_VIZ_DB") or "data/traces.sqlite3"),
            root=root,
            htmx_js=Path(htmx) if htmx else None,
            plotly_js=Path(plotly_js) if plotly_js else None,
            max_shadow_pages=_env_int("MMU_VIZ_MAX_PAGES", DEFAULT_MAX_SHADOW_PAGES),
            run_cache_size=_env_int("MMU_VIZ_RUN_CACHE", 12),
        )

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

    @property
    def plotly_path(self) -> Path:
        if self.plotly_js is not None:
            return self.plotly_js
        return self.root / "node_modules" / "plotly.js-basic-dist-min" / "plotly-basic.min.js"
