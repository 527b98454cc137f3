"""A read's audit record on PostgreSQL in one round trip: a process that wrote the chain's last record appends the
next one after the head it remembers, in one statement that moves the head only if it is still that one
(store/postgres/store.py). Another process appending in between makes that statement write nothing, and the record
is appended after the locked head as before. Two stores stand for two processes; PostgreSQL itself says which
statement wrote each record (a trigger keeps ``current_query()`` beside every audit row). The chain stays whole,
gapless and unforked on both backends."""

from __future__ import annotations

import threading

from kizuna.core.audit import AuditLog
from kizuna.store import open_store
from kizuna.store.sql import SqlStore
from tests.store.audit_rows import audit_notes, note_beside_audit_rows

ONE_STATEMENT = "WITH moved AS (UPDATE audit_head"


def _one_statement(url: str) -> dict[int, bool]:
    return {seq: statement.lstrip().startswith(ONE_STATEMENT) for seq, statement in audit_notes(url).items()}


def test_records_from_two_processes_keep_one_chain(store: SqlStore) -> None:
    postgres = store.url.startswith("postgresql")
    if postgres:
        note_beside_audit_rows(store.url, "current_query()")
    other = open_store(store.url)
    try:
        first, second = AuditLog(store), AuditLog(other)
        order = ["first", "first", "first", "second", "first", "first", "second", "second", "first"]
        seqs = {n: (first if who == "first" else second).record("egress", who, {"n": n}).seq
                for n, who in enumerate(order)}
        assert sorted(seqs.values()) == list(range(1, len(order) + 1))  # in order, no gap, none twice
        verified = first.verify()
        assert verified.ok and verified.records == len(order), verified
        assert [record.principal for record in first.records()] == order
        if postgres:
            fast = _one_statement(store.url)
            # A process's first record reads the head; its next ones follow the head it wrote; after the other
            # process wrote, the guess is refused and the record goes after the locked head.
            assert [fast[seqs[n]] for n in range(len(order))] == [
                False, True, True, False, False, True, False, True, False]
    finally:
        other.close()


def test_threads_appending_at_once_keep_one_chain(store: SqlStore) -> None:
    other = open_store(store.url)
    try:
        logs = [AuditLog(store), AuditLog(store), AuditLog(other)]
        errors: list[BaseException] = []

        def append(log: AuditLog, who: int) -> None:
            try:
                for n in range(25):
                    log.record("egress" if n % 5 else "write", f"thread-{who}", {"n": n})
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=append, args=(log, who)) for who, log in enumerate(logs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        verified = logs[0].verify()
        assert verified.ok and verified.records == 75, verified
    finally:
        other.close()
