"""The markings of a stored version's object, apart from those of its parts (schema step 29).

A version's markings column lists every marking it carries, its granular markings' too: what the visibility
check decides by. What left the node is labelled by its object's own markings (egress records, the dashboard):
a TLP:CLEAR report with a TLP:RED paragraph is a TLP:CLEAR object, whose reader may have lost the paragraph,
not a TLP:RED one (core/audit.py, `object_tlp_label`). Every served page labels its versions, so the few whose
column holds several markings and whose body holds granular ones have their object's markings noted once, on
write, in ``object_markings`` (the column's form: a sorted JSON list, ``[]`` for none); for every other
version it is NULL and the markings column labels it, as it labels itself. A version whose one marking is a
granular one's is labelled by it: a label for the operator's counts, stricter than its object's.

The markings are read from the bytes (bodies are written by ingest alone, as orjson writes them): a nested key of
that name written before the object's own could only mislabel its own version.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from kizuna.store.stored_batches import stored_batches
from kizuna.store.view_edges import GRANULAR

_OBJECT_MARKINGS: Final = b'"object_marking_refs":['


def object_markings(markings: str | None, body: bytes) -> str | None:
    """What ``object_markings`` holds for a version with these markings and body (see the module text)."""
    if markings is None or "," not in markings or GRANULAR not in body:
        return None
    start = body.find(_OBJECT_MARKINGS)
    if start < 0:
        return "[]"
    start += len(_OBJECT_MARKINGS) - 1
    try:
        listed = orjson.loads(body[start:body.index(b"]", start) + 1])
    except (ValueError, orjson.JSONDecodeError):
        return "[]"  # not a list of ids (ingest refuses such a body): no object marking to label by
    return orjson.dumps(sorted({ref for ref in listed if isinstance(ref, str)})).decode()


def backfill(cur: Any) -> None:
    """Schema step 29: note the object markings of every version stored before the column existed."""
    for batch in stored_batches(cur, "markings, body", "markings LIKE '%,%'"):
        noted = [(found, int(seq)) for seq, markings, body in batch
                 if (found := object_markings(markings, bytes(body))) is not None]
        if noted:
            cur.executemany("UPDATE objects SET object_markings = ? WHERE seq = ?", noted)
