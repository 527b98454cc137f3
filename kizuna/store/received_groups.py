"""The dashboard's received counts, kept per collection between requests and brought up to date from
what was added since (issue 11: a million versions in the window are seconds to group, the versions
added since the last dashboard are few).

Counts are the store's, not a principal's: the groups are the columns the visibility check decides from
(store/stats.py), and every request decides them again for its own principal (core/dashboard.py); the
cache never answers "may this principal see it". A version with granular markings is a group of its own
(``GRANULAR``, its ``seq``): its markings column also lists the markings that govern only some of its
properties, which a reader who may not see them does not receive, so neither its visibility nor its TLP
follows from the column; it is read and decided one by one, as the types counted per row are.

What a collection's groups depend on changes in three ways, each seen at the next request:

* versions are added: new rows have a ``date_added`` above every row before them (the collection's write
  lock orders them), so the rows above the cached mark are grouped and added to the counts;
* a version is replaced by a fuller form (``SqlStore.replace_form``): the row keeps its ``seq`` but moves
  above the mark with perhaps other markings or producer; a row above the mark whose ``seq`` is not above
  the cached highest ``seq`` is such a row, and the collection is grouped again from scratch;
* versions are deleted: each deletion writes a tombstone, so a newer ``deleted_at`` than the one seen
  when the counts were taken means grouping again from scratch.

The counts are kept twice: in the serving process, one copy per store object, and in the store (schema
step 20: ``received_marks``, ``received_counts``), so a server that starts again, or another process on
the same store, goes on from the stored counts instead of grouping the whole window on its first board.
Other processes' writes are seen through the same three checks, which read the database. Two processes
that bring the stored counts up to date at once do not both add the same versions: the stored mark
carries a ``generation``, and a process writes only over the generation it started from (else it keeps
its own answer and reads the stored counts again next time).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from kizuna.store.view_edges import GRANULAR as _GRANULAR

DAY_MICROS = 86_400_000_000
#: Marking and extension definitions travel beside the objects that use them; they are not content.
FURNITURE = ("marking-definition", "extension-definition")


#: The ``type`` of a group that is one version with granular markings, followed by that version's ``seq``.
GRANULAR_GROUP = "granular:"


class ReceivedGroup(NamedTuple):
    """Object versions added to one collection on one day that the visibility check decides alike."""

    day: int
    created_by_ref: str | None
    markings: str | None
    #: ``GRANULAR_GROUP`` and the ``seq`` of the one version with granular markings; the type when it is decided
    #: per row (references, identities); else "".
    type: str
    versions: int

    @property
    def granular_seq(self) -> int | None:
        """The ``seq`` of the version with granular markings this group is, else None."""
        return int(self.type[len(GRANULAR_GROUP):]) if self.type.startswith(GRANULAR_GROUP) else None


GroupKey = tuple[int, str | None, str | None, str]


@dataclass(frozen=True, slots=True)
class _Counts:
    since: int  # µs; the counts hold the versions added at or after it
    mark: int  # the highest date_added counted (-1: none)
    top_seq: int  # the highest seq counted (-1: none)
    deleted_at: int | None  # the collection's newest tombstone when the counts were taken
    groups: dict[GroupKey, int]
    answer: tuple[ReceivedGroup, ...]  # the groups as returned, for the next call when nothing changed
    #: The stored generation these counts are (-1: none stored yet; None: the store moved on without
    #: them, so the next call reads the stored counts again).
    generation: int | None


_caches: weakref.WeakKeyDictionary[Any, dict[tuple[int, tuple[str, ...]], _Counts]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def received_groups(store: Any, collection_pk: int, since: int, per_row_types: Sequence[str]) -> list[ReceivedGroup]:
    """Versions of the collection added at or after ``since`` (µs), grouped by day and by the columns that
    decide their visibility (in no particular order), from the counts kept since the last call (in this
    process, else in the store) and the rows added after them."""
    # Kept under the per-row types and the granular marker: counts kept before versions with granular markings
    # were grouped apart are not read (they are counted afresh once).
    kinds = (*sorted(per_row_types), GRANULAR_GROUP)
    with _lock:
        cache = _caches.setdefault(store, {})
        kept = cache.get((collection_pk, kinds))
    if kept is None or kept.generation is None:
        kept = _load(store, collection_pk, kinds)
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
        with _lock:
            cache[(collection_pk, kinds)] = kept
        return list(kept.answer)  # nothing added, replaced or deleted since
    groups = dict(kept.groups) if usable and kept is not None else {}
    mark, top_seq = (kept.mark, kept.top_seq) if usable and kept is not None else (-1, -1)
    changed: set[GroupKey] = set()
    for day, producer, markings, kind, count, _low_seq, high_seq, last_added in rows:
        key = (int(day), producer, markings, kind)
        groups[key] = groups.get(key, 0) + int(count)
        changed.add(key)
        mark, top_seq = max(mark, int(last_added)), max(top_seq, int(high_seq))
    whole = not usable or kept is None or kept.since != since  # the stored rows are written afresh
    if kept is None or kept.since != since:
        first_day = since // DAY_MICROS
        groups = {key: n for key, n in groups.items() if key[0] >= first_day}
    answer = tuple(ReceivedGroup(*key, n) for key, n in groups.items())
    counts = _Counts(since, mark, top_seq, deleted_at, groups, answer, kept.generation if kept is not None else -1)
    counts = _save(store, collection_pk, kinds, counts, None if whole else changed)
    with _lock:
        cache[(collection_pk, kinds)] = counts
    return list(answer)


def _load(store: Any, collection_pk: int, kinds: tuple[str, ...]) -> _Counts | None:
    """The counts kept in the store, or None when there are none (or they changed while being read)."""
    marks = ("SELECT since, mark, top_seq, deleted_at, generation FROM received_marks "
             "WHERE collection_pk = ? AND kinds = ?")
    with store._read() as cur:
        cur.execute(marks, (collection_pk, ",".join(kinds)))
        head = cur.fetchone()
        if head is None:
            return None
        cur.execute("SELECT day, producer, markings, type, versions FROM received_counts "
                    "WHERE collection_pk = ? AND kinds = ?", (collection_pk, ",".join(kinds)))
        groups: dict[GroupKey, int] = {
            (int(day), producer or None, markings or None, kind): int(n)
            for day, producer, markings, kind, n in cur.fetchall()
        }
        cur.execute(marks, (collection_pk, ",".join(kinds)))
        if cur.fetchone() != head:
            return None  # another process wrote them meanwhile: count afresh this once
    since, mark, top_seq, deleted_at, generation = head
    answer = tuple(ReceivedGroup(*key, n) for key, n in groups.items())
    return _Counts(int(since), int(mark), int(top_seq), None if deleted_at is None else int(deleted_at),
                   groups, answer, int(generation))


def _save(store: Any, collection_pk: int, kinds: tuple[str, ...], counts: _Counts,
          changed: set[GroupKey] | None) -> _Counts:
    """Store the counts (every group when ``changed`` is None, else those groups) over the stored generation
    they were taken from; the counts with their new generation, or with None if the store moved on."""
    name = ",".join(kinds)
    head = (counts.since, counts.mark, counts.top_seq, counts.deleted_at)
    with store._write() as cur:
        if counts.generation is None or counts.generation < 0:
            cur.execute("INSERT INTO received_marks (since, mark, top_seq, deleted_at, generation, collection_pk, "
                        "kinds) VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT DO NOTHING", (*head, collection_pk, name))
        else:
            cur.execute("UPDATE received_marks SET since = ?, mark = ?, top_seq = ?, deleted_at = ?, generation = "
                        "generation + 1 WHERE collection_pk = ? AND kinds = ? AND generation = ?",
                        (*head, collection_pk, name, counts.generation))
        if cur.rowcount != 1:
            return replace(counts, generation=None)
        if changed is None:
            cur.execute("DELETE FROM received_counts WHERE collection_pk = ? AND kinds = ?", (collection_pk, name))
        keys = counts.groups.keys() if changed is None else changed
        cur.executemany(
            "INSERT INTO received_counts (collection_pk, kinds, day, producer, markings, type, versions) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (collection_pk, kinds, day, producer, markings, type) "
            "DO UPDATE SET versions = excluded.versions",
            [(collection_pk, name, key[0], key[1] or "", key[2] or "", key[3], counts.groups[key]) for key in keys],
        )
    return replace(counts, generation=0 if counts.generation is None or counts.generation < 0
                   else counts.generation + 1)


def _grouped(store: Any, cur: Any, collection_pk: int, start: int, kinds: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """(day, producer, markings, type or "", versions, lowest seq, highest seq, last date_added) of the
    content versions added at or after ``start``: one range scan of ``(collection, date_added)``. A version with
    granular markings is a group of its own (``GRANULAR_GROUP``)."""
    kind_clause, kind_params = store._in("type", [kind for kind in kinds if kind != GRANULAR_GROUP])
    furniture, furniture_params = store._in("type", list(FURNITURE))
    cur.execute(
        f"SELECT date_added / {DAY_MICROS}, created_by_ref, markings, CASE WHEN markings IS NOT NULL AND "
        f"{store._holds('body')} THEN '{GRANULAR_GROUP}' || CAST(seq AS TEXT) WHEN {kind_clause} THEN type ELSE '' "
        "END, COUNT(*), MIN(seq), MAX(seq), MAX(date_added) FROM objects WHERE collection_pk = ? "
        f"AND date_added >= ? AND NOT {furniture} GROUP BY 1, 2, 3, 4",
        (_GRANULAR, *kind_params, collection_pk, start, *furniture_params),
    )
    return list(cur.fetchall())
