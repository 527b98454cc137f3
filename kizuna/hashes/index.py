"""Near-match index for PDQ hashes, and the brute-force matcher it is checked against.

`PdqIndex` is a multi-index over numpy arrays (`kizuna.hashes.mih`): exact Hamming range search,
no false negatives, at about 115 bytes a hash. New hashes go first to a small delta that is searched
by brute force, so a hash is matchable as soon as `add` returns; once the delta holds
2048 hashes (or a thousandth of the index) it is merged into the multi-index by inserting into the
buckets (no re-sort). When the index has doubled since its bucket width was chosen it is rebuilt
with a wider one; lookups go on meanwhile (they read the index without the lock, which is immutable).

`BruteForce` is the reference: XOR and popcount over every stored hash with numpy.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Final

import numpy as np

from kizuna.hashes.mih import MultiIndex, probe_plan, probes_per_query, width_for, words_of

BITS: Final = 256
BYTES: Final = BITS // 8



def _delta_limit(count: int) -> int:
    """Hashes the delta may hold before a merge: a merge copies the index, a big delta slows lookups."""
    return max(2048, count // 1000)
_SMALL: Final = 4096  # below this, brute force is as fast as any index


def pack(hex_hashes: Sequence[str]) -> np.ndarray:
    """(n, 32) uint8 rows from 64-hex-digit PDQ hashes."""
    if not hex_hashes:
        return np.zeros((0, BYTES), dtype=np.uint8)
    return np.frombuffer(bytes.fromhex("".join(hex_hashes)), dtype=np.uint8).reshape(len(hex_hashes), BYTES)


def unpack(row: np.ndarray) -> str:
    return bytes(row).hex()


Found = tuple[np.ndarray, np.ndarray, np.ndarray]  # (query, position, distance), one entry a hit
_THREADS: Final = min(2, os.cpu_count() or 1)
_POOL = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="kizuna-pdq")


def _grouped(count: int, found: Found) -> list[list[tuple[int, int]]]:
    """Per query, (position, distance) pairs sorted by distance then position."""
    owners, positions, distances = found
    out: list[list[tuple[int, int]]] = [[] for _ in range(count)]
    order = np.lexsort((positions, distances, owners))
    for q, p, d in zip(owners[order].tolist(), positions[order].tolist(), distances[order].tolist(), strict=True):
        out[q].append((p, d))
    return out


#: Room for this many results a query before a kernel's first run. A near-duplicate is found once per chunk
#: it is close in (up to eleven), and lists of known content match often: a part of 1,250 queries half of
#: which matched overran a fixed 256 and was probed twice, a quarter of a batch's time at 10M hashes.
_ROOM_PER_QUERY = 16


def _filled(kernel: Callable[[np.ndarray, np.ndarray, np.ndarray], int], queries: int) -> Found:
    """Run a kernel into arrays big enough for what it finds (a second run when the guess was short)."""
    room = max(256, _ROOM_PER_QUERY * queries)
    while True:
        out = (np.empty(room, np.int64), np.empty(room, np.int64), np.empty(room, np.int64))
        found = kernel(*out)
        if found <= room:
            return out[0][:found], out[1][:found], out[2][:found]
        room = found


def _split(queries: np.ndarray, search: Callable[[np.ndarray], Found]) -> Found:
    """Search a batch in parts over the threads (the kernels run without the GIL): four parts a thread,
    so that a thread the scheduler holds back leaves its remaining parts to the other."""
    if len(queries) < 64 or _THREADS == 1:
        return search(queries)
    step = max(32, -(-len(queries) // (4 * _THREADS)))
    starts = range(0, len(queries), step)
    parts = list(_POOL.map(lambda start: search(queries[start:start + step]), starts))
    return (np.concatenate([q + start for (q, _, _), start in zip(parts, starts, strict=True)]),
            np.concatenate([p for _, p, _ in parts]), np.concatenate([d for _, _, d in parts]))


def _kernels() -> ModuleType:
    """The compiled loops, imported on the first search rather than with this module: numba and llvmlite
    add about 60 MB to a process (a third of a `kizuna serve` at rest) and 0.2 s to its start, and most
    processes that import the hash routes never search a bank."""
    from kizuna.hashes import kernels

    return kernels


def _scan(rows: np.ndarray, queries: np.ndarray, threshold: int, offset: int = 0) -> Found:
    words = words_of(rows)
    kernels = _kernels()

    def search(part: np.ndarray) -> Found:
        query_words = words_of(part)
        return _filled(lambda q, p, d: kernels.scan(words, query_words, threshold, q, p, d), len(part))

    owners, positions, distances = _split(queries, search)
    return owners, positions + offset, distances


def _probe(main: MultiIndex, rows: np.ndarray, queries: np.ndarray, threshold: int) -> Found:
    words = words_of(rows)
    masks, counts = probe_plan(main.width, threshold)
    kernels = _kernels()

    def search(part: np.ndarray) -> Found:
        query_words = words_of(part)
        return _filled(lambda q, p, d: kernels.probe(main.bounds, main.positions, words, part, query_words,
                                                     main.width, masks, counts, threshold, q, p, d), len(part))

    owners, positions, distances = _split(queries, search)
    # A hash close in several chunks is found once per chunk: keep one of each (query, position).
    pairs, first = np.unique(owners * (1 << 32) + positions, return_index=True)
    return pairs >> 32, pairs & 0xFFFFFFFF, distances[first]


def scan_search(rows: np.ndarray, queries: np.ndarray, threshold: int) -> list[list[tuple[int, int]]]:
    """Exact answers by comparing every query with every row (the compiled scan, on all threads)."""
    queries = np.ascontiguousarray(queries, dtype=np.uint8).reshape(-1, BYTES)
    return _grouped(len(queries), _scan(np.ascontiguousarray(rows, dtype=np.uint8), queries, threshold))


@dataclass(frozen=True)
class _State:
    """What a search reads: replaced whole by an add, so a search needs no lock and never waits."""

    main: MultiIndex | None
    main_rows: np.ndarray  # the multi-index's hashes, positions 0..main.count-1
    delta: np.ndarray  # later hashes, scanned: positions main.count.. (rows past delta_count are unused room)
    delta_count: int

    @property
    def indexed(self) -> int:
        return self.main.count if self.main is not None else 0


def _cat(found: Found, more: Found) -> Found:
    return (np.concatenate([found[0], more[0]]), np.concatenate([found[1], more[1]]),
            np.concatenate([found[2], more[2]]))


class PdqIndex:
    """PDQ hashes -> positions 0..n-1 in the order added; range queries with exact recall."""

    def __init__(self) -> None:
        empty = np.zeros((0, BYTES), dtype=np.uint8)
        self._state = _State(None, empty, np.zeros((1024, BYTES), dtype=np.uint8), 0)
        self._built_at = 0
        self._lock = threading.Lock()  # one add (and its merge or rebuild) at a time

    def __len__(self) -> int:
        state = self._state
        return state.indexed + state.delta_count

    @property
    def indexed(self) -> int:
        """How many of the hashes are in the multi-index (the rest are in the delta, scanned)."""
        return self._state.indexed

    @property
    def width(self) -> int | None:
        """The multi-index's bucket width in bits (None while every hash is scanned)."""
        main = self._state.main
        return main.width if main is not None else None

    def add(self, packed: np.ndarray) -> None:
        rows = np.ascontiguousarray(packed, dtype=np.uint8).reshape(-1, BYTES)
        if not len(rows):
            return
        with self._lock:
            state = self._state
            used = state.delta_count
            if used + len(rows) >= max(_SMALL, _delta_limit(state.indexed)):
                # A bulk load (a bank's first refresh): straight into the multi-index, no stop in the delta.
                self._state = self._indexed(state, np.concatenate([state.delta[:used], rows]) if used else rows)
                return
            delta = state.delta
            if used + len(rows) > len(delta):  # only the delta grows by copying, and it is small
                delta = np.zeros((max(used + len(rows), 2 * len(delta)), BYTES), dtype=np.uint8)
                delta[:used] = state.delta[:used]
            delta[used:used + len(rows)] = rows
            state = _State(state.main, state.main_rows, delta, used + len(rows))
            total = state.indexed + state.delta_count
            if total >= _SMALL and (state.main is None or state.delta_count >= _delta_limit(state.indexed)):
                state = self._indexed(state, delta[:state.delta_count])
            self._state = state

    def _indexed(self, state: _State, rows: np.ndarray) -> _State:
        """``rows`` (the delta and what comes with it) merged into the multi-index, or a rebuild when the
        index has doubled since its bucket width was chosen and a wider one now fits."""
        every = np.concatenate([state.main_rows, rows])  # the index's own copy, whatever the caller does
        fresh = np.zeros((1024, BYTES), dtype=np.uint8)
        if state.main is None or len(every) >= 2 * self._built_at and width_for(len(every)) != state.main.width:
            self._built_at = len(every)
            return _State(MultiIndex(every), every, fresh, 0)
        return _State(state.main.merged(rows, state.indexed), every, fresh, 0)

    def search(self, queries: np.ndarray, threshold: int) -> list[list[tuple[int, int]]]:
        """For each query row, (position, distance) of every stored hash within ``threshold`` bits."""
        queries = np.ascontiguousarray(queries, dtype=np.uint8).reshape(-1, BYTES)
        if not len(queries):
            return []
        state = self._state
        main, delta = state.main, state.delta[:state.delta_count]
        if main is None or probes_per_query(main.width, threshold) > main.count:
            # Too few hashes, or a threshold so high that probing would cost more than a scan.
            found = _scan(state.main_rows, queries, threshold)
        else:
            found = _probe(main, state.main_rows, queries, threshold)
        if len(delta):
            found = _cat(found, _scan(delta, queries, threshold, state.indexed))
        return _grouped(len(queries), found)


class BruteForce:
    """Every stored hash compared with every query: slow, obviously right, the recall reference."""

    def __init__(self) -> None:
        self._words = np.zeros((0, BITS // 64), dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._words)

    def add(self, packed: np.ndarray) -> None:
        self._words = np.concatenate([self._words, words_of(packed)])

    def distances(self, query: np.ndarray) -> np.ndarray:
        word = words_of(query).reshape(1, BITS // 64)
        return np.bitwise_count(self._words ^ word).sum(axis=1, dtype=np.int64)

    def search(self, queries: np.ndarray, threshold: int) -> list[list[tuple[int, int]]]:
        out = []
        for query in queries:
            distances = self.distances(query)
            hits = np.flatnonzero(distances <= threshold)
            out.append(sorted(((int(p), int(distances[p])) for p in hits), key=lambda pd: (pd[1], pd[0])))
        return out
