"""Benchmark: filtered TAXII pages on a large PostgreSQL collection, p50/p99 per kind of filter.

    python -m bench.bench_pg_pages --count 1000000 --json      # fresh database, load 1M (bench/pg_load.py), measure
    python -m bench.bench_pg_pages --count 10000000 --json     # the issue's 10M (quiet machine: ~15 min to load)
    python -m bench.bench_pg_pages --data DIR --collection big --json   # a node loaded before (kept)

A real `kizuna serve --no-sync` on the node answers GET .../objects/ with `limit=100` for a partner
organisation's token (`--reader partner`, the default: every page goes through the read policy,
which hides the generated TLP:GREEN and TLP:AMBER objects from an organisation outside their
community, so a page reads about five stored versions for each one it returns) or the node's own
organisation's (`--reader own`: sees everything), one request at a time over a keep-alive
connection, for these filters (drawn from the collection itself: random stored ids, random
`date_added` instants, the generated types), interleaved in random order:

    type          match[type]=T                                  first page of a type
    added_after   added_after=t                                  a page from a random point
    type_after    match[type]=T&added_after=t
    id            match[id]=X                                    latest version of one object
    id_all        match[id]=X&match[version]=all                 every version of one object
    first_after   match[version]=first&match[type]=T&added_after=t
    next          the page after a type_after page, through its `next` cursor

After 20 warm-up pages the run waits until the server and its database backends, together, use under 5 % of
a core for 2 s (`settle_s` in the output): the first reads of a collection start the server learning its stored
shapes, a scan of the whole collection in steps (core/stored_shapes.py) that took 4 s at 1M and would otherwise
compete with the pages measured. `--no-settle` measures at once, as runs before 2026-12-07 did.

p50 and p99 per filter and over all, the goal (p99 <= 20 ms), the server's peak RSS, and the
PostgreSQL counters of sequential and index scans on `objects` during the measurement (a
sequential scan on a large collection is a missing index, and the run says so). `--json` prints one
JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

from bench.bench_api_tier import cpu_seconds, database_pids
from bench.bench_taxii import KizunaNode, kizuna_command
from bench.common import TAXII_MEDIA_TYPE, ServerProcess, free_loopback_port, percentile, positive_int, store_url
from bench.pg_load import load
from kizuna.config import load_config

GOAL_P99_MS = 20.0
TYPES = ("indicator", "relationship", "malware", "attack-pattern")
KINDS = ("type", "added_after", "type_after", "id", "id_all", "first_after", "next")


def _stamp(micros: int) -> str:
    seconds, fraction = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:06d}Z"


def samples(database_url: str, collection_pk: int, count: int, seed: int) -> tuple[list[str], list[str]]:
    """Random stored ids and `date_added` instants of the collection (a 1 % block sample, then a draw)."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT stix_id, date_added FROM objects TABLESAMPLE SYSTEM (1) WHERE collection_pk = %s",
            (collection_pk,),
        ).fetchall()
        if len(rows) < count:
            rows = connection.execute(
                "SELECT stix_id, date_added FROM objects WHERE collection_pk = %s LIMIT %s", (collection_pk, count * 10)
            ).fetchall()
    rng = random.Random(seed)
    picked = rng.sample(rows, min(count, len(rows)))
    return [row[0] for row in picked], [_stamp(int(row[1]) - 1) for row in picked]


def scan_counters(database_url: str) -> tuple[int, int]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT seq_scan, idx_scan FROM pg_stat_user_tables WHERE relname = 'objects'"
        ).fetchone()
    return (int(row[0]), int(row[1] or 0)) if row else (0, 0)


def params_for(kind: str, rng: random.Random, ids: list[str], instants: list[str]) -> dict[str, str]:
    kind_type, instant, stix_id = rng.choice(TYPES), rng.choice(instants), rng.choice(ids)
    return {
        "type": {"match[type]": kind_type},
        "added_after": {"added_after": instant},
        "type_after": {"match[type]": kind_type, "added_after": instant},
        "id": {"match[id]": stix_id},
        "id_all": {"match[id]": stix_id, "match[version]": "all"},
        "first_after": {"match[version]": "first", "match[type]": kind_type, "added_after": instant},
        "next": {"match[type]": kind_type, "added_after": instant},
    }[kind] | {"limit": "100"}


