"""What a node-wide rate limit costs per request, beside a process's own in-memory buckets.

Every request spends from two buckets (its address's and its token's); this measures one ``take`` on:

- memory: ``core/limits.TokenBuckets``, a process's own (the floor; not shared);
- sqlite-own-file: ``store/rate_buckets``' choice for SQLite, a file beside the store;
- sqlite-in-store: the same table inside the store file, as a shared counter there would be;
- postgresql-unlogged: the choice for PostgreSQL, an UNLOGGED table;
- postgresql-logged: the same table written to the WAL.

Each is measured alone and while another process writes envelopes of 1,500 objects into the node's
store in a loop (what a busy node does), since a counter that waits for the store's write lock delays
every request behind every POST.  Configurations are interleaved run by run; figures are medians over
--runs of the per-take median, p99 and maximum in microseconds (one take a millisecond for
--seconds), with this process's peak RSS; --json prints one JSON line.

    python -m bench.bench_rate_limits
    python -m bench.bench_rate_limits --seconds 20 --runs 5 --json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import names_in, own_peak_rss_mb, percentile, positive_int

CONFIGS = ("memory", "sqlite-own-file", "sqlite-in-store", "postgresql-unlogged", "postgresql-logged")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def _node(backend: str, base: Path) -> Iterator[Any]:
    """A store with one collection, on a fresh SQLite file or a fresh PostgreSQL database."""
    import psycopg

    from kizuna.store import open_store

    name = f"kizuna_bench_limits_{int(time.time() * 1000) % 10**9}"
    if backend == "sqlite":
        url = "sqlite:///" + str(base / "kizuna.db").lstrip("/")
    else:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    store = open_store(url)
    try:
        store.migrate()
        yield store
    finally:
        store.close()
        if backend != "sqlite":
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _taker(config: str, store: Any, base: Path) -> Callable[[str], Any]:
    from kizuna.core.limits import TokenBuckets
    from kizuna.store.rate_buckets import PostgresBucketRows, SharedBuckets, SqliteBucketRows

    if config == "memory":
        memory = TokenBuckets(1000.0, 4000.0)
        return lambda key: memory.take(key, time.monotonic())
    if config == "sqlite-own-file":
        rows: Any = SqliteBucketRows(base / "kizuna.limits.db")
    elif config == "sqlite-in-store":
        rows = SqliteBucketRows(store.path)
    else:
        rows = PostgresBucketRows(store._pool)
        if config == "postgresql-logged":
            with store._pool.connection() as conn:
                conn.execute("ALTER TABLE rate_buckets SET LOGGED")
    shared = SharedBuckets(rows, "t:", 1000.0, 4000.0)
    return lambda key: shared.take(key)


def _writer(url: str, collection_pk: int, stop: Any) -> None:
    """Another process writing envelopes of 1,500 versions into the store until ``stop`` is set."""
    import orjson

    from kizuna.store import open_store
    from kizuna.store.base import NewVersion

    store = open_store(url)
    batch = 0
    while not stop.is_set():
        batch += 1
        versions = []
        for index in range(1500):
            stix_id = f"indicator--{batch:08x}-0000-4000-8000-{index:012x}"
            body = orjson.dumps({"type": "indicator", "spec_version": "2.1", "id": stix_id,
                                 "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                                 "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z",
                                 "pattern": f"[ipv4-addr:value = '198.51.100.{index % 250}']"})
            versions.append(NewVersion(stix_id, "indicator", 1_767_225_600_000_000, "2.1", None, None, body))
        store.add_versions(collection_pk, versions)
    store.close()


def _wait_for_rows(store: Any, collection_pk: int) -> None:
    deadline = time.monotonic() + 120
    while store.collection_stats(collection_pk)[0] == 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the writer process stored nothing in 120 s")
        time.sleep(0.05)


def measure(config: str, seconds: float, loaded: bool) -> dict[str, float]:
    backend = "postgresql" if config.startswith("postgresql") else "sqlite"
    with tempfile.TemporaryDirectory() as tmp, _node(backend, Path(tmp)) as store:
        from kizuna.store.base import ApiRoot

        store.create_api_root(ApiRoot("main", "Main", None, 10_485_760))
        collection = store.create_collection("c0ffee00-0000-4000-8000-000000000001", "main", "C", None, None,
                                             ["application/stix+json;version=2.1"])
        take = _taker(config, store, Path(tmp))
        stop = multiprocessing.Event()
        writer = multiprocessing.Process(target=_writer, args=(store.url, collection.pk, stop)) if loaded else None
        if writer is not None:
            writer.start()
            _wait_for_rows(store, collection.pk)  # the measurement is of takes while envelopes are written
        latencies = []
        try:
            # Requests arrive one a millisecond for ``seconds``: long enough to span many envelopes, so
            # the figures include the takes that met a writer holding a lock.
            until = time.monotonic() + seconds
            index = 0
            while time.monotonic() < until:
                started = time.perf_counter()
                take(f"client-{index % 200}")
                latencies.append((time.perf_counter() - started) * 1e6)
                index += 1
                time.sleep(0.001)
        finally:
            stop.set()
            if writer is not None:
                writer.join(timeout=120)
    return {"median_us": statistics.median(latencies), "p99_us": percentile(latencies, 0.99) or 0.0,
            "max_us": max(latencies)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of takes per configuration and run")
    parser.add_argument("--runs", type=positive_int, default=3, help="runs; medians are reported")
    parser.add_argument("--configs", type=names_in(CONFIGS), default=list(CONFIGS),
                        help=f"configurations to measure, comma-separated ({', '.join(CONFIGS)})")
    parser.add_argument("--json", action="store_true", help="one JSON line on stdout")
    args = parser.parse_args(argv)
    configs = args.configs
    results: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.runs):
        for loaded in (False, True):
            for config in configs:
                figures = measure(config, args.seconds, loaded)
                slot = results.setdefault(f"{config}{' +writer' if loaded else ''}", {})
                for key, value in figures.items():
                    slot.setdefault(key, []).append(value)
    summary: dict[str, Any] = {name: {k: round(statistics.median(v), 1) for k, v in figures.items()}
                               for name, figures in results.items()}
    floor = summary["memory"]["median_us"] if "memory" in summary else None
    for figures in summary.values():
        figures["vs_memory"] = round(figures["median_us"] / floor, 1) if floor else None
    out = {"bench": "rate_limits", "seconds": args.seconds, "runs": args.runs, "peak_rss_mb": own_peak_rss_mb(),
           "results": summary}
    for name, figures in summary.items():
        print(f"{name:32} median {figures['median_us']:9.1f} µs   p99 {figures['p99_us']:9.1f} µs   "
              f"max {figures['max_us']:9.1f} µs   x{figures['vs_memory']}", file=sys.stderr)
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
