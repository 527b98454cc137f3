"""PostgreSQL backend: how a node outgrows one machine.

Several ``kizuna serve`` processes share one database and behave as one server: every
piece of state (cursor key, statuses, tokens) lives here.  The collection row lock taken
with ``SELECT … FOR UPDATE`` serialises writers of a collection until commit, and the
database clock stamps ``date_added`` so that processes on different hosts agree.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from kizuna.config import without_store_password
from kizuna.store.base import (
    AddResult,
    AuditEntry,
    AuditRecord,
    NewVersion,
    Outcome,
    StoreError,
    unique_conflict,
    unreachable_postgres,
)
from kizuna.store.postgres.migrations import MIGRATIONS
from kizuna.store.search_index import PostgresSearchIndex
from kizuna.store.sql import SqlStore, effective_schema_version

_PLACEHOLDER = re.compile(r"\?")
_COPY_TYPES = [
    "bigint", "text", "text", "bigint", "text", "bigint", "text", "text", "bytea", "smallint", "smallint",
    "smallint", "smallint", "text", "smallint", "text",
]
_CONNECT_TIMEOUT_S = 3
_MIGRATION_LOCK = 0x6B697A75  # an arbitrary advisory-lock key for schema changes
_GUESSES_SKIPPED_AT_MOST = 64  # appends on the locked path between two guesses of the audit head (append_audit)
#: Longest list a lookup matches with "= ANY(array)"; a longer one is drawn from unnest() (see ``_in``).
_ANY_AT_MOST = 16
_ARRAY_OF: dict[type, str] = {str: "text[]", int: "bigint[]"}


class _Cursor:
    """Adapts ``?`` placeholders of the shared SQL to psycopg's ``%s``."""

    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self._cur = cur
        self._cache: dict[str, str] = {}

    def _sql(self, sql: str) -> str:
        converted = self._cache.get(sql)
        if converted is None:
            converted = _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))
            self._cache[sql] = converted
        return converted

    def execute(self, sql: str, params: Any = ()) -> None:
        self._cur.execute(self._sql(sql), params)

    def executemany(self, sql: str, rows: Any) -> None:
        self._cur.executemany(self._sql(sql), rows)

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def copy_rows(self, statement: str, types: list[str], rows: Any) -> None:
        with self._cur.copy(statement) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)


