"""Reading hash lists: plain text, CSV, and ThreatExchange / HMA CSV exports.

* vPDQ text (ThreatExchange's vPDQ files): ``frame,quality,pdq_hex,timestamp`` a line, one video.
* Plain text: one hash per line, ``#`` comments and blank lines skipped. The type is told by length
  (32 hex digits: MD5), by a ``pdq:``/``md5:``/``sha256:`` prefix, or, for 64 hex digits (PDQ and
  SHA-256 have the same length), by ``kind`` (default PDQ, the usual content of a hash bank).
* CSV with a header: the hash in a column named ``hash``, ``signal``, ``signal_value``,
  ``indicator``, ``pdq``, ``md5`` or ``sha256``; its type in ``hash_type``/``signal_type``/
  ``indicator_type``/``type`` (ThreatExchange's ``HASH_PDQ``, HMA's ``pdq``, ``video_md5``, ``vpdq``…;
  a vPDQ value is ThreatExchange's signal form, a JSON list of ``pdq_hex,quality,timestamp`` strings);
  labels in ``labels``/``tags``/``category`` (separated by ``;``, ``|`` or spaces); PDQ quality in
  ``quality`` (0 to 100; a PDQ hash below 50 is a `Note`, not an entry: it matches too much).

Each line gives an `Entry` or a `Rejected` naming the line, so a bad line is reported and the rest
of the list is used.
"""

from __future__ import annotations

import csv
import mimetypes
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from kizuna.core.messages import N_, Message, message_of
from kizuna.formats.csv_line import csv_cells
from kizuna.hashes.signals import (
    MD5,
    MIN_QUALITY,
    PDQ,
    SHA256,
    VPDQ,
    FrameError,
    SignalError,
    check_label,
    compact_frames,
    frame_of_line,
    frames_text,
    is_vpdq_text,
    normalise_hash,
    parse_frames,
)
from kizuna.numerals import whole_number

_TYPE_NAMES: Final = {
    "pdq": PDQ, "hash_pdq": PDQ, "pdq_hash": PDQ, "photo_pdq": PDQ,
    "md5": MD5, "hash_md5": MD5, "video_md5": MD5, "photo_md5": MD5, "file_md5": MD5,
    "sha256": SHA256, "sha-256": SHA256, "hash_sha256": SHA256, "file_sha256": SHA256,
    "vpdq": VPDQ, "video_vpdq": VPDQ,
}
_HASH_COLUMNS: Final = ("hash", "signal", "signal_value", "indicator", "pdq", "md5", "sha256")
_TYPE_COLUMNS: Final = ("hash_type", "signal_type", "indicator_type", "type")
_LABEL_COLUMNS: Final = ("labels", "tags", "category", "categories")
_LABEL_SPLIT = re.compile(r"[;|\s]+")
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")  # a type before a hash: ``md5:…``, ``sha1:…``
KINDS: Final = ("auto", PDQ, MD5, SHA256)
_NO_HASH_COLUMN: Final = (
    f"a CSV's header must name its hash column ({', '.join(_HASH_COLUMNS)}); the columns understood besides are "
    f"the type ({', '.join(_TYPE_COLUMNS)}), labels ({', '.join(_LABEL_COLUMNS)}) and quality")


@dataclass(frozen=True)
class Entry:
    line: int
    hash_type: str
    hash: str
    quality: int | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str


@dataclass(frozen=True)
class Note(Rejected):
    """What is read but not banked on purpose (a PDQ hash of quality below 50, which matches too much): said
    beside the report with its line, not a failure of an import."""


def _type_of(value: str, kind: str) -> str:
    if kind != "auto":
        return kind
    return MD5 if len(value) == 32 else PDQ  # any other length is reported as a bad PDQ hash


def _named_type(name: str) -> str:
    """The hash type a prefix or a type column names (``HASH_PDQ``, ``video_md5``, ``vpdq``…)."""
    found = _TYPE_NAMES.get(name.lower())
    if found is None:
        raise SignalError(Message(N_("unknown hash type %(name)r (pdq, md5, sha256, vpdq)"), name=name[:40]))
    return found


def read_hash_line(number: int, raw: str, kind: str = "auto") -> Entry | Rejected | None:
    """One line of a plain hash list: a hash, maybe with a type prefix (``md5:…``); None for a blank or
    comment line."""
    line = raw.split("#", 1)[0].strip()
    if not line:
        return None
    prefix, colon, rest = line.partition(":")
    try:
        named = _named_type(prefix.strip()) if colon and _PREFIX.match(prefix.strip()) else None
        if named == VPDQ:
            raise SignalError(Message(N_("a vPDQ hash is a file of 'frame,quality,pdq_hex,timestamp' lines, "
                                         "not one line")))
        value = rest.strip() if named else line
        hash_type = named or _type_of(value, kind)
        return Entry(number, hash_type, normalise_hash(hash_type, value))
    except SignalError as exc:
        return Rejected(number, message_of(exc))


