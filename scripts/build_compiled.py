"""Compile mmu_model with mypyc into build/compiled/ (the source tree stays pure Python).

The compiled package is the same source, type-checked and turned into C extension modules
by mypyc; `make run`, `make cli` and `make bench` put build/compiled first on PYTHONPATH.
Tests run the source (they monkeypatch model functions, which compiled code ignores), and
tests/model/test_compiled.py checks that both give identical CLI output.
Usage: python scripts/build_compiled.py [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The modules a simulation spends its time in, the recorder (record.py, timeline.py),
# which encodes every event of a recorded run, and run_scan.py, which reads them all back
# once per run for the web layer's index.  The rest stay interpreted: the CLI,
# parsing, narration, the scenario catalogue, the run's file format.
COMPILED = (
    "bitmap", "constants", "role", "page", "stats", "fixes", "rmap", "kvm", "mmu", "paging_tmpl",
    "page_track", "guest", "simulate", "record", "timeline",
    "run_scan",
)


DIGEST_FILE = "SOURCES.sha256"


def source_digest(package: Path) -> str:
    """sha256 over the names and contents of the package's files (sources and data)."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".so":
            name = path.relative_to(package).as_posix()
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "compiled")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    work = out.parent / (out.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copytree(ROOT / "mmu_model", work / "mmu_model",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    (work / DIGEST_FILE).write_text(source_digest(work / "mmu_model") + "\n")
    modules = [f"mmu_model/{name}.py" for name in COMPILED]
    mypyc = Path(sys.executable).with_name("mypyc")
    result = subprocess.run([str(mypyc), *modules], cwd=work, capture_output=True, text=True)
    if result.returncode:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        print(f"build_compiled: mypyc failed (exit {result.returncode})", file=sys.stderr)
        return 1
    shutil.rmtree(work / "build", ignore_errors=True)
    shutil.rmtree(work / ".mypy_cache", ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    work.rename(out)
    built = len(list((out / "mmu_model").glob("*.so")))
    print(f"build_compiled: {built} modules compiled into {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
