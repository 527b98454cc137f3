"""The PostgreSQL floor: the least work any PostgreSQL-backed TAXII store must do to ingest objects.

The same work as the SQLite floor (bench/sqlite_floor.py), on PostgreSQL: for every envelope of 1,000 objects
as it arrives over HTTP (bytes), orjson-parse it, serialize each object back for storage, and load the rows
into one table carrying the indexes a TAXII store needs, (collection, date_added) for paging,
(collection, type, date_added) for `match[type]` and unique (collection, id, modified) for versions, with
one binary COPY (PostgreSQL's fastest way in) in one transaction per envelope, like one POST, committed
durably (`synchronous_commit` left on, as Kizuna commits an ingest). No HTTP, no validation, no policy.
Each run loads a fresh database, dropped afterwards.

A PostgreSQL store is held to this floor rather than SQLite's: the same work costs a different amount on
each engine (a round trip per statement, WAL written by a separate server), so only a floor of its own
says what share of the time a PostgreSQL-backed server spends on its own logic.

    python -m bench.pg_floor --count 100000 --runs 3 [--pg-url URL] [--json]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg

from bench.common import fresh_pg_database, median, own_peak_rss_mb, positive_int
from bench.gen_stix import envelopes
from bench.sqlite_floor import floor_schema

SCHEMA = floor_schema("BIGINT", "BYTEA")  # the SQLite floor's table and indexes
COPY = "COPY objects (collection, id, type, modified, date_added, body) FROM STDIN (FORMAT BINARY)"
COPY_TYPES = ["int8", "text", "text", "text", "text", "bytea"]
COLLECTION = 1
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def ingest(database_url: str, payloads: Sequence[bytes]) -> dict[str, Any]:
    """Ingest pre-serialized envelopes into the empty database at ``database_url``; objects/s over the run."""
    with psycopg.connect(database_url) as connection:
        connection.execute(SCHEMA)
        connection.commit()
        # date_added from a monotonic counter, every row's distinct and ordered, as in the SQLite floor
        added = datetime.now(UTC)
        step = timedelta(microseconds=1)
        count = 0
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for payload in payloads:
                objects = orjson.loads(payload)["objects"]
                rows = []
                for obj in objects:
                    added += step
                    rows.append((COLLECTION, obj["id"], obj["type"], obj.get("modified") or obj.get("created", ""),
                                 added.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), orjson.dumps(obj)))
                with cursor.copy(COPY) as copy:
                    copy.set_types(COPY_TYPES)
                    for row in rows:
                        copy.write_row(row)
                connection.commit()
                count += len(objects)
            elapsed = time.perf_counter() - started
            stored = cursor.execute("SELECT count(*) FROM objects").fetchone()
    return {"objects": count, "stored": stored[0] if stored else 0, "seconds": round(elapsed, 3),
            "objects_per_s": round(count / elapsed)}


def run(admin_url: str, payloads: Sequence[bytes]) -> dict[str, Any]:
    """One floor run on a fresh database created through ``admin_url`` and dropped afterwards."""
    with fresh_pg_database(admin_url) as url:
        return ingest(url, payloads)


def measure(admin_url: str, payloads: Sequence[bytes], runs: int) -> dict[str, Any]:
    results = [run(admin_url, payloads) for _ in range(runs)]
    rates = [result["objects_per_s"] for result in results]
    return {"objects": results[0]["objects"], "stored": results[0]["stored"], "runs": rates,
            "objects_per_s": median(rates)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=positive_int, default=100_000, help="rows inserted")
    parser.add_argument("--runs", type=positive_int, default=3, help="runs; medians are reported")
    parser.add_argument("--pg-url", default=DEFAULT_ADMIN_URL,
                        help="admin connection; each run creates a fresh kizuna_bench_* database and drops it")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    try:
        result = measure(args.pg_url, envelopes(args.count), args.runs)
    except psycopg.Error as error:  # no database to measure: one line, as the kizuna commands say it
        parser.exit(1, f"pg_floor: PostgreSQL at {args.pg_url}: {' '.join(str(error).split())}\n")
    result["peak_rss_mb"] = own_peak_rss_mb()
    if args.json:
        print(orjson.dumps(result).decode())
    else:
        print(f"PostgreSQL floor: {result['objects_per_s']:,.0f} objects/s (median of {args.runs}: {result['runs']}), "
              f"{result['stored']:,} rows, peak RSS {result['peak_rss_mb']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