def settle(pids: Callable[[], list[int]], window_s: float = 2.0, quiet_share: float = 0.05,
           limit_s: float = 1800.0) -> float:
    """Seconds until the server and its database backends, together, use less than ``quiet_share`` of a core
    over ``window_s``: the work a server starts on a collection's first reads (learning its stored shapes in
    steps along date_added, core/stored_shapes.py; the dashboard's received counts) is done, so the pages
    measured are the steady state's, not pages competing with a scan of the whole collection."""
    began = time.perf_counter()
    used = cpu_seconds(pids())
    while time.perf_counter() - began < limit_s:
        time.sleep(window_s)
        now = cpu_seconds(pids())
        if now - used < quiet_share * window_s:
            break
        used = now
    return round(time.perf_counter() - began, 1)


def measure(url: str, token: str, ids: list[str], instants: list[str], queries: int, seed: int,
            settled: Callable[[], float]) -> dict[str, Any]:
    rng = random.Random(seed)
    plan = [kind for kind in KINDS for _ in range(queries)]
    rng.shuffle(plan)
    timings: dict[str, list[float]] = {kind: [] for kind in KINDS}
    returned: dict[str, int] = dict.fromkeys(KINDS, 0)
    headers = {"Authorization": f"Bearer {token}", "Accept": TAXII_MEDIA_TYPE}
    with httpx.Client(headers=headers, timeout=60.0) as client:
        for warm in range(20):  # connection set-up, the server's first plans and caches
            client.get(url, params=params_for(KINDS[warm % len(KINDS)], rng, ids, instants))
        settle_s = settled()
        for kind in plan:
            params = params_for(kind, rng, ids, instants)
            if kind == "next":
                first = client.get(url, params=params).json()
                if not first.get("next"):
                    continue  # the last page already: nothing to follow
                params = {**params, "next": first["next"]}
            began = time.perf_counter()
            response = client.get(url, params=params)
            took = (time.perf_counter() - began) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"{kind} {params} -> {response.status_code}: {response.text[:300]}")
            timings[kind].append(took)
            returned[kind] += len(orjson.loads(response.content).get("objects", []))
    result: dict[str, Any] = {"settle_s": settle_s}
    for kind, values in timings.items():
        result[kind] = {
            "queries": len(values),
            "p50_ms": round(percentile(values, 0.5) or 0, 2),
            "p99_ms": round(percentile(values, 0.99) or 0, 2),
            "avg_objects": round(returned[kind] / max(len(values), 1), 1),
        }
    everything = [t for values in timings.values() for t in values]
    result["all"] = {"queries": len(everything), "p50_ms": round(percentile(everything, 0.5) or 0, 2),
                     "p99_ms": round(percentile(everything, 0.99) or 0, 2)}
    return result


