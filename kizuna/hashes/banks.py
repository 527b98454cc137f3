"""Banks: one shared near-match index and one exact-hash map per collection, kept current incrementally.

A bank's index holds every hash any version of any signal of the collection has carried, whoever may
see it: it only proposes *candidates*. Before anything leaves, the candidates are read through the
node's one read path (`Node.read` with the caller's `Viewer`, TAXII's ``match[version]=last``), so what
a caller gets is the newest version of each signal that it may see, or nothing: a hidden or deleted
signal is absent, exactly like a hash nobody holds, and is not counted anywhere in the answer. A match
is then confirmed on that version (its own hash within the threshold, not revoked), so a revocation or
a deletion stops matching at once, with no index change. A newer version the caller may not see is
absent to it (docs/policy.md, "Each principal sees its own history"): the caller matches the version
TAXII and the indicator feeds serve it, and the answer does not tell that a newer one exists. One
index per bank, not one per caller: memory does not grow with the number of partners who match.

A refresh reads only what was added since the last one (``added_after``), so a new signal is
matchable at the next request without a rebuild.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from kizuna.core.filters import Endpoint, Filters
from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN, Principal
from kizuna.core.visibility import Viewer
from kizuna.hashes import video
from kizuna.hashes.index import PdqIndex, pack
from kizuna.hashes.signals import PDQ, VPDQ, Frame, Signal, read_signal
from kizuna.hashes.video import DEFAULT_RULE, Comparison, VideoRule
from kizuna.store.base import Collection, VersionSelector

_PAGE = 1000
_PREFIX = "indicator--"  # every signal is an indicator; the index keeps only the UUID's 16 bytes


@dataclass(frozen=True)
class Match:
    hash: str
    distance: int
    signal: Signal
    bank: Collection
    video: Comparison | None = None  # vPDQ: how much of each video matched
    frame: Frame | None = None  # across types: the video frame that matched an image
    frame_of: str | None = None  # whose frame: "signal" (an image in a banked video) or "query"

    def as_json(self) -> dict[str, Any]:
        out = {"hash": self.hash, "hash_type": self.signal.hash_type, "distance": self.distance,
               "signal": self.signal.id, "bank": self.bank.alias or self.bank.title, "bank_id": self.bank.id,
               "labels": list(self.signal.labels), "producer": self.signal.producer}
        if self.video is not None:
            out.update(query_match_percent=self.video.query_percent, target_match_percent=self.video.target_percent)
        if self.frame is not None:
            out["frame"] = {"of": self.frame_of, "number": self.frame.number, "timestamp": self.frame.timestamp,
                            "hash": self.frame.hash}
        return out


@dataclass
class _Near:
    """A near-match index of PDQ hashes and, per position, the UUID of the signal that carried it."""

    index: PdqIndex = field(default_factory=PdqIndex)
    owners: np.ndarray = field(default_factory=lambda: np.zeros((0, 16), dtype=np.uint8))  # position -> UUID

    def add_rows(self, hashes: np.ndarray, owners: np.ndarray) -> None:
        """Index rows not indexed yet: a new version that keeps its signal's hash (new labels, a
        revocation) adds nothing, since matches are confirmed on the version a caller sees."""
        if not len(hashes):
            return
        both = np.unique(np.concatenate([hashes, owners], axis=1).view(np.dtype((np.void, 48))).reshape(-1))
        rows = both.view(np.uint8).reshape(-1, 48)
        if len(self.index):
            known = self.owners
            hits = self.index.search(rows[:, :32], 0)
            fresh = [i for i, found in enumerate(hits) if not any((known[p] == rows[i, 32:]).all() for p, _ in found)]
            rows = rows[fresh]
        if len(rows):
            self.owners = np.concatenate([self.owners, rows[:, 32:]])
            self.index.add(rows[:, :32])

    def candidates(self, queries: np.ndarray, threshold: int) -> list[set[str]]:
        """Per query row, the ids of the signals that carried a hash within ``threshold``."""
        if not len(self.index) or not len(queries):
            return [set() for _ in range(len(queries))]
        found = self.index.search(queries, threshold)
        owners = self.owners  # read after the search: a refresh extends the owners before the index
        return [{_PREFIX + str(uuid.UUID(bytes=owners[p].tobytes())) for p, _ in hits} for hits in found]


Rows = tuple[np.ndarray, np.ndarray]


def _rows(hashes: list[str], owners: list[bytes]) -> Rows:
    return pack(hashes), np.frombuffer(b"".join(owners), dtype=np.uint8).reshape(-1, 16)


@dataclass
class Bank:
    """Every hash the signals of one collection have carried, and which signal carried it: PDQ hashes
    in one near-match index, the usable frames of vPDQ hashes in another, exact hashes in a map."""

    collection: Collection
    pdq: _Near = field(default_factory=_Near)
    frames: _Near = field(default_factory=_Near)
    exact: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    added_after: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, objects: Iterable[dict[str, Any]]) -> None:
        """Index the hashes of new signal versions (one `add` for the whole batch: merges go by batch)."""
        self.add_rows(*self.rows_of(objects))

    def rows_of(self, objects: Iterable[dict[str, Any]]) -> tuple[Rows, Rows]:
        """The (PDQ hash, signal UUID) rows and the (vPDQ frame hash, signal UUID) rows of some signal
        versions, 32 + 16 bytes each; exact hashes go straight into the map. Packed per page, so a 10M
        first load never holds 10M parsed objects."""
        hashes: list[str] = []
        owners: list[bytes] = []
        frames: list[str] = []
        frame_owners: list[bytes] = []
        for obj in objects:
            signal = read_signal(obj)
            if signal is None or not signal.id.startswith(_PREFIX):
                continue
            owner = uuid.UUID(signal.id[len(_PREFIX):]).bytes
            if signal.hash_type == VPDQ:
                usable = video.usable(signal.frames)
                frames.extend(bytes(row).hex() for row in usable)
                frame_owners.extend([owner] * len(usable))
            elif signal.hash_type != PDQ:
                self.exact.setdefault((signal.hash_type, signal.hash), set()).add(signal.id)
            else:
                hashes.append(signal.hash)
                owners.append(owner)
        return _rows(hashes, owners), _rows(frames, frame_owners)

    def add_rows(self, pdq: Rows, frames: Rows) -> None:
        self.pdq.add_rows(*pdq)
        self.frames.add_rows(*frames)

    def candidates(self, lookups: Sequence[tuple[str, str]], threshold: int, across: bool = False) -> list[set[str]]:
        """Per lookup, the ids of signals that carried a hash within ``threshold`` (or equal, for exact);
        for a vPDQ lookup, the vPDQ signals any of whose usable frames is within it of one of the query's.
        ``across``: also the vPDQ signals with a frame near a PDQ lookup, and the PDQ signals near a frame
        of a vPDQ lookup."""
        out: list[set[str]] = [set() for _ in lookups]
        pdq = [i for i, (hash_type, _) in enumerate(lookups) if hash_type == PDQ]
        images = pack([lookups[i][1] for i in pdq])
        for i, ids in zip(pdq, self.pdq.candidates(images, threshold), strict=True):
            out[i].update(ids)
        if across:
            for i, ids in zip(pdq, self.frames.candidates(images, threshold), strict=True):
                out[i].update(ids)
        for i, (hash_type, value) in enumerate(lookups):
            if hash_type == VPDQ:
                frames = video.usable(value)
                out[i].update(*self.frames.candidates(frames, threshold))
                if across:
                    out[i].update(*self.pdq.candidates(frames, threshold))
            elif hash_type != PDQ:
                out[i].update(self.exact.get((hash_type, value), ()))
        return out


def _distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def confirmed(signal: Signal, hash_type: str, digest: str, threshold: int,
              rule: VideoRule = DEFAULT_RULE) -> tuple[int, Comparison | None] | None:
    """The distance at which the version a caller sees matches (for vPDQ, with how much of each video
    matched), or None (another hash now, too little of the video, too plain a picture, or revoked)."""
    if not signal.matchable or signal.hash_type != hash_type:
        return None
    if hash_type == VPDQ:
        comparison = video.compare(video.usable(digest), video.usable(signal.frames), threshold)
        return (comparison.distance, comparison) if comparison.matches(rule) else None
    if hash_type != PDQ:
        return (0, None) if signal.hash == digest else None
    distance = _distance(signal.hash, digest)
    return (distance, None) if distance <= threshold else None


def confirmed_across(signal: Signal, hash_type: str, digest: str, threshold: int) -> tuple[int, Frame, str] | None:
    """An image against a video signal's frames, or a video's frames against an image signal, on the
    version a caller sees: the distance, the nearest frame and whose frame it is; None if none is near."""
    if not signal.matchable:
        return None
    if hash_type == PDQ and signal.hash_type == VPDQ:
        found, of = video.nearest_frame(digest, signal.frames), "signal"
    elif hash_type == VPDQ and signal.hash_type == PDQ:
        found, of = video.nearest_frame(signal.hash, digest), "query"
    else:
        return None
    return (found[0], found[1], of) if found is not None and found[0] <= threshold else None


def _joined(parts: list[Rows]) -> Rows:
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class Banks:
    """One bank per collection, shared by every caller."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._banks: dict[int, Bank] = {}
        self._lock = threading.Lock()

    def visible(self, principal: Principal, api_root: str, refs: list[str]) -> list[Collection]:
        """The collections to match against: the named ones (404 if unseen, 403 if unreadable) or all readable."""
        if refs:
            return [self.node.readable(principal, api_root, ref).collection for ref in refs]
        return [c for c in self.node.collections_for(principal, api_root) if principal.can_read(c)]

    def bank(self, collection: Collection) -> Bank:
        with self._lock:
            bank = self._banks.setdefault(collection.pk, Bank(collection))
        with bank.lock:
            self._refresh(bank)
        return bank

    def _refresh(self, bank: Bank) -> None:
        # The index sees every version (the operator's view): visibility is decided per caller on the
        # candidates. Read through the query layer, not `Node.read`: indexing is not egress, nothing leaves.
        everything = Viewer(NODE_ADMIN, bank.collection)
        cursor: str | None = None
        newest = bank.added_after
        pdq: list[Rows] = []
        frames: list[Rows] = []
        while True:
            filters = Filters(types=("indicator",), versions=VersionSelector(all=True), added_after=bank.added_after,
                              limit=_PAGE, next=cursor)
            page = self.node.reader.page(everything, Endpoint.OBJECTS, filters)
            rows = bank.rows_of(orjson.loads(body) for _row, body in page.items)
            pdq.append(rows[0])
            frames.append(rows[1])
            if page.last_added is not None:
                newest = page.last_added
            if not page.more or page.next is None:
                break
            cursor = page.next
        bank.add_rows(_joined(pdq), _joined(frames))
        bank.added_after = newest

    def _seen_by(self, principal: Principal, collection: Collection, ids: set[str]) -> dict[str, Signal]:
        """The newest version of each signal that ``principal`` may see (the one visibility check, and the
        query layer's choice of the latest version for this viewer, as TAXII serves it), by id."""
        return self._signals(self.node.viewer_for(principal, collection), ids, egress=True)

    def newest_objects(self, collection: Collection, ids: set[str]) -> dict[str, dict[str, Any]]:
        """The newest stored version of each of these signal ids in a bank, as the operator holds it (what an
        import versions anew, `signals.next_version`). Nothing of it leaves the node."""
        return self._objects(Viewer(NODE_ADMIN, collection), ids, egress=False)

    def _signals(self, viewer: Viewer, ids: set[str], *, egress: bool) -> dict[str, Signal]:
        found = ((object_id, read_signal(obj)) for object_id, obj in self._objects(viewer, ids, egress=egress).items())
        return {object_id: signal for object_id, signal in found if signal is not None}

    def _objects(self, viewer: Viewer, ids: set[str], *, egress: bool) -> dict[str, dict[str, Any]]:
        wanted = sorted(ids)
        seen: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), _PAGE):
            cursor: str | None = None
            while True:
                filters = Filters(ids=tuple(wanted[start:start + _PAGE]), types=("indicator",), limit=_PAGE,
                                  next=cursor)
                page = (self.node.read if egress else self.node.reader.page)(viewer, Endpoint.OBJECTS, filters)
                for row, body in page.items:
                    seen[row.stix_id] = orjson.loads(body)
                if not page.more or page.next is None:
                    break
                cursor = page.next
        return seen

    def match_many(self, principal: Principal, collections: list[Collection], lookups: Sequence[tuple[str, str]],
                   threshold: int, rule: VideoRule = DEFAULT_RULE) -> list[list[Match]]:
        """Per (hash type, hash) lookup, every signal the principal may see that matches it (a vPDQ
        lookup's hash is the video's frames, `signals.frames_text`)."""
        found: list[list[Match]] = [[] for _ in lookups]
        for collection in collections:
            proposed = self.bank(collection).candidates(lookups, threshold, rule.across)
            everyone = set().union(*proposed) if proposed else set()
            if not everyone:
                continue
            # The caller's own newest version of each signal: a newer version it may not see is absent to it,
            # so it neither stops the match nor shows (docs/policy.md, "Each principal sees its own history").
            seen = self._seen_by(principal, collection, everyone)
            for i, ids in enumerate(proposed):
                hash_type, digest = lookups[i]
                for signal_id in ids:
                    signal = seen.get(signal_id)
                    if signal is None:
                        continue
                    result = confirmed(signal, hash_type, digest, threshold, rule)
                    if result is not None:
                        found[i].append(Match(signal.hash, result[0], signal, collection, result[1]))
                    elif rule.across and (near := confirmed_across(signal, hash_type, digest, threshold)):
                        found[i].append(Match(signal.hash, near[0], signal, collection, frame=near[1],
                                              frame_of=near[2]))
        return [sorted(matches, key=lambda m: (m.distance, m.bank.id, m.signal.id)) for matches in found]
