"""Full-text search (issue 11) on a large store: server-side search time beside an indexed lookup floor.

For each backend (SQLite, PostgreSQL) a fresh node is filled with ``--objects`` realistic STIX objects
(``bench/gen_stix.py``, seeded) through the store's bulk path (``core.ingest.prepare`` +
``store.add_versions`` in batches of 1,000, as ``kizuna import`` stores them). Every 200th object is
followed by a ``language-content`` with Japanese text for it, and five objects carry a rare word.

Then, in the same process and store, for each query: ``Node.search`` (limit 20, count up to 1,000) as
two principals — the node operator (no policy) and a partner organisation under an agreement up to
TLP:AMBER (the policy hides part of the store) — ``--repeats`` times; median and p99 in ms. The floor is
a plain indexed lookup of one object by id (``store.query_versions`` with ``match[id]``) in the same store.

Queries: ``rare`` (a word in 5 objects), ``ip`` (an address inside one pattern), ``common`` ("Malicious",
in about half the objects), ``ja3`` (標的型攻撃, in every translation: a trigram lookup), ``ja2`` (攻撃, two
characters: found through the index of letter pairs).

Ingest cost of the index: a second fresh store of the same backend imports ``--ingest-objects`` objects
(checked by ``prepare`` and stored, as ``kizuna import`` does) into fresh collections, with the index
and with indexing switched off (a no-op index in place of the backend's), alternating, medians of
``--ingest-runs``; ``ingest_slowdown`` = rate without / rate with.

Each backend runs in its own child process, whose peak RSS is reported. One JSON line at the end.

    python -m bench.bench_search [--objects 1000000] [--repeats 20] [--json]
    python -m bench.bench_search --objects 100000 --backends sqlite --json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import chunked, percentile, run_measured  # noqa: E402
from gen_stix import generate  # noqa: E402

from bench.common import names_in, positive_int
from kizuna.core.ingest import prepare  # noqa: E402
from kizuna.core.node import Node  # noqa: E402
from kizuna.core.principal import NODE_ADMIN, Principal  # noqa: E402
from kizuna.policy import TlpLevel  # noqa: E402
from kizuna.store.base import NewVersion, VersionQuery  # noqa: E402
from kizuna.store.search_index import SearchIndex  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
RARE = "kizunararewordxq"
QUERIES = {"rare": RARE, "ip": None, "common": "Malicious", "ja3": "標的型攻撃", "ja2": "攻撃"}
GOAL_MS = 300


def objects(count: int) -> Iterator[dict[str, Any]]:
    """``count`` objects: generated ones, a translation after every 200th, the rare word in five."""
    rare_at = {count // 7 * k for k in range(1, 6)}
    made = 0
    for index, obj in enumerate(generate(count)):
        if made >= count:
            return
        if index in rare_at:
            obj = {**obj, "description": f"Seen with {RARE} tooling"}
        yield obj
        made += 1
        if index % 200 == 0 and obj["type"] not in ("relationship", "identity", "marking-definition") \
                and made < count:
            yield {
                "type": "language-content", "spec_version": "2.1", "id": f"language-content--{uuid.uuid4()}",
                "created": obj["modified"], "modified": obj["modified"], "object_ref": obj["id"],
                "object_modified": obj["modified"], "object_marking_refs": obj.get("object_marking_refs", []),
                "contents": {"ja": {"name": f"標的型攻撃メール {index}", "description": "攻撃者は政府機関を狙う"}},
            }
            made += 1


def versions(batch: Sequence[dict[str, Any]]) -> list[NewVersion]:
    prepared = [prepare(obj) for obj in batch]
    return [v for v in prepared if isinstance(v, NewVersion)]


def switched_off(index: SearchIndex) -> SearchIndex:
    """The backend's own index with indexing switched off, to measure what the index costs an import."""

    class NoIndex(type(index)):  # type: ignore[misc,valid-type]
        def index_added(self, cur: Any, collection_pk: int, first_added: int,
                        added: dict[int, tuple[bytes, str | None]]) -> None:
            return None

    return NoIndex()


def new_node(backend: str, where: Path) -> tuple[Node, Callable[[], None]]:
    if backend == "sqlite":
        node = Node.init(where, None, org_name="NCSC UK", country="GBR")
        return node, node.close
    import psycopg

    name = f"kizuna_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    node = Node.init(where, PG_ADMIN.rsplit("/", 1)[0] + "/" + name, org_name="NCSC UK", country="GBR")

    def drop() -> None:
        node.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return node, drop


