"""The ``embeds`` flag of stored versions (store/embedded.py, schema step 28), on both backends: on write, on a
replaced form and on migration; the read path trusts it to serve the other rows unparsed."""

from __future__ import annotations

import json

import orjson

from kizuna.store.base import ApiRoot, NewVersion
from kizuna.store.sql import SqlStore

GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
PRODUCER = "identity--44444444-4444-4444-8444-444444444444"
ADDRESS = "ipv4-addr--11111111-1111-4111-8111-111111111111"


def _version(obj: dict[str, object], producer: str | None = None) -> NewVersion:
    return NewVersion(str(obj["id"]), str(obj["type"]), None, "2.1", producer, json.dumps([GREEN]), orjson.dumps(obj))


def _objects() -> dict[str, tuple[dict[str, object], int]]:
    """id -> (object, whether it embeds a reference to decide)."""
    made = [
        ({"type": "domain-name", "id": "domain-name--0a", "value": "c2.example", "resolves_to_refs": [ADDRESS]}, 1),
        ({"type": "domain-name", "id": "domain-name--0b", "value": "plain.example"}, 0),
        ({"type": "network-traffic", "id": "network-traffic--0c", "protocols": ["tcp"], "src_ref": ADDRESS}, 1),
        ({"type": "relationship", "id": "relationship--0d", "relationship_type": "uses", "source_ref": ADDRESS,
          "target_ref": ADDRESS, "created_by_ref": PRODUCER}, 0),
        ({"type": "relationship", "id": "relationship--0e", "relationship_type": "uses", "source_ref": ADDRESS,
          "target_ref": ADDRESS, "x_seen_with_ref": ADDRESS}, 1),
        ({"type": "indicator", "id": "indicator--0f", "created_by_ref": PRODUCER,
          "pattern": "[file:parent_directory_ref.path = 'x']",
          "external_references": [{"source_name": "capec", "external_id": "CAPEC-1"}]}, 0),
    ]
    out = {}
    for obj, flag in made:
        obj.setdefault("object_marking_refs", [GREEN])
        out[str(obj["id"])] = (obj, flag)
    return out


def _flags(store: SqlStore) -> dict[str, int]:
    with store._read() as cur:
        cur.execute("SELECT stix_id, embeds FROM objects")
        return {str(stix_id): int(flag) for stix_id, flag in cur.fetchall()}


def test_versions_are_flagged_on_write_on_a_replaced_form_and_on_migration(store: SqlStore) -> None:
    store.create_api_root(ApiRoot("main", "Main", None, 1000))
    pk = store.create_collection("c", "main", "C", None, None, ["application/stix+json;version=2.1"]).pk
    objects = _objects()
    store.add_versions(pk, [_version(obj, str(obj.get("created_by_ref") or "") or None) for obj, _ in objects.values()])
    expected = {stix_id: flag for stix_id, (_, flag) in objects.items()}
    assert _flags(store) == expected
    rows = store.versions_by_seq(list(range(1, 100)))
    assert {row.stix_id: row.embeds for row in rows} == expected

    # A fuller form of the plain domain that now names the address it resolves to.
    plain, _ = objects["domain-name--0b"]
    stored_version = next(row.version for row in rows if row.stix_id == "domain-name--0b")
    assert store.replace_form(pk, _version({**plain, "resolves_to_refs": [ADDRESS]}), stored_version) is not None
    expected["domain-name--0b"] = 1
    assert _flags(store) == expected

    # A store from before step 28: every version is flagged on migration.
    with store._write() as cur:
        cur.execute("ALTER TABLE objects DROP COLUMN embeds")
        cur.execute("DELETE FROM schema_migrations WHERE version = 28")
    store.migrate()
    assert _flags(store) == expected
