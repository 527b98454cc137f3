"""A migrated, empty SQL store on each backend, for the store-level tests of this directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kizuna.store import open_store
from kizuna.store.sql import SqlStore


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    opened = open_store(store_url)
    assert isinstance(opened, SqlStore)
    opened.migrate()
    try:
        yield opened
    finally:
        opened.close()