def timed(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    call()  # warm the caches the first call fills
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": round(statistics.median(times), 2), "p99_ms": round(percentile(times, 0.99) or 0, 2)}


def search_figures(node: Node, count: int, repeats: int) -> dict[str, Any]:
    collection = node.create_collection("Bench", alias="bench")
    start = time.perf_counter()
    ips: list[str] = []
    ids: list[str] = []
    for batch in chunked(objects(count), 1000):
        prepared = versions(batch)
        node.store.add_versions(collection.pk, prepared)
        ids.append(prepared[-1].stix_id)
        ips += [o["pattern"].split("'")[1] for o in batch if "ipv4-addr:value" in o.get("pattern", "")][:1]
    build_s = time.perf_counter() - start
    node.create_organisation("JPCERT/CC", "JPN")
    node.set_agreement("uk-jp", "JPCERT/CC", max_tlp=TlpLevel.AMBER)
    _, secret = node.create_token("JPCERT/CC", read=[collection.id])
    partner = node.authenticate(secret)
    assert partner is not None
    rng = random.Random(7)
    floor = timed(lambda: node.store.query_versions(VersionQuery(collection.pk, ids=(rng.choice(ids),))), repeats)
    queries = {**QUERIES, "ip": rng.choice(ips)}
    figures: dict[str, Any] = {}
    principals: dict[str, Principal] = {"operator": NODE_ADMIN, "partner": partner}
    for label, text in queries.items():
        assert text is not None
        for who, principal in principals.items():
            result = node.searcher.search(principal, text, limit=20)
            figures[f"{label}_{who}"] = {
                **timed(lambda p=principal, t=text: node.searcher.search(p, t, limit=20), repeats),
                "count": result.count, "exact": result.count_exact,
            }
    return {"stored": node.store.collection_stats(collection.pk)[0], "build_s": round(build_s, 1),
            "floor_id_lookup": floor, "queries": figures}


def ingest_figures(node: Node, count: int, runs: int) -> dict[str, Any]:
    batches = list(chunked(objects(count), 1000))
    store: Any = node.store
    indexed = store.search_index
    rates: dict[str, list[float]] = {"with_index": [], "without_index": []}
    for run in range(runs):
        for mode in rates:
            collection = node.create_collection(f"ingest {mode} {run}")
            store.search_index = indexed if mode == "with_index" else switched_off(indexed)
            start = time.perf_counter()
            for batch in batches:  # checked and stored as `kizuna import` does
                store.add_versions(collection.pk, versions(batch))
            rates[mode].append(sum(map(len, batches)) / (time.perf_counter() - start))
    store.search_index = indexed
    with_index, without = (statistics.median(rates[m]) for m in ("with_index", "without_index"))
    return {"objects": sum(map(len, batches)), "with_index_per_s": round(with_index),
            "without_index_per_s": round(without), "ingest_slowdown": round(without / with_index, 3)}


def child(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        node, done = new_node(args.child, Path(tmp) / "search")
        try:
            result = search_figures(node, args.objects, args.repeats)
        finally:
            done()
        node, done = new_node(args.child, Path(tmp) / "ingest")
        try:
            result["ingest"] = ingest_figures(node, args.ingest_objects, args.ingest_runs)
        finally:
            done()
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=positive_int, default=1_000_000, help="objects in the searched store")
    parser.add_argument("--repeats", type=positive_int, default=20, help="times each query is timed")
    parser.add_argument("--ingest-objects", type=positive_int, default=100_000,
                        help="objects posted to measure what the search index costs ingest")
    parser.add_argument("--ingest-runs", type=positive_int, default=3, help="runs of that ingest measurement")
    parser.add_argument("--backends", type=names_in(("sqlite", "postgresql")), default=["sqlite", "postgresql"],
                        help="stores to measure, comma-separated (sqlite, postgresql)")
    parser.add_argument("--json", action="store_true", help="print one JSON line on standard output")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    result: dict[str, Any] = {"bench": "search", "objects": args.objects, "repeats": args.repeats,
                              "goal_ms": GOAL_MS}
    for backend in args.backends:
        command = [sys.executable, "-m", "bench.bench_search", "--child", backend, "--objects", str(args.objects),
                   "--repeats", str(args.repeats), "--ingest-objects", str(args.ingest_objects),
                   "--ingest-runs", str(args.ingest_runs)]
        code, seconds, rss, out, err = run_measured(command)
        if code != 0:
            raise SystemExit(f"bench_search: the {backend} run failed:\n{err}")
        result[backend] = {**json.loads(out.strip().splitlines()[-1]), "peak_rss_mb": rss,
                           "wall_s": round(seconds, 1)}
        if not args.json:
            print(f"{backend}: {json.dumps(result[backend], ensure_ascii=False, indent=1)}", file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
