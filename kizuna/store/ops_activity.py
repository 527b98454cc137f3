"""The sightings an operation's collections received, per minute and indicator, kept as they arrive
(schema steps 19 and 21), so the shift report's most sighted indicators are sums instead of every sighting
read and parsed; shared by both SQL backends. (What the collections received otherwise, per hour, producer
and type, the report groups from the objects' own columns when it is read: ``added_counts``.)

``ops_sighted`` is a cache of the newest stored versions that ``kizuna.ops`` keeps and rebuilds
(ops/activity.py): one row per batch and minute (slot) and role, holding that batch's sums as JSON,
``[[indicator, count summed, sighting objects, first date_added], ...]``, added together when read. A
batch's sightings name indicators all over, so a row per indicator would write as many rows as sightings;
a row per batch writes one. A version that a newer one replaces is taken back out by a later row with
negative counts; ``first`` is the earliest ``date_added`` counted (the report orders equal counts by it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import orjson

from kizuna.store.ops_alerts import OpsRows, chunks

#: Added to ``first`` of an incidents row when the rows of both roles are ordered together: the report
#: reads the intel collection before the incidents collection.
ROLE_AFTER = 1 << 53
NO_FIRST = 1 << 62  # ``first`` of a row that takes a version back out: never the earliest


class SightedRow(NamedTuple):
    slot: int
    role: str
    ref: str  # sighting_of_ref
    number: int  # the sightings' ``count`` summed
    objects: int  # how many sighting objects
    first: int


class OpsActivityRows(OpsRows):
    def add_ops_sighted(self, operation: str, sighted: Sequence[SightedRow]) -> None:
        """Add a batch's rows to the running sums (negative counts take versions back out)."""
        batches: dict[tuple[int, str], list[tuple[str, int, int, int]]] = {}
        for row in sighted:
            batches.setdefault((row.slot, row.role), []).append((row.ref, row.number, row.objects, row.first))
        if not batches:
            return
        with self._write() as cur:
            cur.executemany("INSERT INTO ops_sighted (operation, slot, role, sums) VALUES (?, ?, ?, ?)",
                            [(operation, slot, role, orjson.dumps(rows)) for (slot, role), rows in batches.items()])

    def clear_ops_sighted(self, operation: str) -> None:
        with self._write() as cur:
            cur.execute("DELETE FROM ops_sighted WHERE operation = ?", (operation,))

    def ops_sighted(self, operation: str, from_slot: int) -> dict[str, tuple[int, int]]:
        """Indicator -> (sightings' count summed, order key) from ``from_slot`` on, for the indicators that
        still have a sighting counted. The key orders equal sums as a reading of the intel collection and
        then the incidents collection would meet them."""
        sums: dict[str, list[int]] = {}  # ref -> [count, objects, key]
        with self._read() as cur:
            cur.execute("SELECT role, sums FROM ops_sighted WHERE operation = ? AND slot >= ?", (operation, from_slot))
            for role, body in cur.fetchall():
                after = 0 if role == "intel" else ROLE_AFTER
                for ref, number, objects, first in orjson.loads(bytes(body)):
                    found = sums.get(ref)
                    if found is None:
                        sums[ref] = [number, objects, first + after]
                    else:
                        found[0] += number
                        found[1] += objects
                        found[2] = min(found[2], first + after)
        return {ref: (found[0], found[2]) for ref, found in sums.items() if found[1] > 0}

    def not_newest_between(self, collection_pk: int, first: int, last: int) -> set[int]:
        """date_added of the versions added from ``first`` to ``last`` that a newer version already replaces."""
        with self._read() as cur:
            cur.execute("SELECT date_added FROM objects WHERE collection_pk = ? AND date_added >= ? "
                        "AND date_added <= ? AND is_last = 0", (collection_pk, first, last))
            return {int(row[0]) for row in cur.fetchall()}

    def newest_through(self, collection_pk: int, ids: Sequence[str],
                       through: int) -> list[tuple[str, str | None, str, int, bytes]]:
        """(id, producer, type, date_added, body) of the newest version of each of ``ids`` added up to
        ``through``: what the running sums counted for it before."""
        newest: dict[str, tuple[int, tuple[str, str | None, str, int, bytes]]] = {}
        with self._read() as cur:
            for chunk in chunks(sorted(set(ids))):
                clause, params = self._in("stix_id", chunk)
                cur.execute(
                    "SELECT stix_id, version, created_by_ref, type, date_added, body FROM objects "
                    f"WHERE collection_pk = ? AND date_added <= ? AND {clause}", (collection_pk, through, *params),
                )
                for stix_id, version, producer, kind, added, body in cur.fetchall():
                    if stix_id not in newest or int(version) > newest[stix_id][0]:
                        newest[stix_id] = (int(version), (str(stix_id), producer, str(kind), int(added), bytes(body)))
        return [row for _, row in newest.values()]
