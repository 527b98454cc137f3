"""The STIX form of a hash signal, and reading it back.

A signal is an ``indicator`` that a generic STIX consumer can still read:

* PDQ: ``pattern_type: "pdq"`` (open vocabulary) and ``pattern`` the 64 hex digits of the hash;
* MD5 / SHA-256: ``pattern_type: "stix"`` and ``[file:hashes.MD5 = '…']`` (or ``'SHA-256'``), so the
  detection engine and every STIX tool match it as a file hash;

and every signal carries the property extension ``EXTENSION_ID`` with ``hash_type``, ``hash`` and
(PDQ) ``quality``. Content categories are ``labels`` (GIFCT-style, e.g.
``terrorist-content/imminent-credible-threat``). Ids are derived from (producer, type, hash), so
importing the same hash twice updates one object instead of duplicating it.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from kizuna.core.messages import N_, Message
from kizuna.stix.timestamps import format_timestamp, parse_timestamp

EXTENSION_ID: Final = "extension-definition--0b1c5a0e-6f3d-4d8e-9a51-2f6c7d4e8b13"
KIZUNA_IDENTITY_ID: Final = "identity--5b0f0e8e-3d55-4b52-9d8c-7b1f6f0c2a90"
_SIGNAL_NAMESPACE: Final = uuid.UUID("9f8e2f4c-1b7a-4c3e-8d2a-6e5b4a3c2d10")
_SCHEMA_URL: Final = "https://github.com/kizuna-project/kizuna/blob/main/docs/hashes.md"

PDQ: Final = "pdq"
MD5: Final = "md5"
SHA256: Final = "sha256"
VPDQ: Final = "vpdq"  # a video: a list of PDQ frame hashes; its `hash` is the SHA-256 of their text form
HASH_TYPES: Final = (PDQ, MD5, SHA256, VPDQ)
HEX_LENGTH: Final = {PDQ: 64, MD5: 32, SHA256: 64, VPDQ: 64}
_STIX_HASH_NAME: Final = {MD5: "MD5", SHA256: "SHA-256"}

#: PDQ quality below this is too uninformative to match on (PDQ's own advice).
MIN_QUALITY: Final = 50
#: Hamming distance at or below which two PDQ hashes are a confident match (PDQ's advice).
DEFAULT_THRESHOLD: Final = 31
#: vPDQ's defaults: the share of a video's usable frames (and of a banked video's) that must match.
VPDQ_QUERY_PERCENT: Final = 80.0
VPDQ_TARGET_PERCENT: Final = 0.0

#: The content categories GIFCT's hash-sharing database uses; other labels are kept as given.
CONTENT_LABELS: Final = (
    "terrorist-content/imminent-credible-threat",
    "terrorist-content/graphic-violence-against-defenseless-people",
    "terrorist-content/glorification-of-terrorist-acts",
    "terrorist-content/recruitment-and-instruction",
    "terrorist-content/attacker-manifesto",
    "terrorist-content/livestream-of-attack",
    "graphic-violence",
)
_LABEL = re.compile(r"^[a-z0-9][a-z0-9-]*(/[a-z0-9][a-z0-9-]*)*$")
_HEX = re.compile(r"^[0-9a-f]+$")
# A frame line: number, quality and hash; then the timestamp, in seconds (`_SECONDS`), named apart when it is wrong.
_FRAME_LINE = re.compile(r"^\s*(\d+)\s*,\s*(\d{1,3})\s*,\s*([0-9a-fA-F]{64})\s*(?:,(.*))?$")
_SECONDS = re.compile(r"^\s*(\d{1,9}(?:\.\d+)?)\s*$")  # at most 31 years: no float runs to inf


class SignalError(ValueError):
    """A hash or label that cannot become a signal (the message says which and why)."""


class FrameError(SignalError):
    """A bad line of a vPDQ text (``line`` is its number)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line


def check_label(label: str) -> str:
    if not _LABEL.match(label):
        raise SignalError(f"label {label!r} is not a lower-case taxonomy path like 'terrorist-content/…'")
    return label


def normalise_hash(hash_type: str, value: str) -> str:
    """Lower-case hex of the right length for ``hash_type``; SignalError otherwise."""
    text = value.strip().lower()
    expected = HEX_LENGTH[hash_type]
    if not _HEX.match(text):
        raise SignalError(Message(N_("%(hash_type)s hash %(value)r is not hexadecimal"), hash_type=hash_type,
                                  value=value[:80]))
    if len(text) != expected:
        raise SignalError(Message(N_("%(hash_type)s hash has %(count)s hex digits, not %(expected)s"),
                                  hash_type=hash_type, count=len(text), expected=expected))
    return text


@dataclass(frozen=True)
class Frame:
    """One sampled frame of a vPDQ hash."""

    number: int
    quality: int
    hash: str
    timestamp: float


def frames_text(frames: Sequence[Frame]) -> str:
    """vPDQ's text form, one ``frame,quality,hash,timestamp`` line a frame (the canonical form)."""
    return "".join(f"{f.number},{f.quality},{f.hash},{f.timestamp:.3f}\n" for f in frames)


