"""Banks: one near-match index and one exact-hash map per collection, kept current incrementally.

A bank is read through the node's one read path (`Node.read` with the caller's `Viewer`), so a
signal the caller may not see is never indexed for them, and a collection they may not read is
never a bank of theirs. Each (principal, collection) pair has its own bank; a refresh reads only
what was added since the last one (``added_after``), so a new signal is matchable at the next
request without a rebuild. When the sharing policy changes the bank is rebuilt, since what the
principal may see can have changed in either direction.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from kizuna.core.filters import Endpoint, Filters
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.hashes.index import PdqIndex, pack
from kizuna.hashes.signals import PDQ, Signal, read_signal
from kizuna.store.base import Collection

_PAGE = 1000
_CACHE_SIZE = 64


@dataclass(frozen=True)
class Match:
    hash: str
    distance: int
    signal: Signal
    bank: Collection

    def as_json(self) -> dict[str, Any]:
        return {"hash": self.hash, "hash_type": self.signal.hash_type, "distance": self.distance,
                "signal": self.signal.id, "bank": self.bank.alias or self.bank.title, "bank_id": self.bank.id,
                "labels": list(self.signal.labels), "producer": self.signal.producer}


@dataclass
class Bank:
    """The signals of one collection as one principal sees them."""

    collection: Collection
    generation: int
    index: PdqIndex = field(default_factory=PdqIndex)
    owners: list[str] = field(default_factory=list)  # faiss position -> signal id
    exact: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    signals: dict[str, Signal] = field(default_factory=dict)  # id -> newest version seen
    added_after: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, objects: Iterable[dict[str, Any]]) -> None:
        """Index new signals; a newer version replaces what the older one said (labels, revocation)."""
        fresh: list[str] = []
        for obj in objects:
            signal = read_signal(obj)
            if signal is None:
                continue
            known = self.signals.get(signal.id)
            self.signals[signal.id] = signal
            if known is not None and known.hash == signal.hash:
                continue  # the hash is indexed already; lookups read the newest metadata
            if signal.hash_type == PDQ:
                fresh.append(signal.hash)
                self.owners.append(signal.id)
            else:
                self.exact.setdefault((signal.hash_type, signal.hash), set()).add(signal.id)
        self.index.add(pack(fresh))

    def lookup(self, hash_type: str, digest: str, threshold: int) -> list[Match]:
        if hash_type == PDQ:
            found = self.index.search(pack([digest]), threshold)[0]
            candidates = [(self.owners[position], distance) for position, distance in found]
        else:
            candidates = [(sid, 0) for sid in sorted(self.exact.get((hash_type, digest), ()))]
        out = []
        for signal_id, distance in candidates:
            signal = self.signals[signal_id]
            # A signal's hash can change in a later version: the index may still hold the old one,
            # so only the current hash of a signal that is not revoked matches.
            current = signal.hash_type == hash_type and (
                _distance(signal.hash, digest) == distance if hash_type == PDQ else signal.hash == digest)
            if current and not signal.revoked:
                out.append(Match(signal.hash, distance, signal, self.collection))
        return out


def _distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


class Banks:
    """The banks of every principal that asked recently (least recently used dropped first)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._banks: OrderedDict[tuple[str, int], Bank] = OrderedDict()
        self._lock = threading.Lock()

    def visible(self, principal: Principal, api_root: str, refs: list[str]) -> list[Collection]:
        """The collections to match against: the named ones (404 if unseen, 403 if unreadable) or all readable."""
        if refs:
            return [self.node.readable(principal, api_root, ref).collection for ref in refs]
        return [c for c in self.node.collections_for(principal, api_root) if principal.can_read(c)]

    def bank(self, principal: Principal, collection: Collection) -> Bank:
        generation = self.node.store.policy_generation()
        key = (principal.key, collection.pk)
        with self._lock:
            bank = self._banks.get(key)
            if bank is None or bank.generation != generation:
                bank = self._banks[key] = Bank(collection, generation)
            self._banks.move_to_end(key)
            while len(self._banks) > _CACHE_SIZE:
                self._banks.popitem(last=False)
        with bank.lock:
            self._refresh(principal, bank)
        return bank

    def _refresh(self, principal: Principal, bank: Bank) -> None:
        viewer = self.node.viewer_for(principal, bank.collection)
        cursor: str | None = None
        newest = bank.added_after
        while True:
            # The TAXII cursor pages within one refresh (many objects can share one date_added);
            # the newest date_added seen is where the next refresh starts.
            filters = Filters(types=("indicator",), added_after=bank.added_after, limit=_PAGE, next=cursor)
            page = self.node.read(viewer, Endpoint.OBJECTS, filters)
            bank.take(orjson.loads(body) for _row, body in page.items)
            if page.last_added is not None:
                newest = page.last_added
            if not page.more or page.next is None:
                bank.added_after = newest
                return
            cursor = page.next

    def match(self, principal: Principal, collections: list[Collection], hash_type: str, digest: str,
              threshold: int) -> list[Match]:
        found: list[Match] = []
        for collection in collections:
            found.extend(self.bank(principal, collection).lookup(hash_type, digest, threshold))
        return sorted(found, key=lambda m: (m.distance, m.bank.id, m.signal.id))
