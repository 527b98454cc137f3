"""Progress of long commands (``import``, ``export``): a bar on stderr, only for a person watching.

The bar is drawn with ``rich`` on standard error, and only when standard error is a terminal and
the command was not asked for ``--json`` or ``--quiet``: scripts and logs never see it, and the
command's own output on standard output is never mixed with it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import IO, Any

#: How many objects pass between two updates of the bar (each update takes the bar's lock).
_UPDATE_EVERY = 500
#: ...or this long, when each object takes long (a picture hashed, a video's frames).
_SLOW_SECONDS = 0.2


def progress_wanted(as_json: bool, quiet: bool) -> bool:
    return not (as_json or quiet) and sys.stderr.isatty()


class Progress:
    """Counts objects (and, when the input's size is known, bytes) and shows them while it runs.

    ``total`` is the size of the work in ``unit`` (bytes of an input file, versions of an export);
    without it the bar shows the count and rate but no ETA. When disabled every method is a no-op.
    """

    def __init__(self, description: str, *, total: int | None, unit: str, enabled: bool,
                 noun: str = "objects") -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.noun = noun  # what is counted beside the bytes (objects, lines)
        self.objects = 0
        self._done = 0
        self._progress: Any = None
        self._task: Any = None
        self._refreshed = 0.0

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                MofNCompleteColumn,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as RichProgress

            # Bytes of an input file: the bar follows the bytes and the object count is shown beside it.
            amount = ([DownloadColumn(), TextColumn("{task.fields[objects]:,} " + self.noun), TransferSpeedColumn()]
                      if self.unit == "bytes" else [MofNCompleteColumn(), _object_rate_column(self.noun)])
            self._progress = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), *amount,
                TimeElapsedColumn(), TimeRemainingColumn(), console=Console(file=sys.stderr), transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, objects=0)
        return self

    def object_done(self) -> None:
        self.objects += 1
        if self.unit != "bytes":
            self._done += 1
        # Every _UPDATE_EVERY objects, or sooner when each takes long (a picture hashed, a video's frames).
        if self._progress is not None and (self.objects % _UPDATE_EVERY == 0
                                           or time.monotonic() - self._refreshed > _SLOW_SECONDS):
            self._refresh()

    def counted(self, objects: int, size: int) -> None:
        """A piece of the input done: ``objects`` things counted, ``size`` bytes of it read."""
        self.objects += objects
        self.bytes_read(size)

    def bytes_read(self, count: int) -> None:
        if self.unit == "bytes":
            self._done += count
            if self._progress is not None:
                self._refresh()

    def _refresh(self) -> None:
        self._refreshed = time.monotonic()
        self._progress.update(self._task, completed=self._done, objects=self.objects)

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._progress is not None:
            self._refresh()
            self._progress.stop()


def _object_rate_column(noun: str = "objects") -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class ObjectRate(ProgressColumn):
        """Objects per second (rich's own speed column speaks of bytes)."""

        def render(self, task: Any) -> Text:
            return Text(f"{task.speed:,.0f} {noun}/s" if task.speed else "")

    return ObjectRate()


def tracked(lines: Iterable[bytes], progress: Progress, every: int = 2048) -> Iterator[bytes]:
    """``lines`` as they are, telling ``progress`` of them in batches (an update a line would cost more
    than matching it)."""
    count = size = 0
    for line in lines:
        count += 1
        size += len(line)
        if count == every:
            progress.counted(count, size)
            count = size = 0
        yield line
    progress.counted(count, size)


class CountingReader:
    """A binary file that tells a :class:`Progress` how many bytes were read from it."""

    def __init__(self, stream: IO[bytes], progress: Progress) -> None:
        self._stream = stream
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._progress.bytes_read(len(data))
        return data
