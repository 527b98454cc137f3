"""The first/last flags the store keeps for version choice (store/view_edges.py, schema step 7), on both
backends: on write (versions arriving out of order), on delete, on a replaced form and on migration."""

from __future__ import annotations

import json
from typing import Any

from kizuna.store import open_store
from kizuna.store.base import ApiRoot, NewVersion, VersionSelector
from kizuna.store.sql import SqlStore

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


def test_flags_follow_writes_deletes_forms_and_migration(store_url: str) -> None:
    store: Any = open_store(store_url)
    try:
        store.migrate()
        store.create_api_root(ApiRoot("main", "Main", None, 1000))
        pk = store.create_collection("c", "main", "C", None, None, ["application/stix+json;version=2.1"]).pk
        # Out of order: 2 then 1, then 3 and 4 re-marked AMBER.
        for batch in ([version(2, GREEN)], [version(1, GREEN), version(3, AMBER)], [version(4, AMBER)]):
            store.add_versions(pk, batch)
        expected = {1: (1, 0, 1, 0), 2: (0, 0, 0, 1), 3: (0, 0, 1, 0), 4: (0, 1, 0, 1)}
        assert flags(store) == expected

        # A GREEN reader's last is version 2; its first is version 1. Only those rows are candidates.
        assert store.delete_versions(pk, OBJECT, VersionSelector(exact=(3,)), None) == 1
        assert flags(store) == {1: (1, 0, 1, 0), 2: (0, 0, 0, 1), 4: (0, 1, 1, 1)}

        # Version 4 replaced by a GREEN form: all three now read alike.
        assert store.replace_form(pk, version(4, GREEN), 4) is not None
        assert flags(store) == {1: (1, 0, 1, 0), 2: (0, 0, 0, 0), 4: (0, 1, 0, 1)}

        # A store from before step 7: the columns are computed on migration.
        store.add_versions(pk, [version(5, AMBER)])
        before = flags(store)
        with store._write() as cur:
            cur.execute("ALTER TABLE objects DROP COLUMN maybe_first")
            cur.execute("ALTER TABLE objects DROP COLUMN maybe_last")
            cur.execute("DELETE FROM schema_migrations WHERE version = 7")
        store.migrate()
        assert flags(store) == before == {1: (1, 0, 1, 0), 2: (0, 0, 0, 0), 4: (0, 0, 0, 1), 5: (0, 1, 1, 1)}
    finally:
        store.close()
