"""What a feed needs to know of a stored indicator version, noted once at ingest (schema step 14).

A blocklist or RPZ build of a million indicators spent most of its time parsing each stored body and
matching its pattern again. For the usual indicator — STIX pattern of one IOC on a path of the table
(stix/ioc_terms.py), well-formed timestamps, an integer confidence — the store keeps, beside the body, the
few facts the feed's selection reads (``objects.feed``, one text per version, written in the transaction that
writes the body, replaced with it, deleted with it). Anything unusual gets no facts (NULL) and a feed reads
that version's body as before. The facts decide nothing about who may see a version: visibility is decided
in the core, and a feed uses the facts of a version only when the reader receives that version as stored.

Text fields joined by U+001F, the literal last (it may hold any character): id, IOC kind, revoked (``1`` or
empty), valid_from and valid_until in µs (empty when absent), confidence (empty when absent), the highest
TLP level of ``object_marking_refs`` (empty when none), warninglisted (``1`` or empty), and the pattern's
literal as written (quotes removed, escapes kept).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from kizuna.policy.tlp import LEVEL_BY_ANY_ID
from kizuna.stix.ioc_terms import KIND_BY_PATH, SINGLE_TERM
from kizuna.stix.timestamps import parse_timestamp_recent
from kizuna.stix.vocab import WARNINGLIST_PROPERTY
from kizuna.store.stored_batches import stored_batches

SEPARATOR: Final = "\x1f"


def _stamp(value: Any) -> str | None:
    """A timestamp as µs text, or None when it is present and unreadable (the body must decide)."""
    if type(value) is not str:
        return None
    try:
        return str(parse_timestamp_recent(value))
    except ValueError:
        return None


def facts_of(stix_type: str, body: bytes) -> str | None:
    """The feed facts of one stored version, or None when it has none (not an indicator, or unusual)."""
    if stix_type != "indicator":
        return None
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return facts_of_object(obj)


def facts_of_object(obj: Any) -> str | None:
    """``facts_of`` for an object already parsed: what ingest passes on ``NewVersion.feed`` so the store does
    not parse each indicator's body a second time."""
    if not isinstance(obj, dict) or obj.get("type") != "indicator":
        return None
    if obj.get("pattern_type") != "stix" or type(obj.get("id")) is not str:
        return None
    pattern = obj.get("pattern")
    single = SINGLE_TERM.fullmatch(pattern) if type(pattern) is str else None
    if single is None:
        return None
    revoked = obj.get("revoked")
    # A valid_from that is absent or no string lets the indicator through, as the feed's selection reads it.
    valid_from = obj.get("valid_from")
    valid_from_text = _stamp(valid_from) if type(valid_from) is str else ""
    valid_until = obj.get("valid_until")
    valid_until_text = "" if valid_until is None else _stamp(valid_until)
    confidence = obj.get("confidence")
    if valid_from_text is None or valid_until_text is None or not (confidence is None or type(confidence) is int):
        return None
    refs = obj.get("object_marking_refs") or ()
    if not isinstance(refs, list) or not all(type(ref) is str for ref in refs):
        return None
    levels = [LEVEL_BY_ANY_ID[ref] for ref in refs if ref in LEVEL_BY_ANY_ID]
    return SEPARATOR.join((
        obj["id"], KIND_BY_PATH[single.group(1)], "1" if revoked is True else "", valid_from_text, valid_until_text,
        "" if confidence is None else str(confidence), str(int(max(levels))) if levels else "",
        "1" if obj.get(WARNINGLIST_PROPERTY) else "", single.group(2)[1:-1],
    ))


def backfill(cur: Any) -> None:
    """Schema step 14: note the facts of every indicator version stored before the column existed."""
    for batch in stored_batches(cur, "type, body", "type = 'indicator'"):
        changes = [(found, int(seq)) for seq, stix_type, body in batch
                   if (found := facts_of(stix_type, bytes(body))) is not None]
        if changes:
            cur.executemany("UPDATE objects SET feed = ? WHERE seq = ?", changes)
