"""Recall: telling partners that versions they received have left this node, and acting on it.

A version *leaves* a collection when it is **deleted** (TAXII DELETE, or a recall applied here):
``Node.keep_withdrawn`` keeps a copy in ``fed_withdrawn`` so the markings of what was deleted can
still be checked.  A later version that a reader may not see withdraws nothing: each reader sees its
own history of an object, and the last version it may see stays its last (docs/policy.md).  A producer
who wants an earlier release gone revokes or deletes it, which travels like any other change.

The Kizuna extension endpoint ``GET /{api_root}/collections/{id}/tombstones/`` lists deletions for
the token that asks, through the node's one visibility check, and names only versions that token could
see before they were deleted: it reveals nothing that is hidden from it.  A pulling node deletes the
named versions it received from that partner, which in turn makes them tombstones for the nodes pulling
from it.  ``withdrawn_after``/``withdrawn_last`` stay in the protocol for nodes that still send them;
they no longer name anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from kizuna.core.node import Node
from kizuna.core.visibility import Viewer, view
from kizuna.federation.state import content_hash
from kizuna.stix.timestamps import format_timestamp
from kizuna.store import embedded
from kizuna.store.base import VersionRow
from kizuna.store.sql import SqlStore

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10000


@dataclass(frozen=True, slots=True)
class Tombstone:
    stix_id: str
    version: int
    reason: str  # "deleted", or "recalled" (deleted here because its source recalled it)
    #: The version that left (its kept copy for a deletion), for the push side's egress rules.
    row: VersionRow | None = field(default=None, compare=False)

    @property
    def sha256(self) -> str | None:
        """For an unversioned SCO, the hash of its bytes: its version is each node's own date_added, so a
        recall names it by content (the bytes are the same on every node)."""
        return content_hash(self.row.body) if self.row is not None and unversioned(self.row.body) else None

    @property
    def version_text(self) -> str | None:
        """The version as the object states it (``modified``, or ``created``); None for an SCO."""
        if self.row is None:
            return format_timestamp(self.version)
        obj = orjson.loads(self.row.body)
        text = obj.get("modified", obj.get("created"))
        return text if isinstance(text, str) else None

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self.stix_id, "version": format_timestamp(self.version),
                                 "version_us": self.version, "reason": self.reason}
        digest = self.sha256
        if digest is not None:
            entry["sha256"] = digest
        return entry


def unversioned(body: bytes) -> bool:
    """Whether a stored body is an SCO without ``modified``/``created`` (its version is its date_added)."""
    if b'"modified"' in body or b'"created"' in body:
        obj = orjson.loads(body)
        return "modified" not in obj and "created" not in obj
    return True


@dataclass(frozen=True, slots=True)
class TombstonePage:
    tombstones: list[Tombstone]
    deleted_last: int  # where the next page's deleted_after starts
    withdrawn_last: int  # echoes withdrawn_after: re-markings withdraw nothing (kept for older nodes)
    more: bool

    def as_json(self) -> dict[str, Any]:
        return {"tombstones": [t.as_json() for t in self.tombstones], "deleted_last": self.deleted_last,
                "withdrawn_last": self.withdrawn_last, "more": self.more}


_TOMBSTONES = ("SELECT stix_id, type, version, created_by_ref, markings, body, reason, withdrawn_at, date_added "
               "FROM fed_withdrawn WHERE collection_pk = ? AND ")


def tombstones_for(node: Node, viewer: Viewer, deleted_after: int, withdrawn_after: int,
                   limit: int = DEFAULT_LIMIT) -> TombstonePage:
    """The tombstones ``viewer`` may learn about after ``deleted_after``, oldest first.

    The page's position and ``more`` come from the tombstones it names alone: a deletion the viewer may not
    see moves neither (a ``deleted_last`` stepping over it would tell when it happened, ``more`` how many there
    were). So a page after hidden deletions only echoes ``deleted_after``, and the next one reads them again.
    """
    store = node.store
    if not isinstance(store, SqlStore):
        return TombstonePage([], deleted_after, withdrawn_after, False)
    found: list[Tombstone] = []
    deleted_last = position = deleted_after
    batch = max(limit, DEFAULT_LIMIT)
    while True:
        with store._read() as cur:
            cur.execute(_TOMBSTONES + "withdrawn_at > ? ORDER BY withdrawn_at LIMIT ?",
                        (viewer.collection.pk, position, batch))
            rows = cur.fetchall()
            exhausted = len(rows) < batch
            if not exhausted:  # one deletion (a recall, say) may name many versions: read it whole
                last = rows[-1][7]
                cur.execute(_TOMBSTONES + "withdrawn_at = ?", (viewer.collection.pk, last))
                rows = [row for row in rows if row[7] != last] + cur.fetchall()
        for stix_id, stix_type, version, created_by, markings, body, reason, at, added in rows:
            if len(found) >= limit and int(at) != deleted_last:
                # Full, and past the deletions of the last one named (a page never splits one instant).
                return TombstonePage(list(dict.fromkeys(found)), deleted_last, withdrawn_after, True)
            position = int(at)
            # Copies kept before schema step 5 have no date_added: 0 counts them as sent to every partner.
            kept = bytes(body)
            copy = VersionRow(0, stix_id, stix_type, int(version), "2.1", int(added or 0), created_by, markings, kept,
                              embeds=embedded.embeds(stix_type, kept, created_by, markings))
            served = view(viewer, copy)
            if served is not None:
                # Named by the copy the reader was sent (references it may not see removed): an unversioned one
                # is recalled by the hash of those bytes, which are what its node holds.
                found.append(Tombstone(stix_id, int(version), str(reason), copy._replace(body=served)))
                deleted_last = position
        if exhausted:
            # ``more`` as when the page filled, whatever lies beyond: the deletions after it may all be hidden.
            return TombstonePage(list(dict.fromkeys(found)), deleted_last, withdrawn_after, len(found) >= limit)
