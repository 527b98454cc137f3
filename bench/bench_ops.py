"""Operation watchlist cost: judging newly ingested objects against 10k protected assets and 100k
lookalike domains, side by side with the ingest of the same objects (the anchor), in one run.

Run:  .venv/bin/python bench/bench_ops.py [--objects 20000] [--assets 10000] [--lookalikes 100000]
                                         [--runs 5] [--json]

A real SQLite node is created in a temporary directory. Per run, a fresh batch of indicators,
sightings and domain observables (about 5% of them referring to a protected asset or a lookalike)
is ingested with `Node.import_objects` (ingest_s), then the same new objects are read back through
`Node.read` (the visibility check) and judged by the operation's watchlist, as `kizuna ops alerts
--since` does (alerts_s); judge_s is the watchlist alone on objects already in memory. The issue's
target: the watchlist adds <= 10% to ingest, i.e. judge_s / ingest_s <= 0.10. Medians over runs and
the peak RSS are printed, as one JSON line with --json.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from kizuna.core.node import Node
from kizuna.ops.alerts import alerts_of
from kizuna.ops.reading import latest_objects, stix_now
from kizuna.ops.records import Operation, save, save_lookalikes
from kizuna.ops.watch import Watchlist
from kizuna.stix.timestamps import now_micros


def build_operation(node: Node, assets: int, lookalikes: int) -> tuple[Operation, list[dict[str, Any]],
                                                                        dict[str, tuple[str, str]]]:
    """An operation with ``assets`` protected objects (domains, /24 ranges, URLs) and a lookalike set."""
    intel, incidents, watch = (node.create_collection(f"bench {role}") for role in ("intel", "incidents", "watchlist"))
    operation = Operation("bench", "bench", "", "", "", "amber", "identity--x", "grouping--x",
                          {"intel": intel.id, "incidents": incidents.id, "watchlist": watch.id})
    objects: list[dict[str, Any]] = []
    for i in range(assets):
        if i % 3 == 0:
            objects.append({"type": "ipv4-addr", "spec_version": "2.1", "id": f"ipv4-addr--{uuid.uuid4()}",
                            "value": f"10.{i // 256 % 256}.{i % 256}.0/24"})
        elif i % 3 == 1:
            objects.append({"type": "domain-name", "spec_version": "2.1", "id": f"domain-name--{uuid.uuid4()}",
                            "value": f"venue{i}.games.example"})
        else:
            objects.append({"type": "url", "spec_version": "2.1", "id": f"url--{uuid.uuid4()}",
                            "value": f"https://tickets{i}.games.example/buy"})
    node.import_objects(watch, objects)
    fakes = {f"venue{i % assets}-{i}.games.example": (f"venue{i % assets}.games.example", "addition")
             for i in range(lookalikes)}
    save_lookalikes(node.store, "bench", fakes)
    save(node.store, operation)
    return operation, objects, fakes


def batch(size: int, assets: list[dict[str, Any]], fakes: list[str], rng: random.Random) -> list[dict[str, Any]]:
    now = stix_now()
    out: list[dict[str, Any]] = []
    for i in range(size):
        roll = rng.random()
        if roll < 0.02:
            value = f"login.{rng.choice([a for a in assets[:300] if a['type'] == 'domain-name'])['value']}"
        elif roll < 0.05:
            value = rng.choice(fakes)
        else:
            value = f"host{rng.randrange(10**9)}.unrelated.example"
        if i % 4 == 3 and out:
            out.append({"type": "sighting", "spec_version": "2.1", "id": f"sighting--{uuid.uuid4()}", "created": now,
                        "modified": now, "sighting_of_ref": out[-1]["id"]})
        else:
            out.append({"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
                        "created": now, "modified": now, "valid_from": now, "pattern_type": "stix",
                        "pattern": f"[domain-name:value = '{value}']"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--lookalikes", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = random.Random(14)
    with tempfile.TemporaryDirectory() as tmp:
        node = Node.init(Path(tmp) / "node", org_name="Bench", country="GBR")
        operation, assets, fakes = build_operation(node, args.assets, args.lookalikes)
        started = time.perf_counter()
        watch = Watchlist(assets, dict(fakes.items()))
        build_s = time.perf_counter() - started
        intel = node.find_collection(operation.collections["intel"])
        ingest, judge, alerts, found = [], [], [], []
        fake_names = list(fakes)
        for _ in range(args.runs):
            objects = batch(args.objects, assets, fake_names, rng)
            since = now_micros()
            started = time.perf_counter()
            node.import_objects(intel, objects)
            ingest.append(time.perf_counter() - started)
            started = time.perf_counter()
            hits = sum(1 for obj in objects for _ in watch.hits(obj))
            judge.append(time.perf_counter() - started)
            started = time.perf_counter()
            found.append(len(alerts_of(node, operation, since)))
            alerts.append(time.perf_counter() - started)
            assert hits and found[-1], "the batch must raise alerts, or the bench measures nothing"
        read_started = time.perf_counter()
        total = sum(1 for _ in latest_objects(node, intel))
        read_all_s = time.perf_counter() - read_started
        node.close()
    figures = {
        "bench": "ops", "objects": args.objects, "assets": args.assets, "lookalikes": args.lookalikes,
        "runs": args.runs, "watch_build_s": round(build_s, 3),
        "ingest_s": round(statistics.median(ingest), 3), "judge_s": round(statistics.median(judge), 4),
        "judge_over_ingest": round(statistics.median(judge) / statistics.median(ingest), 4),
        "alerts_since_s": round(statistics.median(alerts), 3), "alerts_median": statistics.median(found),
        "read_all_s": round(read_all_s, 3), "stored_objects": total,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>18}: {value}")


if __name__ == "__main__":
    main()
