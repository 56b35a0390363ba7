"""ShadowStore: SQLite persistence of shadow documents and deleted shadows' versions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pyiot.local import ShadowStore
from pyiot.local.shadow_doc import ShadowDocument


def test_save_load_delete_and_versions(tmp_path: Path) -> None:
    with ShadowStore(tmp_path / "db" / "s.sqlite3") as store:
        assert store.load("t") is None and store.last_version("t") == 0
        doc = ShadowDocument().apply_update({"state": {"reported": {"a": 1}}}, 10).document
        store.save("t", None, doc)
        store.save("t", "zone1", doc)
        assert store.load("t") == doc
        assert store.load("t", "zone1") == doc
        assert store.shadow_names("t") == ["zone1"]

        assert store.delete("t", "zone1", now=11) == 1
        assert store.delete("t", "zone1") is None  # already gone
        assert store.load("t", "zone1") is None
        assert store.last_version("t", "zone1") == 1
        assert store.load_or_new("t", "zone1") == ShadowDocument(version=1)
        assert store.shadow_names("t") == []
        assert store.load("t") == doc  # the classic shadow is a different row


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    ShadowStore(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
