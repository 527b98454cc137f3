"""The audit records every read writes commit without waiting for the database's log to reach the disk; the records
of every change still wait. On PostgreSQL that wait (an fsync of the WAL per page served) was about a fifth of a
partner's filtered page; SQLite in WAL mode with synchronous=NORMAL never waits for any commit.

PostgreSQL itself says which setting each record's transaction ran under: a trigger the test adds copies
``current_setting('synchronous_commit')`` beside every audit row as it is inserted.
"""

from __future__ import annotations

from typing import Any

import psycopg

from kizuna.core.audit import KINDS, READ_KINDS


def _note_commit_setting(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE commit_settings (seq BIGINT PRIMARY KEY, setting TEXT NOT NULL)")
        connection.execute(
            "CREATE FUNCTION note_commit_setting() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "INSERT INTO commit_settings VALUES (NEW.seq, current_setting('synchronous_commit')); RETURN NEW; END $$")
        connection.execute("CREATE TRIGGER note_commit_setting AFTER INSERT ON audit_log "
                           "FOR EACH ROW EXECUTE FUNCTION note_commit_setting()")


def _settings(url: str) -> dict[int, str]:
    with psycopg.connect(url, autocommit=True) as connection:
        return dict(connection.execute("SELECT seq, setting FROM commit_settings").fetchall())


def test_read_records_do_not_wait_for_the_log_and_change_records_do(home_node: Any, store_url: str) -> None:
    assert READ_KINDS == {"egress", "search"} and READ_KINDS <= KINDS
    postgres = store_url.startswith("postgresql")
    if postgres:
        _note_commit_setting(store_url)
    written = {kind: home_node.audit.record(kind, "token:test", {"n": n}).seq
               for n, kind in enumerate(["egress", "write", "search", "delete", "egress", "token-created"])}
    verified = home_node.audit.verify()
    assert verified.ok and verified.records >= len(written)  # the chain is whole either way
    kept = {record.seq: record.kind for record in home_node.audit.records()}
    assert all(kept[seq] == kind for kind, seq in written.items())
    if postgres:
        settings = _settings(store_url)
        # each change record follows a read record, on the connection the pool hands back first: the setting
        # did not outlive the read record's transaction
        assert {kind: settings[seq] for kind, seq in written.items()} == {
            "egress": "off", "search": "off", "write": "on", "delete": "on", "token-created": "on"}
