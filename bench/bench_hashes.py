"""PDQ hash matching: Kizuna's index (faiss IndexBinaryMultiHash) side by side with faiss HNSW and
brute force (faiss IndexBinaryFlat, exact), on N random PDQ hashes, in one run.

Per target, in its own forked process so its memory is its own: build time, peak RSS, p99 of single
lookups, batched lookups/s, recall at distance <= 31 against the exact brute force on a query sample
(half near-duplicates planted at distances 0..31 of stored hashes, half random), and add-to-match
latency (one new hash added to the built index, then found). Also images/s of `kizuna hash`'s hasher
over the fixture images. Prints a table on stderr and, with --json, one JSON line on stdout.

    .venv/bin/python -m bench.bench_hashes                      # 100k hashes, 1k queries: about a minute
    .venv/bin/python -m bench.bench_hashes --size 10000000 --queries 10000 --targets multihash,flat
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import orjson

from kizuna.hashes.hashing import hash_file, media_files
from kizuna.hashes.index import PdqIndex

THRESHOLD = 31
FIXTURE_IMAGES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "pdq" / "images"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _data(size: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    stored = rng.integers(0, 256, (size, 32), dtype=np.uint8)
    near = stored[rng.integers(0, size, queries // 2)].copy()
    for i, row in enumerate(near):
        bits = np.unpackbits(row)
        bits[rng.choice(256, i % (THRESHOLD + 1), replace=False)] ^= 1
        near[i] = np.packbits(bits)
    return stored, np.concatenate([near, rng.integers(0, 256, (queries - len(near), 32), dtype=np.uint8)])


class _Faiss:
    """A raw faiss binary index behind PdqIndex's interface."""

    def __init__(self, index: Any) -> None:
        self.index = index

    def add(self, packed: np.ndarray) -> None:
        self.index.add(packed)

    def search(self, queries: np.ndarray, threshold: int) -> list[list[tuple[int, int]]]:
        if isinstance(self.index, faiss.IndexBinaryHNSW):  # no range search: k nearest, then cut
            distances, positions = self.index.search(queries, 10)
            return [sorted((int(p), int(d)) for p, d in zip(ps, ds, strict=True) if p >= 0 and d <= threshold)
                    for ps, ds in zip(positions, distances, strict=True)]
        lims, distances, positions = self.index.range_search(queries, threshold + 1)
        return [sorted(zip(positions[lims[i]:lims[i + 1]].tolist(), distances[lims[i]:lims[i + 1]].astype(int).tolist(),
                           strict=True)) for i in range(len(queries))]


def _make(target: str) -> Any:
    if target == "multihash":
        return PdqIndex()
    if target == "hnsw":
        index = faiss.IndexBinaryHNSW(256, 16)
        index.hnsw.efSearch = 64
        return _Faiss(index)
    return _Faiss(faiss.IndexBinaryFlat(256))


def _measure(target: str, size: int, queries_n: int, seed: int, truth: list[set[int]] | None, out: Any) -> None:
    stored, queries = _data(size, queries_n, seed)
    base = _rss_mb()
    index = _make(target)
    started = time.perf_counter()
    for start in range(0, size, 1_000_000):
        index.add(stored[start:start + 1_000_000])
    build_s = time.perf_counter() - started
    rss = _rss_mb() - base
    singles = []
    for row in queries[: min(500, len(queries))]:
        t = time.perf_counter()
        index.search(row[None, :], THRESHOLD)
        singles.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    found = index.search(queries, THRESHOLD)
    batched = len(queries) / (time.perf_counter() - t)
    got = [{p for p, _ in hits} for hits in found]
    recall = None
    if truth is not None:
        expected = sum(len(s) for s in truth)
        recall = sum(len(g & s) for g, s in zip(got, truth, strict=True)) / expected if expected else 1.0
    new = np.random.default_rng(seed + 1).integers(0, 256, (1, 32), dtype=np.uint8)
    t = time.perf_counter()
    index.add(new)
    hit = any(p == size for p, _ in index.search(new, THRESHOLD)[0])
    add_ms = (time.perf_counter() - t) * 1000
    p99 = float(np.percentile(singles, 99))
    out.put({"target": target, "build_s": round(build_s, 2), "rss_mb": round(rss, 1), "p99_ms": round(p99, 3),
             "median_ms": round(statistics.median(singles), 3), "batched_per_s": round(batched),
             "recall": recall, "add_to_match_ms": round(add_ms, 2), "new_hash_found": hit,
             "truth": [sorted(s) for s in got] if target == "flat" else None})


def _run(target: str, args: argparse.Namespace, truth: list[set[int]] | None) -> dict[str, Any]:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_measure, args=(target, args.size, args.queries, args.seed, truth, queue))
    process.start()
    result: dict[str, Any] = queue.get()
    process.join()
    return result


def _hashing_rate(rounds: int) -> float:
    files = list(media_files(FIXTURE_IMAGES))
    started = time.perf_counter()
    for _ in range(rounds):
        for file in files:
            hash_file(file)
    return len(files) * rounds / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="PDQ hashes in the index (10000000 for the goal).")
    parser.add_argument("--queries", type=int, default=1_000, help="query sample for recall and batched rate")
    parser.add_argument("--targets", default="flat,multihash,hnsw", help="comma list: flat, multihash, hnsw")
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--threads", type=int, default=2, help="faiss OpenMP threads")
    parser.add_argument("--json", action="store_true", help="one JSON line on stdout")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    targets = [t for t in args.targets.split(",") if t]
    rows: list[dict[str, Any]] = []
    truth: list[set[int]] | None = None
    if "flat" in targets:  # the exact reference first, so the others' recall is measured against it
        flat = _run("flat", args, None)
        truth = [set(t) for t in flat.pop("truth")]
        flat["recall"] = 1.0
        rows.append(flat)
    for target in (t for t in targets if t != "flat"):
        row = _run(target, args, truth)
        row.pop("truth")
        rows.append(row)
    rate = _hashing_rate(3)
    for row in rows:
        print(f"{row['target']:>10}: build {row['build_s']}s, rss {row['rss_mb']} MB, p99 {row['p99_ms']} ms, "
              f"{row['batched_per_s']}/s batched, recall {row['recall']}, add-to-match {row['add_to_match_ms']} ms",
              file=sys.stderr)
    print(f"hashing: {rate:.1f} images/s (fixture images, PDQ+MD5+SHA-256)", file=sys.stderr)
    if args.json:
        print(orjson.dumps({"bench": "hashes", "size": args.size, "queries": args.queries, "threshold": THRESHOLD,
                            "targets": rows, "images_per_s": round(rate, 1)}).decode())


if __name__ == "__main__":
    main()