def _plain(text: str, kind: str) -> Iterator[Entry | Rejected]:
    for number, raw in enumerate(text.splitlines(), start=1):
        item = read_hash_line(number, raw, kind)
        if item is not None:
            yield item


def _column(header: Sequence[str], names: tuple[str, ...]) -> int | None:
    """The index of the first header cell named one of ``names`` (in any case)."""
    lowered = {h.strip().lower(): index for index, h in enumerate(header)}
    return next((lowered[n] for n in names if n in lowered), None)


def _content_lines(text: str) -> Iterator[tuple[int, str]]:
    """(number, line) of every line that is not blank or a ``#`` comment."""
    return ((number, line) for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.startswith("#"))


def _csv(text: str, kind: str) -> Iterator[Entry | Rejected]:
    # Line by line (kizuna.formats reads its CSV lists so too): a quote left open makes its own line
    # malformed instead of swallowing every line after it.
    lines = _content_lines(text)
    header_number, header_line = next(lines)
    try:
        header = csv_cells(header_line)
    except csv.Error as exc:
        yield Rejected(header_number, f"malformed CSV header: {exc}")
        return
    columns = _Columns(header)
    if columns.hash is None:
        yield Rejected(header_number, _NO_HASH_COLUMN)
        return
    for number, line in lines:
        try:
            cells = csv_cells(line)
        except csv.Error as exc:
            yield Rejected(number, f"malformed CSV: {exc}")
            continue
        yield columns.read(number, cells, kind)


class _Columns:
    """Where a CSV header puts the hash, its type, its labels and its quality."""

    def __init__(self, header: Sequence[str]) -> None:
        self.hash = _column(header, _HASH_COLUMNS)
        self.type, self.labels = _column(header, _TYPE_COLUMNS), _column(header, _LABEL_COLUMNS)
        self.quality = _column(header, ("quality",))
        named = header[self.hash].strip().lower() if self.hash is not None else ""
        self.implied = _TYPE_NAMES[named] if named in ("pdq", "md5", "sha256") else None  # a column named by its type

    def read(self, number: int, cells: Sequence[str], kind: str) -> Entry | Rejected:
        def cell(index: int | None) -> str:
            return cells[index].strip() if index is not None and index < len(cells) else ""

        value = cell(self.hash)
        try:
            type_text = cell(self.type)
            hash_type = (_named_type(type_text) if type_text else self.implied) or _type_of(value, kind)
            quality = _quality(cell(self.quality))
            if hash_type == PDQ and quality is not None and quality < MIN_QUALITY:
                return Note(number, f"PDQ quality {quality} is below {MIN_QUALITY}: too plain to bank or match")
            labels = tuple(check_label(label.lower()) for label in _LABEL_SPLIT.split(cell(self.labels)) if label)
            # A vPDQ signal (ThreatExchange's form: a JSON list of frames) becomes the frames' canonical text.
            hashed = frames_text(compact_frames(value)) if hash_type == VPDQ else normalise_hash(hash_type, value)
            return Entry(number, hash_type, hashed, quality, labels)
        except SignalError as exc:
            return Rejected(number, str(exc))


def _quality(text: str) -> int | None:
    """A CSV's PDQ quality: a whole number from 0 to 100, or None when the cell is empty."""
    if not text:
        return None
    quality = whole_number(text, 100)
    if quality is None:
        raise SignalError(f"quality {text[:40]!r} is not a whole number from 0 to 100")
    return quality


def _vpdq(text: str) -> Iterator[Entry | Rejected]:
    """The one entry of a vPDQ text, or each of its bad frame lines: one bad line rejects the video."""
    bad: list[Rejected] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        try:
            frame_of_line(number, raw)
        except FrameError as exc:
            bad.append(Rejected(exc.line, str(exc)))
    if bad:
        yield from bad
        return
    yield Entry(next(_content_lines(text))[0], VPDQ, frames_text(parse_frames(text)))


def read_hash_list(text: str, kind: str = "auto") -> Iterator[Entry | Rejected]:
    """Every entry of a hash list, in order; a CSV is recognised by a comma in its first line (its header), and
    a vPDQ hash (``frame,quality,pdq_hex,timestamp`` lines) is one entry of the whole text, whose
    ``hash`` is the frames' canonical text."""
    if is_vpdq_text(text):
        return _vpdq(text)
    first = next(_content_lines(text), (0, ""))[1]
    if "," in first.split("#", 1)[0]:  # no hash has a comma: a header, understood or not
        return _csv(text, kind)
    return _plain(text, kind)


def looks_like_hash_list(head: bytes, name: str = "") -> bool:
    """Whether a file's first bytes are a hash list rather than media (text of hex, commas and words);
    never for a file ``name``d as an image or a video: read as a hash list, a text file called
    photo.jpg would fail as "not hexadecimal" instead of as the image it is not."""
    if (mimetypes.guess_type(name)[0] or "").split("/")[0] in ("image", "video"):
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(text.strip()) and all(ch.isprintable() or ch in "\r\n\t" for ch in text)
