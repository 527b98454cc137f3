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


def note_head_statements(url: str) -> None:
    """From now on, keep the text of every statement that updates the audit head, even one that updates no row
    (a statement-level trigger fires for each such statement)."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE head_statements (n BIGSERIAL PRIMARY KEY, statement TEXT NOT NULL)")
        connection.execute(
            "CREATE FUNCTION note_head_statement() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "INSERT INTO head_statements (statement) VALUES (current_query()); RETURN NULL; END $$")
        connection.execute("CREATE TRIGGER note_head_statement AFTER UPDATE ON audit_head "
                           "FOR EACH STATEMENT EXECUTE FUNCTION note_head_statement()")


def head_statements(url: str) -> list[str]:
    """The statements that updated (or tried to update) the audit head since `note_head_statements`, in order."""
    with psycopg.connect(url, autocommit=True) as connection:
        return [str(row[0]) for row in connection.execute("SELECT statement FROM head_statements ORDER BY n")]
