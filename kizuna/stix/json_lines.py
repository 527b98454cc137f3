"""JSON lines read one line at a time, so that one bad line is reported by its number and the rest is read.

The streaming bundle reader (``bundle_stream.py``) reads a file of several top-level values in a row too, but
a syntax error ends it there: right for one bundle (whatever follows a broken bracket cannot be trusted),
wrong for JSON lines, where each line stands alone and a partner's feed with one cut-short line would lose
everything after it. ``looks_like_json_lines`` tells the two apart from the file's first line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

#: The first line is read up to this many bytes: a longer one (a bundle written on one line) is no JSON lines.
FIRST_LINE_LIMIT = 1 << 20


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is not one JSON value."""

    line: int
    message: str


def looks_like_json_lines(head: bytes) -> bool:
    """Whether a file beginning with ``head`` is JSON lines: its first non-blank line is a whole JSON object or
    array by itself, and another non-blank line follows it."""
    lines = (line for line in head.split(b"\n", 64) if line.strip())  # a file's start, not every line of 1 MiB
    first, second = next(lines, b"").strip(), next(lines, None)
    if second is None or first[:1] not in (b"{", b"["):
        return False
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return False
    return True


def json_lines_objects(lines: Iterable[bytes]) -> Iterator[tuple[int, Any] | BadLine]:
    """``(line, object)`` for every STIX object of every line (an object, a bundle or envelope, or an array),
    and a `BadLine` for each line that is not JSON; a line's object without ``objects`` or ``type`` yields
    nothing, as in ``bundle_stream``."""
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield BadLine(number, f"not JSON: {exc}")
            continue
        if isinstance(value, dict) and isinstance(value.get("objects"), list):
            yield from ((number, obj) for obj in value["objects"])
        elif isinstance(value, list):
            yield from ((number, obj) for obj in value)
        elif isinstance(value, dict) and "type" in value:
            yield number, value
        elif not isinstance(value, dict):
            yield BadLine(number, "not a JSON object, bundle or array")
