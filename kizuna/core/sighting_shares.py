"""Storing the sightings a matching run made, as the sum of what every input saw (store/sighting_inputs.py).

A sighting made by matching has an id derived from its indicator, window and sighter, so the same window
seen in two log files, or in two request bodies, is one sighting. Stored as it stands, the second input's
sighting would replace the first's count and first seen. Each input's share is kept instead, and the version
stored carries the totals: another input adds to them, the same input matched again changes nothing. The
stored sighting keeps its ``created`` (STIX 2.1, 3.2: the same for every version of an object), and a run
that changes no total stores no new version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from kizuna.stix.timestamps import format_timestamp, now_micros, parse_timestamp
from kizuna.store.base import Collection, Store, VersionQuery, VersionRow
from kizuna.store.sighting_inputs import SightingShare


def merge_stored_sightings(
    store: Store, collection: Collection, sightings: Sequence[dict[str, Any]], shares: Sequence[SightingShare],
) -> list[dict[str, Any]]:
    """``sightings`` as their next versions: the totals over every input recorded for them, the stored
    ``created``, a ``modified`` after the stored one; those whose totals the store already holds left out."""
    totals = store.record_sighting_shares(collection.pk, shares)
    ids = tuple(sighting["id"] for sighting in sightings)
    newest: dict[str, VersionRow] = {}
    for start in range(0, len(ids), 100):
        # The store offers candidate versions (core/query.py picks a reader's); the node's own newest is wanted.
        # A sighting has a version for each input that added to its hour, so 100 per query leave room.
        for row in store.query_versions(VersionQuery(collection.pk, ids=ids[start:start + 100], limit=100_000)):
            if row.stix_id not in newest or row.version > newest[row.stix_id].version:
                newest[row.stix_id] = row
    stored = {stix_id: orjson.loads(row.body) for stix_id, row in newest.items()}
    now = now_micros() // 1000 * 1000  # sightings are written to the millisecond
    merged = []
    for sighting in sightings:
        total = totals.get(sighting["id"])
        update = dict(sighting)
        if total is not None:
            update.update(count=total.hits, first_seen=total.first_seen, last_seen=total.last_seen)
        held = stored.get(sighting["id"])
        if held is not None:
            if all(held.get(key) == update.get(key) for key in ("count", "first_seen", "last_seen")):
                continue  # this input's share was counted already
            modified = max(now, parse_timestamp(held["modified"]) + 1000)
            update.update(created=held["created"], modified=format_timestamp(modified)[:-4] + "Z")
        merged.append(update)
    return merged

