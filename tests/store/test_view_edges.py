"""The first/last flags the store keeps for version choice (store/view_edges.py, schema steps 7 and 23), on
both backends: on write (versions arriving out of order), on delete, on a replaced form and on migration."""

from __future__ import annotations

import json
from typing import Any

from kizuna.store import open_store
from kizuna.store.base import ApiRoot, NewVersion, VersionSelector
from kizuna.store.sql import SqlStore

CLEAR = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"
GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
OBJECT = "indicator--6d1c3f0e-2a4b-4c5d-8e9f-0a1b2c3d4e5f"


def version(day: int, marking: str) -> NewVersion:
    body = {"type": "indicator", "id": OBJECT, "modified": f"2026-03-0{day}T00:00:00.000Z",
            "object_marking_refs": [marking]}
    return NewVersion(OBJECT, "indicator", day, "2.1", None, json.dumps([marking]), json.dumps(body).encode())


def flags(store: SqlStore) -> dict[int, tuple[int, int, int, int]]:
    """version -> (is_first, is_last, maybe_first, maybe_last)."""
    with store._read() as cur:
        cur.execute("SELECT version, is_first, is_last, maybe_first, maybe_last FROM objects WHERE stix_id = ?",
                    (OBJECT,))
        return {int(row[0]): tuple(int(flag) for flag in row[1:]) for row in cur.fetchall()}  # type: ignore[misc]


def _store_with_collection(store_url: str) -> tuple[Any, int]:
    """A migrated store with one collection, and that collection's key."""
    store: Any = open_store(store_url)
    store.migrate()
    store.create_api_root(ApiRoot("main", "Main", None, 1000))
    return store, store.create_collection("c", "main", "C", None, None, ["application/stix+json;version=2.1"]).pk


def test_flags_follow_writes_deletes_forms_and_migration(store_url: str) -> None:
    store, pk = _store_with_collection(store_url)
    try:
        # Out of order: 2 then 1, then 3 and 4 re-marked GREEN.
        for batch in ([version(2, CLEAR)], [version(1, CLEAR), version(3, GREEN)], [version(4, GREEN)]):
            store.add_versions(pk, batch)
        expected = {1: (1, 0, 1, 0), 2: (0, 0, 0, 1), 3: (0, 0, 1, 0), 4: (0, 1, 0, 1)}
        assert flags(store) == expected

        # A reader of CLEAR alone has version 2 as its last and version 1 as its first: only those rows are
        # candidates.
        assert store.delete_versions(pk, OBJECT, VersionSelector(exact=(3,)), None) == 1
        assert flags(store) == {1: (1, 0, 1, 0), 2: (0, 0, 0, 1), 4: (0, 1, 1, 1)}

        # Version 4 replaced by a CLEAR form: all three now read alike.
        assert store.replace_form(pk, version(4, CLEAR), 4) is not None
        assert flags(store) == {1: (1, 0, 1, 0), 2: (0, 0, 0, 0), 4: (0, 1, 0, 1)}

        # A store from before step 7: the columns are computed on migration.
        store.add_versions(pk, [version(5, GREEN)])
        before = flags(store)
        with store._write() as cur:
            cur.execute("ALTER TABLE objects DROP COLUMN maybe_first")
            cur.execute("ALTER TABLE objects DROP COLUMN maybe_last")
            cur.execute("DELETE FROM schema_migrations WHERE version = 7")
        store.migrate()
        assert flags(store) == before == {1: (1, 0, 1, 0), 2: (0, 0, 0, 0), 4: (0, 0, 0, 1), 5: (0, 1, 1, 1)}
    finally:
        store.close()


def test_amber_versions_are_never_seen_alike_and_step_23_flags_them_again(store_url: str) -> None:
    # TLP:AMBER received from a partner node reaches only this node's organisation and its clients, so two AMBER
    # versions from one producer may be seen by different readers (one relayed, one not): each may be some
    # reader's first or last.
    store, pk = _store_with_collection(store_url)
    try:
        store.add_versions(pk, [version(1, AMBER), version(2, AMBER), version(3, AMBER)])
        expected = {1: (1, 0, 1, 1), 2: (0, 0, 1, 1), 3: (0, 1, 1, 1)}
        assert flags(store) == expected

        # A store flagged by the rule before step 23 (AMBER seen alike) has its flags computed again.
        with store._write() as cur:
            cur.execute("UPDATE objects SET maybe_first = is_first, maybe_last = is_last")
            cur.execute("DELETE FROM schema_migrations WHERE version = 23")
        assert flags(store) != expected
        store.migrate()
        assert flags(store) == expected
    finally:
        store.close()


def test_a_batch_of_revisions_moves_the_flags_of_every_older_version(store_url: str) -> None:
    # Twenty objects, then one batch revising them all: twenty stored rows change their flags in one batch
    # (PostgreSQL writes them in one statement, store/postgres/store.py ``_write_edges``).
    store, pk = _store_with_collection(store_url)
    ids = [f"indicator--6d1c3f0e-2a4b-4c5d-8e9f-{index:012d}" for index in range(20)]

    def revision(stix_id: str, day: int, marking: str) -> NewVersion:
        return version(day, marking)._replace(stix_id=stix_id, body=version(day, marking).body.replace(
            OBJECT.encode(), stix_id.encode()))

    try:
        store.add_versions(pk, [revision(stix_id, 1, CLEAR) for stix_id in ids])
        # even objects revised alike (CLEAR again), odd ones re-marked GREEN (seen by other readers)
        store.add_versions(pk, [revision(stix_id, 2, CLEAR if index % 2 == 0 else GREEN)
                                for index, stix_id in enumerate(ids)])
        with store._read() as cur:
            cur.execute("SELECT stix_id, version, is_first, is_last, maybe_first, maybe_last FROM objects")
            found = {(row[0], int(row[1])): tuple(int(flag) for flag in row[2:]) for row in cur.fetchall()}
        for index, stix_id in enumerate(ids):
            alike = index % 2 == 0
            assert found[(stix_id, 1)] == (1, 0, 1, 0 if alike else 1)
            assert found[(stix_id, 2)] == (0, 1, 0 if alike else 1, 1)
        assert len(found) == 40
    finally:
        store.close()
