"""Recall: telling partners that versions they received have left this node, and acting on it.

A version *leaves* a collection for one reader in two ways:

* it is **deleted** (TAXII DELETE, or a recall applied here): ``Node.keep_withdrawn`` keeps a copy
  in ``fed_withdrawn`` so the markings of what was deleted can still be checked;
* it is **withdrawn** by a later version the reader may not see (re-marked to a level or audience
  that excludes the reader): the reader keeps seeing the old version through plain TAXII, but the
  producer's intent is that the object no longer travels to it.

The Kizuna extension endpoint ``GET /{api_root}/collections/{id}/tombstones/`` lists both for the
token that asks, through the node's one visibility check, and names only versions that token may
see (or could see before they were deleted): it reveals nothing that is hidden from it.  A pulling
node deletes the named versions it received from that partner, which in turn makes them tombstones
for the nodes pulling from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from kizuna.core.node import Node
from kizuna.core.visibility import Viewer, view
from kizuna.federation.state import content_hash
from kizuna.stix.timestamps import format_timestamp
from kizuna.store.base import VersionQuery, VersionRow, VersionSelector
from kizuna.store.sql import SqlStore

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10000
_ALL = VersionSelector(all=True)
_ROW_COLUMNS = "seq, stix_id, type, version, spec_version, date_added, created_by_ref, markings, body"


@dataclass(frozen=True, slots=True)
class Tombstone:
    stix_id: str
    version: int
    reason: str  # "deleted", "recalled" (deleted here because its source recalled it) or "withdrawn"
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
    withdrawn_last: int  # where the next page's withdrawn_after starts
    more: bool

    def as_json(self) -> dict[str, Any]:
        return {"tombstones": [t.as_json() for t in self.tombstones], "deleted_last": self.deleted_last,
                "withdrawn_last": self.withdrawn_last, "more": self.more}


def tombstones_for(node: Node, viewer: Viewer, deleted_after: int, withdrawn_after: int,
                   limit: int = DEFAULT_LIMIT) -> TombstonePage:
    """The tombstones ``viewer`` may learn about after the two positions, oldest first."""
    store = node.store
    if not isinstance(store, SqlStore):
        return TombstonePage([], deleted_after, withdrawn_after, False)
    pk = viewer.collection.pk
    found: list[Tombstone] = []
    with store._read() as cur:
        cur.execute(
            "SELECT stix_id, type, version, created_by_ref, markings, body, reason, withdrawn_at, date_added "
            "FROM fed_withdrawn "
            "WHERE collection_pk = ? AND withdrawn_at > ? ORDER BY withdrawn_at LIMIT ?",
            (pk, deleted_after, limit),
        )
        deleted_rows = cur.fetchall()
        # Only a later version can withdraw an earlier one, so first versions are never looked at.
        cur.execute(
            f"SELECT {_ROW_COLUMNS} FROM objects WHERE collection_pk = ? AND date_added > ? AND is_first = 0 "
            "ORDER BY date_added LIMIT ?",
            (pk, withdrawn_after, limit),
        )
        later_rows = [VersionRow._make((*row[:8], bytes(row[8]))) for row in cur.fetchall()]
    deleted_last = deleted_after
    for stix_id, stix_type, version, created_by, markings, body, reason, at, added in deleted_rows:
        # Copies kept before schema step 5 have no date_added: 0 counts them as sent to every partner.
        copy = VersionRow(0, stix_id, stix_type, int(version), "2.1", int(added or 0), created_by, markings,
                          bytes(body))
        if view(viewer, copy) is not None:
            found.append(Tombstone(stix_id, int(version), str(reason), copy))
        deleted_last = int(at)
    withdrawn_last = withdrawn_after
    hidden_later = [row for row in later_rows if view(viewer, row) is None]
    if hidden_later:
        earlier = _versions(node, pk, sorted({row.stix_id for row in hidden_later}))
        for row in hidden_later:
            for older in earlier.get(row.stix_id, ()):
                if older.version < row.version and view(viewer, older) is not None:
                    found.append(Tombstone(row.stix_id, older.version, "withdrawn", older))
    if later_rows:
        withdrawn_last = later_rows[-1].date_added
    more = len(deleted_rows) == limit or len(later_rows) == limit
    unique = list(dict.fromkeys(found))
    return TombstonePage(unique, deleted_last, withdrawn_last, more)


def _versions(node: Node, collection_pk: int, ids: Sequence[str]) -> dict[str, list[VersionRow]]:
    by_id: dict[str, list[VersionRow]] = {}
    for start in range(0, len(ids), 200):
        rows = node.store.query_versions(VersionQuery(
            collection_pk=collection_pk, ids=tuple(ids[start:start + 200]), versions=_ALL, limit=100_000,
        ))
        for row in rows:
            by_id.setdefault(row.stix_id, []).append(row)
    return by_id
