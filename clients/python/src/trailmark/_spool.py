"""The disk spool: every recorded event is written here first (a local
SQLite file), then sent and deleted once the server has stored it. Events
survive an outage of the server and a restart of the application."""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Iterable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    error TEXT NOT NULL,
    at REAL NOT NULL
);
"""


class SpoolFull(Exception):
    """The spool holds its bound of events or bytes."""


class Spool:
    """A bounded queue of events on disk, shared by the threads of one
    process (and, safely, by several processes: the server stores an id
    once)."""

    def __init__(self, path: str, max_events: int, max_bytes: int, max_rejected: int = 10_000) -> None:
        if max_events < 1 or max_bytes < 1:
            raise ValueError("max_spool_events and max_spool_bytes must be at least 1")
        if max_rejected < 1:
            raise ValueError("max_rejected_events: must be at least 1 (refused events kept to read)")
        self.path = path
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_rejected = max_rejected
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        # WAL: writers do not wait for the sender's reads. NORMAL: a commit
        # survives the process dying (not the machine losing power before
        # the next checkpoint) and costs no fsync on the request's path.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._count, self._bytes = self._db.execute(
            "SELECT count(*), coalesce(sum(bytes), 0) FROM pending"
        ).fetchone()

    def add(self, event_id: str, body: str) -> None:
        size = len(body.encode())
        with self._lock:
            if self._count + 1 > self.max_events or self._bytes + size > self.max_bytes:
                raise SpoolFull(
                    f"the spool {self.path} holds {self._count} events, {self._bytes} bytes "
                    f"(bounds {self.max_events}, {self.max_bytes})"
                )
            cur = self._db.execute(
                "INSERT OR IGNORE INTO pending (id, body, bytes) VALUES (?, ?, ?)",
                (event_id, body, size),
            )
            if cur.rowcount:
                self._count += 1
                self._bytes += size

    def oldest(self, limit: int, max_bytes: int) -> list[tuple[int, str, str]]:
        """Up to `limit` of the oldest events, at most `max_bytes` of them
        (at least one): (seq, id, body)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, body, bytes FROM pending ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        out, total = [], 0
        for seq, event_id, body, size in rows:
            if out and total + size > max_bytes:
                break
            out.append((seq, event_id, body))
            total += size
        return out

    def remove(self, seqs: Iterable[int]) -> None:
        seqs = list(seqs)
        if not seqs:
            return
        with self._lock:
            self._db.execute("BEGIN")
            for chunk in range(0, len(seqs), 500):
                part = seqs[chunk : chunk + 500]
                marks = ",".join("?" * len(part))
                self._db.execute(f"DELETE FROM pending WHERE seq IN ({marks})", part)
            self._db.execute("COMMIT")
            self._count, self._bytes = self._db.execute(
                "SELECT count(*), coalesce(sum(bytes), 0) FROM pending"
            ).fetchone()

    def reject(self, rows: Iterable[tuple[int, str, str]], error: str) -> int:
        """Moves events the server refused out of the queue, keeping the
        newest `max_rejected` of all refused; answers how many older ones
        were dropped for it."""
        rows = list(rows)
        with self._lock:
            self._db.execute("BEGIN")
            for _, event_id, body in rows:
                self._db.execute(
                    "INSERT OR REPLACE INTO rejected (id, body, error, at) VALUES (?, ?, ?, ?)",
                    (event_id, body, error[:2000], time.time()),
                )
            # INSERT OR REPLACE makes a row the newest (its rowid).
            dropped = self._db.execute(
                "DELETE FROM rejected WHERE rowid IN "
                "(SELECT rowid FROM rejected ORDER BY rowid DESC LIMIT -1 OFFSET ?)",
                (self.max_rejected,),
            ).rowcount
            self._db.execute("COMMIT")
        self.remove(seq for seq, _, _ in rows)
        return dropped

    def pending(self) -> int:
        with self._lock:
            return self._count

    def rejected(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return self._db.execute("SELECT id, body, error FROM rejected ORDER BY rowid").fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()
