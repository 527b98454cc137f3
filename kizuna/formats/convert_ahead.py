"""Convert the files of one import in worker processes, ahead of the process that stores them.

A directory of MISP events (a feed's dump, an instance's export) spends almost all of its import in misp-stix,
pure Python that one process runs on one core; STIX 1.x through stix2-elevator and STIX 2.0 likewise. The
files are independent, so workers convert the next ones while the importing process stores the one before.
Results come back in the files' order, each as it would have been converted in process (the same `convert`),
so what is stored, reported and audited does not depend on how many workers ran.

Workers are forked once, before the import writes anything (`kizuna/core/forked.py`): they inherit the
converters already imported and the warninglists already loaded. At most four conversions a worker are under
way or waiting, and their files' bytes at most `AHEAD_BYTES`, so memory holds a few files' objects, not the
directory's.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kizuna.core.forked import in_order
from kizuna.formats.base import FormatError
from kizuna.formats.detect_format import MISP, Converted, IocOptions, convert
from kizuna.formats.stix_legacy import STIX1, STIX20
from kizuna.formats.warninglists import Warninglists

#: Formats whose conversion is worth a worker. An IOC list converts in a tenth of the time its objects take
#: to store, so sending its objects back through a pipe would cost about what converting it ahead saves.
WORTH_A_WORKER: Final = frozenset({MISP, STIX1, STIX20})
#: The input bytes of the files converted ahead of the one being stored (one larger file still goes, alone).
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
    (a `FormatError`'s message and where: plain values, which compare)."""

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


def convert_file(job: Job, ioc: IocOptions, warninglists: Warninglists | None, workers: int = 0) -> Outcome:
    """``job``'s file read and converted, in whichever process calls it; ``workers``: processes converting the
    events of one MISP document (`convert`)."""
    try:
        data = job.path.read_bytes()
        undated = _undated(job.path)
    except OSError as exc:
        return Outcome(job, unreadable=exc.strerror or str(exc))
    try:
        return Outcome(job, convert(job.fmt, data, job.label, ioc=ioc, warninglists=warninglists, undated=undated,
                                    workers=workers))
    except FormatError as exc:
        return Outcome(job, malformed=(exc.message, exc.where))


def workers_for(jobs: Sequence[Job], wanted: int) -> int:
    """How many workers an import of ``jobs`` gets: ``wanted`` (0 or 1: none), never more than the files worth
    one; none for a single such file, which gains nothing from being converted beside nothing."""
    count = min(wanted, sum(1 for job in jobs if job.fmt in WORTH_A_WORKER))
    return count if count >= 2 else 0


def converted_in_order(jobs: Sequence[Job], ioc: IocOptions, warninglists: Warninglists | None,
                       workers: int) -> Generator[Outcome | None, None, None]:
    """For each job in order: its `Outcome`, or None for a job of a format no worker takes (the caller
    converts or streams it itself). With ``workers`` of 0 every worthy job is converted here, in order."""
    worthy = [job for job in jobs if job.fmt in WORTH_A_WORKER]
    outcomes = in_order(lambda n: convert_file(worthy[n], ioc, warninglists), len(worthy), workers,
                        weights=[_size(job.path) for job in worthy], budget=AHEAD_BYTES)
    try:
        for job in jobs:
            yield next(outcomes) if job.fmt in WORTH_A_WORKER else None
    finally:
        outcomes.close()


__all__ = ["WORTH_A_WORKER", "Job", "Outcome", "convert_file", "converted_in_order", "workers_for"]
