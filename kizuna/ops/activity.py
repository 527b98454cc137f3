"""The sightings an operation's collections received, counted per minute and indicator as they arrive
(schema steps 19 and 21), so the shift report's most sighted indicators are sums instead of every sighting
of the period read and parsed (only those of the minute its period starts in are).

Only sightings are counted here: what else the collections received (per hour, producer and type) the
report groups from the objects' own columns when it is read (``Store.added_counts``, an indexed range),
which follows new versions and deletions by itself and costs ingest nothing. A sighting's ``count`` is in
its body, which that grouping does not read.

The ingest listener (ops/arrivals.py) counts each batch it judges, in the same transaction and under
the same watermark as the alerts, and `refresh` counts what the listener missed; both come here. The
sums are of the newest stored versions, as the report counts them: a version that is not the newest
when it arrives is not counted, and when a newer version arrives, the version counted before it for
the same object (the newest one up to the watermark) is taken back out. Deletions cannot be followed
this way, so a deletion in the intel or incidents collection changes the cache's mark and the sums are
rebuilt from the stored objects, like the alerts after a watchlist change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from kizuna.ops.alerts import SHIFT_REPORT_MARK
from kizuna.ops.records import Operation
from kizuna.store.base import Store
from kizuna.store.ops_activity import NO_FIRST, SightedRow

SLOT_US = 60 * 1_000_000  # the sums' slot of time: a minute, which divides the report's hours


class _Sums:
    """Running sums of one batch: per (slot, role, indicator) the sightings' count, how many sighting
    objects, and the earliest date_added."""

    def __init__(self) -> None:
        self.sighted: dict[tuple[int, str, str], list[int]] = {}

    def sighting(self, role: str, obj: dict[str, Any], added: int, sign: int) -> None:
        """A sighting's count into the sums of what it sighted (``sign`` -1 takes one back out)."""
        first = added if sign > 0 else NO_FIRST
        ref = obj.get("sighting_of_ref", "")
        count = obj.get("count", 1)
        number = sign * (count if type(count) is int else 1)
        sight = (added // SLOT_US, role, ref if isinstance(ref, str) else "")
        found = self.sighted.get(sight)
        if found is None:
            self.sighted[sight] = [number, sign, first]
        else:
            found[0] += number
            found[1] += sign
            found[2] = min(found[2], first)

    def store(self, store: Store, slug: str) -> None:
        store.add_ops_sighted(slug, [SightedRow(*key, *row) for key, row in self.sighted.items() if row[0] or row[1]])


def count_batch(store: Store, operation: Operation, role: str, collection_pk: int,
                arrived: Sequence[tuple[dict[str, Any], int]], counted_through: int | None,
                newest_only: bool = False) -> None:
    """Count the sightings among versions added to one collection (each with its date_added, oldest first),
    and take back out what was counted, up to ``counted_through``, for sightings they replace.
    ``newest_only`` when every version given is known to be its object's newest (a catch-up reads only
    those)."""
    seen = [(obj, added) for obj, added in arrived if obj.get("type") == "sighting"]
    if not seen:
        return
    sums = _Sums()
    replaced = set() if newest_only else store.not_newest_between(collection_pk, seen[0][1], seen[-1][1])
    later: list[str] = []
    for obj, added in seen:
        if added in replaced or obj.get(SHIFT_REPORT_MARK):
            continue
        sums.sighting(role, obj, added, 1)
        # A version whose modified equals its created is a first version: nothing counted before it.
        if counted_through is not None and obj.get("modified") != obj.get("created", 0):
            later.append(obj["id"])
    earlier = store.newest_through(collection_pk, later, counted_through) if later and counted_through else []
    for _, _, kind, added, body in earlier:
        if kind == "sighting":
            obj = orjson.loads(body)
            if not obj.get(SHIFT_REPORT_MARK):
                sums.sighting(role, obj, added, -1)
    sums.store(store, operation.slug)
