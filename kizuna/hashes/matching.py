"""From inputs (media files, image bytes, hash lists) to match results and sightings.

Shared by `kizuna hashes match` and POST /{api_root}/hashes/match: each input gives one result,
``{"input", "hash", "matches": [{"hash", "distance", "signal", "bank", "labels", …}]}``, or
``{"input", "error"}`` when it cannot be used (the other inputs are still matched). Every matched
signal is counted into a sighting of it (`kizuna.detect.sightings`), which federation carries back
to the producer like any other sighting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from kizuna.core.messages import N_, Message, message_of
from kizuna.core.principal import Principal
from kizuna.detect.sightings import SightingAggregator
from kizuna.hashes.banks import Banks, Match
from kizuna.hashes.hashing import HashingError, MediaHashes, hash_bytes, media_files
from kizuna.hashes.hashlists import Entry, Rejected, looks_like_hash_list, read_hash_line, read_hash_list
from kizuna.hashes.signals import (
    MD5,
    MIN_QUALITY,
    PDQ,
    SHA256,
    VPDQ,
    FrameError,
    compact_frames,
    frames_digest,
    frames_text,
    parse_frames,
)
from kizuna.hashes.video import DEFAULT_RULE, VideoRule
from kizuna.store.base import Collection
from kizuna.store.sighting_inputs import SightingShare


@dataclass(frozen=True)
class Query:
    """One thing to look up: a hash from a list, or the hashes of one media file."""

    input: str
    hash_type: str = PDQ
    hash: str = ""
    media: MediaHashes | None = None
    error: str | None = None


def media_query(label: str, data: bytes, path: Path | None = None) -> Query:
    try:
        return Query(label, media=hash_bytes(data, path))
    except HashingError as exc:
        return Query(label, error=message_of(exc))


def video_query(label: str, value: object) -> Query:
    """A video's vPDQ given as data: its text (``frame,quality,pdq_hex,timestamp`` lines) or
    ThreatExchange's signal form (a list of ``pdq_hex,quality,timestamp`` strings)."""
    try:
        if isinstance(value, str) and not value.lstrip().startswith("["):  # not JSON: vPDQ text, read line by line
            return Query(label, VPDQ, frames_text(parse_frames(value)))
        return Query(label, VPDQ, frames_text(compact_frames(value)))
    except FrameError as exc:
        return Query(f"{label}:{exc.line}", error=str(exc))


def hash_query(label: str, value: object, kind: str = "auto") -> Query:
    """One hash given as data (an item of a JSON list), read as a line of a hash list: anything else, or
    nothing, is an error of this input alone."""
    if not isinstance(value, str):
        return Query(label, error=f"a hash must be a string, not {orjson.dumps(value).decode()[:40]}")
    item = read_hash_line(1, value.replace("\n", " "), kind)
    return _query_of(label, item) if item is not None else Query(label, error="no hash: the item is empty")


def _query_of(where: str, item: Entry | Rejected) -> Query:
    return Query(where, error=item.reason) if isinstance(item, Rejected) else Query(where, item.hash_type, item.hash)


def queries_from_text(label: str, text: str, kind: str = "auto") -> Iterator[Query]:
    """The queries of a hash list (plain, CSV or vPDQ), named ``label:LINE``."""
    for item in read_hash_list(text, kind):
        yield _query_of(f"{label}:{item.line}", item)


def queries_from_lines(label: str, text: str, name: Callable[[int], str] | None = None) -> Iterator[Query]:
    """Pasted lines, each a hash of its own (blank and ``#`` comment lines skipped), named ``label:LINE``
    (or ``name(LINE)``)."""
    for number, raw in enumerate(text.splitlines(), start=1):
        item = read_hash_line(number, raw)
        if item is not None:
            yield _query_of(name(number) if name else f"{label}:{number}", item)


def queries_from_path(path: Path, kind: str = "auto") -> Iterator[Query]:
    """A hash list is read line by line; any other file is media, hashed."""
    for file in media_files(path):
        try:
            data = file.read_bytes()
        except OSError as exc:
            yield Query(str(file), error=exc.strerror or str(exc))
            continue
        if looks_like_hash_list(data[:4096], file.name):
            yield from queries_from_text(str(file), data.decode("utf-8", errors="replace"), kind)
        else:
            yield media_query(str(file), data, file)


