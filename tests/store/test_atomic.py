"""``store.atomic()`` on both backends: the writes of a block commit together or not at all, a block
reads its own writes, and work queued for after the commit runs only once the commit happened."""

from __future__ import annotations

import pytest

from kizuna.store import open_store
from kizuna.store.base import StoredStatus
from kizuna.store.sql import SqlStore


def _status(number: int) -> StoredStatus:
    return StoredStatus(f"status-{number}", "main", None, number, b"{}")


def test_writes_in_a_block_commit_together(store: SqlStore) -> None:
    seen_inside = []
    with store.atomic():
        store.put_status(_status(1))
        store.set_setting("atomic-test", "1")
        seen_inside.append(store.get_status("status-1") is not None)  # its own write, before the commit
        with store.atomic():  # a nested block joins the outer one
            store.put_status(_status(2))
    assert seen_inside == [True]
    other = open_store(store.url)  # another connection sees both
    try:
        assert other.get_status("status-1") is not None and other.get_status("status-2") is not None
        assert other.get_setting("atomic-test") == "1"
    finally:
        other.close()


def test_an_exception_leaving_the_block_rolls_every_write_back(store: SqlStore) -> None:
    ran: list[str] = []
    with pytest.raises(RuntimeError, match="halfway"):
        with store.atomic():
            store.put_status(_status(3))
            store._after_commit(lambda: ran.append("after"))
            store.set_setting("atomic-test", "2")
            raise RuntimeError("halfway")
    assert store.get_status("status-3") is None and store.get_setting("atomic-test") is None
    assert ran == []  # nothing committed, so nothing ran "after the commit"
    with store.atomic():
        store.put_status(_status(4))
        store._after_commit(lambda: ran.append("after"))
        assert ran == []
    assert ran == ["after"]
    store._after_commit(lambda: ran.append("now"))  # outside a block: at once
    assert ran == ["after", "now"]
