"""SQLite persistence for the local Device Shadow service.

One row per ``(thing, shadow_name)`` (the classic shadow has the name ``''``, which AWS never
allows for a named shadow). A deleted shadow keeps its row with a NULL document so that a
shadow created again under the same name continues the version numbering, as AWS does.

The database runs in WAL mode with ``synchronous=NORMAL`` by default: each commit reaches the
OS before the service answers ``accepted``, so an accepted update survives the service being
killed (``kill -9``); only a power cut can lose the last commits. Pass
``synchronous="FULL"`` to fsync every commit as well.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path
from types import TracebackType

from pyiot.local.shadow_doc import ShadowDocument

_LOGGER = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shadows (
    thing       TEXT    NOT NULL,
    shadow_name TEXT    NOT NULL DEFAULT '',
    document    TEXT,               -- JSON; NULL while the shadow is deleted
    version     INTEGER NOT NULL,   -- current version, or the version it had when deleted
    updated_at  INTEGER NOT NULL,   -- epoch seconds of the last write
    PRIMARY KEY (thing, shadow_name)
)
"""


def _key(shadow_name: str | None) -> str:
    return shadow_name or ""


class ShadowStore:
    """Shadow documents in one SQLite file; safe to share between threads."""

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection behind a lock: the service's MQTT thread writes, callers may read.
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute(_SCHEMA)
        _LOGGER.debug("opened shadow store %s", self.path)

    def load(self, thing: str, shadow_name: str | None = None) -> ShadowDocument | None:
        """The stored document, or None if the shadow does not exist (never made or deleted)."""
        row = self._fetch(thing, shadow_name)
        if row is None or row[0] is None:
            return None
        return ShadowDocument.from_dict(json.loads(row[0]))

    def last_version(self, thing: str, shadow_name: str | None = None) -> int:
        """Version of the shadow, or of the deleted shadow, or 0 if it never existed."""
        row = self._fetch(thing, shadow_name)
        return int(row[1]) if row is not None else 0

    def load_or_new(self, thing: str, shadow_name: str | None = None) -> ShadowDocument:
        """The stored document, or an empty one that continues a deleted shadow's versions."""
        row = self._fetch(thing, shadow_name)
        if row is None:
            return ShadowDocument()
        if row[0] is None:
            return ShadowDocument(version=int(row[1]))
        return ShadowDocument.from_dict(json.loads(row[0]))

    def save(self, thing: str, shadow_name: str | None, document: ShadowDocument) -> None:
        """Store ``document`` (one committed transaction)."""
        text = json.dumps(document.to_dict(), separators=(",", ":"), ensure_ascii=False)
        with self._lock:
            self._db.execute(
                "INSERT INTO shadows (thing, shadow_name, document, version, updated_at) "
                "VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (thing, shadow_name) DO UPDATE SET "
                "document = excluded.document, version = excluded.version, "
                "updated_at = excluded.updated_at",
                (thing, _key(shadow_name), text, document.version, document.timestamp),
            )

    def delete(self, thing: str, shadow_name: str | None = None, now: int = 0) -> int | None:
        """Delete the shadow; return the version it had, or None if it did not exist."""
        # SELECT then UPDATE under the lock (no RETURNING: it needs SQLite >= 3.35).
        with self._lock:
            row = self._db.execute(
                "SELECT version FROM shadows "
                "WHERE thing = ? AND shadow_name = ? AND document IS NOT NULL",
                (thing, _key(shadow_name)),
            ).fetchone()
            if row is not None:
                self._db.execute(
                    "UPDATE shadows SET document = NULL, updated_at = ? "
                    "WHERE thing = ? AND shadow_name = ?",
                    (now, thing, _key(shadow_name)),
                )
        return int(row[0]) if row is not None else None

    def shadow_names(self, thing: str) -> list[str]:
        """Names of the thing's existing named shadows, sorted."""
        with self._lock:
            rows = self._db.execute(
                "SELECT shadow_name FROM shadows WHERE thing = ? AND shadow_name != '' "
                "AND document IS NOT NULL ORDER BY shadow_name",
                (thing,),
            ).fetchall()
        return [name for (name,) in rows]

    def _fetch(self, thing: str, shadow_name: str | None) -> tuple[str | None, int] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT document, version FROM shadows WHERE thing = ? AND shadow_name = ?",
                (thing, _key(shadow_name)),
            ).fetchone()
        return (row[0], row[1]) if row is not None else None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ShadowStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
