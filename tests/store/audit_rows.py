"""What PostgreSQL itself says about each audit row as it is inserted: a trigger the tests add keeps the value of one
SQL expression (evaluated in the inserting statement's transaction) beside every row's seq."""

from __future__ import annotations

import psycopg


def note_beside_audit_rows(url: str, expression: str) -> None:
    """From now on, keep ``expression`` (e.g. ``current_query()``) for each audit row inserted."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE audit_notes (seq BIGINT PRIMARY KEY, note TEXT NOT NULL)")
        connection.execute(
            "CREATE FUNCTION note_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"INSERT INTO audit_notes VALUES (NEW.seq, {expression}); RETURN NEW; END $$")
        connection.execute("CREATE TRIGGER note_audit_row AFTER INSERT ON audit_log "
                           "FOR EACH ROW EXECUTE FUNCTION note_audit_row()")


def audit_notes(url: str) -> dict[int, str]:
    """seq -> the kept value, of every audit row inserted since `note_beside_audit_rows`."""
    with psycopg.connect(url, autocommit=True) as connection:
        return {int(seq): str(note) for seq, note in connection.execute("SELECT seq, note FROM audit_notes")}
