"""The dashboard's received counts, kept per collection between requests and brought up to date from
what was added since (issue 11: a million versions in the window are seconds to group, the versions
added since the last dashboard are few).

Counts are the store's, not a principal's: the groups are the columns the visibility check decides from
(store/stats.py), and every request decides them again for its own principal (core/dashboard.py); the
cache never answers "may this principal see it".

What a collection's groups depend on changes in three ways, each seen at the next request:

* versions are added: new rows have a ``date_added`` above every row before them (the collection's write
  lock orders them), so the rows above the cached mark are grouped and added to the counts;
* a version is replaced by a fuller form (``SqlStore.replace_form``): the row keeps its ``seq`` but moves
  above the mark with perhaps other markings or producer; a row above the mark whose ``seq`` is not above
  the cached highest ``seq`` is such a row, and the collection is grouped again from scratch;
* versions are deleted: each deletion writes a tombstone, so a newer ``deleted_at`` than the one seen
  when the counts were taken means grouping again from scratch.

The cache lives in the serving process, one per store object (a process that opens the store again
starts empty); other processes' writes are seen through the same three checks, which read the database.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

DAY_MICROS = 86_400_000_000
#: Marking and extension definitions travel beside the objects that use them; they are not content.
FURNITURE = ("marking-definition", "extension-definition")


class ReceivedGroup(NamedTuple):
    """Object versions added to one collection on one day that the visibility check decides alike."""

    day: int
    created_by_ref: str | None
    markings: str | None
    type: str  # the type when it is decided per row (references, identities), else ""
    versions: int


GroupKey = tuple[int, str | None, str | None, str]


@dataclass(frozen=True, slots=True)
class _Counts:
    since: int  # µs; the counts hold the versions added at or after it
    mark: int  # the highest date_added counted (-1: none)
    top_seq: int  # the highest seq counted (-1: none)
    deleted_at: int | None  # the collection's newest tombstone when the counts were taken
    groups: dict[GroupKey, int]
    answer: tuple[ReceivedGroup, ...]  # the groups as returned, for the next call when nothing changed


_caches: weakref.WeakKeyDictionary[Any, dict[tuple[int, tuple[str, ...]], _Counts]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def received_groups(store: Any, collection_pk: int, since: int, per_row_types: Sequence[str]) -> list[ReceivedGroup]:
    """Versions of the collection added at or after ``since`` (µs), grouped by day and by the columns that
    decide their visibility (in no particular order), from the counts kept since the last call and the
    rows added after them."""
    kinds = tuple(sorted(per_row_types))
    with _lock:
        cache = _caches.setdefault(store, {})
        kept = cache.get((collection_pk, kinds))
    with store._read() as cur:
        cur.execute("SELECT MAX(deleted_at) FROM tombstones WHERE collection_pk = ?", (collection_pk,))
        deleted_at = cur.fetchone()[0]
        usable = (kept is not None and kept.deleted_at == deleted_at
                  and (kept.since == since or kept.since < since and since % DAY_MICROS == 0))
        after = kept.mark if kept is not None and usable else -1
        rows = _grouped(store, cur, collection_pk, since if after < 0 else max(since, after + 1), kinds)
        if usable and kept is not None and any(low_seq <= kept.top_seq for *_, low_seq, _, _ in rows):
            usable, after = False, -1  # a replaced version moved up: its old group is unknown
            rows = _grouped(store, cur, collection_pk, since, kinds)
    if usable and kept is not None and not rows and kept.since == since:
        return list(kept.answer)  # nothing added, replaced or deleted since
    groups = dict(kept.groups) if usable and kept is not None else {}
    mark, top_seq = (kept.mark, kept.top_seq) if usable and kept is not None else (-1, -1)
    for day, producer, markings, kind, count, _low_seq, high_seq, last_added in rows:
        key = (int(day), producer, markings, kind)
        groups[key] = groups.get(key, 0) + int(count)
        mark, top_seq = max(mark, int(last_added)), max(top_seq, int(high_seq))
    if kept is None or kept.since != since:
        first_day = since // DAY_MICROS
        groups = {key: n for key, n in groups.items() if key[0] >= first_day}
    answer = tuple(ReceivedGroup(*key, n) for key, n in groups.items())
    with _lock:
        cache[(collection_pk, kinds)] = _Counts(since, mark, top_seq, deleted_at, groups, answer)
    return list(answer)


def _grouped(store: Any, cur: Any, collection_pk: int, start: int, kinds: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """(day, producer, markings, type or "", versions, lowest seq, highest seq, last date_added) of the
    content versions added at or after ``start``: one range scan of ``(collection, date_added)``."""
    kind_clause, kind_params = store._in("type", list(kinds))
    furniture, furniture_params = store._in("type", list(FURNITURE))
    cur.execute(
        f"SELECT date_added / {DAY_MICROS}, created_by_ref, markings, CASE WHEN {kind_clause} THEN type ELSE '' "
        "END, COUNT(*), MIN(seq), MAX(seq), MAX(date_added) FROM objects WHERE collection_pk = ? "
        f"AND date_added >= ? AND NOT {furniture} GROUP BY 1, 2, 3, 4",
        (*kind_params, collection_pk, start, *furniture_params),
    )
    return list(cur.fetchall())
