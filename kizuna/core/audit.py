"""The audit log: an append-only hash chain of who did what, and what left the node.

Each record carries the previous record's hash; its own hash is SHA-256 over a canonical
serialisation of (sequence number, time, kind, principal, body, previous hash).  Editing,
removing or reordering any record therefore breaks the chain at that record, and the head
row (last sequence number and hash) catches a truncated tail.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import orjson

from kizuna.policy.tlp import LEVEL_BY_ANY_ID
from kizuna.stix.timestamps import now_micros
from kizuna.store.base import AuditEntry, AuditRecord, Store, VersionRow
from kizuna.store.stats import FURNITURE

GENESIS = ""

# Every kind of record the node writes.  ``record`` refuses any other, so ``audit export --kind``
# can tell a typo from a kind that simply has no records yet.
KINDS: Final = frozenset({
    "agreement-changed", "api-root-created", "auth-failure", "collection-created",
    "cursor-key-rotated", "delete", "egress", "feed-created", "feed-removed", "import-report",
    "metrics-right", "misp-import", "operation-closed", "operation-created",
    "operation-declassified", "operator-right", "organisation-changed", "organisation-created",
    "partner-added", "partner-removed", "policy-changed", "recall", "search", "token-bound",
    "token-certificate-bound", "token-created", "token-revoked", "token-rotated", "write",
    "node-backed-up", "node-restored",
})

#: The records every read writes (a page, an object, a feed or a search served). Their commits do not wait for the
#: database's log to reach the disk (`Store.append_audit(lazily=True)`): on PostgreSQL that wait was a fifth of a
#: partner's page (bench/README.md), while the records any change writes keep it. A node crash loses none of them;
#: a database-server crash may lose the last fraction of a second of reads, with the chain whole before them.
READ_KINDS: Final = frozenset({"egress", "search"})

# A STIX id is ``type--`` and a canonical UUID: 38 characters after the type, with dashes here.
_TAIL: Final = 38
_DASHES: Final = (0, 1, 10, 15, 20, 25)


def pack_served(ids: Sequence[str], versions: Sequence[int]) -> dict[str, Any]:
    """The (id, version) pairs of one served page, exactly, in about half the space of a JSON list.

    ``types`` lists the distinct id types; ``ids`` is base64 of the 16 bytes of each id's UUID;
    ``versions`` is base64 of each version (µs) as a little-endian int64; ``type_index`` (only when a
    page mixes types) is base64 of a little-endian uint16 index into ``types`` per pair.  A page with
    an id that is not ``type--`` plus a lower-case canonical UUID is kept as a plain ``pairs`` list.
    """
    count = len(ids)
    packed: dict[str, Any] = {"n": count}
    if count == 0:
        return packed
    chunks = [stix_id[-_TAIL:] for stix_id in ids]
    tails = "".join(chunks)
    raw = b""
    if len(tails) == _TAIL * count and tails == tails.lower() and all(
        tails[at::_TAIL] == "-" * count for at in _DASHES
    ):
        try:
            raw = bytes.fromhex(tails.encode().translate(None, b"-").decode())
        except (ValueError, UnicodeError):
            raw = b""
    if len(raw) != 16 * count or len(ids) != len(versions):
        packed["pairs"] = [[stix_id, version] for stix_id, version in zip(ids, versions, strict=True)]
        return packed
    first = ids[0][:-_TAIL]
    if len(set(map(len, ids))) == 1 and "".join(ids) == first + first.join(chunks):
        types, table = [], [first]  # one type: every id is ``first`` + its tail
    else:
        types = [stix_id[:-_TAIL] for stix_id in ids]
        table = list(dict.fromkeys(types))
    packed["types"] = table
    packed["ids"] = base64.b64encode(raw).decode()
    packed["versions"] = base64.b64encode(_little_endian(array("q", versions))).decode()
    if len(table) > 1:
        index = {name: position for position, name in enumerate(table)}
        packed["type_index"] = base64.b64encode(_little_endian(array("H", [index[t] for t in types]))).decode()
    return packed


def unpack_served(served: Any) -> list[tuple[str, int]]:
    """The (id, version) pairs of an egress record's ``served`` (packed, or a plain list of pairs)."""
    if isinstance(served, list):
        return [(str(stix_id), int(version)) for stix_id, version in served]
    if "pairs" in served:
        return [(str(stix_id), int(version)) for stix_id, version in served["pairs"]]
    count = int(served["n"])
    if count == 0:
        return []
    raw = base64.b64decode(served["ids"])
    versions = _from_little_endian("q", base64.b64decode(served["versions"]))
    types: list[str] = served["types"]
    if "type_index" in served:
        names = [types[i] for i in _from_little_endian("H", base64.b64decode(served["type_index"]))]
    else:
        names = types * count
    out = []
    for position in range(count):
        hexed = raw[16 * position:16 * position + 16].hex()
        uuid = f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"
        out.append((f"{names[position]}--{uuid}", versions[position]))
    return out


