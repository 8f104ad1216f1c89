"""SQLite store of uploaded traces, addressed by mmu_model.trace.trace_digest.

The database file and its directory are created on first use; a connection is opened per
call, so the store is safe to share between request threads.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from mmu_model.trace import MAX_TRACE_BYTES, trace_digest

__all__ = ["MAX_NAME_CHARS", "StoredTrace", "TraceStore", "is_trace_id"]

MAX_NAME_CHARS = 200
_ID = re.compile(r"[0-9a-f]{64}")

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


class TraceStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10)
        if not self._ready:
            with conn:
                conn.execute(_SCHEMA)
            self._ready = True
        return conn

    def put(self, text: str, name: str = "") -> tuple[StoredTrace, bool]:
        """Store `text` (already validated) under its digest; returns (trace, created)."""
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_TRACE_BYTES:
            raise ValueError(f"trace is {size} bytes; the limit is {MAX_TRACE_BYTES}")
        digest = trace_digest(text)
        name = name.strip()[:MAX_NAME_CHARS] or f"trace {digest[:12]}"
        conn = self._connect()
        try:
            with conn:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO traces (id, name, text, bytes, lines, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (digest, name, text, size, text.count("\n") + 1, time.time()),
                )
                created = cur.rowcount == 1
        finally:
            conn.close()
        stored = self.get(digest)
        assert stored is not None
        return stored, created

    def get(self, trace_id: str) -> StoredTrace | None:
        if not is_trace_id(trace_id):
            return None
        conn = self._connect()
        try:
            row = conn.execute(
                "SELECT id, name, text, bytes, lines, created_at FROM traces WHERE id = ?",
                (trace_id,),
            ).fetchone()
        finally:
            conn.close()
        return StoredTrace(*row) if row else None

    def count(self) -> int:
        conn = self._connect()
        try:
            (n,) = conn.execute("SELECT COUNT(*) FROM traces").fetchone()
        finally:
            conn.close()
        return int(n)