class PostgresStore(SqlStore):
    search_index = PostgresSearchIndex()
    _LEAST = "LEAST"

    def __init__(self, url: str, min_size: int = 1, max_size: int = 8) -> None:
        self.url = url
        self._atomic = threading.local()
        self._inserted = 0
        self._analyze_at = 5_000
        #: The audit chain's head as this process last wrote or read it (seq, hash): the guess `append_audit`
        #: appends one record after, checked by the database in the same statement.
        self._audit_head: tuple[int, str] | None = None
        self._audit_head_guard = threading.Lock()
        #: After a refused guess, this many appends take the locked path before the next guess (doubling up to
        #: _GUESSES_SKIPPED_AT_MOST while guesses keep being refused): processes that take turns writing the chain
        #: would otherwise pay a refused statement before almost every record.
        self._audit_guesses_skipped = 0
        self._audit_guesses_to_skip = 0
        try:
            # One direct attempt first, bounded by a connect timeout: a database that does not exist
            # or a host that does not answer is reported at once, not after the pool's retry loop.
            psycopg.connect(url, connect_timeout=_CONNECT_TIMEOUT_S, autocommit=True).close()
        except psycopg.Error as exc:
            raise unreachable_postgres(url, exc) from None
        try:
            self._pool = ConnectionPool(
                url, min_size=min_size, max_size=max_size, open=True, timeout=30,
                # Custom plans always: a generic plan for "date_added > $n" cannot know that a
                # cursor sits near the end of a million rows, and would scan and sort them all.
                kwargs={"autocommit": False, "options": "-c plan_cache_mode=force_custom_plan"},
            )
            self._pool.wait(timeout=30)
        except (psycopg.Error, Exception) as exc:
            raise unreachable_postgres(url, exc) from exc
        self._start_search_backlog()

    @contextmanager
    def _reader(self) -> Iterator[Any]:
        with self._pool.connection() as conn:
            conn.autocommit = True
            # Results in binary: a page's bodies (bytea) arrive as they are stored instead of as hexadecimal
            # text twice their size, which halves what a read-out moves and decodes (bench/README.md).
            with conn.cursor(binary=True) as cur:
                yield _Cursor(cur)

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        try:
            with self._pool.connection() as conn:
                conn.autocommit = False
                with conn.transaction(), conn.cursor() as cur:
                    yield _Cursor(cur)
        except psycopg.errors.UniqueViolation as exc:  # rolled back by the transaction block
            raise unique_conflict(_unique_columns(exc)) from exc

    def _audit_head_lock(self, lazily: bool) -> str:
        # The WAL writer flushes such a commit within three wal_writer_delay (600 ms by default); until then a
        # crash of the server, not of the node, can lose it, as SQLite's synchronous=NORMAL can on power loss.
        # Set with the head's lock, in the same statement: each statement is a round trip to a database the
        # read path keeps busy (a quarter of a partner's page at 10M was its audit record's six).
        lock = super()._audit_head_lock(lazily)
        return f"{lock}, set_config('synchronous_commit', 'off', true)" if lazily else lock

    def append_audit(
        self, entries: Sequence[AuditEntry], seal: Callable[[int, str, AuditEntry], str], *, lazily: bool = False
    ) -> list[AuditRecord]:
        """As the SQL store's, and one record outside an ``atomic()`` block (every read's) in one round trip
        when this process wrote the chain's last record: appended after the head it remembers, in a single
        statement (its own transaction) that moves the head only if the head is still that one. Another process
        (or thread) that appended meanwhile makes it move nothing and insert nothing; the record is then
        appended as before, after the head locked and read (four round trips: begin, lock, write, commit), and
        so are the next 1, 2, 4 … 64 records while guesses keep being refused (several processes writing)."""
        standalone = getattr(self._atomic, "stack", None) is None  # not inside an atomic() block
        if len(entries) == 1 and standalone:
            appended = self._append_after_known_head(entries[0], seal, lazily)
            if appended is not None:
                return [appended]
        records = super().append_audit(entries, seal, lazily=lazily)
        if records and standalone:  # committed: the head is its last record
            with self._audit_head_guard:  # unless another thread of this process has appended after it since
                if self._audit_head is None or self._audit_head[0] < records[-1].seq:
                    self._audit_head = (records[-1].seq, records[-1].hash)
        return records

    def _append_after_known_head(
        self, entry: AuditEntry, seal: Callable[[int, str, AuditEntry], str], lazily: bool,
    ) -> AuditRecord | None:
        with self._audit_head_guard:  # this process's appenders take turns, as the head's row lock makes them
            if self._audit_head is None:
                return None
            if self._audit_guesses_to_skip:
                self._audit_guesses_to_skip -= 1
                return None
            seq, prev = self._audit_head
            record = self._sealed(seq, prev, [entry], seal)[0]
            # set_config runs as the head moves, before the insert reads the moved row: the statement's commit
            # (its implicit transaction ends with it) then need not wait for the log flush (`_audit_head_lock`).
            commit_setting = ", set_config('synchronous_commit', 'off', true)" if lazily else ""
            with self._reader() as cur:
                cur.execute(
                    "WITH moved AS (UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1 AND seq = ? AND hash = ? "
                    f"RETURNING seq{commit_setting}) "
                    "INSERT INTO audit_log (seq, at, kind, principal, body, prev_hash, hash) "
                    "SELECT ?, ?, ?, ?, ?, ?, ? FROM moved",
                    (record.seq, record.hash, seq, prev, *self._audit_row(record)),
                )
                appended = cur.rowcount == 1
            if appended:
                self._audit_head, self._audit_guesses_skipped = (record.seq, record.hash), 0
                return record
            self._audit_head = None
            self._audit_guesses_skipped = min(max(1, 2 * self._audit_guesses_skipped), _GUESSES_SKIPPED_AT_MOST)
            self._audit_guesses_to_skip = self._audit_guesses_skipped
            return None

    def _write_audit_records(self, cur: Any, records: list[AuditRecord]) -> None:
        if len(records) != 1:
            super()._write_audit_records(cur, records)
            return
        # One record (every read's): inserted and the head moved in one statement, one round trip.
        record = records[0]
        cur.execute(f"WITH added AS ({self._AUDIT_INSERT}) UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1",
                    (*self._audit_row(record), record.seq, record.hash))

    def _lock_collection(self, cur: Any, collection_pk: int) -> tuple[int, int]:
        cur.execute(
            "SELECT last_added, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT "
            "FROM collections WHERE pk = ? FOR UPDATE",
            (collection_pk,),
        )
        row = cur.fetchone()
        if row is None:
            raise StoreError(f"collection {collection_pk} does not exist")
        return int(row[0]), int(row[1])

    def add_versions(self, collection_pk: int, versions: Sequence[NewVersion]) -> list[AddResult]:
        results = super().add_versions(collection_pk, versions)
        self._inserted += sum(r.outcome is Outcome.ADDED for r in results)
        if self._inserted >= self._analyze_at:
            # A bulk load outruns autovacuum; without fresh statistics the planner guesses a handful
            # of rows after a cursor and sorts the whole tail of a million-row collection instead of
            # walking the date_added index. Thresholds double, so a load pays for a few ANALYZEs.
            # After the commit: inside an atomic block a second connection would be taken while the
            # collection's lock is held, and a full pool of writers waiting for that lock would starve it.
            self._analyze_at = self._inserted * 2
            self._after_commit(self._analyze)
        return results

    def _analyze(self) -> None:
        with self._pool.connection() as conn:
            conn.autocommit = True
            conn.execute("ANALYZE objects")

    def _holds(self, column: str) -> str:
        return f"position(CAST(? AS bytea) IN {column}) > 0"

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        if len(values) == 1:  # plain equality keeps ordered index scans (ANY forces a sort)
            return f"{column} = ?", [values[0]]
        if len(values) > _ANY_AT_MOST:
            # Every statement is planned for its values (force_custom_plan), and the planner weighs each
            # member of "= ANY(array)" against the column's statistics once per index it considers: for a
            # chunk of 500 ids on objects, 5 ms of planning against 2 ms of lookup. A set drawn from unnest()
            # is estimated as a whole, and still joined through the same index.
            kind = _ARRAY_OF.get(type(values[0]))
            if kind is not None and all(type(value) is type(values[0]) for value in values):
                return f"{column} IN (SELECT unnest(CAST(? AS {kind})))", [list(values)]
        return f"{column} = ANY(?)", [list(values)]

    def _write_edges(self, cur: Any, changes: list[tuple[int, int, int, int, int]]) -> None:
        # One statement for the batch: a batch of revisions changes the flags of dozens of older versions, and
        # each UPDATE of its own was planned and executed apart.
        if len(changes) == 1:
            super()._write_edges(cur, changes)
            return
        columns = [list(column) for column in zip(*changes, strict=True)]
        cur.execute(
            "UPDATE objects SET is_first = c.is_first, is_last = c.is_last, maybe_first = c.maybe_first, "
            "maybe_last = c.maybe_last FROM unnest(CAST(? AS smallint[]), CAST(? AS smallint[]), "
            "CAST(? AS smallint[]), CAST(? AS smallint[]), CAST(? AS bigint[])) "
            "AS c (is_first, is_last, maybe_first, maybe_last, seq) WHERE objects.seq = c.seq",
            columns,
        )

    def _insert_versions(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        # COPY loads a batch several times faster than row-by-row INSERTs.
        cur.copy_rows(f"COPY objects ({self._INSERT_COLUMNS}) FROM STDIN (FORMAT BINARY)", _COPY_TYPES, rows)

    def migrate(self) -> int:
        with self._write() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))  # one migrator at a time
            return self._apply_migrations(cur, MIGRATIONS)

    def schema_versions(self) -> tuple[int, int]:
        # A new connection with a short timeout, not the pool: the pool would wait its full timeout
        # for a database that went away, and a probe must answer quickly.
        try:
            with psycopg.connect(self.url, connect_timeout=5, autocommit=True) as conn:
                applied = {int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}
        except psycopg.Error as exc:
            said = without_store_password(str(exc), self.url)
            raise StoreError(f"cannot reach the PostgreSQL store: {said}") from exc
        return effective_schema_version(applied, [v for v, _ in MIGRATIONS]), MIGRATIONS[-1][0]

    def close(self) -> None:
        self._close_search_backlog((psycopg.Error, StoreError))
        self._pool.close()


def _unique_columns(exc: psycopg.errors.UniqueViolation) -> str:
    """``table.column`` as SQLite names it, from the violation's ``Key (column)=(value)`` detail."""
    detail = exc.diag.message_detail or ""
    columns = detail[detail.find("(") + 1 : detail.find(")")] if detail.startswith("Key (") else ""
    table = exc.diag.table_name or "a table"
    return ", ".join(f"{table}.{column.strip()}" for column in columns.split(",")) if columns else table
