"""SQLite's write-ahead log is checkpointed by a thread of the store's own, not in the commits.

The database file itself, opened `immutable=1` (SQLite then ignores the log), shows what a checkpoint has
copied into it: rows appear there only once the background thread has run, and a commit made while that
thread is stopped leaves its rows in the log alone.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kizuna.store.sqlite.checkpoints import BACKSTOP_PAGES
from kizuna.store.sqlite.store import SqliteStore


def _in_the_file(path: Path, prefix: str) -> int:
    """Settings named ``prefix…`` in the database file, without the log."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM node_settings WHERE key LIKE ?", (prefix + "%",)).fetchone()[0])
    finally:
        conn.close()


def test_commits_are_checkpointed_by_the_background_thread_and_not_by_the_commit(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(f"sqlite:///{path}")
    try:
        store.migrate()
        assert store._writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
        for n in range(50):
            store.set_setting(f"first-{n}", "x" * 500)
        assert store._checkpointer.wait()
        assert _in_the_file(path, "first-") == 50  # copied into the file by the background checkpoint

        store._checkpointer.stop()
        for n in range(50):
            store.set_setting(f"second-{n}", "y" * 500)
        assert _in_the_file(path, "second-") == 0  # committed, but only in the log: no commit checkpointed
        assert store.get_setting("second-49") == "y" * 500
    finally:
        store.close()
    assert _in_the_file(path, "second-") == 50  # the last connection to close checkpoints the rest