def is_vpdq_text(text: str) -> bool:
    """Whether a text's first line that is not blank or a comment is a vPDQ frame line."""
    first = next((line for line in text.splitlines() if line.strip() and not line.startswith("#")), "")
    return bool(_FRAME_LINE.match(first))


_COMPACT_FEATURE = re.compile(r"^\s*([0-9a-fA-F]{64})\s*,\s*(\d{1,3})\s*,\s*(\d{1,9}(?:\.\d+)?)\s*$")


def compact_frames(items: object) -> tuple[Frame, ...]:
    """The frames of a vPDQ hash in ThreatExchange's signal form: a JSON list (or its text) of
    ``pdq_hex,quality,timestamp`` strings. That form has no frame numbers: frames are numbered in order
    from 0. FrameError names the 1-based position of the first bad item."""
    if isinstance(items, str):
        try:
            items = orjson.loads(items)
        except orjson.JSONDecodeError:
            raise FrameError(1, "a vPDQ signal must be a JSON list of 'pdq_hex,quality,timestamp' strings") from None
    if not isinstance(items, list) or not items:
        raise FrameError(1, "a vPDQ signal must be a non-empty list of 'pdq_hex,quality,timestamp' strings")
    frames: list[Frame] = []
    for position, item in enumerate(items):
        found = _COMPACT_FEATURE.match(item) if isinstance(item, str) else None
        if found is None or int(found[2]) > 100:
            raise FrameError(position + 1, f"vPDQ feature {position + 1} is not 'pdq_hex,quality,timestamp' "
                                           "with a quality from 0 to 100")
        frames.append(Frame(position, int(found[2]), found[1].lower(), float(found[3])))
    return tuple(frames)


def frame_of_line(number: int, raw: str) -> Frame | None:
    """The frame of one line of vPDQ text, None for a blank or ``#`` comment line; FrameError names the line."""
    line = raw.split("#", 1)[0]
    if not line.strip():
        return None
    found = _FRAME_LINE.match(line)
    if found is None:
        raise FrameError(number, "not a vPDQ frame line 'frame,quality,pdq_hex,timestamp'")
    quality = int(found[2])
    if quality > 100:
        raise FrameError(number, f"vPDQ frame quality {quality} is above 100")
    seconds = _SECONDS.match(found[4]) if found[4] is not None else None
    if found[4] is not None and seconds is None:
        raise FrameError(number, f"vPDQ frame timestamp {found[4].strip()[:40]!r} is not seconds from the start "
                                 "(digits, like 12.000)")
    return Frame(int(found[1]), quality, found[3].lower(), float(seconds[1]) if seconds else 0.0)


def parse_frames(text: str) -> tuple[Frame, ...]:
    """The frames of vPDQ text (``#`` comments and blank lines skipped); FrameError at the first bad line."""
    frames = tuple(frame for number, raw in enumerate(text.splitlines(), start=1)
                   if (frame := frame_of_line(number, raw)) is not None)
    if not frames:
        raise FrameError(1, "a vPDQ hash needs at least one frame")
    return frames


def frames_digest(text: str) -> str:
    """The 64-hex-digit name of a vPDQ hash: SHA-256 of its canonical text."""
    return hashlib.sha256(text.encode()).hexdigest()


def extension_definition() -> dict[str, Any]:
    """The extension-definition every signal names (stored once per collection it is imported into)."""
    stamp = "2026-12-01T00:00:00.000Z"
    return {
        "type": "extension-definition", "spec_version": "2.1", "id": EXTENSION_ID,
        "created_by_ref": KIZUNA_IDENTITY_ID, "created": stamp, "modified": stamp,
        "name": "Kizuna hash signal",
        "description": "The hash an indicator shares (PDQ with its quality, MD5, SHA-256), for hash banks.",
        "schema": _SCHEMA_URL, "version": "1.0", "extension_types": ["property-extension"],
    }


def kizuna_identity() -> dict[str, Any]:
    stamp = "2026-12-01T00:00:00.000Z"
    return {"type": "identity", "spec_version": "2.1", "id": KIZUNA_IDENTITY_ID, "created": stamp,
            "modified": stamp, "name": "Kizuna project", "identity_class": "organization"}


@dataclass(frozen=True)
class Signal:
    """What a bank needs of one signal: the hash, what it is about, and where it came from."""

    id: str
    hash_type: str
    hash: str
    quality: int | None
    labels: tuple[str, ...]
    producer: str | None
    revoked: bool = False
    modified: str | None = None  # which version of the signal this is
    frames: str = ""  # vPDQ: the frames' canonical text (`frames_text`)

    @property
    def matchable(self) -> bool:
        """Not revoked, and not a PDQ hash of quality below 50 (too plain a picture: it would match too much),
        wherever the signal came from."""
        too_plain = self.hash_type == PDQ and self.quality is not None and self.quality < MIN_QUALITY
        return not self.revoked and not too_plain


