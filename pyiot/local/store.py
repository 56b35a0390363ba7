"""SQLite persistence for the local Device Shadow service.

One row per ``(thing, shadow_name)`` (the classic shadow has the name ``''``, which AWS never
allows for a named shadow). A deleted shadow keeps its row with a NULL document so that a
shadow created again under the same name continues the version numbering, as AWS does.

The database runs in WAL mode with ``synchronous=NORMAL`` by default: each commit reaches the
OS before the service answers ``accepted``, so an accepted update survives the service being
killed (``kill -9``); only a power cut can lose the last commits. Pass
``synchronous="FULL"`` to fsync every commit as well.

The file (and SQLite's ``-wal`` and ``-shm`` beside it) is 0600 in a 0700 folder and is never
opened through a link. A store pyiot cannot use is refused when it opens, in one line
(:class:`StoreError`): not a SQLite database, read-only, a link. A store deleted or replaced
while the service runs is noticed on the next write: the write is rejected (500, "shadow
store ... was deleted") and an error is logged, instead of answering ``accepted`` for a
change that would be lost at the next start.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import threading
from pathlib import Path
from types import TracebackType

from pyiot.errors import PyiotError
from pyiot.local.files import UnsafePath, open_private, private_dir
from pyiot.local.shadow_doc import ShadowDocument, ShadowError

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


class StoreError(PyiotError, RuntimeError):
    """The shadow store cannot be used; the message says which file and what to do."""

    what = "unusable shadow store"


def _prepare_file(path: Path) -> None:
    """Create the store 0600 if missing; refuse a link, a non-file or a read-only store."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        os.close(open_private(path, os.O_RDWR))
        return
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePath(f"shadow store {path} is a symbolic link; pyiot does not follow it")
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(f"shadow store {path} is not a file")
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        what = path if not os.access(path, os.W_OK) else path.parent
        raise StoreError(
            f"shadow store {path} is read-only ({what} is not writable): pyiot must write "
            "the shadows; make it writable or pick another data folder (--data)"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o600)  # written by an older pyiot with the umask's 0644


class ShadowStore:
    """Shadow documents in one SQLite file; safe to share between threads."""

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = Path(path).absolute()
        private_dir(self.path.parent)
        _prepare_file(self.path)
        # One connection behind a lock: the service's MQTT thread writes, callers may read.
        # Re-entrant: a thread holding the store (`try_hold`) reads and writes it too.
        self._lock = threading.RLock()
        # nofollow: SQLite itself refuses a link put there after the check above.
        uri = self.path.as_uri() + "?nofollow=1"
        try:
            self._db = sqlite3.connect(
                uri, uri=True, check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error as err:
            raise StoreError(f"cannot open shadow store {self.path}: {err}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute(_SCHEMA)
            # A write at once: a store SQLite can read but not write fails here, not on the
            # first update.
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("COMMIT")
            self._db.execute("SELECT count(*) FROM shadows").fetchone()
        except sqlite3.Error as err:
            self._db.close()
            # SQLite's own code (extended codes keep it in the low byte); Python 3.10 has none.
            if getattr(err, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_READONLY:
                raise StoreError(
                    f"shadow store {self.path} is read-only ({err}): make it writable or pick "
                    "another data folder (--data)"
                ) from None
            raise StoreError(
                f"shadow store {self.path} is unusable ({err}): move it away to start with no "
                "shadows, or restore a copy"
            ) from None
        for extra in ("-wal", "-shm"):
            # SQLite makes them with the database's mode; tighten ones an older pyiot left.
            side = Path(f"{self.path}{extra}")
            if side.is_file() and not side.is_symlink() and side.stat().st_mode & 0o077:
                os.chmod(side, 0o600)
        opened = os.stat(self.path)
        self._identity = (opened.st_dev, opened.st_ino)
        self._gone: str | None = None
        _LOGGER.debug("opened shadow store %s", self.path)

    def _check_still_there(self) -> None:
        """Refuse to write when the file was deleted or replaced under the running service:
        SQLite would go on writing to the unlinked file and lose it all at the next start."""
        try:
            now = os.stat(self.path)
            identity: tuple[int, int] | None = (now.st_dev, now.st_ino)
        except FileNotFoundError:
            identity = None
        if identity == self._identity:
            return
        if self._gone is None:
            self._gone = "deleted" if identity is None else "replaced"
            _LOGGER.error(
                "shadow store %s was %s while running: shadow changes are refused until the "
                "local stack is restarted",
                self.path,
                self._gone,
            )
        raise ShadowError(500, f"shadow store {self.path.name} was {self._gone}; restart pyiot")

    def try_hold(self) -> bool:
        """Take the store for this thread unless another thread has it (then False, at once).
        While held, this thread's reads and writes go through; `release()` gives it back."""
        return self._lock.acquire(blocking=False)

    def release(self) -> None:
        self._lock.release()

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
            self._check_still_there()
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
            self._check_still_there()
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
