"""The wheel is the tool: built here, installed in a fresh venv, served from elsewhere.

What `pipx install <wheel>` then `kvm-shadow-viz serve` does, step by step: the wheel is
built from this checkout (setup.py copies templates/, static/ and htmx into it), installed
into a new virtual environment, and started from a directory that holds nothing of the
project; the page, htmx, plotly and the /docs assets must come from it, and
`kvm-shadow-viz --version` must print the one version, pyproject.toml's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _run(*args: str | Path, cwd: Path, timeout: float = 600) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, check=False)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ directory of a fresh venv with the wheel built from this checkout."""
    work = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
         "-q", "-w", work / "dist", ROOT, cwd=work)
    (wheel,) = (work / "dist").glob("kvm_shadow_viz-*.whl")
    _run(sys.executable, "-m", "venv", work / "venv", cwd=work)
    bin_dir = work / "venv" / "bin"
    _run(bin_dir / "python", "-m", "pip", "install", "--disable-pip-version-check", "-q",
         wheel, cwd=work)
    return bin_dir


def test_version_is_the_one_in_pyproject(installed: Path, tmp_path: Path) -> None:
    """`kvm-shadow-viz --version` and `python -m mmu_model --version` print pyproject's."""
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert _run(installed / "kvm-shadow-viz", "--version", cwd=tmp_path).strip() == (
        f"kvm-shadow-viz {expected}")
    assert _run(installed / "python", "-m", "mmu_model", "--version",
                cwd=tmp_path).strip() == f"kvm-shadow-viz {expected}"


def test_installed_model_gives_the_source_model_s_numbers(installed: Path,
                                                          tmp_path: Path) -> None:
    """The wheel's model (compiled where it could be) prints what the source model prints."""
    args = ["simulate", "--scenario", "teaching-small", "--boots", "3", "--json"]
    wheel_out = json.loads(_run(installed / "kvm-shadow-viz", *args, cwd=tmp_path))
    source_out = json.loads(_run(sys.executable, "-m", "mmu_model", *args, cwd=ROOT))
    assert wheel_out == source_out


def test_installed_server_serves_the_page_and_its_assets(installed: Path,
                                                         tmp_path: Path) -> None:
    """serve from an empty directory: the page, htmx, plotly and /docs all load."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMU_VIZ_", "PYTHON"))}
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [str(installed / "kvm-shadow-viz"), "serve", "--port", str(port),
         "--db", str(tmp_path / "traces.sqlite3")],
        cwd=elsewhere, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                status, body = _get(f"{base}/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.3)
        assert status == 200, body
        # setup.py compiles the model with mypyc where a C compiler is found.
        has_cc = shutil.which(shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC")
                                          or "cc")[0])
        assert json.loads(body)["model"]["kind"] == ("compiled" if has_cc else "source")
        status, page = _get(f"{base}/")
        assert status == 200
        scripts = re.findall(rb'<script src="([^"]+)"', page)
        assert b"/static/vendor/htmx.min.js" in scripts
        assert b"/static/vendor/plotly.min.js" in scripts
        for src in scripts:
            status, body = _get(base + src.decode())
            assert status == 200, src
            assert len(body) > 1000, src
        assert b"htmx" in _get(f"{base}/static/vendor/htmx.min.js")[1][:4000]
        assert b"plotly" in _get(f"{base}/static/vendor/plotly.min.js")[1][:4000].lower()
        docs = _get(f"{base}/docs")[1]
        for src in re.findall(rb'(?:src|href)="(/[^"]+)"', docs):
            assert _get(base + src.decode())[0] == 200, src
        assert (tmp_path / "traces.sqlite3").is_file()
        assert not any(elsewhere.iterdir())  # nothing written where it was started
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