def make_signal(hash_type: str, value: str, *, producer: str | None, labels: list[str], markings: list[str],
                quality: int | None = None, now: datetime | None = None) -> dict[str, Any]:
    """A signal of one hash; for vPDQ, ``value`` is the frames' text (`parse_frames` reads it)."""
    frames = frames_text(parse_frames(value)) if hash_type == VPDQ else ""
    digest = frames_digest(frames) if hash_type == VPDQ else normalise_hash(hash_type, value)
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    name = f"{producer or ''}|{hash_type}|{digest}"
    extension: dict[str, Any] = {"extension_type": "property-extension", "hash_type": hash_type, "hash": digest}
    if hash_type == VPDQ:  # the pattern is the hash in vPDQ's own text form, readable by any vPDQ tool
        pattern_type, pattern = VPDQ, frames
        extension["frame_count"] = frames.count("\n")
    elif hash_type == PDQ:
        pattern_type, pattern = PDQ, digest
        if quality is not None:
            extension["quality"] = quality
    else:
        pattern_type, pattern = "stix", f"[file:hashes.'{_STIX_HASH_NAME[hash_type]}' = '{digest}']"
    signal: dict[str, Any] = {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid5(_SIGNAL_NAMESPACE, name)}",
        "created": stamp, "modified": stamp, "name": f"{hash_type.upper()} {digest[:16]}…",
        "indicator_types": ["malicious-activity"], "pattern_type": pattern_type, "pattern": pattern,
        "valid_from": stamp, "extensions": {EXTENSION_ID: extension},
    }
    if labels:
        signal["labels"] = sorted(set(labels))
    if producer:
        signal["created_by_ref"] = producer
    if markings:
        signal["object_marking_refs"] = markings
    return signal


#: What a version of a signal says beyond when it was made: an import that changes none of it adds no version.
_STAMPS = frozenset({"created", "modified", "valid_from"})


def next_version(held: dict[str, Any] | None, signal: dict[str, Any]) -> dict[str, Any] | None:
    """What importing ``signal`` (from `make_signal`) into a bank adds, given ``held``, the newest version the
    bank stores under its id (None: none): the signal itself when new; else its next version, with the labels of
    both, the TLP given on this import or else the held one, and the held ``created`` (STIX 2.1, 3.2: a new
    version keeps it) and a later ``modified``; or None when that version would say nothing new (an import run
    twice banks each hash once)."""
    if held is None:
        return signal
    version = dict(signal)
    labels = sorted({*held.get("labels", ()), *signal.get("labels", ())})
    if labels:
        version["labels"] = labels
    if "object_marking_refs" not in signal and "object_marking_refs" in held:
        version["object_marking_refs"] = held["object_marking_refs"]
    if {k: v for k, v in version.items() if k not in _STAMPS} == {k: v for k, v in held.items() if k not in _STAMPS}:
        return None
    version["created"] = held["created"]
    version["valid_from"] = held.get("valid_from", signal["valid_from"])
    held_us = parse_timestamp(str(held["modified"]))
    if parse_timestamp(version["modified"]) <= held_us:  # a clock behind the held version's
        version["modified"] = format_timestamp(held_us + 1000)
    return version


def read_signal(obj: dict[str, Any]) -> Signal | None:
    """The signal an object carries, or None when it is not a (well-formed) hash signal."""
    if obj.get("type") != "indicator":
        return None
    extension = (obj.get("extensions") or {}).get(EXTENSION_ID)
    if not isinstance(extension, dict):
        return None
    hash_type, value = extension.get("hash_type"), extension.get("hash")
    if hash_type not in HASH_TYPES or not isinstance(value, str):
        return None
    try:
        digest = normalise_hash(hash_type, value)
    except SignalError:
        return None
    frames = ""
    if hash_type == VPDQ:  # the frames are the pattern, and the hash names exactly them
        try:
            frames = frames_text(parse_frames(str(obj.get("pattern", ""))))
        except SignalError:
            return None
        if frames_digest(frames) != digest:
            return None
    quality = extension.get("quality")
    labels = tuple(label for label in obj.get("labels", ()) if isinstance(label, str))
    return Signal(obj["id"], hash_type, digest, quality if isinstance(quality, int) else None, labels,
                  obj.get("created_by_ref"), bool(obj.get("revoked")), obj.get("modified"), frames)


#: A partner's verdict on a signal, as the STIX opinion it becomes.
VERDICTS: Final = {"true-positive": "strongly-agree", "false-positive": "strongly-disagree", "disputed": "neutral"}


def make_opinion(signal: dict[str, Any], verdict: str, *, author: str | None, comment: str | None = None,
                 now: datetime | None = None) -> dict[str, Any]:
    """A STIX ``opinion`` on a signal, under the signal's own markings so it flows back to its producer
    through the same agreements the signal came by."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    opinion: dict[str, Any] = {
        "type": "opinion", "spec_version": "2.1", "id": f"opinion--{uuid.uuid4()}", "created": stamp,
        "modified": stamp, "opinion": VERDICTS[verdict], "object_refs": [signal["id"]],
        "explanation": f"{verdict}" + (f": {comment}" if comment else ""), "labels": [f"hash-match/{verdict}"],
    }
    if author:
        opinion["created_by_ref"] = author
    if signal.get("object_marking_refs"):
        opinion["object_marking_refs"] = list(signal["object_marking_refs"])
    return opinion

