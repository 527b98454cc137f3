"""Look-ups by a long list of ids or keys, on both backends. PostgreSQL matches a list longer than a few
members against a set drawn from unnest() rather than "= ANY(array)" (store/postgres/store.py ``_in``): the
answers must be the ones each member would give alone, whatever the list holds (unknown ids, repeats)."""

from __future__ import annotations

import json
from typing import Any

from kizuna.store.base import NewVersion, Outcome, VersionQuery, VersionSelector
from tests.store.test_view_edges import GREEN, _store_with_collection

IDS = [f"indicator--00000000-0000-4000-8000-{index:012d}" for index in range(40)]
UNKNOWN = [f"indicator--ffffffff-0000-4000-8000-{index:012d}" for index in range(5)]


def _version(stix_id: str, day: int) -> NewVersion:
    body = {"type": "indicator", "id": stix_id, "modified": f"2026-03-{day:02d}T00:00:00.000Z",
            "object_marking_refs": [GREEN]}
    return NewVersion(stix_id, "indicator", day, "2.1", None, json.dumps([GREEN]), json.dumps(body).encode())


def _stored(store: Any, pk: int) -> list[NewVersion]:
    # two versions of every other object: a look-up must tell an object's versions apart
    versions = [_version(stix_id, day) for index, stix_id in enumerate(IDS) for day in (1, 2)[: 1 + index % 2]]
    assert all(result.outcome is Outcome.ADDED for result in store.add_versions(pk, versions))
    return versions


def test_a_long_list_of_ids_finds_what_each_id_finds_alone(store_url: str) -> None:
    store, pk = _store_with_collection(store_url)
    try:
        _stored(store, pk)
        for versions in (VersionSelector.latest(), VersionSelector(all=True)):
            alone = sorted((row.stix_id, row.version) for stix_id in IDS for row in store.query_versions(
                VersionQuery(pk, ids=(stix_id,), versions=versions)))
            wanted = (*UNKNOWN[:2], *IDS, *IDS[:10], *UNKNOWN[2:])  # unknown ids and repeats among them
            together = store.query_versions(VersionQuery(pk, ids=wanted, versions=versions))
            assert sorted((row.stix_id, row.version) for row in together) == alone
            assert len(alone) == (40 if versions == VersionSelector.latest() else 60)
            assert [row.date_added for row in together] == sorted(row.date_added for row in together)
        # seventeen ids, just past the longest list matched member by member, and the last of them unknown
        few = store.query_versions(VersionQuery(pk, ids=(*IDS[:16], UNKNOWN[0])))
        assert sorted(row.stix_id for row in few) == IDS[:16]
    finally:
        store.close()


def test_a_long_list_of_keys_finds_those_rows(store_url: str) -> None:
    store, pk = _store_with_collection(store_url)
    try:
        _stored(store, pk)
        rows = store.query_versions(VersionQuery(pk, versions=VersionSelector(all=True), limit=100))
        chosen = [row.seq for row in rows[::2]]  # thirty keys
        found = store.versions_by_seq([*chosen, 10**9, *chosen[-5:]])
        assert [row.seq for row in found] == chosen  # in date_added order, each once, the unknown key ignored
    finally:
        store.close()


def test_a_batch_of_stored_versions_is_found_stored(store_url: str) -> None:
    store, pk = _store_with_collection(store_url)
    try:
        versions = _stored(store, pk)
        again = store.add_versions(pk, [*versions, _version(UNKNOWN[0], 1)])
        assert [result.outcome for result in again] == [Outcome.DUPLICATE] * len(versions) + [Outcome.ADDED]
    finally:
        store.close()
