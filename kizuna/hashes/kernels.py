"""The two hot loops of PDQ matching, compiled with numba: probing the multi-index, and scanning.

Both write (query, position, distance) triples into caller-given arrays and return how many they
found; when that is more than the arrays hold, the caller retries with arrays of that size. They
release the GIL, so a batch is split over threads. Written as plain loops because the numpy form of
the probe (gathers of offsets, bucket ranges and candidate hashes as whole arrays) spends most of
its time building temporaries: measured 4k lookups/s against well over 10k here (docs/decisions.md).
"""

from __future__ import annotations

import numba
import numpy as np

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@numba.njit(inline="always", cache=True)
def _popcount(x: np.uint64) -> int:  # LLVM turns this idiom into the popcnt instruction
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return int((x * _H01) >> np.uint64(56))


@numba.njit(inline="always", cache=True)
def _distance(words: np.ndarray, p: int, q: np.ndarray) -> int:
    return (_popcount(words[p, 0] ^ q[0]) + _popcount(words[p, 1] ^ q[1])
            + _popcount(words[p, 2] ^ q[2]) + _popcount(words[p, 3] ^ q[3]))


@numba.njit(inline="always", cache=True)
def _chunk_key(query: np.ndarray, chunk: int, width: int) -> int:
    """Bucket number of one chunk of a query: as `mih.chunk_values`, after the earlier chunks' buckets."""
    first, shift = (chunk * width) // 8, (chunk * width) % 8
    word = 0
    for k in range(4):
        if first + k < 32:
            word |= int(query[first + k]) << (24 - 8 * k)
    return (chunk << width) + ((word >> (32 - shift - width)) & ((1 << width) - 1))


@numba.njit(nogil=True, cache=True)
def probe(offsets: np.ndarray, positions: np.ndarray, words: np.ndarray, queries: np.ndarray,
          query_words: np.ndarray, chunks: int, width: int, masks: np.ndarray, threshold: int,
          out_query: np.ndarray, out_position: np.ndarray, out_distance: np.ndarray) -> int:
    """Every hash in a bucket within the masks' flips of a query's chunk, kept if within ``threshold``.

    A hash sharing several chunks with a query is reported once per chunk; the caller dedupes.
    Per query in three passes, so that the memory reads of a pass do not wait on each other: bucket
    bounds, then the positions in those buckets, then the candidates' hashes. (One nested loop was
    slower: its inner loop's length is a fresh cache miss, and each mispredicted exit stalls the reads.)
    """
    found = 0
    room = len(out_query)
    probes = chunks * len(masks)
    starts = np.empty(probes, dtype=np.int64)
    ends = np.empty(probes, dtype=np.int64)
    candidates = np.empty(4 * probes + 64, dtype=np.int64)
    for i in range(queries.shape[0]):
        q = query_words[i]
        k = 0
        total = 0
        for c in range(chunks):
            base = _chunk_key(queries[i], c, width)
            for m in range(len(masks)):
                key = base ^ masks[m]
                starts[k] = offsets[key]
                ends[k] = offsets[key + 1]
                k += 1
        for k in range(probes):
            total += ends[k] - starts[k]
        if total > len(candidates):
            candidates = np.empty(2 * total, dtype=np.int64)
        n = 0
        for k in range(probes):
            for slot in range(starts[k], ends[k]):
                candidates[n] = positions[slot]
                n += 1
        for j in range(n):
            p = candidates[j]
            d = _distance(words, p, q)
            if d <= threshold:
                if found < room:
                    out_query[found], out_position[found], out_distance[found] = i, p, d
                found += 1
    return found


@numba.njit(nogil=True, cache=True)
def scan(words: np.ndarray, query_words: np.ndarray, threshold: int, out_query: np.ndarray,
         out_position: np.ndarray, out_distance: np.ndarray) -> int:
    """Every stored hash within ``threshold`` of each query, by comparing with all of them."""
    found = 0
    room = len(out_query)
    for i in range(query_words.shape[0]):
        q = query_words[i]
        for p in range(words.shape[0]):
            d = _distance(words, p, q)
            if d <= threshold:
                if found < room:
                    out_query[found], out_position[found], out_distance[found] = i, p, d
                found += 1
    return found
