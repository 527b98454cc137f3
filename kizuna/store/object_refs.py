"""The reference index: which stored relationship, sighting and language-content versions point at an object
(schema step 16; language-content since step 25).

The console's object page lists the relationships and sightings of one object, and its graph walks two
relationships out. Without an index both would walk every relationship of the collection, which at a
million objects takes seconds (or, within a page's budget, misses most of them). One row per
(referenced id, version's seq), written in the transaction that writes the version and removed in the one
that deletes it, like the search index (store/search_index.py): the index never names a version that is
not stored. The store answers only "which versions point at these ids"; what a reader receives of them is
decided in the core by the one visibility check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from kizuna.store.stored_batches import stored_batches

#: The properties that make a version a relationship or sighting *of* an object, by type.
REFERENCE_FIELDS: Final = {
    "relationship": ("source_ref", "target_ref"), "sighting": ("sighting_of_ref",),
    # A translation of the object (schema step 25): the dashboard names a report in the reader's language.
    "language-content": ("object_ref",),
}


def references_of(stix_type: str, body: bytes) -> list[str]:
    """The ids a stored version of ``stix_type`` points at through the indexed properties."""
    if stix_type not in REFERENCE_FIELDS:
        return []
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    return references_of_object(obj)


def references_of_object(obj: Any) -> list[str]:
    """``references_of`` for an object already parsed (what ingest passes on ``NewVersion.refs``)."""
    kind = obj.get("type") if isinstance(obj, dict) else None
    fields = REFERENCE_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        return []
    return sorted({ref for field in fields if isinstance(ref := obj.get(field), str)})


def add(cur: Any, rows: Sequence[tuple[int, str, bytes, Sequence[str] | None]]) -> None:
    """Index versions given as (seq, type, body, their references when already known, else None)."""
    found = [(ref, seq) for seq, stix_type, body, known in rows
             for ref in (references_of(stix_type, body) if known is None else known)]
    if not found:
        return
    copy_rows = getattr(cur, "copy_rows", None)  # PostgreSQL's cursor bulk-loads (store/postgres/store.py)
    if copy_rows is not None:
        # One COPY for the batch, several times faster than a statement a row: nothing can collide, since a
        # version's references are distinct (references_of) and its rows are written only after the version is
        # inserted or its old rows removed.
        copy_rows("COPY object_refs (ref, seq) FROM STDIN (FORMAT BINARY)", ["text", "bigint"], found)
    else:
        cur.executemany("INSERT INTO object_refs (ref, seq) VALUES (?, ?) ON CONFLICT DO NOTHING", found)


def index_added(cur: Any, added: Sequence[tuple[int, str, bytes, Sequence[str] | None]]) -> None:
    """Index the versions just inserted, given as (seq, type, body, their references when the caller parsed the
    object, else None)."""
    add(cur, [row for row in added if row[1] in REFERENCE_FIELDS])


def remove(cur: Any, where: str, params: Sequence[Any]) -> None:
    """Drop the index rows of the versions ``where`` selects in ``objects``."""
    cur.execute(f"DELETE FROM object_refs WHERE seq IN (SELECT seq FROM objects WHERE {where})", params)


def reindex(cur: Any, where: str, params: Sequence[Any]) -> None:
    """Replace the index rows of the versions ``where`` selects (their body changed)."""
    remove(cur, where, params)
    cur.execute(f"SELECT seq, type, body FROM objects WHERE {where}", params)
    add(cur, [(int(seq), stix_type, bytes(body), None) for seq, stix_type, body in cur.fetchall()])


def backfill(cur: Any, types: Sequence[str] = ("relationship", "sighting")) -> None:
    """Index every version of ``types`` stored before the index held them: relationships and sightings at
    schema step 16, language-content at step 25."""
    kinds = ", ".join("'" + kind + "'" for kind in types if kind in REFERENCE_FIELDS)
    for batch in stored_batches(cur, "type, body", f"type IN ({kinds})"):
        add(cur, [(int(seq), stix_type, bytes(body), None) for seq, stix_type, body in batch])
