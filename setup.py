"""Build hook (the metadata is in pyproject.toml): the wheel carries what the page needs.

The design card keeps templates/, static/ and node_modules/ at the top of the checkout;
the wheel's app package gets a copy of them under app/_bundle (see app/assets.py), so an
installed `kvm-shadow-viz serve` works from any directory, offline.  An npm asset missing
at build time (no `npm ci`) fails the build: a wheel without htmx would serve a dead page.
An editable install (`make install`) reads the checkout itself and copies nothing.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _assets_module():  # type: ignore[no-untyped-def]
    """app/assets.py, loaded by path: the project is not importable while it builds."""
    spec = importlib.util.spec_from_file_location("_kvm_viz_assets", ROOT / "app" / "assets.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class BuildPyWithBundle(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        assets = _assets_module()
        bundle = Path(self.build_lib) / "app" / "_bundle"
        shutil.rmtree(bundle, ignore_errors=True)
        for folder in ("templates", "static"):
            source = ROOT / folder
            if not source.is_dir():
                raise SystemExit(f"setup.py: {source} is missing; the wheel needs it")
            shutil.copytree(source, bundle / folder)
        vendor = bundle / "vendor"
        vendor.mkdir(parents=True)
        for asset in assets.ASSETS:
            if asset.npm is None:
                continue  # a Python dependency: read from the installed package
            path = assets.source_path(asset, ROOT)
            if path is None:
                raise SystemExit(f"setup.py: {asset.name} ({asset.what}) is missing under "
                                 f"{ROOT / 'node_modules'}: run `npm ci` before building "
                                 "the wheel")
            shutil.copy2(path, vendor / asset.name)


setup(cmdclass={"build_py": BuildPyWithBundle})
