"""Files `kizuna match` reads and writes: STIX input with line numbers, outputs that appear whole or not at all.

STIX input (indicators, observed-data) may be a bundle, a TAXII envelope, a JSON array or JSON
lines. Bundles and arrays are streamed by `kizuna.stix.bundle_stream`, which knows the line every
object starts on and stops at the first syntax error with `file:line`; JSON lines are read line by
line with the same kind of error. A truncated file therefore fails with the place it breaks off.

Outputs are written to a temporary file beside their destination and renamed over it only when
the run succeeds, so a failed run never leaves a half-written sightings bundle or alert file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from kizuna.stix.bundle_stream import BundleSyntaxError, iter_bundle_objects

_GZIP_MAGIC = b"\x1f\x8b"


def open_log(path: Path) -> IO[bytes]:
    """A log file for reading its lines, decompressed when it is gzip (a rotated log often is): read as it is,
    every line of it would be reported as not a log record."""
    raw = path.open("rb")
    if raw.read(2) == _GZIP_MAGIC:
        import gzip  # on first use: most logs are plain text

        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw


def _flatten(data: Any) -> Iterator[Any]:
    if isinstance(data, list):
        for item in data:
            yield from _flatten(item)
    elif isinstance(data, dict) and data.get("type") == "bundle":
        yield from data.get("objects", [])
    else:
        yield data


def _is_json_lines(path: Path) -> bool:
    """True when the first non-blank line is a whole JSON value and more follows: JSON lines."""
    with path.open("rb") as stream:
        for raw in stream:
            if raw.strip():
                try:
                    orjson.loads(raw)
                except orjson.JSONDecodeError:
                    return False  # a pretty-printed (or broken) bundle; the streamer says which
                return any(rest.strip() for rest in stream)
    return False


def read_stix_file(path: Path, name: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, object) for each STIX object of the file; BundleSyntaxError names where it is broken.

    Elements that are not JSON objects are skipped (they cannot be indicators or observed-data).
    `name` is how errors refer to the file (default: its path). The file is read twice (once to
    tell JSON lines from a bundle), so it must be a regular file, not a pipe.
    """
    name = name or str(path)
    if _is_json_lines(path):
        with path.open("rb") as stream:
            for number, raw in enumerate(stream, 1):
                if not raw.strip():
                    continue
                try:
                    data = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    raise BundleSyntaxError(name, number, f"not valid JSON: {exc}") from None
                yield from ((number, obj) for obj in _flatten(data) if isinstance(obj, dict))
        return
    with path.open("rb") as stream:
        for number, item in iter_bundle_objects(stream, name):
            if isinstance(item, dict):
                if item.get("type") == "bundle":  # an array of bundles
                    yield from ((number, obj) for obj in _flatten(item) if isinstance(obj, dict))
                else:
                    yield number, item


def write_target(path: Path) -> tuple[Path, bool]:
    """Where writing ``path`` goes (the file a link names) and whether it is a device or a pipe (``-o /dev/null``,
    a FIFO a tool reads): a stream written into, never renamed over, which would leave a plain file in its place."""
    target = path.resolve() if path.is_symlink() else path
    try:
        return target, not stat.S_ISREG(target.stat().st_mode)
    except OSError:
        return target, False  # not there yet: a new file


class PendingFile:
    """A file written under a temporary name beside `path`, moved into place by `commit`.

    A device or a pipe (`-o /dev/null`, a FIFO a tool reads) is written into directly, as a stream: renaming
    over it would leave a plain file where /dev/null was (run as root, it did). A link is written through to
    the file it names, not replaced by a file of its own."""

    def __init__(self, path: Path, *, binary: bool = False) -> None:
        self.path, special = write_target(path)
        mode, encoding = ("wb", None) if binary else ("w", "utf-8")
        self.temporary: Path | None = None
        if special:
            self.stream: IO[Any] = self.path.open(mode, encoding=encoding)
            return
        parent = self.path.parent or Path(".")
        handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=parent)
        self.temporary = Path(temporary)
        self.stream = os.fdopen(handle, mode, encoding=encoding)

    def commit(self) -> None:
        self.stream.close()
        if self.temporary is not None:
            os.replace(self.temporary, self.path)

    def discard(self) -> None:
        self.stream.close()
        if self.temporary is not None:
            self.temporary.unlink(missing_ok=True)


def check_writable(path: Path, what: str) -> str | None:
    """Why an output cannot be written to `path`, or None; checked before any work is done."""
    if path.is_dir():
        return f"{what} {path} is a directory"
    target, special = write_target(path)
    if special:  # a device or a pipe, written into (PendingFile)
        return None if os.access(target, os.W_OK) else f"{what} {path} is not writable"
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        return f"{what} {path}: directory {parent} does not exist"
    if not os.access(parent, os.W_OK):
        return f"{what} {path}: directory {parent} is not writable"
    return None


def same_file(one: Path, other: Path) -> bool:
    """Whether writing ``one`` would write the file ``other`` names, through links and other spellings of its path.

    A device or a pipe (``/dev/null``) is a stream every writer shares, never a file one output would replace."""
    try:
        if os.path.samefile(one, other):
            return not write_target(one)[1]
    except OSError:  # one of them is not there yet: only the same path, however spelt, is the same file
        pass
    return one.resolve() == other.resolve()
