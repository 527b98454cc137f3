"""TAXII ingest with its CPU split between the Kizuna server and the database, alternating with another code tree.

Each round sets up a fresh node through the `kizuna` command (SQLite file or a fresh PostgreSQL database),
starts `kizuna serve`, POSTs the first few envelopes of `bench.gen_stix` to warm it up, then times the rest:
objects/s, the server process's CPU seconds and peak RSS and, on PostgreSQL, the CPU seconds of every
PostgreSQL process on the machine (its backends, the search backlog's drain, the WAL writer; other databases'
work counts too, so run it on a quiet machine). With ``--compare PATH`` every round also runs the Kizuna code
at PATH (e.g. a worktree of an earlier commit) on its own fresh node, the two taking turns going first; medians
and the ratios of this code over that one are reported.

    python -m bench.bench_ingest_cpu --store postgresql --objects 40000 --rounds 4 --compare /tmp/wt_old --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.bench_taxii import PER_ENVELOPE, KizunaNode
from bench.common import free_loopback_port, kizuna_tree, positive_int, post_envelopes, process_counters, store_url
from bench.gen_stix import envelopes

WARM_UP_ENVELOPES = 5


def postgres_cpu_seconds() -> float:
    """User + system CPU seconds of every process named postgres so far."""
    found = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout.split()
    return sum(process_counters(int(pid))[0] for pid in found)


def one_round(kind: str, payloads: list[bytes], admin_url: str, code: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if code is not None:
        # The compared tree first on the path, and not the working directory (python -m would put it first).
        env["PYTHONPATH"] = str(Path(code).resolve()) + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONSAFEPATH"] = "1"
    with tempfile.TemporaryDirectory(prefix="kizuna-ingest-cpu-") as tmp, store_url(kind, Path(tmp), admin_url) as url:
        node = KizunaNode(Path(tmp) / "node", url)
        node.env.update(env)
        collection = node.create()
        token = node.token(collection)
        port = free_loopback_port()
        server = node.server(port, token, None)
        server.start()
        try:
            assert server.process is not None
            base = f"http://127.0.0.1:{port}/main/"
            objects_url, status_url = f"{base}collections/{collection}/objects/", f"{base}status/"
            with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120.0) as client:
                post_envelopes(client, objects_url, payloads[:WARM_UP_ENVELOPES], [], status_url_prefix=status_url)
                server_before, database_before = process_counters(server.process.pid)[0], postgres_cpu_seconds()
                stage = post_envelopes(client, objects_url, payloads[WARM_UP_ENVELOPES:], [],
                                       status_url_prefix=status_url)
                server_cpu = process_counters(server.process.pid)[0] - server_before
                database_cpu = postgres_cpu_seconds() - database_before if kind == "postgresql" else 0.0
        finally:
            server.stop()
    return {"objects_per_s": stage["objects_per_s"], "seconds": stage["seconds"],
            "server_cpu_s": round(server_cpu, 2), "database_cpu_s": round(database_cpu, 2),
            "server_peak_rss_mb": server.peak_rss_mb or 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="postgresql", help="the backend")
    parser.add_argument("--objects", type=positive_int, default=40_000, help="objects a round (envelopes of 1,000)")
    parser.add_argument("--rounds", type=positive_int, default=3, help="rounds; medians are reported")
    parser.add_argument("--compare", metavar="PATH", type=kizuna_tree, help="also run the Kizuna code at PATH")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="admin connection; each round creates a fresh kizuna_bench_* database and drops it")
    parser.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    args = parser.parse_args(argv)
    if args.objects <= WARM_UP_ENVELOPES * PER_ENVELOPE:
        parser.error(f"--objects must be more than the {WARM_UP_ENVELOPES * PER_ENVELOPE:,} objects of the warm-up")
    payloads = envelopes(args.objects, PER_ENVELOPE)
    codes: dict[str, str | None] = {"this": None}
    if args.compare:
        codes["compared"] = args.compare
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in codes}
    for round_index in range(args.rounds):
        for name, code in list(codes.items())[:: 1 if round_index % 2 else -1]:  # the compared code first in round 1
            try:
                result = one_round(args.store, payloads, args.pg_url, code)
            except (psycopg.Error, RuntimeError) as error:  # no database, or a node that would not start
                parser.exit(1, f"bench_ingest_cpu: {' '.join(str(error).split())[:500]}\n")
            runs[name].append(result)
            print(f"round {round_index + 1} {name}: {result['objects_per_s']:,.0f} objects/s, server CPU "
                  f"{result['server_cpu_s']} s, PostgreSQL CPU {result['database_cpu_s']} s, server peak RSS "
                  f"{result['server_peak_rss_mb']} MB", file=sys.stderr)
    medians = {name: {key: statistics.median(run[key] for run in found) for key in found[0]}
               for name, found in runs.items()}
    summary: dict[str, Any] = {"bench": "ingest_cpu", "store": args.store, "objects": args.objects,
                               "timed_objects": args.objects - WARM_UP_ENVELOPES * PER_ENVELOPE,
                               "rounds": args.rounds, "runs": runs, "medians": medians}
    if args.compare:
        this, other = medians["this"], medians["compared"]
        summary["compare"] = args.compare
        summary["this_over_compared"] = {key: round(this[key] / other[key], 3) for key in this if other[key]}
        print(f"this / compared: {summary['this_over_compared']}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
