"""An operation's alerts as rows (schema step 18), shared by both SQL backends, and the counts of what a
collection received in a period that the shift report takes from the stored columns.

Which object matches which protected asset, and who may see an alert, is decided in ``kizuna.ops``
(through the one visibility check in core); this only keeps the judged rows.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple

#: What a collection received in one hour from one producer, of one type and markings (``added_counts``): hour
#: since the epoch, producer, type, count, first date_added, markings.
AddedCount = tuple[int, str | None, str, int, int, str | None]
_CHUNK = 500
_HOUR_US = 3600 * 1_000_000


class AlertRow(NamedTuple):
    """One object's strongest match on one protected asset; ``raised`` when it is an alert (a bare value
    is only evidence that objects pointing at it inherit)."""

    operation: str
    stix_id: str
    asset_id: str
    asset: str
    rule_rank: int  # 0 exact, 1 containment, 2 lookalike, 3 relationship: the strongest first
    rule: str
    matched: str
    fuzzer: str | None
    collection_pk: int
    role: str
    object_type: str
    object_name: str | None
    producer: str | None  # the object's created_by_ref
    version: int
    date_added: int
    raised: bool


_COLUMNS = ("operation, stix_id, asset_id, asset, rule_rank, rule, matched, fuzzer, collection_pk, role, "
            "object_type, object_name, producer, version, date_added, raised")


def _row(row: Sequence[Any]) -> AlertRow:
    return AlertRow(str(row[0]), str(row[1]), str(row[2]), str(row[3]), int(row[4]), str(row[5]), str(row[6]),
                    row[7], int(row[8]), str(row[9]), str(row[10]), row[11], row[12], int(row[13]), int(row[14]),
                    bool(row[15]))


def chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


class OpsRows(abc.ABC):
    """What the operations' tables need of a SQL store (store/sql.py supplies it)."""

    @abc.abstractmethod
    def _read(self) -> AbstractContextManager[Any]: ...

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[Any]: ...

    @abc.abstractmethod
    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]: ...


class OpsAlertRows(OpsRows):

    def replace_ops_alerts(self, operation: str, judged: Sequence[str], rows: Sequence[AlertRow]) -> None:
        """The objects ``judged`` (ids) were judged again: their rows become ``rows``."""
        ids = sorted(set(judged))
        with self._write() as cur:
            for chunk in chunks(ids):
                clause, params = self._in("stix_id", chunk)
                cur.execute(f"DELETE FROM ops_alerts WHERE operation = ? AND {clause}", (operation, *params))
            if rows:
                cur.executemany(
                    f"INSERT INTO ops_alerts ({_COLUMNS}) VALUES ({', '.join('?' * 16)}) ON CONFLICT DO NOTHING",
                    [(*row[:15], int(row.raised)) for row in rows],
                )

    def clear_ops_alerts(self, operation: str) -> None:
        with self._write() as cur:
            cur.execute("DELETE FROM ops_alerts WHERE operation = ?", (operation,))

    def ops_alert_matches(self, operation: str, ids: Sequence[str]) -> list[AlertRow]:
        """Every row (alert or evidence) of the objects among ``ids`` that matched an asset."""
        found: list[AlertRow] = []
        with self._read() as cur:
            for chunk in chunks(sorted(set(ids))):
                clause, params = self._in("stix_id", chunk)
                cur.execute(f"SELECT {_COLUMNS} FROM ops_alerts WHERE operation = ? AND {clause}",
                            (operation, *params))
                found.extend(map(_row, cur.fetchall()))
        return found

    def ops_alerts(self, operation: str, added_after: int | None = None) -> list[AlertRow]:
        """The raised alerts on objects added after ``added_after`` (µs; all when None), oldest first and,
        per object, the strongest rule first."""
        with self._read() as cur:
            cur.execute(
                f"SELECT {_COLUMNS} FROM ops_alerts WHERE operation = ? AND raised = 1 AND date_added > ? "
                "ORDER BY date_added, rule_rank, asset", (operation, -1 if added_after is None else added_after),
            )
            return list(map(_row, cur.fetchall()))

    def added_counts(self, collection_pk: int, added_after: int) -> list[AddedCount]:
        """(hour since the epoch, producer, type, count, first date_added, markings) of the newest stored versions
        added after ``added_after``: what a collection received in a period, without reading a body."""
        with self._read() as cur:
            cur.execute(
                f"SELECT date_added / {_HOUR_US}, created_by_ref, type, COUNT(*), MIN(date_added), markings "
                "FROM objects WHERE collection_pk = ? AND date_added > ? AND is_last = 1 "
                f"GROUP BY date_added / {_HOUR_US}, created_by_ref, type, markings",
                (collection_pk, added_after),
            )
            return [(int(hour), producer, str(kind), int(count), int(first), markings)
                    for hour, producer, kind, count, first, markings in cur.fetchall()]

    def top_seq_between(self, collection_pk: int, first: int, last: int) -> int:
        """The highest ``seq`` of the versions added from ``first`` to ``last`` (-1: none), an indexed range."""
        with self._read() as cur:
            cur.execute("SELECT MAX(seq) FROM objects WHERE collection_pk = ? AND date_added >= ? AND date_added <= ?",
                        (collection_pk, first, last))
            top = cur.fetchone()[0]
        return -1 if top is None else int(top)

    def moved_after(self, collection_pk: int, after: int, top_seq: int) -> bool:
        """Whether a version added after ``after`` has a ``seq`` up to ``top_seq``: a version stored before
        that a fuller form replaced in place (``replace_form`` moves the row's date_added, not its seq)."""
        with self._read() as cur:
            cur.execute("SELECT 1 FROM objects WHERE collection_pk = ? AND date_added > ? AND seq <= ? LIMIT 1",
                        (collection_pk, after, top_seq))
            return cur.fetchone() is not None

    def added_between(self, collection_pk: int, after: int, before: int, skip_types: Sequence[str]) -> int:
        """How many versions, other than of ``skip_types``, were added after ``after`` and before ``before``."""
        clause, params = self._in("type", list(skip_types))
        with self._read() as cur:
            cur.execute(
                f"SELECT COUNT(*) FROM objects WHERE collection_pk = ? AND date_added > ? AND date_added < ? "
                f"AND NOT ({clause})", (collection_pk, after, before, *params),
            )
            return int(cur.fetchone()[0])
