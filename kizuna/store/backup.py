"""Copying a live store without stopping the node, and putting a copy back.

Both backends copy one consistent moment while writers carry on: SQLite through its online backup
API in a single step (WAL readers do not block writers, and a step-wise copy would start again every
time another process commits), PostgreSQL through ``pg_dump`` reading a snapshot exported by a
``REPEATABLE READ`` transaction that stays open, so the checks run on exactly what was dumped.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kizuna.store.base import StoreError, unreachable_postgres
from kizuna.store.sqlite.store import SqliteStore, path_from_url, private_parent


def copy_sqlite(url: str, dest: Path) -> None:
    """Write the database at ``url`` to the new file ``dest`` as of one moment."""
    source = sqlite3.connect(path_from_url(url), timeout=30)
    try:
        target = sqlite3.connect(dest)
        try:
            source.backup(target, pages=-1)  # one step: one read transaction, one moment
            # The copy is a single self-contained file: no WAL beside it to carry around.
            target.execute("PRAGMA journal_mode = DELETE")
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot copy the SQLite store {path_from_url(url)}: {exc}") from exc
    finally:
        source.close()


def stage_sqlite(copy: Path, url: str) -> Path:
    """Copy the backup's database file ``copy`` beside the store at ``url``, for ``install_sqlite``; the staged file.

    Owner-only from its first byte, like the file ``kizuna init`` makes (it holds the node's tokens and keys, and
    becomes the store as it is), and in a directory made its owner's alone if the copy has to make it."""
    target = path_from_url(url)
    private_parent(target)
    staged = target.with_name(target.name + ".restoring")
    staged.unlink(missing_ok=True)  # a leftover of an interrupted restore, whatever its mode
    with os.fdopen(os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        os.fchmod(out.fileno(), 0o600)  # whatever the umask
        with copy.open("rb") as source:
            shutil.copyfileobj(source, out, 1 << 20)
    return staged


def install_sqlite(staged: Path, url: str) -> None:
    """Put the checked database file ``staged`` (beside the target) in place of the store at ``url``.

    The node must be stopped. A rename, so the old database stays whole until the new one is complete;
    the old file's WAL and shared-memory files go first, or SQLite would replay them into the copy."""
    target = path_from_url(url)
    for leftover in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
        leftover.unlink(missing_ok=True)
    staged.replace(target)


def pg_tool(name: str) -> str:
    """The path of a PostgreSQL client program, or a StoreError saying how to get it."""
    found = shutil.which(name)
    if found is None:
        raise StoreError(f"{name} is not installed; install the PostgreSQL client programs "
                         "(Debian/Ubuntu: apt-get install postgresql-client)")
    return found


class PostgresSnapshot:
    """A read-only view of a PostgreSQL store pinned to one exported snapshot.

    ``snapshot_id`` is what ``pg_dump --snapshot`` takes; ``store`` answers the store's read methods
    from the same snapshot for as long as the ``with`` block lasts."""

    def __init__(self, snapshot_id: str, store: Any) -> None:
        self.snapshot_id = snapshot_id
        self.store = store


@contextmanager
def postgres_snapshot(url: str) -> Iterator[PostgresSnapshot]:
    import psycopg

    from kizuna.store.postgres.store import PostgresStore, _Cursor

    class _Pinned(PostgresStore):
        """Reads through the one connection that holds the snapshot."""

        def __init__(self, connection: Any) -> None:
            self.url = url
            self._connection = connection

        @contextmanager
        def _read(self) -> Iterator[Any]:
            with self._connection.cursor() as cur:
                yield _Cursor(cur)

        @contextmanager
        def _write(self) -> Iterator[Any]:
            raise StoreError("a backup snapshot is read-only")
            yield  # pragma: no cover - makes this a generator

        def close(self) -> None:
            pass

    try:
        connection = psycopg.connect(url, connect_timeout=5)
    except psycopg.Error as exc:
        raise unreachable_postgres(url, exc) from None
    try:
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = connection.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        yield PostgresSnapshot(str(row[0]), _Pinned(connection))
    finally:
        connection.rollback()
        connection.close()


def dump_postgres(url: str, snapshot_id: str, dest: Path) -> None:
    """``pg_dump`` of the database at ``url`` as of ``snapshot_id``, in pg_restore's custom format."""
    target, env = pg_target(url)
    _run([pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot_id}",
          f"--file={dest}", f"--dbname={target}"], "pg_dump", env)


def pg_target(url: str) -> tuple[str, dict[str, str]]:
    """``--dbname`` for a PostgreSQL tool, without the URL's password, and the environment that carries it instead:
    a command line is shown to every local user (``ps``), a process's environment only to its owner."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


def other_sessions(url: str) -> int:
    """How many other connections the database at ``url`` has now: a server holds some for as long as it
    runs, whichever data directory it was started from."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as connection:
            row = connection.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND pid <> pg_backend_pid()").fetchone()
    except psycopg.Error as exc:
        raise unreachable_postgres(url, exc) from None
    return int(row[0]) if row else 0


def restore_postgres(dump: Path, url: str) -> None:
    """Load ``dump`` into the database at ``url`` in one transaction: all of it or, on failure, nothing.

    ``--clean --if-exists`` drops the node's tables first, so a database that held a node ends
    up holding exactly the copy."""
    target, env = pg_target(url)
    _run([pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges",
          "--single-transaction", "--exit-on-error", f"--dbname={target}", str(dump)], "pg_restore", env)


def _run(command: Sequence[str], name: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise StoreError(f"{name} failed: {lines[-1] if lines else f'exit status {result.returncode}'}")


def open_sqlite_copy(path: Path) -> SqliteStore:
    """A store over a copied database file, to check it."""
    return SqliteStore("sqlite:///" + str(path.resolve()).lstrip("/"))
