"""Build hook (the metadata is in pyproject.toml): the wheel carries what the page needs.

The design card keeps templates/, static/ and node_modules/ at the top of the checkout;
the wheel's app package gets a copy of them under app/_bundle (see app/assets.py), so an
installed `kvm-shadow-viz serve` works from any directory, offline.  An npm asset missing
at build time (no `npm ci`) fails the build: a wheel without htmx would serve a dead page.
An editable install (`make install`) reads the checkout itself and copies nothing.

The wheel also carries the model compiled by mypyc (the modules scripts/build_compiled.py
names) when a C compiler is there; without one, or with KVM_SHADOW_VIZ_PURE=1, it carries
the pure model only and says so.  mmu_model's .py files are in the wheel either way.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _load(name: str, path: Path) -> Any:
    """A project file loaded by path: the project is not importable while it builds."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _assets_module() -> Any:
    return _load("_kvm_viz_assets", ROOT / "app" / "assets.py")


def _notice(message: str) -> None:
    sys.stderr.write(f"setup.py: {message}\n")


def _compiled_model() -> list[Any]:
    """mypyc extensions of the model's hot modules, or [] (the pure model) with a notice."""
    if "bdist_wheel" not in sys.argv:  # editable installs and sdists stay pure
        return []
    if os.environ.get("KVM_SHADOW_VIZ_PURE") == "1":
        _notice("KVM_SHADOW_VIZ_PURE=1: the wheel carries the pure-Python model")
        return []
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")[:1]
    if not compiler or shutil.which(compiler[0]) is None:
        _notice(f"no C compiler ({compiler[0] if compiler else 'CC unset'}): the wheel "
                "carries the pure-Python model, which runs about 3x slower")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _notice("mypyc is not installed: the wheel carries the pure-Python model")
        return []
    names = _load("_kvm_viz_build_compiled", ROOT / "scripts" / "build_compiled.py").COMPILED
    extensions = mypycify([f"mmu_model/{name}.py" for name in names])
    for extension in extensions:
        extension.optional = True  # a failed C build leaves the pure module, with a warning
    _notice(f"compiling {len(names)} model modules with mypyc")
    return list(extensions)


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


setup(cmdclass={"build_py": BuildPyWithBundle}, ext_modules=_compiled_model())
