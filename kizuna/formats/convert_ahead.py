"""Convert the files of one import in worker processes, ahead of the process that stores them.

A directory of MISP events (a feed's dump, an instance's export) spends almost all of its import in misp-stix,
pure Python that one process runs on one core; STIX 1.x through stix2-elevator and STIX 2.0 likewise. The
files are independent, so workers convert the next ones while the importing process stores the one before.
Results come back in the files' order, each as it would have been converted in process (the same `convert`),
so what is stored, reported and audited does not depend on how many workers ran.

Workers are forked once, before the import writes anything: they inherit the converters already imported
and the warninglists already loaded instead of importing and loading them again, and no store thread exists
yet in the process they are forked from. At most four conversions a worker are under way or waiting, and
their files' bytes at most `AHEAD_BYTES`, so memory holds a few files' objects, not the directory's; ahead
of the file being stored, so one large event does not leave the other workers waiting.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kizuna.formats.base import FormatError
from kizuna.formats.detect_format import MISP, Converted, IocOptions, convert
from kizuna.formats.stix_legacy import STIX1, STIX20
from kizuna.formats.warninglists import Warninglists

#: Formats whose conversion is worth a worker. An IOC list converts in a tenth of the time its objects take
#: to store, so sending its objects back through a pipe would cost about what converting it ahead saves.
WORTH_A_WORKER: Final = frozenset({MISP, STIX1, STIX20})
#: Conversions a worker may have under way or waiting, and the input bytes of all of them together (one file
#: larger than that still goes, on its own).
AHEAD_PER_WORKER: Final = 4
AHEAD_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True)
class Job:
    """One file to convert: its path, the name it is reported under, its format."""

    path: Path
    label: str
    fmt: str


@dataclass(frozen=True)
class Outcome:
    """A file's conversion, or why it has none: ``unreadable`` (the operating system's reason) or ``malformed``
    (a `FormatError`'s message and where; plain strings, as an exception with its own arguments does not come
    back whole from another process)."""

    job: Job
    converted: Converted | None = None
    unreadable: str | None = None
    malformed: tuple[str, str | None] | None = None

    def result(self) -> Converted:
        """The conversion; `FormatError` if the file was malformed, `OSError` if it could not be read."""
        if self.unreadable is not None:
            raise OSError(self.unreadable)
        if self.malformed is not None:
            raise FormatError(*self.malformed)
        assert self.converted is not None
        return self.converted


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # its conversion says why it cannot be read


def _undated(path: Path) -> int:
    return int(path.stat().st_mtime) * 1_000_000


def convert_file(job: Job, ioc: IocOptions, warninglists: Warninglists | None) -> Outcome:
    """``job``'s file read and converted, in whichever process calls it."""
    try:
        data = job.path.read_bytes()
        undated = _undated(job.path)
    except OSError as exc:
        return Outcome(job, unreadable=exc.strerror or str(exc))
    try:
        return Outcome(job, convert(job.fmt, data, job.label, ioc=ioc, warninglists=warninglists, undated=undated))
    except FormatError as exc:
        return Outcome(job, malformed=(exc.message, exc.where))


# What a worker converts with: set in the importing process before the fork, so the workers inherit it.
_inherited: dict[str, object] = {}


def _in_worker(job: Job) -> Outcome:
    ioc = _inherited["ioc"]
    lists = _inherited["warninglists"]
    assert isinstance(ioc, IocOptions) and (lists is None or isinstance(lists, Warninglists))
    return convert_file(job, ioc, lists)


def _quiet_interrupts() -> None:
    # Ctrl-C reaches the whole process group: the importing process reports it, the workers just end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def workers_for(jobs: Sequence[Job], asked: int | None) -> int:
    """How many workers an import of ``jobs`` gets: ``asked`` (0 or 1: none), else one per usable core, never
    more than the files worth one; none for a single such file, which gains nothing from being converted
    beside nothing."""
    worth = sum(1 for job in jobs if job.fmt in WORTH_A_WORKER)
    wanted = usable_cores() if asked is None else asked
    count = min(wanted, worth)
    return count if count >= 2 else 0


def converted_in_order(jobs: Sequence[Job], ioc: IocOptions, warninglists: Warninglists | None,
                       workers: int) -> Generator[Outcome | None, None, None]:
    """For each job in order: its `Outcome`, or None for a job of a format no worker takes (the caller
    converts or streams it itself). With ``workers`` of 0 every worthy job is converted here, in order."""
    if workers < 2:
        for job in jobs:
            yield convert_file(job, ioc, warninglists) if job.fmt in WORTH_A_WORKER else None
        return
    _inherited.update(ioc=ioc, warninglists=warninglists)
    # What the workers inherit is moved out of the collector's walks first: each walk writes to every object
    # it visits, which copied the inherited heap page by page into each worker (conversion of 110 events
    # took 8.4-9.9 s of CPU in two workers against 7.6 in this process, and 6.6-8.4 once frozen).
    gc.freeze()
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_quiet_interrupts)
    ahead: dict[int, Future[Outcome]] = {}
    worthy = [n for n, job in enumerate(jobs) if job.fmt in WORTH_A_WORKER]
    sizes = {n: _size(jobs[n].path) for n in worthy}
    queued = 0
    broken = False
    try:
        for n, job in enumerate(jobs):
            while (not broken and queued < len(worthy) and len(ahead) < workers * AHEAD_PER_WORKER
                   and (not ahead or sum(sizes[m] for m in ahead) + sizes[worthy[queued]] <= AHEAD_BYTES)):
                ahead[worthy[queued]] = pool.submit(_in_worker, jobs[worthy[queued]])
                queued += 1
            if job.fmt not in WORTH_A_WORKER:
                yield None
                continue
            future = ahead.pop(n, None)
            try:
                outcome = future.result() if future is not None else None
            except BrokenProcessPool:
                # A worker was killed (out of memory, a signal): its file and those after it are converted in
                # this process, one at a time, as without workers.
                broken = True
                outcome = None
            yield outcome if outcome is not None else convert_file(job, ioc, warninglists)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _inherited.clear()


__all__ = ["WORTH_A_WORKER", "Job", "Outcome", "convert_file", "converted_in_order", "usable_cores", "workers_for"]
