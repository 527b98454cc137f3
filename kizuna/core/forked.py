"""The items of one conversion worked on by forked processes, their results handed back in the items' order.

A converter built on misp-stix or stix2-elevator is pure Python that runs on one core, and the files of a
directory, like the events of one MISP document, are independent. `in_order` runs ``work(i)`` for each item
in worker processes forked from the caller, at most a few items a worker ahead of the one the caller takes,
and yields the results in order: what the caller makes of them cannot depend on how many workers ran.

The workers are forked, not spawned: they inherit the converters the caller imported and the data it read
(the parsed document, the warninglists) instead of importing and reading them again, and ``work`` itself
(a closure) is inherited, never pickled; only each item's number goes to a worker and its result comes back.
A fork copies only the forking thread: a lock another thread held at that moment stays held in the child. The
workers run converters and `prepare` (Python, orjson, the STIX checks), never the store, so its threads' locks
(SQLite's, the write lock, the search backlog's) cannot stop them; logging's and the import system's locks are
renewed in a forked child by Python itself. Use it for such pure work only, from a command, not a server.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Final, TypeVar

T = TypeVar("T")

#: Items a worker may have under way or waiting: enough that one large item does not leave the others idle
#: (with one, two workers on the CIRCL events used 1.45 cores).
AHEAD_PER_WORKER: Final = 4

# The work of the `in_order` under way, set before its workers fork so that they inherit it.
_work: list[Callable[[int], Any]] = []


def _call(index: int) -> Any:
    return _work[0](index)


def _quiet_interrupts() -> None:
    # Ctrl-C reaches the whole process group: the caller reports it, the workers just end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def in_order(work: Callable[[int], T], count: int, workers: int, *, weights: Sequence[int] | None = None,
             budget: int | None = None) -> Generator[T, None, None]:
    """``work(i)`` for i in 0..count-1, in order, computed by ``workers`` forked processes (here, one at a time,
    when fewer than two workers or items, or when another `in_order` is under way in this process).

    ``work`` returns a value that pickles (an exception it raises comes back as that exception). ``weights``
    and ``budget``: the items ahead of the one taken weigh at most ``budget`` together (the first always goes).
    A worker that is killed loses nothing: the items not yet back, and all after them, are worked on here.
    """
    if workers < 2 or count < 2 or _work:
        for index in range(count):
            yield work(index)
        return
    _work.append(work)
    # What the workers inherit is moved out of the collector's walks first: each walk writes to every object it
    # visits, which copied the inherited heap page by page into each worker (110 MISP events took 8.4-9.9 s of
    # CPU in two workers against 7.6 s in one process, and 6.6-8.4 s once frozen).
    gc.freeze()
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_quiet_interrupts)
    ahead: dict[int, Future[T]] = {}
    queued = 0
    broken = False

    def room_for(index: int) -> bool:
        if len(ahead) >= workers * AHEAD_PER_WORKER:
            return False
        return not ahead or weights is None or budget is None or \
            sum(weights[m] for m in ahead) + weights[index] <= budget

    try:
        for index in range(count):
            while not broken and queued < count and room_for(queued):
                ahead[queued] = pool.submit(_call, queued)
                queued += 1
            future = ahead.pop(index, None)
            if future is not None:
                try:
                    result = future.result()
                except BrokenProcessPool:
                    # A worker was killed (out of memory, a signal): this item and those after it are worked on
                    # here, one at a time, as without workers.
                    broken = True
                else:
                    yield result
                    continue
            yield work(index)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _work.clear()


__all__ = ["AHEAD_PER_WORKER", "in_order", "usable_cores"]
