"""The ``object_markings`` column of stored versions (store/object_markings.py, schema step 29), on both backends:
on write, on a replaced form and on migration; served pages are labelled by it without their bodies being read."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from kizuna.core.audit import object_tlp_label, tlp_counts, tlp_label
from kizuna.core.ingest import prepare
from kizuna.store.base import ApiRoot, NewVersion, VersionRow
from kizuna.store.object_markings import object_markings
from kizuna.store.sql import SqlStore

CLEAR = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"
GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
STAMP = "2026-02-01T00:00:00.000Z"


def _indicator(n: int, object_refs: list[str], granular: list[tuple[str, str]]) -> dict[str, object]:
    obj: dict[str, object] = {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--00000000-0000-4000-8000-{n:012d}",
        "created": STAMP, "modified": STAMP, "name": "Ticket scam", "description": "Seen at the gates",
        "labels": ["phishing"], "pattern": "[domain-name:value = 'tickets.example']", "pattern_type": "stix",
        "valid_from": STAMP,
    }
    if object_refs:
        obj["object_marking_refs"] = object_refs
    if granular:
        obj["granular_markings"] = [{"selectors": [selector], "marking_ref": ref} for selector, ref in granular]
    return obj


def _version(obj: dict[str, object]) -> NewVersion:
    prepared = prepare(orjson.loads(orjson.dumps(obj)))  # as ingest stores it
    assert isinstance(prepared, NewVersion), prepared
    return prepared


#: object -> the label its served version carries: its object's markings', whatever its parts' say.
CASES = [
    (_indicator(1, [GREEN], [("description", RED)]), "TLP:GREEN"),
    (_indicator(2, [], [("description", RED), ("name", GREEN)]), "none"),
    (_indicator(3, [GREEN], []), "TLP:GREEN"),
    (_indicator(4, [CLEAR, AMBER], []), "TLP:AMBER"),
    (_indicator(5, [RED], [("labels", GREEN)]), "TLP:RED"),
    (_indicator(6, [], [("description", AMBER)]), "TLP:AMBER"),  # one marking, a part's: labelled by it
]


def _noted(store: SqlStore) -> dict[str, str | None]:
    with store._read() as cur:
        cur.execute("SELECT stix_id, object_markings FROM objects")
        return {str(stix_id): noted for stix_id, noted in cur.fetchall()}


def test_object_markings_are_noted_on_write_on_a_replaced_form_and_on_migration(store: SqlStore) -> None:
    store.create_api_root(ApiRoot("main", "Main", None, 1000))
    pk = store.create_collection("c", "main", "C", None, None, ["application/stix+json;version=2.1"]).pk
    store.add_versions(pk, [_version(obj) for obj, _ in CASES])
    expected = {str(obj["id"]): object_markings(_version(obj).markings, _version(obj).body) for obj, _ in CASES}
    assert list(expected.values()) == [f'["{GREEN}"]', "[]", None, None, f'["{RED}"]', None]
    assert _noted(store) == expected
    rows = store.versions_by_seq(list(range(1, 100)))
    assert {row.stix_id: object_tlp_label(row) for row in rows} == {str(obj["id"]): label for obj, label in CASES}
    assert tlp_counts(rows) == {"TLP:GREEN": 2, "none": 1, "TLP:AMBER": 2, "TLP:RED": 1}

    # A fuller form of the plain indicator whose description is now TLP:RED.
    plain = CASES[2][0]
    stored_version = next(row.version for row in rows if row.stix_id == plain["id"])
    fuller = _indicator(3, [GREEN], [("description", RED)])
    assert store.replace_form(pk, _version(fuller), stored_version) is not None
    expected[str(plain["id"])] = f'["{GREEN}"]'
    assert _noted(store) == expected

    # A store from before step 29: every version is noted on migration.
    with store._write() as cur:
        cur.execute("ALTER TABLE objects DROP COLUMN object_markings")
        cur.execute("DELETE FROM schema_migrations WHERE version = 29")
    store.migrate()
    assert _noted(store) == expected


_MARKINGS = st.sampled_from([CLEAR, GREEN, AMBER, RED])
_SELECTORS = st.sampled_from(["name", "description", "labels", "pattern"])


@settings(max_examples=200, deadline=None)
@given(st.lists(_MARKINGS, max_size=3, unique=True), st.lists(st.tuples(_SELECTORS, _MARKINGS), max_size=3))
def test_the_noted_label_is_the_label_of_the_objects_own_markings(
        object_refs: list[str], granular: list[tuple[str, str]]) -> None:
    """Whatever the object and granular markings, the label read from the columns is the one its object's own
    markings give, but for a version whose only marking is a part's (labelled by that marking)."""
    version = _version(_indicator(7, object_refs, granular))
    row = VersionRow(1, version.stix_id, "indicator", 0, "2.1", 0, None, version.markings, version.body,
                     object_markings=object_markings(version.markings, version.body))
    column = version.markings
    if column is not None and "," not in column:
        assert object_tlp_label(row) == tlp_label(column)
    else:
        assert object_tlp_label(row) == tlp_label(orjson.dumps(sorted(set(object_refs))).decode() if object_refs
                                                  else None)
