"""The mypyc-compiled model (build/compiled, made by `make compiled`) is the source model.

`make run`, `make cli` and `make bench` run the compiled build, while the rest of the suite
runs the source (it monkeypatches model functions, which compiled code would ignore).  So
this file holds the two to each other: the same CLI output byte for byte, and the same
recorded event log, on scenarios that reach every code path the fixes and modes switch.
Each side runs in its own interpreter with ``python -P`` so that only PYTHONPATH decides
which mmu_model is imported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPILED = ROOT / "build" / "compiled"


def _build_script() -> Any:
    spec = importlib.util.spec_from_file_location("build_compiled",
                                                  ROOT / "scripts" / "build_compiled.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compiled() -> Path:
    """The compiled build, which must have been made from the current sources."""
    if not (COMPILED / "mmu_model").is_dir():
        if os.environ.get("REQUIRE_COMPILED"):
            pytest.fail("build/compiled is missing: `make compiled` builds it")
        pytest.skip("build/compiled is missing: `make compiled` builds it")
    build = _build_script()
    built_from = (COMPILED / build.DIGEST_FILE).read_text().strip()
    assert built_from == build.source_digest(ROOT / "mmu_model"), (
        "build/compiled is stale (mmu_model changed since it was built): run `make compiled`"
    )
    return COMPILED


# Covers: both zap orders and modes, 4- and 5-level EPT, huge pages, L2 activity clearing
# flood counts, every fix on and off, recycling under a small quota, a PT-per-region L2,
# and both seed trace replays.
CLI_RUNS: tuple[tuple[str, ...], ...] = (
    ("simulate", "--scenario", "teaching-small"),
    ("simulate", "--boots", "12"),
    ("simulate", "--scenario", "boot-loop-top-down", "--boots", "6"),
    ("simulate", "--boots", "6", "--fix", "track-write-zap"),
    ("simulate", "--boots", "4", "--no-fix", "flood-detection", "--no-fix",
     "unlink-children-zap"),
    ("simulate", "--boots", "20", "--quota", "300", "--l2-mem-gib", "4"),
    ("simulate", "--boots", "4", "--mode", "shared", "--huge-share", "0.3",
     "--pdes-per-pd", "8", "--flood-clear-prob", "0.3"),
    ("simulate", "--boots", "3", "--ept-levels", "4", "--order", "top-down"),
    ("simulate", "--scenario", "populated-16g", "--l2-mem-gib", "1"),
    ("replay", "mmu_model/data/seed-bottom-up.trace"),
    ("replay", "mmu_model/data/seed-top-down.trace", "--fix", "track-write-zap"),
)

# Prints, per recorded run, the event and action counts and digests of the whole log: of
# the decoded event views (kinds, call paths, arguments, pages touched, counter deltas,
# narration) and of the run's serialized record (every column, page states included).
RECORD_SCRIPT = """
import hashlib, json, sys
import mmu_model.mmu
from mmu_model import get_scenario, run_scenario
out = {"mmu": mmu_model.mmu.__file__}
for name, kw in [("teaching-small", {}),
                 ("boot-loop-bottom-up", {"boots": 3, "mode": "shared", "huge_share": 0.3,
                                          "flood_clear_prob": 0.3}),
                 ("boot-loop-bottom-up", {"boots": 12, "quota": 200, "l2_mem_gib": 2})]:
    run = run_scenario(get_scenario(name).spec.replace(**kw), record=True)
    log = repr((run.events(0, run.n_events), run.all_pages())).encode()
    snap = run.snapshot(run.n_actions // 2, "action")
    out[name + repr(sorted(kw.items()))] = [
        run.n_events, run.n_actions, hashlib.sha256(log).hexdigest(),
        hashlib.sha256(run.to_bytes()).hexdigest(), len(snap.pages),
        snap.stats["mmu_shadow_pages"],
    ]
json.dump(out, sys.stdout)
"""


def _python(pythonpath: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    return subprocess.run([sys.executable, "-P", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def _compiled_path(compiled: Path) -> str:
    return f"{compiled}{os.pathsep}{ROOT}"


def test_compiled_build_is_really_compiled(compiled: Path) -> None:
    """The hot modules import as C extensions from build/compiled, not as source."""
    modules = ("mmu", "guest", "simulate", "record", "timeline")
    probe = (f"import importlib; print(*(importlib.import_module('mmu_model.' + m).__file__ "
             f"for m in {modules!r}))")
    files = _python(_compiled_path(compiled), "-c", probe).stdout.split()
    assert len(files) == len(modules)
    for file in files:
        assert file.startswith(str(compiled)), file
        assert file.endswith(".so"), file


@pytest.mark.slow
@pytest.mark.parametrize("args", CLI_RUNS, ids=lambda a: " ".join(a[1:]) or a[0])
def test_compiled_cli_output_is_the_sources(compiled: Path, args: tuple[str, ...]) -> None:
    """`--json` output is byte-identical: every stat, orphan count, per-boot row and
    discrepancy comes out the same from the compiled model as from the source."""
    source = _python(str(ROOT), "-m", "mmu_model", *args, "--json")
    built = _python(_compiled_path(compiled), "-m", "mmu_model", *args, "--json")
    assert source.returncode == 0, source.stderr
    assert built.returncode == 0, built.stderr
    assert json.loads(source.stdout)["events"] > 0
    assert built.stdout == source.stdout


@pytest.mark.slow
def test_compiled_recording_is_the_sources(compiled: Path) -> None:
    """Recorded runs log the same events with the same page changes, so the web page
    (which serves the compiled model under `make run`) shows what the source computes."""
    source = _python(str(ROOT), "-c", RECORD_SCRIPT)
    built = _python(_compiled_path(compiled), "-c", RECORD_SCRIPT)
    assert source.returncode == 0, source.stderr
    assert built.returncode == 0, built.stderr
    source_out, built_out = json.loads(source.stdout), json.loads(built.stdout)
    assert source_out.pop("mmu").endswith(".py")
    assert built_out.pop("mmu").endswith(".so")
    assert built_out == source_out
