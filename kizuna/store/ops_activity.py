"""What an operation's collections received, per minute, kept as objects arrive (schema step 19), so the shift
report reads counts instead of objects; shared by both SQL backends.

Two tables of running sums, both a cache of the newest stored versions that ``kizuna.ops`` keeps and
rebuilds (ops/activity.py): ``ops_activity`` counts versions per slot of time (a minute), role, producer
and type, and ``ops_sighted`` holds sightings' ``count`` per slot, role and the indicator they are of, a
row per batch, summed when read. A version that a newer one replaces is taken back out by adding its
row again with negative counts; ``first`` is the earliest ``date_added`` ever counted in a row (the
report orders equal counts by it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from kizuna.store.ops_alerts import OpsRows, chunks

#: Added to ``first`` of an incidents row when the rows of both roles are ordered together: the report
#: reads the intel collection before the incidents collection.
ROLE_AFTER = 1 << 53
NO_FIRST = 1 << 62  # ``first`` of a row that takes a version back out: never the earliest


class ActivityRow(NamedTuple):
    slot: int  # date_added // the slot's length
    role: str
    producer: str  # created_by_ref, '' for none
    type: str
    number: int  # versions counted
    first: int


class SightedRow(NamedTuple):
    slot: int
    role: str
    ref: str  # sighting_of_ref
    number: int  # the sightings' ``count`` summed
    objects: int  # how many sighting objects
    first: int


class OpsActivityRows(OpsRows):
    #: The two-argument minimum: SQLite's scalar MIN, PostgreSQL's LEAST.
    _LEAST = "MIN"

    def add_ops_activity(self, operation: str, activity: Sequence[ActivityRow], sighted: Sequence[SightedRow]) -> None:
        """Add the rows to the running sums (negative counts take versions back out)."""
        with self._write() as cur:
            if activity:
                cur.executemany(
                    "INSERT INTO ops_activity (operation, slot, role, producer, type, count, first) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (operation, slot, role, producer, type) DO UPDATE "
                    f"SET count = ops_activity.count + excluded.count, "
                    f"first = {self._LEAST}(ops_activity.first, excluded.first)",
                    [(operation, *row) for row in activity],
                )
            if sighted:
                # Appended, not merged: a batch's sightings name indicators all over the table, and merging
                # them would rewrite a page for each; appending writes the rows once, at the end.
                cur.executemany(
                    "INSERT INTO ops_sighted (operation, slot, role, ref, count, objects, first) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", [(operation, *row) for row in sighted],
                )

    def clear_ops_activity(self, operation: str) -> None:
        with self._write() as cur:
            cur.execute("DELETE FROM ops_activity WHERE operation = ?", (operation,))
            cur.execute("DELETE FROM ops_sighted WHERE operation = ?", (operation,))

    def ops_activity(self, operation: str, from_slot: int, per: int = 1) -> list[ActivityRow]:
        """The counts from ``from_slot`` on, summed per ``per`` slots (``slot`` is then the first slot's
        number divided by ``per``)."""
        with self._read() as cur:
            per = int(per)  # written into the statement: PostgreSQL groups by the expression only as written
            cur.execute(
                f"SELECT slot / {per}, role, producer, type, SUM(count), MIN(first) FROM ops_activity "
                f"WHERE operation = ? AND slot >= ? AND count > 0 GROUP BY slot / {per}, role, producer, type",
                (operation, from_slot),
            )
            return [ActivityRow(int(h), str(r), str(p), str(t), int(c), int(f)) for h, r, p, t, c, f in cur.fetchall()]

    def ops_sighted(self, operation: str, from_slot: int, limit: int | None = None,
                    refs: Sequence[str] | None = None) -> list[tuple[str, int, int]]:
        """(indicator, sightings' count summed, order key) from ``from_slot`` on: the most sighted first
        (``limit`` of them), or only ``refs``. The key orders equal sums as a reading of the intel
        collection and then the incidents collection would meet them."""
        query = (
            "SELECT ref, SUM(count), MIN(first + CASE WHEN role = 'intel' THEN 0 ELSE ? END) FROM ops_sighted "
            "WHERE operation = ? AND slot >= ?"
        )
        with self._read() as cur:
            if refs is None:
                cur.execute(query + " GROUP BY ref HAVING SUM(objects) > 0 ORDER BY 2 DESC, 3"
                            + ("" if limit is None else f" LIMIT {int(limit)}"), (ROLE_AFTER, operation, from_slot))
                return [(str(ref), int(count), int(key)) for ref, count, key in cur.fetchall()]
            found: list[tuple[str, int, int]] = []
            for chunk in chunks(sorted(set(refs))):
                clause, params = self._in("ref", chunk)
                cur.execute(query + f" AND {clause} GROUP BY ref HAVING SUM(objects) > 0",
                            (ROLE_AFTER, operation, from_slot, *params))
                found.extend((str(ref), int(count), int(key)) for ref, count, key in cur.fetchall())
            return found

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
