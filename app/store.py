"""SQLite store of uploaded traces, addressed by mmu_model.trace.trace_digest.

- One connection per call (the store is shared between request threads), in WAL mode so
  readers never wait for a writer, with a short busy timeout so no request waits long.
- A fault is a StoreUnavailable (the API answers 503 with Retry-After), never a traceback:
  "locked" (another process holds the write lock), "read-only", "unavailable" (the file or
  its directory cannot be opened).  Nothing is cached about the file, so the store recovers
  by itself when the fault goes away: a missing table is created again on demand.
- The file's identity (device, inode) is remembered; when the file vanished or was replaced
  by another one, the store logs it once and keeps a notice that /healthz shows, since the
  traces stored before are not in the new file.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from app.errors import StoreUnavailable
from mmu_model.trace import MAX_TRACE_BYTES, count_trace_lines, trace_digest

__all__ = ["BUSY_TIMEOUT_S", "MAX_NAME_CHARS", "StoreHealth", "StoredTrace", "TraceStore",
           "is_trace_id"]

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 200
# How long a write waits for another writer before the request is answered 503.
BUSY_TIMEOUT_S = 2.0
_ID = re.compile(r"[0-9a-f]{64}")
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS traces (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    text       TEXT NOT NULL,
    bytes      INTEGER NOT NULL,
    lines      INTEGER NOT NULL,
    created_at REAL NOT NULL
)
"""

# sqlite3 error names -> (state, what to tell the user, seconds to Retry-After)
_FAULTS: dict[str, tuple[str, str, int]] = {
    "SQLITE_BUSY": ("locked", "the trace database is locked by another process", 2),
    "SQLITE_LOCKED": ("locked", "the trace database is locked by another process", 2),
    "SQLITE_READONLY": ("read-only", "the trace database is read-only", 30),
    "SQLITE_CANTOPEN": ("unavailable", "the trace database file cannot be opened", 10),
    "SQLITE_IOERR": ("unavailable", "the trace database file cannot be read or written", 10),
    "SQLITE_FULL": ("unavailable", "the disk holding the trace database is full", 30),
    "SQLITE_PERM": ("read-only", "the trace database may not be written", 30),
}


def is_trace_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class StoredTrace:
    id: str
    name: str
    text: str
    bytes: int
    lines: int
    created_at: float


@dataclass(frozen=True, slots=True)
class StoreHealth:
    state: str  # ok | locked | read-only | unavailable
    message: str
    traces: int | None
    notice: str | None  # the file vanished or was replaced since the store first saw it

    def as_json(self) -> dict[str, object]:
        return {"state": self.state, "message": self.message, "traces": self.traces,
                "notice": self.notice}


class TraceStore:
    def __init__(self, path: Path, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._identity: tuple[int, int] | None = None
        self._last_count: int | None = None
        self._notice: str | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ the file
    def _watch_identity(self) -> None:
        """Note (once per change) that the file vanished or is not the one seen before."""
        try:
            st = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            identity = None
        except OSError as exc:
            raise StoreUnavailable("unavailable", f"the trace database cannot be reached: "
                                   f"{exc.strerror}", 10) from None
        else:
            identity = (st.st_dev, st.st_ino)
        with self._lock:
            before = self._identity
            if before is not None and identity != before:
                held = (f"; it held {self._last_count} trace(s) when last counted"
                        if self._last_count else "")
                what = "vanished" if identity is None else "was replaced by another file"
                when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                self._notice = (f"the trace database {self.path} {what} at {when}{held}; "
                                "traces stored before are not in the current file")
                log.error("%s", self._notice)
            self._identity = identity  # after a vanish, the next file is a new start

    def _connect(self, busy_timeout: float) -> sqlite3.Connection:
        self._watch_identity()
        if not self.path.parent.is_dir():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable("unavailable", f"the directory of the trace database "
                                       f"cannot be made: {exc.strerror}", 10) from None
        return sqlite3.connect(self.path, timeout=busy_timeout)

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        with conn:
            conn.execute(_SCHEMA)
        # WAL is a property of the file: set once, kept by every later connection.
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        self._watch_identity()

    def _call(self, op: Callable[[sqlite3.Connection], _T],
              busy_timeout: float | None = None) -> _T:
        """Run `op` on a fresh connection; a missing table is made and `op` retried once."""
        try:
            conn = self._connect(self.busy_timeout if busy_timeout is None else busy_timeout)
            try:
                try:
                    return op(conn)
                except sqlite3.OperationalError as exc:
                    if "no such table" not in str(exc):
                        raise
                    self._create_schema(conn)
                    return op(conn)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise self._fault(exc) from None

    def _fault(self, exc: sqlite3.Error) -> StoreUnavailable:
        name = getattr(exc, "sqlite_errorname", "") or ""
        base = "_".join(name.split("_")[:2])  # SQLITE_IOERR_WRITE -> SQLITE_IOERR
        state, message, retry = _FAULTS.get(base) or (
            "unavailable", "the trace database failed", 10)
        log.warning("trace store %s: %s (%s: %s)", self.path, state, name or "error", exc)
        return StoreUnavailable(state, f"{message} ({self.path.name}); try again in "
                                f"{retry} s", retry)

    # ------------------------------------------------------------ traces
    def put(self, text: str, name: str = "") -> tuple[StoredTrace, bool]:
        """Store `text` (already validated) under its digest; returns (trace, created)."""
        size = len(text.encode("utf-8"))
        if size > MAX_TRACE_BYTES:
            raise ValueError(f"trace is {size} bytes; the limit is {MAX_TRACE_BYTES}")
        digest = trace_digest(text)
        name = name.strip()[:MAX_NAME_CHARS] or f"trace {digest[:12]}"

        def insert(conn: sqlite3.Connection) -> bool:
            existing = _select(conn, digest)
            if existing is not None:  # no write: re-uploading works on a read-only file
                return False
            with conn:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO traces (id, name, text, bytes, lines, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (digest, name, text, size, count_trace_lines(text), time.time()),
                )
            return cur.rowcount == 1

        created = self._call(insert)
        stored = self.get(digest)
        if stored is None:
            raise StoreUnavailable("unavailable", "the trace was written but cannot be read "
                                   "back; try again", 2)
        return stored, created

    def get(self, trace_id: str) -> StoredTrace | None:
        if not is_trace_id(trace_id):
            return None
        return self._call(lambda conn: _select(conn, trace_id))

    def count(self) -> int:
        n = self._call(lambda conn: int(conn.execute("SELECT COUNT(*) FROM traces")
                                        .fetchone()[0]))
        self._last_count = n
        return n

    def health(self) -> StoreHealth:
        """Can the store read and write now?  Writes a row and rolls it back."""

        def probe(conn: sqlite3.Connection) -> int:
            (n,) = conn.execute("SELECT COUNT(*) FROM traces").fetchone()
            try:
                conn.execute("INSERT INTO traces VALUES ('health probe', '', '', 0, 0, 0)")
            finally:
                conn.rollback()
            return int(n)

        try:
            n = self._call(probe, busy_timeout=min(self.busy_timeout, 0.25))
        except StoreUnavailable as exc:
            return StoreHealth(exc.state, exc.message, self._last_count, self._notice)
        self._last_count = n
        return StoreHealth("ok", "reads and writes work", n, self._notice)


def _select(conn: sqlite3.Connection, trace_id: str) -> StoredTrace | None:
    row = conn.execute(
        "SELECT id, name, text, bytes, lines, created_at FROM traces WHERE id = ?",
        (trace_id,),
    ).fetchone()
    return StoredTrace(*row) if row else None
