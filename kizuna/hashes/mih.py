"""Multi-index hashing over flat numpy arrays: exact Hamming range search for 256-bit PDQ hashes.

Eleven chunks of ``width`` bits are cut from each hash (``width`` about log2 of the number of hashes,
at most 23, so 11 chunks fit in 256 bits). If two hashes are within distance ``t``, the chunks' own
distances add up to at most ``t``, so some chunk differs in at most ``t // 11`` bits (pigeonhole:
11 chunks each ``> t // 11`` apart would sum past ``t``). Probing, in every chunk, each value within
``t // 11`` flipped bits of the query's finds every hash within ``t``; the candidates are then checked
with a popcount over the full 256 bits, so the answer is exact, not approximate. Chunks that leave
some bits out are still exact: a distance on fewer bits is never larger.

Per chunk the hash positions are counting-sorted by chunk value: per bucket, its first position
beside its bounds in one ``uint32`` array, the other positions in a second one, for all chunks
together (`kernels.probe` walks them). At 10M hashes and width 23 that is about 740 MB of bounds and
first positions, 180 MB of other positions and 320 MB of hashes (docs/decisions.md has the
measurements that chose this over faiss).
"""

from __future__ import annotations

from functools import lru_cache
from itertools import combinations
from typing import Final

import numpy as np

CHUNKS: Final = 11
MAX_WIDTH: Final = 23  # 11 * 23 = 253 <= 256
MIN_WIDTH: Final = 8


def width_for(count: int) -> int:
    """Bucket width giving about one hash per bucket: more bits cost offsets memory, fewer cost candidates."""
    return int(min(MAX_WIDTH, max(MIN_WIDTH, round(np.log2(max(count, 1))))))


@lru_cache(maxsize=64)
def flip_masks(width: int, radius: int) -> np.ndarray:
    """Every ``width``-bit mask with at most ``radius`` bits set (the probes of one chunk)."""
    masks = [0]
    for flipped in range(1, radius + 1):
        masks.extend(sum(1 << bit for bit in bits) for bits in combinations(range(width), flipped))
    return np.array(masks, dtype=np.int32)


def radii(threshold: int) -> list[int]:
    """Bits flipped per chunk (-1: the chunk is not probed) so that every hash within ``threshold`` is found.

    If each chunk ``c`` differed in more than ``r_c`` bits, the distance would be at least the sum of
    the ``r_c + 1``; so probing every chunk within ``r_c`` flips is exact as long as that sum exceeds
    ``threshold``. ``threshold // 11`` everywhere overshoots by up to ten: that many chunks take one
    bit less (at 31, one chunk probes 24 values instead of 277; at 0, one chunk alone is probed).
    """
    radius = threshold // CHUNKS
    spare = CHUNKS * (radius + 1) - (threshold + 1)
    return [radius - 1 if chunk >= CHUNKS - spare else radius for chunk in range(CHUNKS)]