def _little_endian(values: array[int]) -> bytes:
    if sys.byteorder != "little":
        values.byteswap()
    return values.tobytes()


def _from_little_endian(code: str, data: bytes) -> list[int]:
    values = array(code)
    values.frombytes(data)
    if sys.byteorder != "little":
        values.byteswap()
    return values.tolist()


@lru_cache(maxsize=4096)
def tlp_label(markings: str | None) -> str:
    """``TLP:AMBER`` etc. for the highest TLP marking in a markings column, ``none`` without one."""
    if not markings:
        return "none"
    levels = [LEVEL_BY_ANY_ID[m] for m in orjson.loads(markings) if m in LEVEL_BY_ANY_ID]
    return max(levels).label if levels else "none"


def object_tlp_label(row: VersionRow) -> str:
    """`tlp_label` of a version by the markings of its object: its markings column but for a version with granular
    markings, whose column also lists the markings of some of its properties only. Such a marking governs the part
    it selects, which a reader who may not see it does not receive, not the object; the object's own markings are
    the same in every copy served of it. The store notes them on write where they differ in kind from the column
    (store/object_markings.py), so every served page labels its versions from columns alone."""
    return tlp_label(labelled_by(row))


def labelled_by(row: VersionRow) -> str | None:
    """The markings a version is labelled by (`object_tlp_label`): its object's own, noted where they differ in
    kind from its markings column, else that column."""
    return row.markings if row.object_markings is None else row.object_markings


def tlp_counts(rows: Iterable[VersionRow]) -> dict[str, int]:
    """Served content versions per TLP label (`object_tlp_label`): an egress record's ``tlp``, the dashboard's
    "shared"."""
    # Counted per markings first (a page has few distinct ones), labelled after (`tlp_counts_of`).
    return tlp_counts_of([labelled_by(row) for row in rows if row.type not in FURNITURE])


def tlp_counts_of(markings_columns: Iterable[str | None]) -> dict[str, int]:
    """`tlp_counts` of served content versions given by their markings columns."""
    # Counted per markings column first (a page has few distinct ones), labelled after: same counts, same order.
    counts: Counter[str] = Counter()
    for markings, count in Counter(markings_columns).items():
        counts[tlp_label(markings)] += count
    return dict(counts)


def seal(seq: int, prev_hash: str, entry: AuditEntry) -> str:
    """The hash of one record: canonical JSON (sorted keys, no spaces) under SHA-256."""
    canonical = orjson.dumps(
        {"seq": seq, "at": entry.at, "kind": entry.kind, "principal": entry.principal,
         "body": entry.body, "prev": prev_hash},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()


def _reseal(record: AuditRecord) -> str:
    return seal(record.seq, record.prev_hash, AuditEntry(record.at, record.kind, record.principal, record.body))


class AuditLog:
    def __init__(self, store: Store) -> None:
        self._store = store

    def record(self, kind: str, principal: str | None, body: dict[str, Any]) -> AuditRecord:
        if kind not in KINDS:
            raise ValueError(f"audit kind {kind!r} is not one of core.audit.KINDS")
        entry = AuditEntry(now_micros(), kind, principal, orjson.dumps(body).decode())
        return self._store.append_audit([entry], seal, lazily=kind in READ_KINDS)[0]

    def records(self, batch: int = 1000) -> Iterator[AuditRecord]:
        after = 0
        while True:
            found = self._store.audit_records(after, batch)
            yield from found
            if len(found) < batch:
                return
            after = found[-1].seq

    def verify(self) -> VerifyResult:
        return verify_chain(self.records(), self._store.audit_head())


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records: int
    problem: str | None = None
    seq: int | None = None  # the record where the chain breaks


def verify_chain(records: Iterator[AuditRecord], head: tuple[int, str]) -> VerifyResult:
    """Check every link; report the first record that does not fit, by sequence number."""
    expected_seq, prev = 1, GENESIS
    count = 0
    for record in records:
        count += 1
        if record.seq != expected_seq:
            return VerifyResult(False, count, f"record {expected_seq} is missing (found {record.seq} next)",
                                expected_seq)
        if record.prev_hash != prev:
            return VerifyResult(False, count, f"record {record.seq} does not follow record {record.seq - 1} "
                                "(its previous-hash differs): records were removed, reordered or edited",
                                record.seq)
        if _reseal(record) != record.hash:
            return VerifyResult(False, count, f"record {record.seq} was altered after it was written "
                                "(its content does not match its hash)", record.seq)
        prev = record.hash
        expected_seq += 1
    head_seq, head_hash = head
    if head_seq != expected_seq - 1 or head_hash != prev:
        return VerifyResult(
            False, count,
            f"the chain ends at record {expected_seq - 1} but the head names record {head_seq}: "
            "records at the end were removed or the head was altered",
            expected_seq,
        )
    return VerifyResult(True, count)
