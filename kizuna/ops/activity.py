"""What an operation's collections received, counted per minute as objects arrive (schema step 19), so the
shift report reads sums instead of the period's objects (only those of the minute its period starts in).

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

from kizuna.ops.alerts import NOT_ACTIVITY, SHIFT_REPORT_MARK
from kizuna.ops.records import Operation
from kizuna.store.base import Store
from kizuna.store.ops_activity import NO_FIRST, ActivityRow, SightedRow

SLOT_US = 60 * 1_000_000  # the sums' slot of time: a minute, which divides the report's hours
_SKIPPED = frozenset(NOT_ACTIVITY)


class _Sums:
    """Running sums of one batch, by bucket: count and the earliest date_added."""

    def __init__(self) -> None:
        self.activity: dict[tuple[int, str, str, str], list[int]] = {}
        self.sighted: dict[tuple[int, str, str], list[int]] = {}

    def add(self, role: str, obj: dict[str, Any], added: int, sign: int) -> None:
        slot = added // SLOT_US
        first = added if sign > 0 else NO_FIRST
        producer = obj.get("created_by_ref")
        key = (slot, role, producer if isinstance(producer, str) else "", str(obj["type"]))
        row = self.activity.get(key)
        if row is None:
            self.activity[key] = [sign, first]
        else:
            row[0] += sign
            row[1] = min(row[1], first)
        if obj["type"] == "sighting":
            self.sighting(slot, role, obj, first, sign)

    def sighting(self, slot: int, role: str, obj: dict[str, Any], first: int, sign: int) -> None:
        """A sighting's count into the sums of what it sighted (``sign`` -1 takes one back out)."""
        ref = obj.get("sighting_of_ref", "")
        count = obj.get("count", 1)
        sight = (slot, role, ref if isinstance(ref, str) else "")
        found = self.sighted.setdefault(sight, [0, 0, first])
        found[0] += sign * (count if isinstance(count, int) else 1)
        found[1] += sign
        found[2] = min(found[2], first)

    def store(self, store: Store, slug: str) -> None:
        store.add_ops_activity(slug, [ActivityRow(*key, *row) for key, row in self.activity.items() if row[0]],
                               [SightedRow(*key, *row) for key, row in self.sighted.items() if row[0] or row[1]])


def count_batch(store: Store, operation: Operation, role: str, collection_pk: int,
                arrived: Sequence[tuple[dict[str, Any], int]], counted_through: int | None,
                newest_only: bool = False) -> None:
    """Count versions added to one collection (each with its date_added, oldest first), and take back out
    what was counted, up to ``counted_through``, for objects they replace. ``newest_only`` when every
    version given is known to be its object's newest (a catch-up reads only those)."""
    if not arrived:
        return
    sums = _Sums()
    replaced = set() if newest_only else store.not_newest_between(collection_pk, arrived[0][1], arrived[-1][1])
    later: list[str] = []
    counts, slot_us = sums.activity, SLOT_US
    # The add of `_Sums`, inlined: this runs on every object an operation's ingest adds. Oldest first, so
    # the first object of a bucket is its earliest.
    for obj, added in arrived:
        get = obj.get
        kind = get("type")
        if type(kind) is not str:
            kind = str(kind)
        if kind in _SKIPPED or added in replaced or get(SHIFT_REPORT_MARK):
            continue
        producer = get("created_by_ref")
        slot = added // slot_us
        key = (slot, role, producer if type(producer) is str else "", kind)
        row = counts.get(key)
        if row is None:
            counts[key] = [1, added]
        else:
            row[0] += 1
        if kind == "sighting":
            sums.sighting(slot, role, obj, added, 1)
        # A version whose modified equals its created is a first version: nothing counted before it.
        if counted_through is not None and get("modified") != get("created", 0):
            later.append(obj["id"])
    earlier = store.newest_through(collection_pk, later, counted_through) if later and counted_through else []
    for _, producer, kind, added, body in earlier:
        if kind in _SKIPPED:
            continue
        obj = orjson.loads(body) if kind in ("sighting", "report") else {"type": kind, "created_by_ref": producer}
        if not obj.get(SHIFT_REPORT_MARK):
            sums.add(role, obj, added, -1)
    sums.store(store, operation.slug)
