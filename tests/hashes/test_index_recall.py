"""The multi-index finds exactly what brute force finds: 100% recall at the PDQ threshold, on random
hashes, on hashes planted at every distance around the threshold, and on the real PDQ hash lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kizuna.hashes.index import BruteForce, PdqIndex, pack, unpack
from kizuna.hashes.mih import CHUNKS, chunk_values, flip_masks, probes_per_query, radii

LISTS = Path(__file__).parent.parent / "fixtures" / "pdq" / "hash-lists"


def _flip(row: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    bits = np.unpackbits(row)
    bits[rng.choice(256, count, replace=False)] ^= 1
    return np.packbits(bits)


def _both(stored: np.ndarray) -> tuple[PdqIndex, BruteForce]:
    index, brute = PdqIndex(), BruteForce()
    index.add(stored)
    brute.add(stored)
    return index, brute


def test_recall_is_total_on_random_hashes_with_neighbours_planted_at_every_distance() -> None:
    rng = np.random.default_rng(20261204)
    stored = rng.integers(0, 256, (10_000, 32), dtype=np.uint8)
    # Queries at distances 0..40 from stored hashes (both sides of 31), plus unrelated random ones.
    near = np.stack([_flip(stored[i], i % 41, rng) for i in range(0, 10_000, 25)])
    queries = np.concatenate([near, rng.integers(0, 256, (100, 32), dtype=np.uint8)])
    index, brute = _both(stored)
    for threshold in (0, 16, 31):
        got, expected = index.search(queries, threshold), brute.search(queries, threshold)
        assert got == expected
    found = index.search(near, 31)
    assert sum(1 for hits in found if hits) >= len(near) * 31 // 41  # the planted neighbours are there
    assert all(d <= 31 for hits in found for _, d in hits)


def test_a_query_with_more_results_than_its_first_room_gets_them_all() -> None:
    """A query near many stored hashes overruns the kernels' first guess of room (16 results a query,
    each near-duplicate found once per close chunk): the second run must return every one."""
    rng = np.random.default_rng(20261205)
    centre = rng.integers(0, 256, 32, dtype=np.uint8)
    crowd = np.stack([_flip(centre, int(d), rng) for d in rng.integers(0, 12, 3_000)])
    stored = np.concatenate([crowd, rng.integers(0, 256, (5_000, 32), dtype=np.uint8)])
    index, brute = _both(stored)
    queries = np.stack([centre, _flip(centre, 3, rng), rng.integers(0, 256, 32, dtype=np.uint8)])
    got = index.search(queries, 31)
    assert got == brute.search(queries, 31)
    assert len(got[0]) == len(got[1]) == 3_000 and index.indexed == len(stored)  # probed, not scanned


def test_recall_is_total_on_the_real_pdq_hash_lists() -> None:
    haystack = [line.strip() for line in (LISTS / "haystack.txt").read_text().split() if line.strip()]
    needles = [line.strip() for line in (LISTS / "needles.txt").read_text().split() if line.strip()]
    index, brute = _both(pack(haystack))
    got, expected = index.search(pack(needles), 31), brute.search(pack(needles), 31)
    assert got == expected
    assert sum(len(hits) for hits in got) > 0  # the lists do hold near-duplicates
    # Every stored hash finds itself at distance 0.
    assert all((i, 0) in hits for i, hits in enumerate(index.search(pack(haystack[:200]), 31)))


def test_a_hash_added_later_is_matchable_at_once_without_a_rebuild() -> None:
    rng = np.random.default_rng(7)
    index = PdqIndex()
    index.add(rng.integers(0, 256, (5_000, 32), dtype=np.uint8))
    new = rng.integers(0, 256, (1, 32), dtype=np.uint8)
    probe = _flip(new[0], 30, rng)[None, :]
    assert index.search(probe, 31) == [[]]
    index.add(new)
    assert index.search(probe, 31) == [[(5_000, 30)]]
    assert unpack(new[0]) == bytes(new[0]).hex()


@pytest.mark.parametrize("threshold", [32, 47, 63])
def test_recall_stays_total_above_the_default_threshold(threshold: int) -> None:
    rng = np.random.default_rng(threshold)
    stored = rng.integers(0, 256, (3_000, 32), dtype=np.uint8)
    queries = np.stack([_flip(stored[i], (i * 7) % (threshold + 5), rng) for i in range(0, 3_000, 30)])
    index, brute = _both(stored)
    assert index.search(queries, threshold) == brute.search(queries, threshold)


def test_merges_and_rebuilds_keep_recall_total() -> None:
    # Small adds go to the delta, which is merged into the multi-index; doubling rebuilds it wider.
    rng = np.random.default_rng(11)
    index, brute = PdqIndex(), BruteForce()
    stored = rng.integers(0, 256, (30_000, 32), dtype=np.uint8)
    index.add(stored[:8_000])
    brute.add(stored[:8_000])
    assert index.indexed == 8_000
    widths = set()
    for start in range(8_000, 30_000, 700):
        index.add(stored[start:start + 700])
        brute.add(stored[start:start + 700])
        assert index.width is not None
        widths.add(index.width)
        sample = np.stack([_flip(stored[i], i % 33, rng) for i in range(0, min(start + 700, 30_000), 97)])
        assert index.search(sample, 31) == brute.search(sample, 31)
    assert len(index) == 30_000 and 0 < index.indexed <= 30_000
    assert len(widths) > 1  # the bucket width grew with the index


@pytest.mark.parametrize("threshold", [33, 47])
def test_the_multi_index_probes_exactly_at_higher_thresholds(threshold: int) -> None:
    # 30k hashes: probing (not scanning) still pays at these thresholds; t // 11 bits are flipped per chunk.
    rng = np.random.default_rng(threshold)
    stored = rng.integers(0, 256, (30_000, 32), dtype=np.uint8)
    index, brute = _both(stored)
    assert index.indexed == 30_000
    queries = np.stack([_flip(stored[i], (i // 50) % (threshold + 3), rng) for i in range(0, 30_000, 50)])
    got = index.search(queries, threshold)
    assert got == brute.search(queries, threshold)
    assert sum(1 for hits in got if hits) > len(queries) * 3 // 4


def test_chunks_are_the_hash_bits_most_significant_first() -> None:
    rng = np.random.default_rng(3)
    rows = rng.integers(0, 256, (50, 32), dtype=np.uint8)
    bits = np.unpackbits(rows, axis=1)
    for width in (8, 13, 23):
        for chunk in range(CHUNKS):
            expected = bits[:, chunk * width:(chunk + 1) * width] @ (1 << np.arange(width - 1, -1, -1))
            assert chunk_values(rows, width, chunk).tolist() == expected.tolist()
    assert len(flip_masks(23, 2)) == 1 + 23 + 23 * 22 // 2


def _spread(row: np.ndarray, width: int, flips: list[int], rng: np.random.Generator) -> np.ndarray:
    """``row`` with ``flips[c]`` bits flipped inside chunk ``c`` (and none outside the chunks)."""
    bits = np.unpackbits(row)
    for chunk, count in enumerate(flips):
        bits[chunk * width + rng.choice(width, count, replace=False)] ^= 1
    return np.packbits(bits)


@pytest.mark.parametrize("threshold", [0, 5, 10, 21, 31, 32, 40])
def test_neighbours_that_only_the_chunks_probed_with_fewer_flips_can_find_are_found(threshold: int) -> None:
    # The worst case of the per-chunk radii: every chunk one bit past its radius, except one chunk at
    # exactly its radius, summing to the threshold. Only that chunk's probes can find the neighbour.
    rng = np.random.default_rng(100 + threshold)
    stored = rng.integers(0, 256, (30_000, 32), dtype=np.uint8)
    index, brute = _both(stored)
    assert index.width is not None
    limits = radii(threshold)
    assert sum(r + 1 for r in limits) > threshold  # the pigeonhole bound that makes the probe exact
    queries = []
    for chunk, radius in enumerate(limits):
        if radius < 0:
            continue  # a chunk that is not probed cannot be the one that finds anything
        flips = [r + 1 for r in limits]
        flips[chunk] = radius
        assert sum(flips) == threshold
        queries.append(_spread(stored[chunk * 97], index.width, flips, rng))
    got = index.search(np.stack(queries), threshold)
    assert got == brute.search(np.stack(queries), threshold)
    assert all(hits for hits in got)


def test_the_per_chunk_radii_are_exact_and_cheaper_than_a_uniform_radius() -> None:
    for threshold in range(64):
        limits = radii(threshold)
        assert sum(r + 1 for r in limits) == threshold + 1  # exact (> threshold) with nothing to spare
    assert radii(31) == [2] * 10 + [1]
    assert radii(0) == [0] + [-1] * 10  # an exact lookup probes one chunk
    assert probes_per_query(23, 31) == 10 * 277 + 24
