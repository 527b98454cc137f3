"""The search backlog (store/search_index.py; SQLite schema step 17, PostgreSQL step 24): a new version's
text is indexed after its commit, by the store's background thread; a search first indexes whatever still
waits, so it never misses a stored version, and nothing deleted is ever indexed."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN
from kizuna.store import open_store
from kizuna.store.base import VersionSelector
from tests.conftest import create_pg_database


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
    """Index rows holding ``word``, read from the index table itself (not through a search, which drains)."""
    with store._read() as cur:
        if store.url.startswith("sqlite"):
            cur.execute("SELECT COUNT(*) FROM search_text WHERE kizuna_holds(text, ?)", (word.casefold(),))
        else:
            cur.execute("SELECT COUNT(*) FROM search_text WHERE text ILIKE ?", (f"%{word}%",))
        return int(cur.fetchone()[0])


def found(node: Node, word: str) -> list[str]:
    return [hit.id for hit in node.search(NODE_ADMIN, word).hits]


def until(condition: Any, deadline_s: float = 30) -> None:
    """Poll ``condition`` (a condition with a deadline, not a fixed wait)."""
    deadline = time.monotonic() + deadline_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_the_background_thread_indexes_the_backlog(home_node: Node) -> None:
    collection = home_node.create_collection("Shared", alias="shared")
    home_node.import_objects(collection, [indicator(f"threadword{i}") for i in range(50)])
    until(lambda: waiting(home_node.store) == 0)
    assert waiting(home_node.store) == 0
    assert indexed(home_node.store, "threadword") == 50  # indexed without any search asking


def test_a_search_indexes_what_waits_and_a_deleted_version_is_never_indexed(home_node: Node) -> None:
    store: Any = home_node.store
    store._indexer.stop()  # as after a crash: the backlog holds versions nobody has indexed yet
    collection = home_node.create_collection("Shared", alias="shared")
    kept, deleted = indicator("keptword"), indicator("goneword")
    home_node.import_objects(collection, [kept, deleted])
    assert waiting(store) == 2
    assert indexed(store, "keptword") == 0
    assert store.delete_versions(collection.pk, deleted["id"], VersionSelector(all=True), None) == 1
    assert waiting(store) == 1
    assert found(home_node, "keptword") == [kept["id"]]
    assert waiting(store) == 0
    assert found(home_node, "goneword") == []
    assert indexed(store, "goneword") == 0


def test_closing_the_store_indexes_what_waits(home_node: Node) -> None:
    store: Any = home_node.store
    store._indexer.stop()
    collection = home_node.create_collection("Shared", alias="shared")
    home_node.import_objects(collection, [indicator("closeword")])
    assert waiting(store) == 1
    store.close()
    reopened: Any = open_store(store.url)
    try:
        assert waiting(reopened) == 0
        assert indexed(reopened, "closeword") == 1
    finally:
        reopened.close()


@pytest.fixture()
def pg_node_dir(tmp_path: Path) -> Iterator[Path]:
    """The data directory of a node of NCSC UK on a fresh PostgreSQL database (dropped afterwards)."""
    database = create_pg_database()
    try:
        Node.init(tmp_path / "node", database.url, org_name="NCSC UK", country="GBR").close()
        yield tmp_path / "node"
    finally:
        database.drop()


def test_a_search_finds_what_another_process_left_waiting(pg_node_dir: Path) -> None:
    """Several API processes share one PostgreSQL database: a search in one of them indexes the backlog another
    left behind (here the writer's indexer is stopped, as if its process had ended before indexing)."""
    writer, searcher = Node.open(pg_node_dir), Node.open(pg_node_dir)
    try:
        cast(Any, writer.store)._indexer.stop()
        collection = writer.create_collection("Shared", alias="shared")
        written = indicator("elsewhereword")
        writer.import_objects(collection, [written])
        assert waiting(searcher.store) == 1
        assert found(searcher, "elsewhereword") == [written["id"]]
        assert waiting(searcher.store) == 0
    finally:
        writer.close()
        searcher.close()


def test_a_delete_during_a_drain_removes_what_the_drain_indexed(pg_node_dir: Path) -> None:
    """PostgreSQL: a drain under way in one process holds the backlog rows it moves; a delete of one of those
    versions in another process waits for it and then removes the index row the drain wrote, so the index
    never names a deleted version."""
    node = Node.open(pg_node_dir)
    store: Any = node.store
    store._indexer.stop()
    collection = node.create_collection("Shared", alias="shared")
    doomed = indicator("raceword")
    node.import_objects(collection, [doomed, indicator("otherword")])
    assert waiting(store) == 2
    drainer: Any = open_store(store.url)
    drained, release = threading.Event(), threading.Event()

    def drain_and_hold() -> None:
        with drainer.atomic():  # the drain's transaction stays open until released
            drainer._index_backlog_batch()
            drained.set()
            release.wait(30)

    holder = threading.Thread(target=drain_and_hold)
    holder.start()
    try:
        assert drained.wait(30)
        deleter = threading.Thread(
            target=lambda: store.delete_versions(collection.pk, doomed["id"], VersionSelector(all=True), None)
        )
        deleter.start()
        until(lambda: _waiting_for_a_lock(store))
        assert _waiting_for_a_lock(store)  # the delete waits for the drain's transaction
        release.set()
        holder.join(30)
        deleter.join(30)
        assert not deleter.is_alive()
    finally:
        release.set()
        holder.join(30)
        drainer.close()
    try:
        assert waiting(store) == 0
        assert indexed(store, "raceword") == 0
        assert indexed(store, "otherword") == 1
    finally:
        node.close()


def _waiting_for_a_lock(store: Any) -> bool:
    with store._read() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(cur.fetchone()[0]) > 0


def test_a_store_from_before_the_backlog_keeps_its_index_and_gains_the_backlog(pg_node_dir: Path) -> None:
    """PostgreSQL schema step 24 on a store that indexed every version in its ingest transaction: what was
    indexed stays searchable, and new versions go through the backlog."""
    node = Node.open(pg_node_dir)
    try:
        store: Any = node.store
        collection = node.create_collection("Shared", alias="shared")
        before, after = indicator("beforeword"), indicator("afterword")
        node.import_objects(collection, [before])
        store.index_search_backlog()
        with store._write() as cur:  # the store as a node before step 24 left it
            cur.execute("DROP TABLE search_backlog")
            cur.execute("DELETE FROM schema_migrations WHERE version = 24")
        assert store.migrate() == store.schema_versions()[1]  # back at the newest step
        assert waiting(store) == 0
        store._indexer.stop()
        node.import_objects(collection, [after])
        assert waiting(store) == 1
        assert found(node, "beforeword") == [before["id"]]
        assert found(node, "afterword") == [after["id"]]
    finally:
        node.close()
