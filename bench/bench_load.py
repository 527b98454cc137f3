"""Load: many TAXII clients at once against a real ``kizuna serve``, with locust (bench/locust_taxii.py).

The driver makes a node (SQLite, or a fresh PostgreSQL database), stores --objects indicators, makes
one token per client, starts ``kizuna serve --workers N --no-sync`` and runs locust headless with
--users clients (mixed reads, writes and sync paging) for --minutes. While it runs, the server's RSS
(every process it started) is sampled every 5 s. Afterwards, per request kind and in total: requests,
failures, p50 and p99 in ms (locust's figures), and RSS at the start, peak and end, with p99 per
minute so a reader sees whether latency and memory stay flat. The floor beside it in the same run is
the same load on ``GET /healthz`` (no token, no store): what the HTTP stack and locust cost on this
machine. The load runs once per ``--scopes`` value (``serve --rate-limit-scope``, node-wide buckets in
the store against each process's own), on the same node one after the other, so the run also shows
what the shared failed-authentication bucket check costs a request. A table on stderr; --json prints
one JSON line.

    python -m bench.bench_load --users 200 --minutes 10 --backend sqlite      # the issue's run
    python -m bench.bench_load --users 200 --minutes 10 --backend postgresql
    python -m bench.bench_load --users 20 --minutes 1 --floor-minutes 0.25     # a short look
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import descendant_pids, free_loopback_port, positive_int

KIZUNA = [sys.executable, "-m", "kizuna"]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
HERE = Path(__file__).resolve().parent


def _cli(data: Path, *args: str) -> Any:
    done = subprocess.run([*KIZUNA, "--data", str(data), *args, "--json"], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@contextmanager
def _store(backend: str) -> Iterator[list[str]]:
    """``init`` options for a fresh store of ``backend``."""
    if backend == "sqlite":
        yield []
        return
    import psycopg

    name = f"kizuna_bench_load_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ["--store", PG_ADMIN.rsplit("/", 1)[0] + "/" + name]
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _prepare(base: Path, store: list[str], objects: int, users: int) -> tuple[Path, str, list[str], Path]:
    data = base / "node"
    _cli(data, "init", "--org-name", "Load CERT", "--country", "GBR", *store)
    collection = _cli(data, "collections", "create", "--title", "Load", "--alias", "load")["id"]
    ids = [f"indicator--{secrets.token_hex(4)}-0000-4000-8000-{index:012d}" for index in range(objects)]
    bundle = base / "objects.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": "bundle--2f1e9c1a-5d1b-4b8e-9a51-6f7d3c0e4a21",
                                  "objects": [{
                                      "type": "indicator", "spec_version": "2.1", "id": stix_id,
                                      "created": "2026-02-01T00:00:00.000Z", "modified": "2026-02-01T00:00:00.000Z",
                                      "pattern_type": "stix", "valid_from": "2026-02-01T00:00:00Z",
                                      "pattern": f"[ipv4-addr:value = '192.0.2.{index % 250}']"}
                                      for index, stix_id in enumerate(ids)]}))
    _cli(data, "import", str(bundle), "--collection", "load")
    id_file = base / "ids.txt"
    id_file.write_text("\n".join(ids))
    # One token per simulated client; fewer CLI starts: 20 tokens shared round-robin beyond that.
    tokens = [_cli(data, "tokens", "create", "--org", "Load CERT", "--read", "load", "--write", "load")["token"]
              for _ in range(min(users, 20))]
    return data, collection, tokens, id_file


#: The /proc/PID/status lines sampled: resident memory in all, and its parts. RssAnon is the processes'
#: own memory (heap, caches); RssFile counts pages of mapped files resident, which for SQLite includes
#: the store file's pages read through its memory map (they are the kernel's page cache, shared and
#: reclaimable); RssShmem is shared memory (the metrics counters shared between workers).
MEMORY_FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem")


class RssSampler(threading.Thread):
    """Sums VmRSS, RssAnon, RssFile and RssShmem of the server and its workers every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 5.0, store_file: Path | None = None) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.store_file = pid, every, store_file
        self.samples: list[dict[str, float]] = []
        self.by_process: dict[int, list[float]] = {}  # RssAnon MB of each process, per sample
        self.stop = threading.Event()
        self.started = time.monotonic()

    def _sample(self) -> dict[str, float]:
        total = dict.fromkeys(MEMORY_FIELDS, 0)
        for pid in [self.pid, *descendant_pids(self.pid)]:
            try:
                lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            except OSError:
                continue
            for line in lines:
                name, _, value = line.partition(":")
                if name in total:
                    total[name] += int(value.split()[0])
                    if name == "RssAnon":
                        self.by_process.setdefault(pid, []).append(round(int(value.split()[0]) / 1024, 1))
        return {"t": round(time.monotonic() - self.started, 1),
                **{name: round(kb / 1024, 1) for name, kb in total.items()}, "store_fds": self._store_fds()}

    def _store_fds(self) -> int:
        """Descriptors serve's processes hold on the SQLite store file: about one per open connection
        (SQLite hands a closed connection's descriptor to the next one it opens)."""
        if self.store_file is None:
            return 0
        count = 0
        for pid in [self.pid, *descendant_pids(self.pid)]:
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    count += os.readlink(f"/proc/{pid}/fd/{fd}") == str(self.store_file)
                except OSError:
                    continue
        return count

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.samples.append(self._sample())

    def per_minute(self) -> list[dict[str, float]]:
        """The last sample of each minute of the run."""
        minutes: dict[int, dict[str, float]] = {}
        for sample in self.samples:
            minutes[int(sample["t"] // 60)] = sample
        return [minutes[minute] for minute in sorted(minutes)]


def _locust(host: str, locustfile: Path, users: int, minutes: float, prefix: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", host, "-u", str(users),
         "-r", str(max(1, users // 10)), "-t", f"{max(1, round(minutes * 60))}s", "--csv", str(prefix),
         "--csv-full-history", "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "10"],
        env=env, check=False, capture_output=True, text=True, errors="replace",
    )


def _summary(prefix: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with open(f"{prefix}_stats.csv", encoding="utf-8") as stats:
        for row in csv.DictReader(stats):
            out[row["Name"]] = {"requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                                "p50_ms": float(row["50%"] or 0), "p99_ms": float(row["99%"] or 0)}
    per_minute: dict[int, float] = {}
    start = None
    with open(f"{prefix}_stats_history.csv", encoding="utf-8") as history:
        for row in csv.DictReader(history):
            if row["Name"] != "Aggregated" or row["99%"] in ("N/A", ""):
                continue
            stamp = int(row["Timestamp"])
            start = start if start is not None else stamp
            per_minute[(stamp - start) // 60] = float(row["99%"])  # the last cumulative-window value that minute
    out["p99_ms_by_minute"] = [per_minute[minute] for minute in sorted(per_minute)]
    # What failed, and why (locust's failures file: method, name, error, occurrences), so a failure is
    # never only a count.
    with open(f"{prefix}_failures.csv", encoding="utf-8") as failures:
        out["failure_reasons"] = [{"request": f"{row['Method']} {row['Name']}", "error": row["Error"],
                                   "occurrences": int(row["Occurrences"])} for row in csv.DictReader(failures)]
    return out


def _serve(data: Path, workers: int, scope: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_loopback_port()
    server = subprocess.Popen([*KIZUNA, "--data", str(data), "serve", "--port", str(port), "--no-sync",
                               "--workers", str(workers), "--rate-limit-scope", scope],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    host = f"http://127.0.0.1:{port}"
    _wait_ready(host)
    return server, host


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kizuna-bench-load-") as tmp, _store(args.backend) as store:
        base = Path(tmp)
        data, collection, tokens, id_file = _prepare(base, store, args.objects, args.users)
        floor: dict[str, Any] = {}
        for position, scope in enumerate(args.scopes.split(",")):
            server, host = _serve(data, args.workers, scope)
            try:
                env = {**os.environ, "KIZUNA_LOAD_API_ROOT": f"{host}/main/", "KIZUNA_LOAD_COLLECTION": collection,
                       "KIZUNA_LOAD_TOKENS": ",".join(tokens), "KIZUNA_LOAD_IDS": str(id_file)}
                if position == 0 and args.floor_minutes > 0:
                    _locust(host, HERE / "locust_floor.py", args.users, args.floor_minutes, base / "floor", env)
                    floor = _summary(base / "floor")
                sampler = RssSampler(server.pid, store_file=(data / "kizuna.db") if args.backend == "sqlite" else None)
                sampler.start()
                _locust(host, HERE / "locust_taxii.py", args.users, args.minutes, base / f"taxii-{scope}", env)
                sampler.stop.set()
                sampler.join()
            finally:
                server.terminate()
                server.wait(timeout=60)
            rss = [sample["VmRSS"] for sample in sampler.samples] or [0.0]
            anon = [sample["RssAnon"] for sample in sampler.samples] or [0.0]
            results[scope] = {"taxii": _summary(base / f"taxii-{scope}"),
                              "server_rss_mb": {"first": rss[0], "peak": max(rss), "last": rss[-1]},
                              "server_rss_anon_mb": {"first": anon[0], "peak": max(anon), "last": anon[-1]},
                              "memory_by_minute_mb": sampler.per_minute(),
                              "rss_anon_by_process_mb": {str(pid): [values[0], max(values), values[-1]]
                                                         for pid, values in sampler.by_process.items()},
                              "rss_samples": sampler.samples}
    return {"bench": "load", "backend": args.backend, "users": args.users, "minutes": args.minutes,
            "workers": args.workers, "objects": args.objects, "floor_healthz": floor, "by_limit_scope": results}


def _wait_ready(host: str) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(host + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("kizuna serve did not answer /healthz within 120 s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                        help="store of the node under load")
    parser.add_argument("--users", type=positive_int, default=200, help="simulated clients")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the TAXII load")
    parser.add_argument("--floor-minutes", type=float, default=1.0, help="length of the /healthz floor (0: none)")
    parser.add_argument("--workers", type=positive_int, default=2, help="kizuna serve --workers")
    parser.add_argument("--objects", type=positive_int, default=5000, help="indicators stored before the load")
    parser.add_argument("--scopes", default="node,process",
                        help="serve --rate-limit-scope values, one load run each on the same node, in this order")
    parser.add_argument("--json", action="store_true", help="one JSON line on stdout")
    args = parser.parse_args(argv)
    result = run(args)
    floor = result["floor_healthz"]
    for scope, measured in result["by_limit_scope"].items():
        print(f"--rate-limit-scope {scope}", file=sys.stderr)
        for name, row in measured["taxii"].items():
            if isinstance(row, dict):
                print(f"  {name:20} {row['requests']:7} requests {row['failures']:5} failed   "
                      f"p50 {row['p50_ms']:7.0f} ms   p99 {row['p99_ms']:7.0f} ms", file=sys.stderr)
        print(f"  p99 by minute (ms): {measured['taxii']['p99_ms_by_minute']}; server RSS MB first/peak/last: "
              f"{measured['server_rss_mb']}", file=sys.stderr)
        print("  server memory by minute, MB (all processes): minute  VmRSS  RssAnon  RssFile  RssShmem  "
              "descriptors on the SQLite file", file=sys.stderr)
        for minute, sample in enumerate(measured["memory_by_minute_mb"]):
            print(f"    {minute + 1:2}  {sample['VmRSS']:7.1f}  {sample['RssAnon']:7.1f}  {sample['RssFile']:7.1f}  "
                  f"{sample['RssShmem']:7.1f}  {sample.get('store_fds', 0):5}", file=sys.stderr)
        print(f"  RssAnon MB per process, first/peak/last: {measured['rss_anon_by_process_mb']}", file=sys.stderr)
        for failure in measured["taxii"]["failure_reasons"]:
            print(f"  failed {failure['occurrences']}x {failure['request']}: {failure['error']}", file=sys.stderr)
    if "Aggregated" in floor:
        row = floor["Aggregated"]
        print(f"floor: /healthz {row['requests']:7} requests {row['failures']:5} failed   "
              f"p50 {row['p50_ms']:7.0f} ms   p99 {row['p99_ms']:7.0f} ms", file=sys.stderr)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
