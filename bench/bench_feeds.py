"""Feed endpoints (`GET /feeds/<name>.<ext>`) over real HTTP, beside their floors, in one run.

Goals (the interchange issue): a request for an unchanged list <= 5 ms; a blocklist or RPZ of 1M
indicators <= 5 s with peak RSS <= 300 MB. A node is set up through the public commands
(`kizuna init`, `import` of generated indicators — half IPv4, half domains, TLP:GREEN — `feeds
create`, `serve`), read with a partner organisation's token so every object goes through the
marking policy. Measured:

* **304**: `If-None-Match` with the current validator, `--requests` times on one keep-alive client;
  floor: `GET /healthz` on the same client (the HTTP round trip with no work behind it).
* **full build**: a GET without validators (the list rebuilt from the caller's view), `--runs`
  times; floor: `kizuna export --as-token-id` of the same feed to a file (the same view and writer,
  no HTTP, its own process) and a bare SQLite read of the stored bodies (the store's floor).
* **server peak RSS**: VmHWM of the `kizuna serve` process after the builds.

    python -m bench.bench_feeds                                  # 200k indicators, 3 runs
    python -m bench.bench_feeds --indicators 1000000 --runs 3 --json
    python -m bench.bench_feeds --compare /path/to/main-worktree  # A/B: builds of both codes, alternating

With ``--compare PATH`` only the full builds are measured, on this code's server and on a server running
the Kizuna code at PATH over the same data, alternating build by build; ``speedup`` is PATH's median
build time over this code's, with each server's CPU seconds per build (from /proc) beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.bench_formats import write_indicators
from bench.common import (
    ServerProcess,
    free_loopback_port,
    kizuna_tree,
    percentile,
    positive_int,
    process_counters,
    run_measured,
)

GOALS = {"not_modified_ms": 5.0, "build_seconds_per_1m": 5.0, "peak_rss_mb": 300}
FEEDS = {"txt": ("ips", "txt", ["--type", "ip"]), "rpz": ("zone", "rpz", [])}


def kizuna(data: Path, *args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "kizuna", "--data", str(data), *args, "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def setup(folder: Path, count: int) -> tuple[Path, str, str, float]:
    data, source = folder / "node", folder / "indicators.jsonl"
    print(f"writing and importing {count:,} indicators ...", file=sys.stderr)
    write_indicators(source, count)
    kizuna(data, "init", "--org-name", "NCSC UK", "--country", "GBR")
    kizuna(data, "collections", "create", "--title", "Blocklist", "--alias", "block")
    kizuna(data, "orgs", "create", "JPCERT/CC", "--country", "JPN")
    # TLP:GREEN reaches the partner through a shared community, as under a pact
    kizuna(data, "policy", "communities", "uk-jp")
    kizuna(data, "policy", "org", "JPCERT/CC", "--community", "uk-jp")
    started = time.perf_counter()
    kizuna(data, "import", str(source), "--collection", "block")
    imported_s = time.perf_counter() - started
    token = kizuna(data, "tokens", "create", "--org", "JPCERT/CC", "--read", "block")
    for name, fmt, extra in FEEDS.values():
        kizuna(data, "feeds", "create", name, "--format", fmt, "--collection", "block", *extra)
    return data, token["token"], token["id"], imported_s


def store_floor(data: Path, runs: int) -> float:
    """Seconds to read every stored body of the node's SQLite file, nothing else."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        with sqlite3.connect(data / "kizuna.db") as db:
            for (_body,) in db.execute("SELECT body FROM objects"):
                pass
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(data: Path, token: str, token_id: str, runs: int, requests: int) -> dict[str, Any]:
    port = free_loopback_port()
    server = ServerProcess([sys.executable, "-m", "kizuna", "--data", str(data), "serve", "--port", str(port),
                            "--no-sync"], f"http://127.0.0.1:{port}/healthz")
    out: dict[str, Any] = {}
    with server, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600,
                              headers={"Authorization": f"Bearer {token}"}) as client:
        for key, (name, fmt, _extra) in FEEDS.items():
            path = f"/feeds/{name}.{'rules' if fmt == 'suricata' else fmt}"
            builds, size, etag = [], 0, ""
            for _ in range(runs):
                started = time.perf_counter()
                response = client.get(path)
                builds.append(time.perf_counter() - started)
                response.raise_for_status()
                size, etag = len(response.content), response.headers["etag"]
            latencies = []
            for _ in range(requests):
                started = time.perf_counter()
                response = client.get(path, headers={"If-None-Match": etag})
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 304, response.status_code
            export_times, export_rss = [], 0.0
            for _ in range(runs):
                code, seconds, rss, _o, err = run_measured(
                    [sys.executable, "-m", "kizuna", "--data", str(data), "export", "--collection", "block",
                     "--format", fmt, "--as-token-id", token_id, "-o", str(data.parent / f"out.{fmt}"), "--quiet",
                     *(["--type", "ip"] if fmt == "txt" else [])])
                assert code == 0, err
                export_times.append(seconds)
                export_rss = max(export_rss, rss)
            out[key] = {"build_s": round(statistics.median(builds), 3), "first_build_s": round(builds[0], 3),
                        "bytes": size, "not_modified_ms_p50": round(statistics.median(latencies), 2),
                        "not_modified_ms_p99": round(percentile(latencies, 0.99) or 0, 2),
                        "export_cli_s": round(statistics.median(export_times), 3),
                        "export_cli_peak_rss_mb": export_rss}
        floor = []
        for _ in range(requests):
            started = time.perf_counter()
            client.get("/healthz").raise_for_status()
            floor.append((time.perf_counter() - started) * 1000)
        out["healthz_ms_p50"] = round(statistics.median(floor), 2)
        out["healthz_ms_p99"] = round(percentile(floor, 0.99) or 0, 2)
        out["server_peak_rss_mb"] = server.sample_peak_rss()
    return out