def probe_plan(width: int, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """The flip masks (fewest bits first) and, per chunk, how many of them it probes."""
    masks = flip_masks(width, max(radii(threshold)))
    counts = [len(flip_masks(width, r)) if r >= 0 else 0 for r in radii(threshold)]
    return masks.astype(np.int64), np.array(counts, dtype=np.int64)


def probes_per_query(width: int, threshold: int) -> int:
    return int(probe_plan(width, threshold)[1].sum())


def chunk_values(rows: np.ndarray, width: int, chunk: int) -> np.ndarray:
    """The value of one chunk (bits ``chunk*width`` onwards, most significant first) of each row."""
    start = chunk * width
    first, shift = divmod(start, 8)
    word = np.zeros(len(rows), dtype=np.uint32)
    for k in range(4):  # shift + width <= 7 + 23 < 32: four bytes always hold the chunk
        if first + k < rows.shape[1]:
            word |= rows[:, first + k].astype(np.uint32) << np.uint32(24 - 8 * k)
    return ((word >> np.uint32(32 - shift - width)) & np.uint32((1 << width) - 1)).astype(np.int32)


def words_of(rows: np.ndarray) -> np.ndarray:
    """(n, 32) uint8 rows as (n, 4) uint64 words, for popcounts."""
    return np.ascontiguousarray(rows, dtype=np.uint8).view(np.uint64).reshape(-1, 4)


#: ``bounds[2k + 1]`` of a bucket that holds no hash.
EMPTY: Final = 0xFFFFFFFF


class MultiIndex:
    """Hash positions ``0..n-1`` bucketed by each of 11 chunks; immutable (searches need no lock).

    ``bounds`` interleaves, per bucket ``k`` of all chunks, where its *other* positions start in
    ``positions`` (``bounds[2k]``, ending at ``bounds[2k + 2]``) and its *first* position
    (``bounds[2k + 1]``, or `EMPTY`). At about one hash a bucket most buckets hold one or none, so a
    probe usually finds its candidate in the cache line of the bounds it reads anyway, and the
    positions array holds only the rest: a memory read saved per probe, for ~no memory (the first
    positions move out of ``positions`` into ``bounds``).
    """

    def __init__(self, rows: np.ndarray, width: int | None = None) -> None:
        rows = np.ascontiguousarray(rows, dtype=np.uint8)
        self.count = len(rows)
        self.width = width or width_for(self.count)
        buckets = 1 << self.width
        self.bounds = np.empty(2 * (CHUNKS * buckets + 1), dtype=np.uint32)
        # The other positions' total first (a bincount a chunk), so they are written in place: no
        # list of parts to join, which at 10M would hold them twice at the build's peak.
        occupied = sum(int(np.count_nonzero(np.bincount(chunk_values(rows, self.width, chunk), minlength=buckets)))
                       for chunk in range(CHUNKS))
        self.positions = np.empty(CHUNKS * self.count - occupied, dtype=np.uint32)
        done = 0
        for chunk in range(CHUNKS):
            values = chunk_values(rows, self.width, chunk)
            counts = np.bincount(values, minlength=buckets).astype(np.uint32)
            order = np.argsort(values, kind="stable").astype(np.uint32)
            del values
            starts = np.cumsum(counts, dtype=np.uint32) - counts
            filled = counts > 0
            table = self.bounds[2 * chunk * buckets:2 * (chunk + 1) * buckets].reshape(buckets, 2)
            table[:, 1] = EMPTY
            table[filled, 1] = order[starts[filled]]
            is_first = np.zeros(self.count, dtype=bool)
            is_first[starts[filled]] = True
            others = counts - filled  # uint32: a bucket's hashes less its first
            table[:, 0] = done + np.cumsum(others, dtype=np.uint32) - others
            taken = int(others.sum(dtype=np.int64))
            self.positions[done:done + taken] = order[~is_first]
            done += taken
        self.bounds[-2:] = (done, EMPTY)

    def merged(self, rows: np.ndarray, first: int) -> MultiIndex:
        """A copy that also holds ``rows`` as positions ``first..``: each becomes the first position of
        an empty bucket, or is appended to its bucket's other positions (no re-sort)."""
        buckets = 1 << self.width
        new_positions = np.arange(first, first + len(rows), dtype=np.uint32)
        keys = np.concatenate([chunk * buckets + chunk_values(rows, self.width, chunk) for chunk in range(CHUNKS)])
        placed = np.tile(new_positions, CHUNKS)
        order = np.argsort(keys, kind="stable")
        keys, placed = keys[order], placed[order]
        leads = np.ones(len(keys), dtype=bool)
        leads[1:] = keys[1:] != keys[:-1]
        bounds = self.bounds.copy()
        # The first new position of a key whose bucket is empty fills its first slot; the rest go after
        # the bucket's other positions, in the order added.
        fills = leads & (bounds[2 * keys + 1] == EMPTY)
        bounds[2 * keys[fills] + 1] = placed[fills]
        keys, placed = keys[~fills], placed[~fills]
        merged = object.__new__(MultiIndex)
        merged.width, merged.count = self.width, self.count + len(rows)
        merged.positions = np.insert(self.positions, self.bounds[2 * keys + 2].astype(np.int64), placed)
        grown = np.zeros(CHUNKS * buckets + 1, dtype=np.int64)
        grown[1:] = np.bincount(keys, minlength=CHUNKS * buckets)
        bounds[0::2] += np.cumsum(grown).astype(np.uint32)
        merged.bounds = bounds
        return merged
