"""Aggregate reads behind the console's dashboard, in SQL both backends share.

Counting happens in the database: a day's objects are grouped by the columns the visibility check
decides from (producer, markings, the partner a version came from), so the core decides each group
once instead of each row (core/dashboard.py).  Rows whose visibility needs their body are returned
one by one, newest first and bounded by the caller.  Days are UTC days since the epoch, computed from
``date_added`` (µs) by integer division on both backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from kizuna.store.base import Store, StoreError, VersionRow
from kizuna.store.sql import _ROW_COLUMNS, SqlStore

DAY_MICROS = 86_400_000_000
#: Marking and extension definitions travel beside the objects that use them; they are not content.
FURNITURE = ("marking-definition", "extension-definition")


class ReceivedGroup(NamedTuple):
    """Object versions added to one collection on one day that the visibility check decides alike."""

    day: int
    partner: str | None  # the federation partner entry it came from; None: not from a partner node
    created_by_ref: str | None
    markings: str | None
    type: str  # the type when it is decided per row (references, identities), else ""
    versions: int


class EgressRow(NamedTuple):
    at: int
    principal: str | None
    body: str


@dataclass(frozen=True, slots=True)
class PartnerStatus:
    partner: str
    state: str  # "new", "ok", "backoff", "running", "interrupted" (a run died; derived, never stored)
    failures: int  # consecutive failed runs
    next_attempt: int  # µs; the worker does not try before this
    last_attempt: int | None
    last_success: int | None
    last_error: str | None
    pulled: int
    pushed: int
    quarantined: int
    #: JSON summary of the last finished run (counts and notes such as "the agreement hides everything").
    last_run: str | None = None
    #: Who holds the run lease while the state is "running".
    running_in: str | None = None

    @classmethod
    def fresh(cls, partner: str) -> PartnerStatus:
        return cls(partner, "new", 0, 0, None, None, None, 0, 0, 0)



class StoreStats:
    def __init__(self, store: Store) -> None:
        if not isinstance(store, SqlStore):
            raise StoreError("the dashboard needs an SQL store (SQLite or PostgreSQL)")
        self.store: SqlStore = store

    def received_groups(self, collection_pk: int, since: int, per_row_types: Sequence[str]) -> list[ReceivedGroup]:
        """Versions added at or after ``since`` (µs), grouped by day and by what decides their visibility.

        Two grouped scans of the ``(collection, date_added)`` range instead of a join per row: every
        version, then those that came from a partner node (``fed_provenance``), which the caller takes
        out of the first.
        """
        store = self.store
        kinds, kind_params = store._in("type", list(per_row_types))
        furniture, furniture_params = store._in("type", list(FURNITURE))
        kind = f"CASE WHEN {kinds} THEN type ELSE '' END"
        where = f"collection_pk = ? AND date_added >= ? AND NOT {furniture}"
        with store._read() as cur:
            cur.execute(
                f"SELECT date_added / {DAY_MICROS}, created_by_ref, markings, {kind}, COUNT(*) FROM objects "
                f"WHERE {where} GROUP BY 1, 2, 3, 4",
                (*kind_params, collection_pk, since, *furniture_params),
            )
            everything = cur.fetchall()
            cur.execute(
                f"SELECT o.date_added / {DAY_MICROS}, p.partner, o.created_by_ref, o.markings, "
                f"{kind.replace('type', 'o.type')}, COUNT(*) FROM fed_provenance p JOIN objects o "
                "ON o.collection_pk = p.collection_pk AND o.stix_id = p.stix_id AND o.version = p.version "
                f"WHERE p.collection_pk = ? AND p.received_at >= ? AND o.date_added >= ? "
                f"AND NOT {furniture.replace('type', 'o.type')} GROUP BY 1, 2, 3, 4, 5",
                (*kind_params, collection_pk, since, since, *furniture_params),
            )
            relayed = cur.fetchall()
        remaining: dict[tuple[Any, ...], int] = {tuple(row[:4]): int(row[4]) for row in everything}
        groups = []
        for day, partner, producer, markings, row_kind, count in relayed:
            key = (day, producer, markings, row_kind)
            remaining[key] = remaining.get(key, 0) - int(count)
            groups.append(ReceivedGroup(int(day), str(partner), producer, markings, row_kind, int(count)))
        groups += [ReceivedGroup(int(k[0]), None, k[1], k[2], k[3], n) for k, n in remaining.items() if n > 0]
        return groups

    def newest_of_types(
        self, collection_pk: int, types: Sequence[str], since: int, limit: int, before: int | None = None,
    ) -> list[VersionRow]:
        """Versions of ``types`` added at or after ``since``, newest first (the type index, walked back)."""
        store = self.store
        clause, params = store._in("type", list(types))
        bound = " AND date_added < ?" if before is not None else ""
        with store._read() as cur:
            cur.execute(
                f"SELECT {_ROW_COLUMNS} FROM objects WHERE collection_pk = ? AND {clause} AND date_added >= ?"
                f"{bound} ORDER BY date_added DESC LIMIT ?",
                (collection_pk, *params, since, *([before] if before is not None else []), limit),
            )
            return list(map(VersionRow._make, cur.fetchall()))

    def provenance_partners(self, collection_pk: int, rows: Sequence[VersionRow]) -> dict[tuple[str, int], str]:
        """(id, version) -> the partner entry it came from, for those of ``rows`` that came from one."""
        found: dict[tuple[str, int], str] = {}
        ids = sorted({row.stix_id for row in rows})
        with self.store._read() as cur:
            for start in range(0, len(ids), 500):
                clause, params = self.store._in("stix_id", ids[start:start + 500])
                cur.execute(
                    f"SELECT stix_id, version, partner FROM fed_provenance WHERE collection_pk = ? AND {clause}",
                    (collection_pk, *params),
                )
                found.update({(str(i), int(v)): str(p) for i, v, p in cur.fetchall()})
        return found

    def produced_by(self, collection_pk: int, ids: set[str], producer: str | None) -> set[str]:
        """Those of ``ids`` with a version in the collection whose ``created_by_ref`` is ``producer``."""
        if producer is None or not ids:
            return set()
        found: set[str] = set()
        ordered = sorted(ids)
        with self.store._read() as cur:
            for start in range(0, len(ordered), 500):
                clause, params = self.store._in("stix_id", ordered[start:start + 500])
                cur.execute(
                    f"SELECT DISTINCT stix_id FROM objects WHERE collection_pk = ? AND {clause} AND created_by_ref = ?",
                    (collection_pk, *params, producer),
                )
                found.update(str(row[0]) for row in cur.fetchall())
        return found

    def egress_since(self, since: int) -> list[EgressRow]:
        """Egress audit records written at or after ``since`` (µs), oldest first."""
        with self.store._read() as cur:
            cur.execute(
                "SELECT at, principal, body FROM audit_log WHERE kind = 'egress' AND at >= ? ORDER BY seq",
                (since,),
            )
            return [EgressRow(int(at), principal, str(body)) for at, principal, body in cur.fetchall()]

    def sync_rows(self, run_lease_prefix: str) -> list[tuple[str, str, PartnerStatus, int | None]]:
        """(name, stored configuration, status as stored, when its run lease expires) per partner entry."""
        with self.store._read() as cur:
            cur.execute(
                "SELECT p.name, p.config, s.state, s.failures, s.next_attempt, s.last_attempt, s.last_success, "
                "s.last_error, s.pulled, s.pushed, s.quarantined, s.last_run, l.expires_at FROM fed_partners p "
                "LEFT JOIN fed_status s ON s.partner = p.name "
                "LEFT JOIN fed_lease l ON l.name = CAST(? AS TEXT) || p.name ORDER BY p.name",
                (run_lease_prefix,),
            )
            rows = cur.fetchall()
        return [
            (str(row[0]), str(row[1]),
             PartnerStatus(row[0], *row[2:12]) if row[2] is not None else PartnerStatus.fresh(row[0]),
             None if row[12] is None else int(row[12]))
            for row in rows
        ]

    def push_positions(self) -> list[tuple[str, str, int]]:
        """(partner, local collection id, last pushed ``date_added``) of every push cursor."""
        with self.store._read() as cur:
            cur.execute("SELECT partner, local_collection, position FROM fed_cursors WHERE direction = 'push'")
            return [(str(p), str(c), int(pos)) for p, c, pos in cur.fetchall() if str(pos).isdigit()]

    def waiting_after(self, collection_pk: int, after: int | None) -> int:
        """Content versions added after ``after`` (all of them when None): a push's backlog.

        Two counts that each stay inside an index (``(collection, date_added)`` and ``(collection, type,
        date_added)``) instead of one that reads every row's type."""
        after = after if after is not None else -1
        with self.store._read() as cur:
            cur.execute("SELECT COUNT(*) FROM objects WHERE collection_pk = ? AND date_added > ?",
                        (collection_pk, after))
            waiting = int(cur.fetchone()[0])
            for kind in FURNITURE:
                cur.execute("SELECT COUNT(*) FROM objects WHERE collection_pk = ? AND type = ? AND date_added > ?",
                            (collection_pk, kind, after))
                waiting -= int(cur.fetchone()[0])
        return waiting
