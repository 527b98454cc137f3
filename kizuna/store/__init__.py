"""Storage backends, chosen by URL: ``sqlite:///path/to/file.db`` or ``postgresql://…``."""

from __future__ import annotations

from kizuna.config import shown_store_url
from kizuna.store.base import Store, StoreError


def open_store(url: str, *, create: bool = True) -> Store:
    """The store at ``url``; with ``create=False`` an SQLite file that is not there is an error, not a new empty
    store (a node whose database went missing must say so, not start again empty)."""
    if url.startswith("sqlite:///"):
        from kizuna.store.sqlite.store import SqliteStore

        return SqliteStore(url, create=create)
    if url.startswith(("postgresql://", "postgres://")):
        from kizuna.store.postgres.store import PostgresStore

        return PostgresStore(url)
    raise StoreError(f"unsupported store URL {shown_store_url(url)!r}: use sqlite:///path/to/file.db or postgresql://…")


__all__ = ["Store", "StoreError", "open_store"]
