"""Near-match index for PDQ hashes, and the brute-force matcher it is checked against.

`PdqIndex` wraps faiss's ``IndexBinaryMultiHash``: the 256 bits are cut into 16 chunks of 16 bits,
each chunk a hash table. Two hashes at Hamming distance d differ in at most d // 16 bits of some
chunk (pigeonhole), so probing every chunk with up to ``threshold // 16`` flipped bits finds every
hash within ``threshold``: recall is exact, not approximate (unlike HNSW, see bench/bench_hashes.py).
Adding hashes is incremental: a hash is matchable as soon as `add` returns, no rebuild.

`BruteForce` is the reference: XOR and popcount over every stored hash with numpy.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Final

import faiss
import numpy as np

BITS: Final = 256
BYTES: Final = BITS // 8
_CHUNKS: Final = 16
_CHUNK_BITS: Final = BITS // _CHUNKS


def pack(hex_hashes: Sequence[str]) -> np.ndarray:
    """(n, 32) uint8 rows from 64-hex-digit PDQ hashes."""
    if not hex_hashes:
        return np.zeros((0, BYTES), dtype=np.uint8)
    return np.frombuffer(bytes.fromhex("".join(hex_hashes)), dtype=np.uint8).reshape(len(hex_hashes), BYTES)


def unpack(row: np.ndarray) -> str:
    return bytes(row).hex()


class PdqIndex:
    """PDQ hashes -> positions 0..n-1 in the order added; range queries with exact recall."""

    def __init__(self) -> None:
        self._index = faiss.IndexBinaryMultiHash(BITS, _CHUNKS, _CHUNK_BITS)
        self._lock = threading.Lock()  # nflip is index state; a query sets it for its threshold

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, packed: np.ndarray) -> None:
        if len(packed):
            with self._lock:
                self._index.add(np.ascontiguousarray(packed, dtype=np.uint8))

    def search(self, queries: np.ndarray, threshold: int) -> list[list[tuple[int, int]]]:
        """For each query row, (position, distance) of every stored hash within ``threshold`` bits."""
        if not len(queries):
            return []
        if len(self) == 0:
            return [[] for _ in range(len(queries))]
        with self._lock:
            self._index.nflip = threshold // _CHUNK_BITS
            # faiss keeps results strictly below the radius.
            lims, distances, positions = self._index.range_search(
                np.ascontiguousarray(queries, dtype=np.uint8), threshold + 1)
        distances = distances.astype(np.int64)  # faiss reports binary distances as floats
        return [sorted(zip(positions[lims[i]:lims[i + 1]].tolist(), distances[lims[i]:lims[i + 1]].tolist(),
                           strict=True), key=lambda pd: (pd[1], pd[0]))
                for i in range(len(queries))]


class BruteForce:
    """Every stored hash compared with every query: slow, obviously right, the recall reference."""

    def __init__(self) -> None:
        self._words = np.zeros((0, BITS // 64), dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._words)

    def add(self, packed: np.ndarray) -> None:
        words = np.ascontiguousarray(packed, dtype=np.uint8).view(np.uint64).reshape(-1, BITS // 64)
        self._words = np.concatenate([self._words, words])

    def distances(self, query: np.ndarray) -> np.ndarray:
        word = np.ascontiguousarray(query, dtype=np.uint8).view(np.uint64).reshape(1, BITS // 64)
        return np.bitwise_count(self._words ^ word).sum(axis=1, dtype=np.int64)

    def search(self, queries: np.ndarray, threshold: int) -> list[list[tuple[int, int]]]:
        out = []
        for query in queries:
            distances = self.distances(query)
            hits = np.flatnonzero(distances <= threshold)
            out.append(sorted(((int(p), int(distances[p])) for p in hits), key=lambda pd: (pd[1], pd[0])))
        return out
