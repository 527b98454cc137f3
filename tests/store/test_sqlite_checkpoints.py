"""SQLite's write-ahead log is checkpointed by a thread of the store's own, not in the commits.

The database file itself, opened `immutable=1` (SQLite then ignores the log), shows what a checkpoint has
copied into it: rows appear there only once the background thread has run. A commit that stores object
versions asks for a checkpoint; small commits (settings here, audit records of served pages in a server)
ask for one every CHECKPOINT_EVERY commits, and until then stay in the log.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kizuna.core.node import Node
from kizuna.store.sqlite.checkpoints import BACKSTOP_PAGES, CHECKPOINT_EVERY
from kizuna.store.sqlite.store import SqliteStore
from tests.core.test_page_budget import CLEAR, _indicator


def _in_the_file(path: Path, sql: str) -> int:
    """COUNT(*) of ``sql`` over the database file alone, without the log."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def test_commits_are_checkpointed_by_the_background_thread_and_not_by_the_commit(tmp_path: Path) -> None:
    path = tmp_path / "node" / "kizuna.db"
    node = Node.init(tmp_path / "node", f"sqlite:///{path}", org_name="NCSC UK", country="GBR")
    try:
        store = node.store
        assert isinstance(store, SqliteStore)
        assert store._writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
        node.import_objects(node.create_collection("Shared"), [_indicator(CLEAR, n) for n in range(10)])
        assert store._checkpointer.wait()
        indicators = "SELECT COUNT(*) FROM objects WHERE type = 'indicator'"
        assert _in_the_file(path, indicators) == 10  # copied into the file by the background checkpoint

        settings = "SELECT COUNT(*) FROM node_settings WHERE key LIKE 'small-%'"
        # The search backlog's thread (store/search_backlog.py) commits its batches too, whenever it gets
        # to them: on a busy machine after the count below, and its commits then brought the checkpoint early.
        # Stopped, and the backlog indexed here, only this test's commits remain to be counted.
        store._indexer.stop()
        store.index_search_backlog()
        small = CHECKPOINT_EVERY - store._commits  # small commits until one asks for a checkpoint
        assert small > 1
        for n in range(small - 1):
            store.set_setting(f"small-{n}", "x" * 500)
        assert store._checkpointer.wait()
        assert _in_the_file(path, settings) == 0  # committed, only in the log: no commit checkpointed itself
        store.set_setting("small-last", "x")  # the CHECKPOINT_EVERY-th small commit asks for one
        assert store._checkpointer.wait()
        assert _in_the_file(path, settings) == small
    finally:
        node.close()
