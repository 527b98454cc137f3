"""The SQLite floor: the least work any SQLite-backed TAXII store must do to ingest objects.

For every envelope of 1,000 objects as it arrives over HTTP (bytes): orjson-parse it, serialize each object
back for storage, and executemany the rows into one WAL-mode table carrying the indexes a TAXII store needs:
(collection, date_added) for paging, (collection, type, date_added) for `match[type]`, and unique
(collection, id, modified) for versions. One transaction per envelope, like one POST. No HTTP, no validation,
no policy: a server reaching a fraction of this figure is spending the rest on its own logic.

With ``--search-index`` a second floor runs side by side: the same, plus the full-text index Kizuna keeps in
the same transaction (an FTS5 trigram table of each object's searchable text, without token positions as
Kizuna keeps it since schema step 26, store/search_index.py). The ratio of the two is what the search index
alone costs, before any validation or policy.

    python -m bench.sqlite_floor --count 100000 --runs 3 [--search-index [--automerge 4]] [--json]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.common import median, non_negative_int, own_peak_rss_mb, positive_int
from bench.gen_stix import envelopes
from kizuna.store.search_index import text_of_object


def floor_schema(collection_type: str, body_type: str) -> str:
    """The floor's one table and the indexes a TAXII store needs, in an engine's names for the two types that
    differ (bench/pg_floor.py builds the same on PostgreSQL)."""
    return f"""
CREATE TABLE objects (
    collection {collection_type} NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    modified TEXT NOT NULL,
    date_added TEXT NOT NULL,
    body {body_type} NOT NULL
);
CREATE INDEX objects_added ON objects (collection, date_added);
CREATE INDEX objects_type_added ON objects (collection, type, date_added);
CREATE UNIQUE INDEX objects_version ON objects (collection, id, modified);
"""


SCHEMA = floor_schema("TEXT", "BLOB")
SEARCH_SCHEMA = (
    "CREATE VIRTUAL TABLE search_text USING fts5 (text, tokenize = 'trigram', detail = none);"
    "INSERT INTO search_text (search_text, rank) VALUES ('automerge', {automerge});"
)
#: FTS5's segment-merge threshold as Kizuna sets it (SQLite schema step 17); FTS5's own default is 4.
KIZUNA_AUTOMERGE = 16
COLLECTION = "5c9d8a3e-0000-4000-8000-000000000001"


def ingest(
    db_path: Path, payloads: Sequence[bytes], synchronous: str = "NORMAL", search_index: bool = False,
    automerge: int = KIZUNA_AUTOMERGE,
) -> dict[str, Any]:
    """Ingest pre-serialized envelopes into a fresh database; returns objects/s over the whole run."""
    connection = sqlite3.connect(db_path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.executescript(SCHEMA + (SEARCH_SCHEMA.format(automerge=automerge) if search_index else ""))
    # date_added comes from a monotonic counter so every row's value is distinct and ordered, as a server's
    # clock-based stamps would be.
    added = datetime.now(UTC)
    step = timedelta(microseconds=1)
    count = 0
    started = time.perf_counter()
    for payload in payloads:
        objects = orjson.loads(payload)["objects"]
        rows = []
        for obj in objects:
            added += step
            rows.append(
                (
                    COLLECTION,
                    obj["id"],
                    obj["type"],
                    obj.get("modified") or obj.get("created", ""),
                    added.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    orjson.dumps(obj),
                )
            )
        connection.execute("BEGIN")
        connection.executemany("INSERT OR IGNORE INTO objects VALUES (?, ?, ?, ?, ?, ?)", rows)
        if search_index:
            # Keyed by ascending integers, as Kizuna keys its index rows by objects.seq.
            connection.executemany(
                "INSERT INTO search_text (rowid, text) VALUES (?, ?)",
                [(count + i, text) for i, obj in enumerate(objects) if (text := text_of_object(obj))],
            )
        connection.execute("COMMIT")
        count += len(objects)
    elapsed = time.perf_counter() - started
    stored = connection.execute("SELECT count(*) FROM objects").fetchone()[0]
    connection.close()
    return {
        "objects": count,
        "stored": stored,
        "seconds": round(elapsed, 3),
        "objects_per_s": round(count / elapsed),
    }


def measure(
    payloads: Sequence[bytes], runs: int, synchronous: str = "NORMAL", search_index: bool = False,
    automerge: int = KIZUNA_AUTOMERGE,
) -> dict[str, Any]:
    """Medians over runs; with ``search_index`` each run also ingests with the index, right after the plain one,
    so both see the same machine load, and ``with_search_index_ratio`` is the median of the per-run ratios."""
    results = []
    indexed = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="kizuna-floor-") as tmp:
            results.append(ingest(Path(tmp) / "floor.db", payloads, synchronous))
            if search_index:
                indexed.append(ingest(Path(tmp) / "floor-search.db", payloads, synchronous, True, automerge))
    rates = [result["objects_per_s"] for result in results]
    summary: dict[str, Any] = {
        "objects": results[0]["objects"],
        "stored": results[0]["stored"],
        "runs": rates,
        "objects_per_s": median(rates),
    }
    if indexed:
        indexed_rates = [result["objects_per_s"] for result in indexed]
        summary["with_search_index"] = {"runs": indexed_rates, "objects_per_s": median(indexed_rates)}
        summary["with_search_index_ratio"] = round(
            median([i / p for i, p in zip(indexed_rates, rates, strict=True)]) or 0, 2)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=positive_int, default=100_000, help="rows inserted")
    parser.add_argument("--runs", type=positive_int, default=3, help="runs; medians are reported")
    parser.add_argument("--synchronous", default="NORMAL", choices=("OFF", "NORMAL", "FULL"),
                        help="SQLite's synchronous setting (Kizuna runs NORMAL)")
    parser.add_argument("--search-index", action="store_true",
                        help="also run the floor with Kizuna's full-text search index, side by side")
    parser.add_argument("--automerge", type=non_negative_int, default=KIZUNA_AUTOMERGE,
                        help="FTS5 merge threshold of that index (Kizuna's is 16; FTS5's default 4)")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    payloads = envelopes(args.count)
    result = measure(payloads, args.runs, args.synchronous, args.search_index, args.automerge)
    result["peak_rss_mb"] = own_peak_rss_mb()
    if args.json:
        print(orjson.dumps(result).decode())
    else:
        print(
            f"SQLite floor: {result['objects_per_s']:,.0f} objects/s "
            f"(median of {args.runs}: {result['runs']}), "
            f"{result['stored']:,} rows, peak RSS {result['peak_rss_mb']} MB"
        )
        if "with_search_index" in result:
            indexed = result["with_search_index"]
            print(
                f"with the search index: {indexed['objects_per_s']:,.0f} objects/s (runs: {indexed['runs']}), "
                f"{result['with_search_index_ratio']}x the plain floor (median of per-run ratios)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
