"""Write transactions of the SQL stores, and ``atomic()``: several writes that commit as one.

A backend supplies ``_reader`` (a cursor outside any transaction) and ``_transaction`` (a cursor in a
new write transaction).  The store's methods take their cursors from ``_read`` and ``_write`` here,
which hand out the thread's ``atomic()`` transaction while a block is open, so methods written to
stand alone (add versions, put a status, append to the audit chain) join one transaction when a
caller needs them to commit together.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import Any


class Transactions(abc.ABC):
    @abc.abstractmethod
    def _reader(self) -> AbstractContextManager[Any]:
        """A cursor for reads (``execute``/``fetchall`` with ``?`` placeholders) outside any transaction."""

    @abc.abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]:
        """A cursor inside a new write transaction that commits on success and rolls back on an exception."""

    #: Per thread: the open ``atomic()`` block's exit stack and cursor (set by each backend's ``__init__``).
    _atomic: threading.local

    def _read(self) -> AbstractContextManager[Any]:
        """A cursor for reads; inside an ``atomic()`` block that has written, its own transaction's cursor,
        so the block reads its own writes and never waits for a second connection while holding locks."""
        cur = getattr(self._atomic, "cur", None)
        return self._reader() if cur is None else nullcontext(cur)

    def _write(self) -> AbstractContextManager[Any]:
        """A cursor inside a write transaction: this thread's ``atomic()`` one if a block is open, else a new one."""
        block = getattr(self._atomic, "stack", None)
        if block is None:
            return self._transaction()
        if getattr(self._atomic, "cur", None) is None:
            self._atomic.cur = block.enter_context(self._transaction())
        return nullcontext(self._atomic.cur)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Every write this thread makes inside the block commits together, or none does.

        The transaction opens at the block's first write, not at its start, so work done before it
        (validating an envelope) does not hold the write lock.  It commits when the block ends and
        rolls back when an exception leaves the block.  A nested block joins the outer one.
        """
        if getattr(self._atomic, "stack", None) is not None:
            yield
            return
        stack = ExitStack()
        self._atomic.stack, self._atomic.cur, self._atomic.later = stack, None, []
        try:
            with stack:
                yield
            later = self._atomic.later
        finally:
            self._atomic.stack = self._atomic.cur = self._atomic.later = None
        for work in later:
            work()

    def _after_commit(self, work: Callable[[], None]) -> None:
        """Run ``work`` once this thread's writes are committed: now, or when its ``atomic()`` block ends."""
        later = getattr(self._atomic, "later", None)
        if later is None:
            work()
        else:
            later.append(work)
