"""The two hot loops of PDQ matching, compiled with numba: probing the multi-index, and scanning.

Both write (query, position, distance) triples into caller-given arrays and return how many they
found; when that is more than the arrays hold, the caller retries with arrays of that size. They
release the GIL, so a batch is split over threads. Written as plain loops because the numpy form of
the probe (gathers of offsets, bucket ranges and candidate hashes as whole arrays) spends most of
its time building temporaries: measured 4k lookups/s against well over 10k here (docs/decisions.md).
The probe spends its time waiting on memory (three random reads a bucket at 10M hashes), so it asks
for its reads ahead with ``llvm.prefetch`` (`_prefetch`, a numba intrinsic: no effect on results).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


def _prefetch_at(builder: Any, pointer: Any) -> None:
    """``llvm.prefetch`` of the cache line at ``pointer``: a read, kept in every cache level."""
    byte_pointer = builder.bitcast(pointer, ir.IntType(8).as_pointer())
    i32 = ir.IntType(32)
    function = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer.type, i32, i32, i32]), "llvm.prefetch.p0i8")
    builder.call(function, [byte_pointer, i32(0), i32(3), i32(1)])


def _prefetch_item(typingctx: Any, array: Any, index: Any) -> Any:
    """Start loading ``array[index]`` into the cache; no effect on the program's results."""
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        index_value = context.cast(builder, args[1], signature.args[1], types.intp)
        _prefetch_at(builder, cgutils.get_item_pointer(context, builder, array_type, view, [index_value],
                                                        wraparound=False))
        return context.get_dummy_value()

    return types.void(array, index), codegen


def _prefetch_first(typingctx: Any, array: Any, row: Any) -> Any:
    """Start loading row ``row`` of a 2-D array (one cache line: a hash is 32 bytes)."""
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        row_value = context.cast(builder, args[1], signature.args[1], types.intp)
        zero = context.get_constant(types.intp, 0)
        _prefetch_at(builder, cgutils.get_item_pointer(context, builder, array_type, view, [row_value, zero],
                                                        wraparound=False))
        return context.get_dummy_value()

    return types.void(array, row), codegen


_prefetch: Any = intrinsic(_prefetch_item)
_prefetch_row: Any = intrinsic(_prefetch_first)


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
def probe(bounds: np.ndarray, positions: np.ndarray, words: np.ndarray, queries: np.ndarray,
          query_words: np.ndarray, width: int, masks: np.ndarray, counts: np.ndarray, threshold: int,
          out_query: np.ndarray, out_position: np.ndarray, out_distance: np.ndarray) -> int:
    """Every hash in a bucket within the masks' flips of a query's chunk, kept if within ``threshold``.

    Chunk ``c`` is probed with the first ``counts[c]`` masks (`mih.probe_plan`). A hash sharing several
    chunks with a query is reported once per chunk; the caller dedupes. Per query in passes, each
    prefetching what the next one reads, so that the memory system has hundreds of reads in flight
    instead of the few that out-of-order execution overlaps: bucket keys (prefetching their bounds),
    bounds with each bucket's first position (prefetching its hash, and the bucket's other positions
    when it has more), the other positions (prefetching their hashes), and the distances. Nothing in a
    pass waits on a read of the same pass.
    """
    found = 0
    room = len(out_query)
    probes = 0
    for c in range(len(counts)):
        probes += counts[c]
    keys = np.empty(probes, dtype=np.int64)
    starts = np.empty(probes, dtype=np.int64)
    ends = np.empty(probes, dtype=np.int64)
    candidates = np.empty(4 * probes + 64, dtype=np.int64)
    empty = 0xFFFFFFFF
    for i in range(queries.shape[0]):
        q = query_words[i]
        k = 0
        for c in range(len(counts)):
            base = _chunk_key(queries[i], c, width)
            for m in range(counts[c]):
                key = base ^ masks[m]
                keys[k] = key
                _prefetch(bounds, 2 * key)
                k += 1
        n = 0
        more = 0
        total = 0
        for k in range(probes):
            at = 2 * keys[k]
            lead = bounds[at + 1]
            if lead != empty:
                candidates[n] = lead
                _prefetch_row(words, lead)
                n += 1
                start, end = bounds[at], bounds[at + 2]
                if end > start:
                    starts[more], ends[more] = start, end
                    total += end - start
                    more += 1
                    _prefetch(positions, start)
        if n + total > len(candidates):
            grown = np.empty(2 * (n + total), dtype=np.int64)
            grown[:n] = candidates[:n]
            candidates = grown
        for k in range(more):
            for slot in range(starts[k], ends[k]):
                p = positions[slot]
                candidates[n] = p
                _prefetch_row(words, p)
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
