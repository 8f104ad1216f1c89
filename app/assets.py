"""THE list of vendored browser assets: where each comes from and where it is served.

Each asset is served at /static/vendor/<name>.  It comes from

- an npm package (package.json; `npm ci` puts it under node_modules/): the wheel build
  (setup.py) copies it into the package, and fails if it is missing;
- or a Python package that is a dependency in pyproject.toml: read from the installed
  package at run time.

At run time an asset is looked up in the wheel's copy first (app/_bundle/vendor), then at
its source under the project root (a checkout) or in the installed Python package.

Standard library only: setup.py imports this file before the project is installed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ASSETS", "BUNDLE", "Asset", "asset_by_name", "locate"]

# Where the wheel build puts templates/, static/ and vendor/ (absent in a checkout).
BUNDLE = Path(__file__).resolve().parent / "_bundle"


@dataclass(frozen=True)
class Asset:
    name: str          # served at /static/vendor/<name>
    media_type: str
    npm: str | None = None      # "<package>/<path>" under node_modules/
    python: str | None = None   # "<package>/<glob>" inside an installed Python package

    @property
    def what(self) -> str:
        """Where it comes from, for messages: 'npm htmx.org/dist/htmx.min.js'."""
        return f"npm {self.npm}" if self.npm else f"Python package {self.python}"


ASSETS: tuple[Asset, ...] = (
    Asset("htmx.min.js", "text/javascript", npm="htmx.org/dist/htmx.min.js"),
    Asset("idiomorph.min.js", "text/javascript", npm="idiomorph/dist/idiomorph.min.js"),
    Asset("plotly.min.js", "text/javascript",
          npm="plotly.js-basic-dist-min/plotly-basic.min.js"),
    Asset("swagger-ui-bundle.js", "text/javascript",
          python="fastapi_offline/static/swagger-ui-bundle.js"),
    Asset("swagger-ui.css", "text/css", python="fastapi_offline/static/swagger-ui.css"),
)


def asset_by_name(name: str) -> Asset | None:
    return next((a for a in ASSETS if a.name == name), None)


def _in_python_package(spec: str) -> Path | None:
    package, _, pattern = spec.partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return None
    base = Path(next(iter(found.submodule_search_locations)))
    return next(iter(sorted(base.glob(pattern))), None)


def source_path(asset: Asset, root: Path) -> Path | None:
    """The asset at its source: node_modules/ under `root`, or the Python package."""
    if asset.npm is not None:
        path = root / "node_modules" / asset.npm
        return path if path.is_file() else None
    assert asset.python is not None
    return _in_python_package(asset.python)


def locate(asset: Asset, root: Path) -> Path | None:
    """The file to serve: the wheel's copy, else the source."""
    bundled = BUNDLE / "vendor" / asset.name
    if bundled.is_file():
        return bundled
    return source_path(asset, root)