def compare_builds(data: Path, token: str, runs: int, other: str) -> dict[str, Any]:
    """Median build seconds and server CPU seconds of each feed on this code and on the code at ``other``."""
    servers = {}
    for code in ("this", "compared"):
        port = free_loopback_port()
        env = dict(os.environ)
        if code == "compared":
            env["PYTHONPATH"] = str(Path(other).resolve()) + os.pathsep + env.get("PYTHONPATH", "")
            # without the working directory first on sys.path (python -m puts it there), or the
            # repository's own kizuna/ would shadow the code under comparison
            env["PYTHONSAFEPATH"] = "1"
        servers[code] = ServerProcess([sys.executable, "-m", "kizuna", "--data", str(data), "serve", "--port",
                                       str(port), "--no-sync"], f"http://127.0.0.1:{port}/healthz", env=env)
    out: dict[str, Any] = {}
    try:
        for server in servers.values():
            server.start()
        clients = {code: httpx.Client(base_url=server.ready_url.rsplit("/", 1)[0], timeout=600,
                                      headers={"Authorization": f"Bearer {token}"}) for code, server in servers.items()}
        for key, (name, fmt, _extra) in FEEDS.items():
            path = f"/feeds/{name}.{fmt}"
            wall: dict[str, list[float]] = {code: [] for code in servers}
            cpu: dict[str, list[float]] = {code: [] for code in servers}
            bodies = {}
            for _ in range(runs):
                for code, client in clients.items():
                    pid = servers[code].process.pid if servers[code].process is not None else 0
                    before, started = process_counters(pid)[0], time.perf_counter()
                    response = client.get(path)
                    wall[code].append(time.perf_counter() - started)
                    cpu[code].append(process_counters(pid)[0] - before)
                    response.raise_for_status()
                    bodies[code] = response.headers["etag"]
            assert bodies["this"] == bodies["compared"], "the two codes built different lists"
            out[key] = {code: {"build_s": round(statistics.median(wall[code]), 3),
                               "server_cpu_s": round(statistics.median(cpu[code]), 3)} for code in servers}
            out[key]["speedup"] = round(out[key]["compared"]["build_s"] / out[key]["this"]["build_s"], 2)
            out[key]["server_cpu_speedup"] = round(
                out[key]["compared"]["server_cpu_s"] / max(out[key]["this"]["server_cpu_s"], 0.01), 2)
        for client in clients.values():
            client.close()
    finally:
        for code, server in servers.items():
            out[f"{code}_server_peak_rss_mb"] = server.sample_peak_rss()
            server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--indicators", type=positive_int, default=200_000, help="indicators in the feed's collection")
    parser.add_argument("--runs", type=positive_int, default=3, help="full builds per feed (median reported)")
    parser.add_argument("--requests", type=positive_int, default=500, help="304 requests per feed")
    parser.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    parser.add_argument("--compare", metavar="PATH", type=kizuna_tree,
                        help="A/B the full builds against the Kizuna code at PATH")
    args = parser.parse_args()
    if args.compare:
        with tempfile.TemporaryDirectory(prefix="kizuna-bench-feeds-") as tmp:
            data, token, _token_id, _imported_s = setup(Path(tmp), args.indicators)
            ab = compare_builds(data, token, args.runs, args.compare)
        summary = {"bench": "feeds-compare", "indicators": args.indicators, "runs": args.runs,
                   "compared": args.compare, **ab, "load_average_1m": round(os.getloadavg()[0], 2)}
        for key in FEEDS:
            r = ab[key]
            print(f"{key:4} this {r['this']['build_s']} s (server CPU {r['this']['server_cpu_s']} s)  compared "
                  f"{r['compared']['build_s']} s (CPU {r['compared']['server_cpu_s']} s)  speedup {r['speedup']} "
                  f"(CPU {r['server_cpu_speedup']})", file=sys.stderr)
        if args.json:
            print(json.dumps(summary))
        return
    with tempfile.TemporaryDirectory(prefix="kizuna-bench-feeds-") as tmp:
        data, token, token_id, imported_s = setup(Path(tmp), args.indicators)
        result = measure(data, token, token_id, args.runs, args.requests)
        result["store_floor_s"] = round(store_floor(data, args.runs), 3)
    per_1m = 1_000_000 / args.indicators
    summary = {"bench": "feeds", "indicators": args.indicators, "runs": args.runs, "requests": args.requests,
               "import_s": round(imported_s, 1), **result, "goals": GOALS,
               "build_s_per_1m": {k: round(result[k]["build_s"] * per_1m, 2) for k in FEEDS},
               "load_average_1m": round(os.getloadavg()[0], 2)}
    print(f"{'feed':6} {'build s':>8} {'export CLI s':>12} {'store floor s':>13} {'304 p50/p99 ms':>15} "
          f"{'healthz p50/p99':>16} {'bytes':>11}", file=sys.stderr)
    for key in FEEDS:
        r = result[key]
        print(f"{key:6} {r['build_s']:>8} {r['export_cli_s']:>12} {result['store_floor_s']:>13} "
              f"{r['not_modified_ms_p50']:>7}/{r['not_modified_ms_p99']:<7} "
              f"{result['healthz_ms_p50']:>8}/{result['healthz_ms_p99']:<7} {r['bytes']:>11,}", file=sys.stderr)
    print(f"server peak RSS {result['server_peak_rss_mb']} MB; export CLI peak RSS "
          f"{max(result[k]['export_cli_peak_rss_mb'] for k in FEEDS)} MB; goals {GOALS}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
