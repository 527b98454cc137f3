"""A read's audit record on PostgreSQL in one round trip: a process that wrote the chain's last record appends the
next one after the head it remembers, in one statement that moves the head only if it is still that one
(store/postgres/store.py). Another process appending in between makes that statement write nothing, and the record
is appended after the locked head as before. Two stores stand for two processes; PostgreSQL itself says which
statement wrote each record (a trigger keeps ``current_query()`` beside every audit row). The chain stays whole,
gapless and unforked on both backends."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from kizuna.core.audit import AuditLog
from kizuna.store import open_store
from kizuna.store.sql import SqlStore
from tests.conftest import create_pg_database
from tests.store.audit_rows import audit_notes, head_statements, note_beside_audit_rows, note_head_statements

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
            # process wrote, the guess is refused and the record goes after the locked head, and so does the
            # process's next record (one guess skipped after one refusal).
            assert [fast[seqs[n]] for n in range(len(order))] == [
                False, True, True, False, False, False, False, False, False]
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


@pytest.fixture
def postgres_store() -> Iterator[SqlStore]:
    """A migrated store on a fresh PostgreSQL database: guessing the head is PostgreSQL's alone (SQLite appends in
    process, with no round trip to save)."""
    database = create_pg_database()
    opened = open_store(database.url)
    assert isinstance(opened, SqlStore)
    try:
        opened.migrate()
        yield opened
    finally:
        opened.close()
        database.drop()


def test_refused_guesses_are_tried_less_often_and_a_sole_writer_guesses_again(postgres_store: SqlStore) -> None:
    store = postgres_store
    note_beside_audit_rows(store.url, "current_query()")
    note_head_statements(store.url)
    other = open_store(store.url)
    try:
        first, second = AuditLog(store), AuditLog(other)
        for n in range(40):  # two processes taking turns: each guess of either is refused
            first.record("egress", "first", {"n": n})
            second.record("egress", "second", {"n": n})
        guesses = sum(statement.lstrip().startswith(ONE_STATEMENT) for statement in head_statements(store.url))
        fast = _one_statement(store.url)
        assert not any(fast.values())  # every record took the locked path
        # Without skipping, each would have guessed before nearly every one of its 40 records; skipping 1, 2, 4, 8,
        # 16 records after each refusal leaves each a handful of guesses.
        assert 2 <= guesses <= 14, guesses

        for n in range(40):  # alone again: first guesses within 33 records (it skips at most 32 more) and keeps on
            first.record("egress", "alone", {"n": n})
        fast = _one_statement(store.url)
        alone = [fast[record.seq] for record in first.records() if record.principal == "alone"]
        assert True in alone[:34], alone
        assert all(alone[alone.index(True):]), alone
        assert first.verify().ok
    finally:
        other.close()
