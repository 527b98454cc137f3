"""Fill a Kizuna collection on PostgreSQL with N generated objects, fast, for the large-collection benchmarks.

    python -m bench.pg_load --data DIR --collection ID --count 1000000     # a node made with `kizuna init --store`
    python -m bench.pg_load --data DIR --collection ID --count 10000000 --seed 7

The objects are bench/gen_stix.py's feed-like mix (55 % indicators, relationships, malware, attack
patterns, 5 % newer versions of earlier objects). They go through the node's own ingest
(`kizuna.core.ingest.ingest`: validation, version bookkeeping, the search index) in batches of
`--batch` objects, each stored by the PostgreSQL store with one `COPY ... FROM STDIN (FORMAT
BINARY)`, so the rows are exactly what TAXII POST would have written — only without HTTP, the
per-request envelope and the policy's TLP rewriting (the generated objects use the OASIS TLP ids).
`ANALYZE objects` runs at the end, as the store itself does as a collection grows.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import orjson

from bench.common import positive_int
from bench.gen_stix import generate
from kizuna.config import load_config
from kizuna.core.ingest import ingest
from kizuna.store import open_store
from kizuna.store.postgres.store import PostgresStore


def load(data_dir: Path, collection: str, count: int, seed: int = 2024, batch: int = 20_000) -> dict[str, float]:
    """Store `count` generated objects in a collection of the node at `data_dir`; figures of the load."""
    store = open_store(load_config(data_dir).store_url)
    if not isinstance(store, PostgresStore):
        raise SystemExit("bench.pg_load fills PostgreSQL stores only (the node's store is not PostgreSQL)")
    found = store.get_collection("main", collection)
    if found is None:
        raise SystemExit(f"no collection {collection!r} in API root main")
    started = time.perf_counter()
    stored = failed = 0
    stream = generate(count, seed)
    while True:
        chunk = [obj for _, obj in zip(range(batch), stream, strict=False)]
        if not chunk:
            break
        report = ingest(store, found.pk, chunk, batch_size=batch, keep_successes=False)
        stored += report.success_count
        failed += len(report.failures)
        elapsed = time.perf_counter() - started
        if sys.stderr.isatty() or stored % (batch * 10) < batch:
            print(f"\r{stored:,} stored, {stored / elapsed:,.0f} objects/s", end="", file=sys.stderr, flush=True)
    with store._pool.connection() as connection:  # noqa: SLF001 - the bench owns this store
        connection.autocommit = True
        connection.execute("ANALYZE objects")
    store.close()
    elapsed = time.perf_counter() - started
    print(file=sys.stderr)
    return {"stored": stored, "failed": failed, "seconds": round(elapsed, 1), "objects_per_s": round(stored / elapsed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the node's data directory (kizuna init --store)")
    parser.add_argument("--collection", required=True, help="collection id or alias in API root main")
    parser.add_argument("--count", type=positive_int, required=True, help="objects to generate and store")
    parser.add_argument("--seed", type=int, default=2024, help="generator seed (the same seed, the same objects)")
    parser.add_argument("--batch", type=positive_int, default=20_000, help="objects per transaction (one COPY each)")
    args = parser.parse_args()
    print(orjson.dumps(load(args.data, args.collection, args.count, args.seed, args.batch)).decode())


if __name__ == "__main__":
    main()
