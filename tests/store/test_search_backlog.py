"""SQLite's search backlog (store/search_index.py, schema step 17): a new version's text is indexed after
its commit, by the store's background thread; a search first indexes whatever still waits, so it never
misses a stored version, and nothing deleted is ever indexed."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN
from kizuna.store.base import VersionSelector


def indicator(word: str) -> dict[str, Any]:
    return {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
        "created": "2026-03-01T00:00:00.000Z", "modified": "2026-03-01T00:00:00.000Z", "name": f"{word} dropper",
        "pattern_type": "stix", "pattern": "[domain-name:value = 'backlog.example']",
        "valid_from": "2026-03-01T00:00:00Z",
    }


def waiting(store: Any) -> int:
    with store._read() as cur:
        cur.execute("SELECT COUNT(*) FROM search_backlog")
        return int(cur.fetchone()[0])


def indexed(store: Any, word: str) -> int:
    with store._read() as cur:
        cur.execute("SELECT COUNT(*) FROM search_text WHERE search_text MATCH ?", (f'"{word}"',))
        return int(cur.fetchone()[0])


def found(node: Node, word: str) -> list[str]:
    return [hit.id for hit in node.search(NODE_ADMIN, word).hits]


def test_the_background_thread_indexes_the_backlog(tmp_path: Path) -> None:
    node = Node.init(tmp_path / "node", org_name="NCSC UK")
    try:
        collection = node.create_collection("Shared", alias="shared")
        objects = [indicator(f"threadword{i}") for i in range(50)]
        node.import_objects(collection, objects)
        deadline = time.monotonic() + 30
        while waiting(node.store) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling a condition with a deadline, not waiting a fixed time
        assert waiting(node.store) == 0
        assert indexed(node.store, "threadword") == 50  # indexed without any search asking
    finally:
        node.close()


def test_a_search_indexes_what_waits_and_a_deleted_version_is_never_indexed(tmp_path: Path) -> None:
    node = Node.init(tmp_path / "node", org_name="NCSC UK")
    try:
        store: Any = node.store
        store._indexer.stop()  # as after a crash: the backlog holds versions nobody has indexed yet
        collection = node.create_collection("Shared", alias="shared")
        kept, deleted = indicator("keptword"), indicator("goneword")
        node.import_objects(collection, [kept, deleted])
        assert waiting(store) == 2
        assert store.delete_versions(collection.pk, deleted["id"], VersionSelector(all=True), None) == 1
        assert waiting(store) == 1
        assert found(node, "keptword") == [kept["id"]]
        assert waiting(store) == 0
        assert found(node, "goneword") == []
        assert indexed(store, "goneword") == 0
    finally:
        node.close()


def test_closing_the_store_indexes_what_waits(tmp_path: Path) -> None:
    node = Node.init(tmp_path / "node", org_name="NCSC UK")
    store: Any = node.store
    store._indexer.stop()
    collection = node.create_collection("Shared", alias="shared")
    node.import_objects(collection, [indicator("closeword")])
    assert waiting(store) == 1
    path = store.path
    node.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM search_backlog").fetchone()[0] == 0
        matched = conn.execute("SELECT COUNT(*) FROM search_text WHERE search_text MATCH ?", ('"closeword"',))
        assert matched.fetchone()[0] == 1
