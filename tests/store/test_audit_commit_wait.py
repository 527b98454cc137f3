"""The audit records every read writes commit without waiting for the database's log to reach the disk; the records
of every change still wait. On PostgreSQL that wait (an fsync of the WAL per page served) was about a fifth of a
partner's filtered page; SQLite in WAL mode with synchronous=NORMAL never waits for any commit.

PostgreSQL itself says which setting each record's transaction ran under: a trigger the test adds copies
``current_setting('synchronous_commit')`` beside every audit row as it is inserted.
"""

from __future__ import annotations

from typing import Any

from kizuna.core.audit import KINDS, READ_KINDS
from tests.store.audit_rows import audit_notes, note_beside_audit_rows


def test_read_records_do_not_wait_for_the_log_and_change_records_do(home_node: Any, store_url: str) -> None:
    assert READ_KINDS == {"egress", "search"} and READ_KINDS <= KINDS
    postgres = store_url.startswith("postgresql")
    if postgres:
        note_beside_audit_rows(store_url, "current_setting('synchronous_commit')")
    written = {kind: home_node.audit.record(kind, "token:test", {"n": n}).seq
               for n, kind in enumerate(["egress", "write", "search", "delete", "egress", "token-created"])}
    verified = home_node.audit.verify()
    assert verified.ok and verified.records >= len(written)  # the chain is whole either way
    kept = {record.seq: record.kind for record in home_node.audit.records()}
    assert all(kept[seq] == kind for kind, seq in written.items())
    if postgres:
        settings = audit_notes(store_url)
        # each change record follows a read record, on the connection the pool hands back first: the setting
        # did not outlive the read record's transaction
        assert {kind: settings[seq] for kind, seq in written.items()} == {
            "egress": "off", "search": "off", "write": "on", "delete": "on", "token-created": "on"}
