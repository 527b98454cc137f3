"""Feed definitions as rows (schema step 9), shared by both SQL backends, and the cheap change stamp
a served feed's validator is checked against.

What a definition means and who may fetch it is decided in ``kizuna.core.feeds``; this only stores it.
"""

from __future__ import annotations

import abc
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class FeedRecord:
    name: str
    format: str
    api_root: str
    collection_id: str
    options: str  # JSON object of the feed's limits (core/feeds.py reads it)
    created_at: int
    revision: int


_COLUMNS = "name, format, api_root, collection_id, options, created_at, revision"
#: A collection's change stamp as two columns of one SELECT (each bound to the collection's key): read alone by
#: `collection_change_stamp`, and beside the policy's generation by ``SqlStore.policy_generation_and_change_stamp``.
CHANGE_STAMP_COLUMNS: Final = ("(SELECT MAX(date_added) FROM objects WHERE collection_pk = ?), "
                               "(SELECT MAX(deleted_at) FROM tombstones WHERE collection_pk = ?)")


def change_stamp(added: Any, deleted: Any) -> tuple[int | None, int | None]:
    """The stamp from the two columns of `CHANGE_STAMP_COLUMNS` (NULL for a collection without either)."""
    return (None if added is None else int(added)), (None if deleted is None else int(deleted))


def _record(row: Any) -> FeedRecord:
    return FeedRecord(str(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]), int(row[5]), int(row[6]))


class FeedRows(abc.ABC):
    @abc.abstractmethod
    def _read(self) -> AbstractContextManager[Any]: ...

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[Any]: ...

    def create_feed(self, feed: FeedRecord) -> bool:
        """Store a new definition; False when the name is taken (nothing changes then)."""
        with self._write() as cur:
            cur.execute("SELECT 1 FROM feeds WHERE name = ?", (feed.name,))
            if cur.fetchone() is not None:
                return False
            cur.execute(
                f"INSERT INTO feeds ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (feed.name, feed.format, feed.api_root, feed.collection_id, feed.options, feed.created_at,
                 feed.revision),
            )
        return True

    def get_feed(self, name: str) -> FeedRecord | None:
        with self._read() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM feeds WHERE name = ?", (name,))
            row = cur.fetchone()
        return None if row is None else _record(row)

    def list_feeds(self) -> list[FeedRecord]:
        with self._read() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM feeds ORDER BY name")
            return [_record(row) for row in cur.fetchall()]

    def delete_feed(self, name: str) -> bool:
        with self._write() as cur:
            cur.execute("DELETE FROM feeds WHERE name = ?", (name,))
            return bool(cur.rowcount)

    def newest_deletion(self, collection_pk: int) -> int | None:
        """The newest deletion in a collection (the second half of ``collection_change_stamp``), alone."""
        with self._read() as cur:
            cur.execute("SELECT MAX(deleted_at) FROM tombstones WHERE collection_pk = ?", (collection_pk,))
            deleted = cur.fetchone()[0]
        return None if deleted is None else int(deleted)

    def collection_change_stamp(self, collection_pk: int) -> tuple[int | None, int | None]:
        """(newest date_added, newest deletion) of a collection: both index lookups, so a feed can tell
        in well under a millisecond whether anything it is built from changed. One statement: every partner's
        page asks (core/node.py), and on PostgreSQL each statement is a round trip; both halves also come from
        one snapshot."""
        with self._read() as cur:
            cur.execute(f"SELECT {CHANGE_STAMP_COLUMNS}", (collection_pk, collection_pk))
            return change_stamp(*cur.fetchone())
