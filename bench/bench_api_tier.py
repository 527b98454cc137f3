"""Benchmark: the API tier — 1, 2 and 4 `kizuna serve` processes on one PostgreSQL database.

    python -m bench.bench_api_tier --json                        # 1/2/4 processes, 6 s a phase (~2 min)
    python -m bench.bench_api_tier --processes 1,2,4,8 --seconds 30 --objects 100000 --json   # quiet machine

One node (one data directory, so one store URL and one set of keys) on a fresh PostgreSQL
database; N real `kizuna serve --no-sync` processes on loopback ports, as behind a load balancer.
The load generator runs in a process of its own, with `--connections` keep-alive connections per
server process (round-robin, one thread each), for a fixed time per phase:

* read   — `GET .../objects/?match[type]=indicator&added_after=<random instant>&limit=500` on a
  collection of `--objects` generated objects, read with a partner organisation's token (so
  through the read policy); objects/s counted from the envelopes;
* write  — `POST .../objects/` envelopes of 100 new indicators, every process into one collection
  (ingest takes the collection's lock, so this is the single-writer case);
* spread — the same, each process into a collection of its own.

For each phase: objects/s, requests/s, request latency p50/p99, the CPU seconds of the servers and
of the load generator, and the machine's busy share (from /proc/stat: on a shared machine it
includes other work, which is why the servers' and the load generator's own shares are given).
Peak RSS per server process. The last line (`--json`) is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.bench_taxii import KizunaNode, kizuna_command
from bench.common import (
    TAXII_HEADERS,
    TAXII_MEDIA_TYPE,
    ServerProcess,
    descendant_pids,
    free_loopback_port,
    percentile,
    positive_int,
    post_envelopes,
    store_url,
    taxii_timestamp,
)
from bench.gen_stix import envelopes

TICK = os.sysconf("SC_CLK_TCK")


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of these processes and their descendants."""
    total = 0
    for pid in {p for root in pids for p in (root, *descendant_pids(root))}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def database_pids(admin_url: str, database_url: str) -> list[int]:
    """The PostgreSQL backends serving this database now (the servers keep their connections)."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database_url.rsplit("/", 1)[1],)
        ).fetchall()
    return [int(row[0]) for row in rows]


def _indicator_envelope(size: int) -> bytes:
    stamp = "2026-01-01T00:00:00.000Z"
    return orjson.dumps({"objects": [
        {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": stamp,
         "modified": stamp, "pattern": f"[ipv4-addr:value = '198.51.100.{n % 250}']", "pattern_type": "stix",
         "valid_from": "2026-01-01T00:00:00Z"}
        for n in range(size)
    ]})


def drive(mode: str, urls: list[str], token: str, seconds: float, connections: int, marks: list[str]) -> dict[str, Any]:
    """The load generator (runs in its own process): every thread keeps one connection busy."""
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    totals = {"objects": 0, "requests": 0, "errors": 0}
    latencies: list[float] = []
    cpu_before = time.process_time()

    def worker(url: str, seed: int) -> None:
        rng = random.Random(seed)
        objects = requests = errors = 0
        mine: list[float] = []
        headers = {"Authorization": f"Bearer {token}", "Accept": TAXII_MEDIA_TYPE}
        with httpx.Client(headers=headers, timeout=60.0) as client:
            while time.monotonic() < deadline:
                began = time.perf_counter()
                if mode == "read":
                    params = {"match[type]": "indicator", "added_after": rng.choice(marks), "limit": "500"}
                    response = client.get(url, params=params)
                    count = len(orjson.loads(response.content).get("objects", [])) if response.status_code == 200 else 0
                else:
                    response = client.post(url, content=_indicator_envelope(100), headers=TAXII_HEADERS)
                    count = response.json().get("success_count", 0) if response.status_code == 202 else 0
                mine.append((time.perf_counter() - began) * 1000)
                requests += 1
                objects += count
                errors += response.status_code not in (200, 202)
        with lock:
            totals["objects"] += objects
            totals["requests"] += requests
            totals["errors"] += errors
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(url, n)) for n, url in enumerate(urls * connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        **totals,
        "seconds": round(elapsed, 2),
        "objects_per_s": round(totals["objects"] / elapsed),
        "requests_per_s": round(totals["requests"] / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5) or 0, 1),
        "p99_ms": round(percentile(latencies, 0.99) or 0, 1),
        "loadgen_cpu_s": round(time.process_time() - cpu_before, 2),
    }


def phase(pool: Any, servers: list[ServerProcess], mode: str, urls: list[str], token: str,
          args: argparse.Namespace, marks: list[str], database_url: str) -> dict[str, Any]:
    pids = [s.process.pid for s in servers if s.process is not None]
    # A short warm-up opens every server's database connections, so their backends can be measured.
    pool.submit(drive, mode, urls, token, 1.0, args.connections, marks).result()
    backends = database_pids(args.pg_url, database_url)
    busy0, total0 = machine_jiffies()
    cpu0, db0 = cpu_seconds(pids), cpu_seconds(backends)
    result: dict[str, Any] = pool.submit(drive, mode, urls, token, args.seconds, args.connections, marks).result()
    busy1, total1 = machine_jiffies()
    result["servers_cpu_s"] = round(cpu_seconds(pids) - cpu0, 2)
    result["database_cpu_s"] = round(cpu_seconds(backends) - db0, 2)
    window = result["seconds"] * os.cpu_count()  # type: ignore[operator]
    result["machine_busy"] = round((busy1 - busy0) / max(total1 - total0, 1), 2)
    result["servers_cpu_share"] = round(result["servers_cpu_s"] / window, 2)
    result["database_cpu_share"] = round(result["database_cpu_s"] / window, 2)
    result["loadgen_cpu_share"] = round(result["loadgen_cpu_s"] / window, 2)
    # What one core buys: comparable between a loaded and a quiet machine, unlike objects/s.
    result["objects_per_server_cpu_s"] = round(result["objects"] / max(result["servers_cpu_s"], 0.01))
    result["objects_per_database_cpu_s"] = round(result["objects"] / max(result["database_cpu_s"], 0.01))
    if result["errors"]:
        raise RuntimeError(f"{mode} with {len(servers)} processes: {result['errors']} failed requests")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", default="1,2,4", help="comma-separated process counts (default 1,2,4)")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each phase (default 6)")
    parser.add_argument("--objects", type=positive_int, default=20_000,
                        help="objects in the read collection (default 20,000)")
    parser.add_argument("--connections", type=positive_int, default=2, help="client connections per server process")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="admin connection; a fresh kizuna_bench_* database is created and dropped")
    parser.add_argument("--json", action="store_true", help="print one JSON line with every figure")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]

    figures: dict[str, Any] = {"bench": "api_tier", "cpus": os.cpu_count(), "objects": args.objects,
                               "seconds_per_phase": args.seconds, "connections_per_process": args.connections,
                               "runs": {}}
    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    with (
        tempfile.TemporaryDirectory(prefix="kizuna-api-tier-") as tmp,
        store_url("postgresql", Path(tmp), args.pg_url) as url,
    ):
        node = KizunaNode(Path(tmp) / "node", url)
        read_collection = node.create()
        write_collections = [
            node.cli("collections", "create", "--title", f"writes {n}")["id"] for n in range(max(counts) + 1)
        ]
        node.cli("orgs", "create", "Bench Partner")
        grants = ["--read", read_collection] + [x for c in write_collections for x in ("--write", c)]
        token = node.cli("tokens", "create", "--org", "Bench Partner", "--write", read_collection, *grants)["token"]
        for count in counts:
            servers = []
            for _ in range(count):
                port = free_loopback_port()
                server = ServerProcess(
                    [*kizuna_command(), "--data", str(node.data_dir), "serve", "--port", str(port), "--no-sync"],
                    ready_url=f"http://127.0.0.1:{port}/taxii2/", env=node.env,
                    headers={"Accept": TAXII_MEDIA_TYPE, "Authorization": f"Bearer {token}"},
                    log_path=Path(tmp) / f"serve-{port}.log",
                )
                server.start()
                servers.append((port, server))
            try:
                bases = [f"http://127.0.0.1:{port}/main/collections/" for port, _ in servers]
                procs = [server for _, server in servers]
                if count == counts[0]:
                    marks: list[str] = []
                    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120.0) as client:
                        loaded = post_envelopes(client, f"{bases[0]}{read_collection}/objects/",
                                                envelopes(args.objects, 1000), marks)
                    marks = marks[: max(1, len(marks) * 9 // 10)]  # instants with at least a page after them
                    figures["load"] = {"objects_per_s": loaded["objects_per_s"], "seconds": loaded["seconds"]}
                    print(f"loaded {args.objects:,} objects at {loaded['objects_per_s']:,}/s", file=sys.stderr)
                run = {
                    "read": phase(pool, procs, "read", [f"{b}{read_collection}/objects/" for b in bases],
                                  token, args, marks, url),
                    "write": phase(pool, procs, "write", [f"{b}{write_collections[0]}/objects/" for b in bases],
                                   token, args, marks, url),
                    "spread": phase(pool, procs, "write",
                                    [f"{b}{write_collections[1 + n]}/objects/" for n, b in enumerate(bases)],
                                    token, args, marks, url),
                }
            finally:
                for _, server in servers:
                    server.stop()
            run["peak_rss_mb_per_process"] = max(s.peak_rss_mb or 0 for s in procs)
            figures["runs"][str(count)] = run
            print(
                f"{count} process(es): read {run['read']['objects_per_s']:,} obj/s "
                f"(p50 {run['read']['p50_ms']} ms, p99 {run['read']['p99_ms']} ms; "
                f"{run['read']['objects_per_server_cpu_s']:,} per server CPU-s), "
                f"write one collection {run['write']['objects_per_s']:,} obj/s "
                f"({run['write']['objects_per_server_cpu_s']:,} per server CPU-s, "
                f"{run['write']['objects_per_database_cpu_s']:,} per database CPU-s), "
                f"one collection each {run['spread']['objects_per_s']:,} obj/s; "
                f"machine busy {run['read']['machine_busy']:.0%}/{run['write']['machine_busy']:.0%}, "
                f"servers {run['read']['servers_cpu_share']:.0%}/{run['write']['servers_cpu_share']:.0%} and "
                f"database {run['read']['database_cpu_share']:.0%}/{run['write']['database_cpu_share']:.0%} of "
                f"{os.cpu_count()} cores; peak RSS {run['peak_rss_mb_per_process']} MB a process",
                file=sys.stderr,
            )
    pool.shutdown()
    first = figures["runs"][str(counts[0])]
    for run in figures["runs"].values():
        for name in ("read", "write", "spread"):
            run[name]["vs_first"] = round(run[name]["objects_per_s"] / max(first[name]["objects_per_s"], 1), 2)
    figures["stamp"] = taxii_timestamp()
    figures["median_machine_busy"] = statistics.median(
        run[name]["machine_busy"] for run in figures["runs"].values() for name in ("read", "write", "spread")
    )
    if args.json:
        print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
