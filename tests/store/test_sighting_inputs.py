"""Each input's share of a sighting (schema step 22) on both backends: an input's share replaces what it held,
another input's adds, and the totals are per collection."""

from __future__ import annotations

from kizuna.store.sighting_inputs import SightingShare, SightingTotal
from kizuna.store.sql import SqlStore

S = "sighting--ef69c6b9-82f0-5604-a657-5363c2aece4c"


def test_shares_add_up_across_inputs_and_replace_within_one(store: SqlStore) -> None:
    a = SightingShare(S, "file:a", 2, "2019-12-03T22:01:40.000Z", "2019-12-03T22:03:20.000Z")
    b = SightingShare(S, "file:b", 3, "2019-12-03T22:00:50.000Z", "2019-12-03T22:06:40.000Z")
    assert store.record_sighting_shares(1, [a]) == {S: SightingTotal(2, a.first_seen, a.last_seen)}
    assert store.record_sighting_shares(1, [b]) == {S: SightingTotal(5, b.first_seen, b.last_seen)}
    assert store.record_sighting_shares(1, [a]) == {S: SightingTotal(5, b.first_seen, b.last_seen)}
    grown = a._replace(hits=4, last_seen="2019-12-03T22:09:00.000Z")
    assert store.record_sighting_shares(1, [grown]) == {S: SightingTotal(7, b.first_seen, grown.last_seen)}
    # Another collection holds its own sightings, however their ids fall.
    assert store.record_sighting_shares(2, [a]) == {S: SightingTotal(2, a.first_seen, a.last_seen)}
