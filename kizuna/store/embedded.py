"""Which stored versions embed references that a reader's copy may have to lose (policy/dangling.py).

A domain's ``resolves_to_refs``, network traffic's ``src_ref`` or a custom ``x_*_ref`` names another object,
and a reader who may not see that object must not receive its id. Most versions embed nothing of the kind,
and the read path serves them unparsed from their producer and markings columns; the few that do are flagged
once, on write, in the ``embeds`` column (schema step 28), so a read-out asks a column per row instead of
looking through every body.

The flag is exact: two counts of the body's reference keys pass most bodies over (bodies are written by
ingest alone, as orjson writes them, so a key ending in ``_ref`` shows as ``_ref":``, which no string value
holds), and the rest are parsed and looked through.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from kizuna.policy.dangling import DECIDING_REFS, embedded_references
from kizuna.store.stored_batches import stored_batches

#: The references every version of a referencing type carries, which the rule for that type decides.
_ALWAYS_DECIDING: Final = {
    "relationship": 2, "sighting": 1, "language-content": 1, "report": 1, "grouping": 1, "note": 1, "opinion": 1,
}


def embeds(stix_type: str, body: bytes, producer: str | None, markings: str | None) -> int:
    """1 when the version embeds a reference beyond its producer, its markings and those its type is decided
    by; else 0. A body with more reference keys than its producer, markings and type account for is parsed
    and looked through: the count alone would take a nested ``marking_ref`` for one of the markings'."""
    keys = body.count(b'_ref":') + body.count(b'_refs":')
    if keys <= _ALWAYS_DECIDING.get(stix_type, 0) + (producer is not None) + (markings is not None):
        return 0
    return int(bool(embedded_references(orjson.loads(body), DECIDING_REFS.get(stix_type, frozenset()))))


def backfill(cur: Any) -> None:
    """Schema step 28: flag every version stored before the column existed (it starts at 0)."""
    for batch in stored_batches(cur, "type, body, created_by_ref, markings"):
        flagged = [(int(seq),) for seq, stix_type, body, producer, markings in batch
                   if embeds(stix_type, bytes(body), producer, markings)]
        if flagged:
            cur.executemany("UPDATE objects SET embeds = 1 WHERE seq = ?", flagged)
