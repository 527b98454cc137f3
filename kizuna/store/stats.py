"""Aggregate reads behind the console's dashboard, in SQL both backends share.

Counting happens in the database: a day's objects are grouped by the columns the visibility check
decides from (producer, markings, the partner a version came from), so the core decides each group
once instead of each row (core/dashboard.py).  Rows whose visibility needs their body are returned
one by one, newest first and bounded by the caller.  Days are UTC days since the epoch, computed from
``date_added`` (µs) by integer division on both backends.  The received groups are kept between
requests and brought up to date (store/received_groups.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import orjson

from kizuna.numerals import whole_number
from kizuna.store.base import Store, StoreError, VersionRow
from kizuna.store.received_groups import DAY_MICROS as DAY_MICROS
from kizuna.store.received_groups import FURNITURE as FURNITURE
from kizuna.store.received_groups import ReceivedGroup, received_groups
from kizuna.store.sql import _ROW_COLUMNS, SqlStore
from kizuna.store.view_edges import GRANULAR


class EgressRow(NamedTuple):
    at: int
    principal: str | None
    endpoint: str | None
    tlp: dict[str, int] | None  # served versions per TLP label; None in records written before it existed
    served: int
    #: False for a push whose POST never completed: read for the partner, not known to have left
    delivered: bool = True


_EGRESS_HEAD = 1024
_SERVED_COUNT = re.compile(r',"served":\{"n":(\d+)')


def _egress_fields(text: str, whole: bool = False) -> tuple[str | None, dict[str, int] | None, int, bool] | None:
    """(endpoint, per-TLP counts, served count, delivered) of an egress body, or None when ``text`` (a head) does
    not reach the served count."""
    if whole:
        body = orjson.loads(text)
        served = body.get("served")
        count = int(served.get("n", 0)) if isinstance(served, dict) else 0
        return body.get("endpoint"), body.get("tlp"), count, not body.get("undelivered")
    match = _SERVED_COUNT.search(text)
    if match is None:
        return None
    head = orjson.loads(text[:match.start()] + "}")
    return head.get("endpoint"), head.get("tlp"), int(match.group(1)), not head.get("undelivered")


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
        """Versions added at or after ``since`` (µs), grouped by day and by the columns that decide their
        visibility; kept between calls and brought up to date from the rows added since
        (store/received_groups.py)."""
        return received_groups(self.store, collection_pk, since, per_row_types)

    def relayed_count(
        self, collection_pk: int, since: int, producer: str | None, markings: str, per_row_types: Sequence[str],
        senders: Sequence[str] = (),
    ) -> int:
        """How many versions of one group of plain types (not ``per_row_types``, which are counted one by one)
        came from a partner node: asked only of the rare groups that are visible but marked at or above the
        reader's relay floor (AMBER+STRICT/RED; AMBER outside this node's organisation and its clients), which
        stop at the recipient when relayed. Versions that ``senders`` (the partner entries of the reader's own
        organisation) sent are not counted: the reader holds them already. Nor are versions with granular markings,
        each a group of its own (store/received_groups.py)."""
        kinds = ", ".join("?" * len(per_row_types))
        not_sent = f" AND p.partner NOT IN ({', '.join('?' * len(senders))})" if senders else ""
        with self.store._read() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM objects o JOIN fed_provenance p ON p.collection_pk = o.collection_pk "
                "AND p.stix_id = o.stix_id AND p.version = o.version WHERE o.collection_pk = ? "
                f"AND o.date_added >= ? AND o.markings = ? AND o.type NOT IN ({kinds}){not_sent} "
                f"AND NOT {self.store._holds('o.body')} AND "
                + ("o.created_by_ref IS NULL" if producer is None else "o.created_by_ref = ?"),
                (collection_pk, since, markings, *per_row_types, *senders, GRANULAR,
                 *([] if producer is None else [producer])),
            )
            return int(cur.fetchone()[0])

    def received_from_partners(self, since: int) -> list[tuple[int, str, int]]:
        """(day, partner entry, versions) received from partner nodes, from provenance alone: the
        ``(partner, received_at)`` index answers it without touching an object."""
        with self.store._read() as cur:
            cur.execute("SELECT name FROM fed_partners")
            names = [str(row[0]) for row in cur.fetchall()]
            found = []
            for name in names:
                cur.execute(
                    f"SELECT received_at / {DAY_MICROS}, COUNT(*) FROM fed_provenance WHERE partner = ? "
                    "AND received_at >= ? GROUP BY 1",
                    (name, since),
                )
                found += [(int(day), name, int(count)) for day, count in cur.fetchall()]
        return found

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
        """Egress audit records written at or after ``since`` (µs), oldest first, with only the fields the
        dashboard counts.

        A record's served pairs run to tens of kilobytes a page, and its counts are written before them
        (``Node._record_egress``), so only the head of each body is read and parsed; a record whose head
        does not hold them (none that Kizuna writes) is read whole.
        """
        with self.store._read() as cur:
            cur.execute(
                f"SELECT seq, at, principal, substr(body, 1, {_EGRESS_HEAD}) FROM audit_log "
                "WHERE kind = 'egress' AND at >= ? ORDER BY seq",
                (since,),
            )
            found = []
            for seq, at, principal, head in cur.fetchall():
                fields = _egress_fields(str(head))
                if fields is None:
                    cur.execute("SELECT body FROM audit_log WHERE seq = ?", (seq,))
                    fields = _egress_fields(str(cur.fetchone()[0]), whole=True)
                if fields is not None:
                    found.append(EgressRow(int(at), principal, *fields))
        return found

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
            rows = [(str(p), str(c), whole_number(str(pos))) for p, c, pos in cur.fetchall()]
            return [(p, c, pos) for p, c, pos in rows if pos is not None]

    def push_terms(self) -> dict[tuple[str, str], str]:
        """(partner, local collection id) -> the digest of what the partner could see at its last push (the
        ``push-terms`` cursor, federation/sync.py): a push whose terms changed offers every version again."""
        with self.store._read() as cur:
            cur.execute("SELECT partner, local_collection, position FROM fed_cursors WHERE direction = 'push-terms'")
            return {(str(p), str(c)): str(terms) for p, c, terms in cur.fetchall()}

    def waiting_after(self, collection_pk: int, after: int | None, cap: int) -> int:
        """Content versions added after ``after`` (all of them when None), exact up to ``cap``, else
        ``cap + 1``: a push's backlog. Index-only counts, stopped past the cap because a partner never
        pushed to would otherwise cost a count of the whole collection on every dashboard."""
        after = after if after is not None else -1
        with self.store._read() as cur:
            furniture = 0
            for kind in FURNITURE:  # few: the definitions placed beside the objects that use them
                cur.execute("SELECT COUNT(*) FROM objects WHERE collection_pk = ? AND type = ? AND date_added > ?",
                            (collection_pk, kind, after))
                furniture += int(cur.fetchone()[0])
            cur.execute("SELECT COUNT(*) FROM (SELECT 1 FROM objects WHERE collection_pk = ? AND date_added > ? "
                        "LIMIT ?) AS waiting", (collection_pk, after, cap + 1 + furniture))
            return min(int(cur.fetchone()[0]) - furniture, cap + 1)

    def token_organisations(self) -> dict[str, str]:
        with self.store._read() as cur:
            cur.execute("SELECT id, organisation_id FROM tokens")
            return {str(token): str(org) for token, org in cur.fetchall()}
