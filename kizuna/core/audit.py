"""The audit log: an append-only hash chain of who did what, and what left the node.

Each record carries the previous record's hash; its own hash is SHA-256 over a canonical
serialisation of (sequence number, time, kind, principal, body, previous hash).  Editing,
removing or reordering any record therefore breaks the chain at that record, and the head
row (last sequence number and hash) catches a truncated tail.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from kizuna.stix.timestamps import now_micros
from kizuna.store.base import AuditEntry, AuditRecord, Store

GENESIS = ""


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
        entry = AuditEntry(now_micros(), kind, principal, orjson.dumps(body).decode())
        return self._store.append_audit([entry], seal)[0]

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