def run(node: KizunaNode, collection: str, args: argparse.Namespace) -> dict[str, Any]:
    database_url = load_config(node.data_dir).store_url
    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT c.pk, COUNT(o.seq) FROM collections c LEFT JOIN objects o ON o.collection_pk = c.pk "
            "WHERE c.id = %s OR c.alias = %s GROUP BY c.pk", (collection, collection)
        ).fetchone()
    if row is None:
        raise SystemExit(f"no collection {collection!r}")
    collection_pk, stored = int(row[0]), int(row[1])
    collection_id = node.cli("collections", "list")["collections"]
    collection_id = next(c["id"] for c in collection_id if collection in (c["id"], c.get("alias")))
    if args.reader == "own":
        own = node.cli("status")["identity"]
        reader = next(o["name"] for o in node.cli("orgs", "list")["organisations"] if o["id"] == own)
    else:
        reader = "Bench Partner"
        with contextlib.suppress(RuntimeError):  # already made by an earlier run on this node
            node.cli("orgs", "create", reader)
    token = node.cli("tokens", "create", "--org", reader, "--read", collection_id)["token"]
    ids, instants = samples(database_url, collection_pk, 2000, args.seed)
    port = free_loopback_port()
    server = ServerProcess(
        [*kizuna_command(), "--data", str(node.data_dir), "serve", "--port", str(port), "--no-sync"],
        ready_url=f"http://127.0.0.1:{port}/taxii2/", env=node.env,
        headers={"Accept": TAXII_MEDIA_TYPE, "Authorization": f"Bearer {token}"},
        log_path=node.data_dir.parent / f"serve-{port}.log",
    )
    server.start()
    try:
        before = scan_counters(database_url)
        assert server.process is not None
        server_cpu = cpu_seconds([server.process.pid])
        backends = {pid: cpu_seconds([pid]) for pid in database_pids(args.pg_url, database_url)}
        server_pid = server.process.pid

        def settled() -> float:
            nonlocal server_cpu, backends
            if args.no_settle:
                return 0.0
            took = settle(lambda: [server_pid, *database_pids(args.pg_url, database_url)])
            server_cpu = cpu_seconds([server_pid])  # the measurement's CPU starts here
            backends = {pid: cpu_seconds([pid]) for pid in database_pids(args.pg_url, database_url)}
            return took

        pages = measure(f"http://127.0.0.1:{port}/main/collections/{collection_id}/objects/", token, ids,
                        instants, args.queries, args.seed, settled)
        settle_s = pages.pop("settle_s")
        server_cpu = cpu_seconds([server.process.pid]) - server_cpu
        # Backends opened during the run started from zero, so their whole CPU time is the run's.
        database_cpu = sum(cpu_seconds([pid]) - backends.get(pid, 0.0)
                           for pid in set(backends) | set(database_pids(args.pg_url, database_url)))
        after = scan_counters(database_url)
    finally:
        server.stop()
    requests = pages["all"]["queries"] + pages["next"]["queries"] + 20  # `next` pages fetch their first page too
    return {
        "objects": stored,
        "reader": args.reader,
        "pages": pages,
        "settle_s": settle_s,  # waited after the warm-up for the server's learning of the collection
        "goal_p99_ms": GOAL_P99_MS,
        "meets_goal": pages["all"]["p99_ms"] <= GOAL_P99_MS,
        # CPU per request does not depend on how busy the machine is, unlike the latencies.
        "server_cpu_ms_per_request": round(server_cpu * 1000 / requests, 2),
        "database_cpu_ms_per_request": round(database_cpu * 1000 / requests, 2),
        "objects_seq_scans": after[0] - before[0],
        "objects_index_scans": after[1] - before[1],
        "server_peak_rss_mb": server.peak_rss_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=positive_int, help="make a fresh node and database and load this many objects")
    parser.add_argument("--data", type=Path, help="or: an existing node (PostgreSQL store) to measure as it is")
    parser.add_argument("--collection", default="big", help="its collection id or alias (default: big)")
    parser.add_argument("--queries", type=positive_int, default=200, help="pages per kind of filter (default 200)")
    parser.add_argument("--seed", type=int, default=7,
                        help="seed of the generated objects (the same seed, the same store)")
    parser.add_argument("--reader", choices=("partner", "own"), default="partner",
                        help="a partner organisation's token (the read policy hides the TLP:GREEN and :AMBER "
                             "objects it may not see, so pages read past them) or the node's own (sees all)")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="admin connection for --count: a kizuna_bench_* database is created and dropped")
    parser.add_argument("--no-settle", action="store_true",
                        help="measure right after the warm-up pages, while the server may still be learning the "
                             "collection (by default the run waits until the server and its database are idle)")
    parser.add_argument("--json", action="store_true", help="print one JSON line with every figure")
    args = parser.parse_args()
    if (args.count is None) == (args.data is None):
        parser.error("give --count (fresh node) or --data (existing node)")
    if args.data is not None:
        figures = run(KizunaNode(args.data, ""), args.collection, args)
    else:
        with tempfile.TemporaryDirectory(prefix="kizuna-pg-pages-") as tmp, store_url(
            "postgresql", Path(tmp), args.pg_url
        ) as url:
            node = KizunaNode(Path(tmp) / "node", url)
            node.cli("init", "--store", url, "--org-name", "Bench Node")
            node.cli("collections", "create", "--title", "big", "--alias", "big")
            loaded = load(node.data_dir, "big", args.count)
            figures = run(node, "big", args)
            figures["load"] = loaded
    print(
        f"{figures['objects']:,} objects: " + ", ".join(
            f"{kind} {v['p50_ms']}/{v['p99_ms']} ms" for kind, v in figures["pages"].items()
        ) + f" (p50/p99); goal p99 <= {GOAL_P99_MS} ms: {'met' if figures['meets_goal'] else 'NOT met'}; "
        f"CPU a request: server {figures['server_cpu_ms_per_request']} ms, "
        f"database {figures['database_cpu_ms_per_request']} ms; "
        f"sequential scans of objects: {figures['objects_seq_scans']}; "
        f"server peak RSS {figures['server_peak_rss_mb']} MB",
        file=sys.stderr,
    )
    if args.json:
        print(orjson.dumps({"bench": "pg_pages", **figures}).decode())


if __name__ == "__main__":
    main()
