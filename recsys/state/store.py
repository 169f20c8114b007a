"""Durable platform state: takedowns and erasures, in one SQLite file.

The server writes here when an admin takes content down or erases a user;
``recsys train`` reads the same file, so taken-down content and erased users
stay out of every later artifact. SQLite (standard library) in WAL mode lets
several server processes and a training run share the file safely.

A ``generation`` counter goes up on every change, so a server can tell with
one cheap read whether its in-memory copy is stale.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from recsys.pool import Takedowns

logger = logging.getLogger(__name__)

ENTITY_TYPES = ("track", "artist", "label")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS takedowns (
    entity_type TEXT NOT NULL CHECK (entity_type IN ('track', 'artist', 'label')),
    entity_id   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    actor       TEXT,
    PRIMARY KEY (entity_type, entity_id)
);
CREATE TABLE IF NOT EXISTS erasures (
    user_id    TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    actor      TEXT
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', 0);
"""


@dataclass(frozen=True)
class StateSnapshot:
    """Everything in the store at one generation."""

    generation: int
    takedowns: Takedowns
    erased_users: frozenset[str]


class StateStore:
    """Takedowns and erasures kept in a SQLite file.

    Parameters
    ----------
    path
        The SQLite file (created with its directory if absent).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # executescript manages its own transaction (it commits first), so the
        # schema goes in as one explicit BEGIN ... COMMIT script.
        self._connect().executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\nCOMMIT;")

    def _connect(self) -> sqlite3.Connection:
        # One connection per thread: sqlite3 connections must not cross threads.
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")  # a recorded takedown survives a crash
            self._local.con = con
        return con

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        con = self._connect()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # ------------------------------------------------------------------ writes

    @staticmethod
    def _now() -> str:
        return dt.datetime.now(dt.UTC).isoformat()

    def _bump(self, con: sqlite3.Connection) -> None:
        con.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")

    def add_takedowns(
        self,
        *,
        track_ids: Iterable[str] = (),
        artist_ids: Iterable[str] = (),
        label_ids: Iterable[str] = (),
        actor: str | None = None,
    ) -> int:
        """Record takedowns; returns how many were new (repeats are harmless)."""
        rows = [
            (kind, str(i), self._now(), actor)
            for kind, ids in (("track", track_ids), ("artist", artist_ids), ("label", label_ids))
            for i in dict.fromkeys(ids)
        ]
        if not rows:
            return 0
        with self._tx() as con:
            before = con.total_changes
            con.executemany(
                "INSERT OR IGNORE INTO takedowns (entity_type, entity_id, created_at, actor)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )
            added = con.total_changes - before
            if added:
                self._bump(con)
        logger.info("takedowns: %d new of %d", added, len(rows))
        return added

    def erase_user(self, user_id: str, *, actor: str | None = None) -> bool:
        """Record an erasure; returns False if the user was already erased."""
        with self._tx() as con:
            cur = con.execute(
                "INSERT OR IGNORE INTO erasures (user_id, created_at, actor) VALUES (?, ?, ?)",
                (user_id, self._now(), actor),
            )
            new = cur.rowcount > 0
            if new:
                self._bump(con)
        logger.info("erasure of user %s recorded (%s)", user_id, "new" if new else "repeat")
        return new

    # ------------------------------------------------------------------ reads

    def generation(self) -> int:
        """Change counter: goes up with every new takedown or erasure."""
        row = self._connect().execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def takedowns(self) -> Takedowns:
        rows = self._connect().execute("SELECT entity_type, entity_id FROM takedowns").fetchall()
        by = {k: frozenset(i for t, i in rows if t == k) for k in ENTITY_TYPES}
        return Takedowns(track_ids=by["track"], artist_ids=by["artist"], label_ids=by["label"])

    def erased_users(self) -> frozenset[str]:
        return frozenset(r[0] for r in self._connect().execute("SELECT user_id FROM erasures"))

    def snapshot(self) -> StateSnapshot:
        """A consistent read of everything (one read transaction)."""
        con = self._connect()
        con.execute("BEGIN")
        try:
            snap = StateSnapshot(self.generation(), self.takedowns(), self.erased_users())
        finally:
            con.execute("COMMIT")
        return snap
