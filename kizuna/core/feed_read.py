"""Reading a collection for a feed: the newest version each indicator has for the reader, through the one
visibility check, without reading the bodies the check does not need.

A blocklist or RPZ zone of a million indicators is built from the reader's view of the collection, exactly
as `Node.export_objects(..., latest_only=True)` gives it, but only indicators matter to a feed and, for most
rows, only the facts the store noted at ingest (store/feed_facts.py). The walk reads indicator rows without
bodies, in ``date_added`` order, in batches. A row is served from its facts when :func:`served_as_stored`
says `view` would serve it as stored and it is the stored last version (which ``match[version]=last`` then
selects for every reader: core/query.py, `Choice`). Every other row — another version that may be the
reader's last, a version the reader may not see or receives redacted, a version without facts — is read in
full and goes through `Choice` and `view` exactly as a TAXII read, and the feed parses what they return.
Each batch is audited as egress before any of it is handed on, like a page of `Node.read`, each version
labelled by its object's markings as a TAXII read labels it (`tlp_counts`), not by a granular marking of a
part the reader may not even have received.
"""

from __future__ import annotations

from collections.abc import Iterator
from operator import itemgetter
from typing import Any, Final

from kizuna.core.audit import labelled_by, tlp_counts_of
from kizuna.core.filters import Endpoint
from kizuna.core.visibility import Viewer, served_as_stored
from kizuna.store.base import FeedRow, VersionRow

_BATCH: Final = 5000
# The columns of a `FeedRow`.
_ID, _VERSION, _PRODUCER, _MARKINGS, _IS_LAST, _FACTS, _LABELLED_BY = (itemgetter(i) for i in (1, 2, 4, 5, 6, 7, 8))


def feed_items(node: Any, viewer: Viewer, batch: int = _BATCH) -> Iterator[bytes | str]:
    """The feed's input for ``viewer``: stored facts (str) or the JSON bytes served (see the module text).
    ``node``: the `Node` (its store, reader and egress audit); ``batch``: rows read (and audited) at a time."""
    store, collection_pk = node.store, viewer.collection.pk
    choose = node.reader.latest_choice(viewer)
    after: int | None = None
    while True:
        rows = store.feed_rows(collection_pk, after, batch)
        # Per batch: a relayed TLP:AMBER version, which the relay rule stops for readers outside this node's
        # organisation and its clients, may arrive between two batches (core/visibility.py).
        viewer.begin_batch()
        whole: dict[tuple[str | None, str | None], bool] = {}
        if rows and _all_quick(rows, whole, viewer):
            # The usual batch: every row served from its facts. Taken column by column, as the loop below would
            # take it row by row (tests/formats/test_feed_facts.py holds the two to the same feed and audit).
            node.record_served(viewer, Endpoint.OBJECTS, list(map(_ID, rows)), list(map(_VERSION, rows)),
                               tlp_counts_of(list(map(_LABELLED_BY, rows))))
            yield from map(_FACTS, rows)
            if len(rows) < batch:
                return
            after = rows[-1][3]
            continue
        quick: list[bool] = []
        for _seq, _id, _version, _added, producer, markings, is_last, facts, _labelled_by in rows:
            as_stored = whole.get((producer, markings))
            if as_stored is None:
                as_stored = whole[(producer, markings)] = served_as_stored(viewer, "indicator", producer, markings)
            quick.append(as_stored and is_last == 1 and facts is not None)
        full: dict[int, VersionRow] = {}
        if not all(quick):
            found = store.versions_by_seq([row[0] for row, fast in zip(rows, quick, strict=True) if not fast])
            viewer.prefetch(found)
            choose.prepare(found)
            full = {row.seq: row for row in found}
        ids: list[str] = []
        versions: list[int] = []
        labels: list[str | None] = []  # the markings each served version is labelled by
        items: list[bytes | str] = []
        for row, fast in zip(rows, quick, strict=True):
            if fast:
                facts = row[7]
                assert facts is not None
                items.append(facts)
                ids.append(row[1])
                versions.append(row[2])
                labels.append(row[8])
                continue
            stored = full.get(row[0])  # absent: deleted since the batch was read
            body = choose.body(stored) if stored is not None else None
            if stored is not None and body is not None:
                items.append(body)
                ids.append(stored.stix_id)
                versions.append(stored.version)
                labels.append(labelled_by(stored))
        tlp = tlp_counts_of(labels) if ids else None
        node.record_served(viewer, Endpoint.OBJECTS, ids, versions, tlp)
        yield from items
        if len(rows) < batch:
            return
        after = rows[-1][3]


def _all_quick(rows: list[FeedRow], whole: dict[tuple[str | None, str | None], bool], viewer: Viewer) -> bool:
    """Whether every row of a batch (`Store.feed_rows`) would be served from its facts: the stored last version,
    with facts, of a producer and markings the viewer receives as stored. (Columns by `map`, not `zip(*rows)`:
    that makes an iterator per row, and thousands of live objects start the garbage collector many times.)"""
    if None in map(_FACTS, rows) or list(map(_IS_LAST, rows)).count(1) != len(rows):
        return False
    producers, markings = list(map(_PRODUCER, rows)), list(map(_MARKINGS, rows))
    count = len(rows)
    if producers.count(producers[0]) == count and markings.count(markings[0]) == count:
        keys = {(producers[0], markings[0])}  # the usual batch: one producer and marking (compared, not hashed)
    else:
        keys = set(zip(producers, markings, strict=True))
    for key in keys:
        as_stored = whole.get(key)
        if as_stored is None:
            as_stored = whole[key] = served_as_stored(viewer, "indicator", *key)
        if not as_stored:
            return False
    return True
