"""SQLite schema step 17: the full-text index merges its segments at 16 per level, not FTS5's 4, and the
search backlog exists, on a new store and on a store migrated from before the step; what was indexed
before stays searchable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN

INDICATOR = {
    "type": "indicator", "spec_version": "2.1", "id": "indicator--3b0e4a52-6f1d-4c8e-9a7b-2d5c1e0f9a61",
    "created": "2026-03-01T00:00:00.000Z", "modified": "2026-03-01T00:00:00.000Z", "name": "mergeword dropper",
    "pattern_type": "stix", "pattern": "[domain-name:value = 'merge.example']", "valid_from": "2026-03-01T00:00:00Z",
}


def automerge(store: Any) -> int | None:
    with store._read() as cur:
        cur.execute("SELECT v FROM search_text_config WHERE k = 'automerge'")
        row = cur.fetchone()
    return None if row is None else int(row[0])


def test_new_and_migrated_stores_merge_at_sixteen(tmp_path: Path) -> None:
    node = Node.init(tmp_path / "node", org_name="NCSC UK")
    try:
        store: Any = node.store
        assert automerge(store) == 16
        collection = node.create_collection("Shared", alias="shared")
        node.import_objects(collection, [INDICATOR])
        store._indexer.stop()
        store.index_search_backlog()  # before step 17 every version was indexed in its own transaction
        with store._write() as cur:  # the store as a node before step 17 left it
            cur.execute("DELETE FROM search_text_config WHERE k = 'automerge'")
            cur.execute("DROP TABLE search_backlog")
            cur.execute("DELETE FROM schema_migrations WHERE version = 17")
        assert automerge(store) is None
        assert store.migrate() == store.schema_versions()[1]  # back at the newest step
        assert automerge(store) == 16
        with store._read() as cur:
            cur.execute("SELECT COUNT(*) FROM search_backlog")
            assert cur.fetchone()[0] == 0
        assert [hit.id for hit in node.search(NODE_ADMIN, "mergeword").hits] == [INDICATOR["id"]]
    finally:
        node.close()
