"""The faiss index finds exactly what brute force finds: 100% recall at the PDQ threshold, on random
hashes, on hashes planted at every distance around the threshold, and on the real PDQ hash lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kizuna.hashes.index import BruteForce, PdqIndex, pack, unpack

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
