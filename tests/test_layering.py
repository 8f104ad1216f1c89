"""The layering rule: mmu_model is a pure model on the standard library alone.

app/ (the web layer) may import mmu_model; mmu_model must never import app/ nor
any third-party package, so the model can be used, tested and type-checked
without the web stack installed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "mmu_model"
ALLOWED_TOP_LEVEL = frozenset(sys.stdlib_module_names) | {"mmu_model"}


def model_files() -> list[Path]:
    return sorted(MODEL.rglob("*.py"))


def absolute_imports(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line, dotted module name) for each absolute import in one file.

    Relative imports (``from . import x``) stay inside the package and are skipped.
    Calls of importlib.import_module / __import__ with a literal name count too.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else None
            )
            first = node.args[0]
            if (
                name in {"import_module", "__import__"}
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and not first.value.startswith(".")
            ):
                yield node.lineno, first.value


def test_the_walk_finds_the_model_package() -> None:
    """The checks below look at real files: mmu_model/__init__.py is among them."""
    assert MODEL / "__init__.py" in model_files()


def test_model_imports_only_the_standard_library_and_itself() -> None:
    """Every absolute import in mmu_model/**/*.py names a stdlib module or mmu_model."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: import {module}"
        for path in model_files()
        for line, module in absolute_imports(path)
        if module.partition(".")[0] not in ALLOWED_TOP_LEVEL
    ]
    assert not offenders, "mmu_model must use the standard library only:\n" + "\n".join(offenders)


def test_model_never_imports_the_web_layer() -> None:
    """No file in mmu_model imports app or anything under it."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: import {module}"
        for path in model_files()
        for line, module in absolute_imports(path)
        if module == "app" or module.startswith("app.")
    ]
    assert not offenders, "mmu_model must not depend on the web layer:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os.path", ["os.path"]),
        ("from app.main import create_app", ["app.main"]),
        ("from . import exceptions\nfrom .x import y", []),
        ("import importlib\nimportlib.import_module('networkx')", ["importlib", "networkx"]),
        ("__import__('app')", ["app"]),
    ],
)
def test_the_import_walk_sees_each_form_of_import(
    tmp_path: Path, source: str, expected: list[str]
) -> None:
    """The checker itself: plain, from-, relative and dynamic imports are read right."""
    path = tmp_path / "sample.py"
    path.write_text(source, encoding="utf-8")
    assert [module for _, module in absolute_imports(path)] == expected


def test_importing_every_model_module_loads_no_third_party_module() -> None:
    """At run time too: importing each mmu_model module pulls in only stdlib modules.

    Runs in a fresh interpreter and compares sys.modules before and after, so
    whatever site-packages loads at start-up (editable-install hooks) is left out.
    mmu_model.__main__ is skipped: importing it would run the CLI.
    """
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in model_files()
        if path.name != "__main__.py"
    )
    script = (
        "import importlib, sys\n"
        "before = set(sys.modules)\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    outside = [m for m in loaded if m.partition(".")[0] not in ALLOWED_TOP_LEVEL]
    assert not outside, f"importing mmu_model loaded non-stdlib modules: {outside}"
