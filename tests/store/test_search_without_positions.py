"""SQLite schema step 26: the full-text index keeps no token positions (FTS5 ``detail=none``). The index
then only says which rows hold each trigram of a word; the word itself is checked in those rows
(store/search_index.py). These tests hold what a search finds to what the index with positions found, on a
new store and on one migrated from before the step."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN


def indicator(name: str, description: str | None = None) -> dict[str, Any]:
    obj = {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
        "created": "2026-03-01T00:00:00.000Z", "modified": "2026-03-01T00:00:00.000Z", "name": name,
        "pattern_type": "stix", "pattern": "[ipv4-addr:value = '198.51.100.7']", "valid_from": "2026-03-01T00:00:00Z",
    }
    if description is not None:
        obj["description"] = description
    return obj


def found(node: Node, text: str) -> set[str]:
    return {hit.id for hit in node.search(NODE_ADMIN, text).hits}


def test_a_row_holding_every_trigram_of_a_word_but_not_the_word_is_not_found(store_url: str, tmp_path: Path) -> None:
    """'vortexa' and 'rtexal' hold every trigram of 'vortexal' between them (vor ort rte tex exa xal), but not
    the word: the index narrows to both rows, and only the one that says 'vortexal' is found."""
    node = Node.init(tmp_path / "node", store_url, org_name="NCSC UK")
    try:
        collection = node.create_collection("Shared", alias="shared")
        whole, scattered = indicator("vortexal loader"), indicator("vortexa", "rtexal implant")
        assert not node.import_objects(collection, [whole, scattered]).failures
        assert found(node, "vortexal") == {whole["id"]}
        assert found(node, "vortexa") == {whole["id"], scattered["id"]}
        assert found(node, "VORTEXAL LOADER") == {whole["id"]}
        assert found(node, "vortexal implant") == set()  # every word must occur in the same object
    finally:
        node.close()


def test_words_are_matched_case_folded_in_every_script(tmp_path: Path) -> None:
    """SQLite's LIKE folds only ASCII letters; the word check folds as the core's own check does (the index
    with positions folded Cyrillic and Greek capitals too)."""
    node = Node.init(tmp_path / "node", org_name="NCSC UK")
    try:
        collection = node.create_collection("Shared", alias="shared")
        cyrillic, greek = indicator("ПРИВЕТ сеть"), indicator("Ολυμπιακοί αγώνες")
        assert not node.import_objects(collection, [cyrillic, greek]).failures
        assert found(node, "привет") == {cyrillic["id"]}
        assert found(node, "ΟΛΥΜΠΙΑΚΟΊ") == {greek["id"]}
        assert found(node, "сеть ПРИВ") == {cyrillic["id"]}
    finally:
        node.close()


def _table_sql(store: Any) -> str:
    with store._read() as cur:
        cur.execute("SELECT sql FROM sqlite_master WHERE name = 'search_text'")
        return str(cur.fetchone()[0])


def test_a_store_indexed_with_positions_is_copied_across(tmp_path: Path) -> None:
    node = Node.init(tmp_path / "node", org_name="NCSC UK")
    try:
        store: Any = node.store
        assert "detail = none" in _table_sql(store)
        collection = node.create_collection("Shared", alias="shared")
        old = indicator("prepositioned implant")
        node.import_objects(collection, [old])
        store._indexer.stop()
        store.index_search_backlog()
        with store._write() as cur:  # the index as a node before step 26 kept it: positions, merging at 16
            cur.execute("CREATE VIRTUAL TABLE old_text USING fts5 (text, tokenize = 'trigram')")
            cur.execute("INSERT INTO old_text (old_text, rank) VALUES ('automerge', 16)")
            cur.execute("INSERT INTO old_text (rowid, text) SELECT rowid, text FROM search_text")
            cur.execute("DROP TABLE search_text")
            cur.execute("ALTER TABLE old_text RENAME TO search_text")
            cur.execute("DELETE FROM schema_migrations WHERE version = 26")
        assert "detail" not in _table_sql(store)
        assert store.migrate() == store.schema_versions()[1]
        assert "detail = none" in _table_sql(store)
        with store._read() as cur:
            cur.execute("SELECT v FROM search_text_config WHERE k = 'automerge'")
            assert cur.fetchone()[0] == 16
            cur.execute("SELECT COUNT(*) FROM search_text")
            assert cur.fetchone()[0] == 1
        assert found(node, "positioned IMPLANT") == {old["id"]}
    finally:
        node.close()
