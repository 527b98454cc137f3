"""The store side of ingest in process: `core.ingest.prepare` + `Store.add_versions`, CPU per object.

Two sides in one process, alternating, into fresh collections of one SQLite node: the facts a version's
feed and reference index need noted by `prepare` from the object it already parsed (``NewVersion.feed``
and ``.refs``, what ingest does), against the same versions with those left for the store to derive from
the stored bytes (parsing each indicator, relationship and sighting body again, as before). Objects from
bench/gen_stix.py (feed-like: 55% indicators, 25% relationships). Medians of ``--runs`` per side, the
calling thread's CPU (SQLite's background search indexing is not counted on either side).

    python -m bench.bench_store_ingest                       # 40,000 objects, 6 runs
    python -m bench.bench_store_ingest --objects 100000 --json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import positive_int
from bench.gen_stix import generate
from kizuna.core.ingest import prepare
from kizuna.core.node import Node
from kizuna.store.base import FEED_NOT_NOTED, NewVersion

_BATCH = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=positive_int, default=40_000, help="objects per side and run")
    parser.add_argument("--runs", type=positive_int, default=6, help="runs per side (alternating order)")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    objects = list(generate(args.objects, seed=7))
    cpu: dict[str, list[float]] = {"noted": [], "derived": []}
    with tempfile.TemporaryDirectory(prefix="kizuna-bench-store-") as tmp:
        node = Node.init(Path(tmp) / "node", org_name="Bench", country="GBR")
        try:
            for run in range(args.runs):
                for side in ("noted", "derived") if run % 2 == 0 else ("derived", "noted"):
                    collection = node.create_collection(f"run {run} {side}")
                    started = time.thread_time()
                    prepared = [prepare(obj) for obj in objects]
                    ready = [p for p in prepared if isinstance(p, NewVersion)]
                    if side == "derived":
                        ready = [p._replace(feed=FEED_NOT_NOTED, refs=None) for p in ready]
                    for start in range(0, len(ready), _BATCH):
                        node.store.add_versions(collection.pk, ready[start:start + _BATCH])
                    cpu[side].append(time.thread_time() - started)
        finally:
            node.close()
    per_object = {side: statistics.median(times) / args.objects * 1e6 for side, times in cpu.items()}
    line = {"bench": "store_ingest", "objects": args.objects, "runs": args.runs,
            "noted_us_per_object": round(per_object["noted"], 1),
            "derived_us_per_object": round(per_object["derived"], 1),
            "ratio": round(per_object["noted"] / per_object["derived"], 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if args.json:
        print(json.dumps(line))
    else:
        for key, value in line.items():
            print(f"{key:>22}: {value}", file=sys.stderr)


if __name__ == "__main__":
    main()
