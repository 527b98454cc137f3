"""A collection's change stamp (newest ``date_added``, newest deletion) on both backends: the key every reader's
cached endpoint verdicts and every feed's ETag are checked against (core/stored_shapes.py, core/feeds.py). It
must move on every write and delete of its own collection, and on nothing done to another."""

from __future__ import annotations

from kizuna.store.base import VersionSelector
from tests.store.test_view_edges import CLEAR, GREEN, OBJECT, _store_with_collection, version


def test_the_stamp_moves_on_writes_and_deletes_of_its_collection_only(store_url: str) -> None:
    store, pk = _store_with_collection(store_url)
    try:
        other = store.create_collection("d", "main", "D", None, None, ["application/stix+json;version=2.1"]).pk
        assert store.collection_change_stamp(pk) == (None, None)

        added = store.add_versions(pk, [version(1, CLEAR), version(2, GREEN)])
        newest_added = max(result.date_added for result in added)
        assert store.collection_change_stamp(pk) == (newest_added, None)

        store.add_versions(other, [version(3, GREEN)])
        assert store.delete_versions(other, OBJECT, VersionSelector(all=True), None) == 1
        assert store.collection_change_stamp(pk) == (newest_added, None)

        assert store.delete_versions(pk, OBJECT, VersionSelector(exact=(1,)), None) == 1
        stamp = store.collection_change_stamp(pk)
        assert stamp[0] == newest_added and stamp[1] is not None
        assert stamp[1] == store.newest_deletion(pk)
        assert store.collection_change_stamp(other)[1] == store.newest_deletion(other) < stamp[1]

        later = store.add_versions(pk, [version(4, GREEN)])
        assert store.collection_change_stamp(pk) == (later[0].date_added, stamp[1])
    finally:
        store.close()


def test_the_policy_generation_comes_with_the_stamp_as_each_alone_says(store_url: str) -> None:
    store, pk = _store_with_collection(store_url)
    try:
        start = store.policy_generation()
        for step in range(3):
            if step == 1:
                store.add_versions(pk, [version(1, CLEAR)])
                store.bump_policy_generation()
            if step == 2:
                store.delete_versions(pk, OBJECT, VersionSelector(all=True), None)
                store.bump_policy_generation()
                store.bump_policy_generation()
            together = store.policy_generation_and_change_stamp(pk)
            assert together == (store.policy_generation(), store.collection_change_stamp(pk))
            assert together[0] == start + [0, 1, 3][step]
            unset = (together[1][0] is None, together[1][1] is None)
            assert unset == [(True, True), (False, True), (True, False)][step]  # all deleted: nothing added
    finally:
        store.close()
