"""Finished runs on disk, so a restart, a second worker or a second instance never
builds a run again.

A run is a pure function of what it was built from (a scenario spec with its fixes, or a
trace's text with its fixes) and of the model, so its file is named by the sha256 of both:
the build's canonical description and the model's fingerprint (package version plus a hash
of the model's sources, the same for the source tree and the compiled build made from it).
A changed model therefore never finds an old run. Files live in a directory beside the
SQLite database (traces.sqlite3 -> traces.runs/), are written to a temporary file and
renamed into place, and start with a checksum: a file that does not check out or decode is
deleted and the run is built again. The directory is bounded in bytes; past the bound the
least recently used files go.

Beside a run, its parts (app/run_parts.py: the index scan and the layout the web layer
derives from it), each in a file named by the run's digest, the part's name and the part's
version (a fingerprint of the model and the sources computing the part): a changed model
or layout code never reads an old part. Parts are written, checked and dropped like runs,
count in the bound, and go with their run.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from functools import cache
from importlib import metadata
from pathlib import Path

import mmu_model

__all__ = ["RunStore", "fingerprint_of", "model_fingerprint"]

log = logging.getLogger(__name__)

_MAGIC = b"MMURUN1\n"
_HEADER = len(_MAGIC) + 32  # magic, then sha256 of the payload
_SUFFIX = ".run"
_PART_SUFFIX = ".part"


@cache
def model_fingerprint() -> str:
    """The fingerprint of the model this process imported (see fingerprint_of)."""
    try:
        version = metadata.version("kvm-shadow-viz")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return fingerprint_of(Path(mmu_model.__file__).resolve().parent, version)


def fingerprint_of(package: Path, version: str) -> str:
    """The model's version and a sha256 over the names and contents of its source files.

    Compiled extension modules are left out (as scripts/build_compiled.py does for its
    SOURCES.sha256): the compiled build carries the .py files it was made from, so both
    builds of one source tree share runs; tests/model/test_compiled.py holds them equal.
    """
    digest = hashlib.sha256(version.encode() + b"\0")
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (
            ".so", ".pyd", ".pyc"
        ):
            digest.update(path.relative_to(package).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return f"{version}:{digest.hexdigest()}"


class RunStore:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def path(self, digest: str) -> Path:
        return self.directory / f"{digest}{_SUFFIX}"

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def load(self, digest: str) -> bytes | None:
        """The stored bytes of a run, or None (absent, or corrupt and now deleted)."""
        return self._read(self.path(digest),
                          lambda: self.discard(digest, "checksum does not match"))

    def _read(self, path: Path, corrupt: Callable[[], None]) -> bytes | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("run store: cannot read %s: %s", path, exc)
            return None
        payload = memoryview(data)[_HEADER:]  # checked without a copy
        if data[: len(_MAGIC)] != _MAGIC or hashlib.sha256(payload).digest() != data[
            len(_MAGIC):_HEADER
        ]:
            corrupt()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently used goes first
        return data[_HEADER:]

    def discard(self, digest: str, why: str) -> None:
        log.warning("run store: dropping %s (%s); the run will be built again", digest, why)
        self.path(digest).unlink(missing_ok=True)
        self._drop_parts(digest)

    def save(self, digest: str, payload: bytes) -> None:
        """Write atomically (temporary file, then rename), then trim to max_bytes."""
        self._write(self.path(digest), payload)
        self._trim(keep=digest)

    def _write(self, path: Path, payload: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        header = _MAGIC + hashlib.sha256(payload).digest()
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(header)
                out.write(payload)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- parts --------------------------------------------------------------------------
    def part_path(self, digest: str, part: str, version: str) -> Path:
        return self.directory / f"{digest}.{part}-{version}{_PART_SUFFIX}"

    def has_part(self, digest: str, part: str, version: str) -> bool:
        return self.part_path(digest, part, version).is_file()

    def load_part(self, digest: str, part: str, version: str) -> bytes | None:
        """A part of a stored run at `version`, or None (absent, corrupt, or its run is not
        stored: a part never outlives its run)."""
        if not self.has(digest):
            return None
        path = self.part_path(digest, part, version)
        return self._read(path, lambda: self._drop_part(path, "checksum does not match"))

    def save_part(self, digest: str, part: str, version: str, payload: bytes) -> None:
        """Keep a part beside its stored run (nothing if the run is not stored), in place
        of the part's other versions."""
        if not self.has(digest):
            return
        path = self.part_path(digest, part, version)
        for old in self.directory.glob(f"{digest}.{part}-*{_PART_SUFFIX}"):
            if old != path:
                old.unlink(missing_ok=True)
        self._write(path, payload)
        self._trim(keep=digest)

    def _drop_part(self, path: Path, why: str) -> None:
        log.warning("run store: dropping %s (%s); it will be worked out again", path.name, why)
        path.unlink(missing_ok=True)

    def discard_part(self, digest: str, part: str, version: str, why: str) -> None:
        self._drop_part(self.part_path(digest, part, version), why)

    def _drop_parts(self, digest: str) -> None:
        for path in self.directory.glob(f"{digest}.*{_PART_SUFFIX}"):
            path.unlink(missing_ok=True)

    def _trim(self, keep: str) -> None:
        """Drop the least recently used runs, each with its parts, until the directory is
        within max_bytes (never the run `keep`); parts whose run has gone go too."""
        with self._lock:
            runs: dict[str, tuple[float, int]] = {}
            parts: dict[str, list[tuple[int, Path]]] = {}
            for path in self.directory.iterdir():
                if path.name.startswith(".") or path.suffix not in (_SUFFIX, _PART_SUFFIX):
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                if path.suffix == _SUFFIX:
                    runs[path.stem] = (st.st_mtime, st.st_size)
                else:
                    parts.setdefault(path.name.split(".", 1)[0], []).append(
                        (st.st_size, path))
            for digest in parts.keys() - runs.keys():
                for _, path in parts.pop(digest):
                    path.unlink(missing_ok=True)
            size = {d: s + sum(n for n, _ in parts.get(d, ())) for d, (_, s) in runs.items()}
            total = sum(size.values())
            for _, digest in sorted((m, d) for d, (m, _) in runs.items()):
                if total <= self.max_bytes:
                    break
                if digest != keep:
                    self.path(digest).unlink(missing_ok=True)
                    for _, path in parts.get(digest, ()):
                        path.unlink(missing_ok=True)
                    total -= size[digest]

    def count(self) -> int:
        return sum(1 for p in self.directory.glob(f"*{_SUFFIX}") if not p.name.startswith("."))