def _lookups(query: Query) -> list[tuple[str, str]]:
    if query.media is None:
        return [(query.hash_type, query.hash)]
    media = query.media
    found = [(MD5, media.md5), (SHA256, media.sha256)]
    if media.pdq_usable and media.pdq is not None:
        found.insert(0, (PDQ, media.pdq))
    if media.vpdq is not None:
        found.insert(0, (VPDQ, media.vpdq))
    return found


def result_of(query: Query, matches: list[Match]) -> dict[str, Any]:
    if query.error is not None:
        return {"input": query.input, "error": query.error}
    media = query.media
    head: dict[str, Any] = {"input": query.input}
    if media is None:
        head["hash"] = frames_digest(query.hash) if query.hash_type == VPDQ else query.hash
        if query.hash_type == VPDQ:
            head["frames"] = query.hash.count("\n")
    elif media.is_video:
        head["hash"] = frames_digest(media.vpdq) if media.vpdq is not None else media.sha256
        head.update(md5=media.md5, sha256=media.sha256, frames=media.vpdq.count("\n") if media.vpdq else None)
        if media.vpdq is None:
            head["note"] = Message(N_("vPDQ needs the optional vpdq package (kizuna[video]): matched by exact "
                                      "hashes only"))
    else:
        head["hash"] = media.pdq or media.sha256
        head.update(md5=media.md5, sha256=media.sha256, quality=media.quality)
        if media.pdq is None:
            head["note"] = Message(N_("not an image or a video: matched by its MD5 and SHA-256 only"))
        elif not media.pdq_usable:
            head["note"] = Message(N_("PDQ quality %(quality)s is below %(least)s: matched by exact hashes only"),
                                   quality=media.quality, least=MIN_QUALITY)
    return {**head, "matches": [m.as_json() for m in matches]}


_BATCH = 256  # inputs looked up together; results still come out in input order


class MatchRun:
    """Match queries against the given banks as one principal; count sightings of what matched."""

    def __init__(self, banks: Banks, principal: Principal, collections: list[Collection], threshold: int,
                 identity: str, rule: VideoRule = DEFAULT_RULE) -> None:
        self.banks, self.principal, self.collections, self.threshold = banks, principal, collections, threshold
        self.rule = rule
        self.aggregator = SightingAggregator(identity)
        self.inputs = self.matched = self.errors = 0

    def results(self, queries: Iterable[Query]) -> Iterator[dict[str, Any]]:
        batch: list[Query] = []
        for query in queries:
            batch.append(query)
            if len(batch) == _BATCH:
                yield from self._matched(batch)
                batch = []
        if batch:
            yield from self._matched(batch)

    def _matched(self, batch: list[Query]) -> Iterator[dict[str, Any]]:
        """One index search per bank for the whole batch (lookups are much cheaper together)."""
        lookups: list[tuple[str, str]] = []
        asked_by: list[int] = []
        for number, query in enumerate(batch):
            if query.error is None:
                for lookup in _lookups(query):
                    lookups.append(lookup)
                    asked_by.append(number)
        found = (self.banks.match_many(self.principal, self.collections, lookups, self.threshold, self.rule)
                 if lookups else [])
        per_query: list[list[Match]] = [[] for _ in batch]
        for number, matches in zip(asked_by, found, strict=True):
            known = {m.signal.id for m in per_query[number]}
            per_query[number].extend(m for m in matches if m.signal.id not in known)
        for query, matches in zip(batch, per_query, strict=True):
            self.inputs += 1
            if query.error is not None:
                self.errors += 1
            if matches:
                self.matched += 1
                now = time.time()
                # The content's hash names its share: the same picture matched again counts once (sighting_shares).
                self.aggregator.begin_input(f"media:{query.media.sha256}" if query.media is not None
                                            else f"hash:{query.hash_type}:{query.hash}")
                for match in matches:
                    self.aggregator.record(match.signal.id, now)
            yield result_of(query, matches)

    def sightings(self) -> list[dict[str, Any]]:
        return self.aggregator.sightings()

    def shares(self) -> list[SightingShare]:
        return self.aggregator.shares()
