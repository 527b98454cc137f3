"""Server time of the web console's pages with many objects stored, on SQLite and on PostgreSQL.

A node holds N generated objects (bench/gen_stix.py: 55% indicators, 25% relationships, TLP
CLEAR/GREEN/AMBER) in one collection, served by a real `kizuna serve`. The objects are checked and
stored the way `kizuna import` stores them after parsing (``core/ingest.prepare``, then
``Store.add_versions`` in batches of 5,000, which keeps the search and reference indexes in the same
transactions), without the bundle file and the per-object report: a million objects load in minutes.
Two tokens sign in through the console's own form: the node's organisation ("own", sees everything)
and a partner organisation ("partner", sees only TLP:CLEAR, so most rows are hidden and the visibility
check does real work).
Each page is fetched ``--runs`` times over one keep-alive connection on loopback; the figure is the
median wall time of the request, which on loopback is the server's time plus well under a millisecond.

Pages: the dashboard, search (a word in about half the objects, "malicious", and one in a few, "team"),
Browse (first page with counts and facets), Browse filtered by a rare type, Browse at a
position in the middle of the collection, the object page of an indicator (its versions, and the
relationships and sightings pointing at it, from the reference index), its two-hop relationship graph (graph.json)
and the library page (a walk over the collection's reports, courses of action, notes and
language-content). The anchor, in the same run: the TAXII
objects endpoint for the same token with ``limit=50`` (the page Browse shows, without counts).
Goal: every console page <= 300 ms. Then, per token, the servers are started again and the first
dashboard they answer is timed (``dashboard_first_ms``: what an operator meets after a restart). Each
figure also gives the server process's CPU ms per request (``<name>_cpu``, user + system).

With ``--before-src DIR`` (a copy of an earlier Kizuna's source tree, e.g. ``git archive main kizuna``),
every page is also fetched from a second server running that code on the same store, request for
request alternating with this one, and each page reports ``before``, ``after`` and their ratio.

    .venv/bin/python -m bench.bench_console [--objects 100000] [--runs 5] [--json]
    .venv/bin/python -m bench.bench_console --objects 1000000 --runs 3   # the issue's size
    .venv/bin/python -m bench.bench_console --objects 1000000 --keep-data /var/tmp/kizuna-console  # load once
    mkdir -p /tmp/kizuna-main && git archive main kizuna | tar -x -C /tmp/kizuna-main
    .venv/bin/python -m bench.bench_console --objects 1000000 --runs 3 --before-src /tmp/kizuna-main
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import kizuna_tree, names_in, positive_int

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ServerProcess, free_loopback_port, percentile  # noqa: E402
from gen_stix import generate  # noqa: E402

TAXII = "application/taxii+json;version=2.1"
LOAD_BATCH = 5_000
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def kizuna(data: Path, *args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "kizuna", "--data", str(data), *args, "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def load(data: Path, count: int) -> int:
    """Store ``count`` generated objects in the collection "bench" directly through the store, as
    `kizuna import` does after parsing; returns how many were refused by the checks (none expected)."""
    from kizuna.core.ingest import prepare
    from kizuna.core.node import Node

    node = Node.open(data)
    refused = 0
    try:
        pk = node.find_collection("bench").pk
        batch: list[Any] = []
        for obj in generate(count):
            new = prepare(obj)
            if isinstance(new, str):
                refused += 1
                continue
            batch.append(new)
            if len(batch) == LOAD_BATCH:
                node.store.add_versions(pk, batch)
                batch = []
        node.store.add_versions(pk, batch)
    finally:
        node.close()
    return refused


def sign_in(client: httpx.Client, token: str) -> None:
    form = client.get("/console/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, "no sign-in form"
    answer = client.post("/console/sign-in", data={"csrf": csrf.group(1), "token": token, "next": "/console/"})
    assert answer.status_code == 303, answer.text[:300]


def cpu_ms(pid: int) -> float:
    """CPU time (user + system) the process has used so far, in ms."""
    times = psutil.Process(pid).cpu_times()
    return (times.user + times.system) * 1000


def timed(clients: dict[str, httpx.Client], url: str, runs: int,
          headers: dict[str, str] | None = None, pids: dict[str, int] | None = None) -> dict[str, float]:
    """Median (and p95) ms of ``url`` per server, the servers' requests alternating so that load hits both
    alike; with ``pids``, also the median CPU ms the server process spent on the request (``<name>_cpu``)."""
    times: dict[str, list[float]] = {name: [] for name in clients}
    cpu: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(runs):
        for name, client in clients.items():
            used = cpu_ms(pids[name]) if pids else 0.0
            start = time.perf_counter()
            response = client.get(url, headers=headers)
            times[name].append((time.perf_counter() - start) * 1000)
            if pids:
                cpu[name].append(cpu_ms(pids[name]) - used)
            assert response.status_code == 200, (name, url, response.status_code, response.text[:300])
    medians = {name: round(statistics.median(found), 1) for name, found in times.items()}
    medians.update({f"{name}_p95": round(percentile(found, 0.95) or 0.0, 1) for name, found in times.items()})
    if pids:
        medians.update({f"{name}_cpu": round(statistics.median(found), 1) for name, found in cpu.items()})
    if "before" in medians:
        medians["ratio"] = round(medians["after"] / medians["before"], 2) if medians["before"] else 0.0
    return medians


def micros(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1_000_000)


@contextmanager
def serve(data: Path, source: Path | None) -> Iterator[tuple[str, ServerProcess]]:
    """`kizuna serve` on the node, running this Kizuna or, with ``source``, the one in that source tree."""
    port = free_loopback_port()
    env = {**os.environ, "PYTHONPATH": str(source)} if source else None
    # -P: the working directory (perhaps this checkout) is not put before PYTHONPATH on the module path.
    command = [sys.executable, "-P", "-m", "kizuna", "--data", str(data), "serve", "--port", str(port), "--no-sync"]
    with ServerProcess(command, f"http://127.0.0.1:{port}/taxii2/", env=env) as server:
        yield f"http://127.0.0.1:{port}", server


def pages(clients: dict[str, httpx.Client], token: str, runs: int, middle: int,
          pids: dict[str, int]) -> dict[str, Any]:
    """Every page's medians for one signed-in token."""
    first = clients["after"].get("/console/browse?collection=bench")
    found = re.search(r'href="/console/objects/(indicator--[0-9a-f-]{36})', first.text)

    def page(url: str, headers: dict[str, str] | None = None) -> dict[str, float]:
        return timed(clients, url, runs, headers, pids)

    measured: dict[str, Any] = {
        "dashboard_ms": page("/console/"),
        "search_common_ms": page("/console/search?q=malicious"),
        "search_rare_ms": page("/console/search?q=team"),
        "browse_ms": page("/console/browse?collection=bench"),
        "browse_rare_type_ms": page("/console/browse?collection=bench&type=identity"),
        "browse_middle_ms": page(f"/console/browse?collection=bench&after={middle}"),
        "taxii_page_anchor_ms": page("/main/collections/bench/objects/?limit=50",
                                     {"Accept": TAXII, "Authorization": f"Bearer {token}"}),
    }
    if found:
        measured["object_ms"] = page(f"/console/objects/{found.group(1)}?collection=bench")
        measured["graph_ms"] = page(f"/console/objects/{found.group(1)}/graph.json?collection=bench")
    measured["library_ms"] = page("/console/library")
    measured["count_shown"] = re.sub(r"\s+", " ", re.search(
        r'id="result-count">\s*([^<]+?)\s*</p>', first.text).group(1))  # type: ignore[union-attr]
    return measured


def first_dashboard(data: Path, sources: dict[str, Path | None], token: str) -> dict[str, float]:
    """The first dashboard a server answers after it starts (the servers are started afresh for it)."""
    with ExitStack() as stack:
        servers = {name: stack.enter_context(serve(data, source)) for name, source in sources.items()}
        clients = {name: stack.enter_context(httpx.Client(base_url=base, timeout=300))
                   for name, (base, _) in servers.items()}
        for client in clients.values():
            sign_in(client, token)
        pids = {name: server.process.pid for name, (_, server) in servers.items() if server.process}
        return timed(clients, "/console/", 1, None, pids)


def prepare_node(data: Path, backend: str, objects: int) -> tuple[str | None, float | None, int]:
    """Initialise the node in ``data`` and load ``objects`` objects, unless an earlier run with
    ``--keep-data`` left one there (its marker file says which PostgreSQL database holds it).
    Returns the PostgreSQL database (None on SQLite), the load time (None when reused) and refusals."""
    marker = data / "bench-console.json"
    if marker.exists():
        kept = json.loads(marker.read_text())
        if kept["objects"] != objects or kept["backend"] != backend:
            raise SystemExit(f"bench_console: {data} holds {kept['objects']} objects on {kept['backend']}, "
                             f"not {objects} on {backend}")
        return kept["database"], None, kept["refused"]
    store: list[str] = []
    database = None
    if backend == "postgresql":
        import psycopg

        database = f"kizuna_bench_{secrets.token_hex(5)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        store = ["--store", PG_ADMIN.rsplit("/", 1)[0] + "/" + database]
    try:
        kizuna(data, "init", "--org-name", "NCSC UK", "--country", "GBR", *store)
        kizuna(data, "collections", "create", "--title", "Bench", "--alias", "bench")
        kizuna(data, "orgs", "create", "JPCERT/CC", "--country", "JPN")
        started = time.perf_counter()
        refused = load(data, objects)
    except BaseException:
        drop(database)
        raise
    marker.write_text(json.dumps({"backend": backend, "objects": objects, "database": database,
                                  "refused": refused}))
    return database, time.perf_counter() - started, refused


def drop(database: str | None) -> None:
    if database:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                          (database,))
            admin.execute(f'DROP DATABASE IF EXISTS "{database}"')


def measure(backend: str, objects: int, runs: int, base_dir: Path, before_src: Path | None,
            keep: bool) -> dict[str, Any]:
    data = base_dir / f"{backend}-{objects}"
    database, load_s, refused = prepare_node(data, backend, objects)
    try:
        tokens = {who: kizuna(data, "tokens", "create", "--org", org, "--read", "bench")["token"]
                  for who, org in (("own", "NCSC UK"), ("partner", "JPCERT/CC"))}
        stats = next(c for c in kizuna(data, "status")["collections"] if c["alias"] == "bench")
        middle = (micros(stats["first_added"]) + micros(stats["last_added"])) // 2
        result: dict[str, Any] = {"backend": backend, "objects": stats["objects"],
                                  "load_s": round(load_s, 1) if load_s is not None else "kept",
                                  "refused": refused}
        sources = {name: source for name, source in (("before", before_src), ("after", None))
                   if name == "after" or source}
        with ExitStack() as stack:
            servers = {name: stack.enter_context(serve(data, source)) for name, source in sources.items()}
            pids = {name: server.process.pid for name, (_, server) in servers.items() if server.process}
            for who, token in tokens.items():
                clients = {name: stack.enter_context(httpx.Client(base_url=base, timeout=300))
                           for name, (base, _) in servers.items()}
                for client in clients.values():
                    sign_in(client, token)
                result[who] = pages(clients, token, runs, middle, pids)
            result["server_peak_rss_mb"] = {name: server.sample_peak_rss() for name, (_, server) in servers.items()}
        for who, token in tokens.items():
            result[who]["dashboard_first_ms"] = first_dashboard(data, sources, token)
        return result
    finally:
        if not keep:
            drop(database)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=positive_int, default=100_000, help="objects generated into the collection")
    parser.add_argument("--runs", type=positive_int, default=5, help="requests per page; the median is reported")
    parser.add_argument("--backends", type=names_in(("sqlite", "postgresql")), default=["sqlite", "postgresql"],
                        help="comma-separated: sqlite,postgresql")
    parser.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    parser.add_argument("--before-src", type=lambda text: Path(kizuna_tree(text)), default=None,
                        help="a source tree of another Kizuna (holding kizuna/) to serve side by side, A/B")
    parser.add_argument("--keep-data", type=Path, default=None, metavar="DIR",
                        help="keep the loaded nodes (and PostgreSQL databases) in DIR and reuse them on the "
                             "next run with the same --objects, instead of loading into a temporary directory")
    args = parser.parse_args(argv)
    results = []
    with ExitStack() as stack:
        base = args.keep_data or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kizuna-bench-console-")))
        for backend in args.backends:
            result = measure(backend, args.objects, args.runs, base, args.before_src, args.keep_data is not None)
            results.append(result)
            if not args.json:
                print(json.dumps(result, indent=2), file=sys.stderr)
    worst = max(v["after"] for r in results for who in ("own", "partner") for k, v in r[who].items()
                if k.endswith("_ms") and k != "taxii_page_anchor_ms")
    print(json.dumps({"bench": "console", "objects": args.objects, "runs": args.runs, "goal_ms": 300,
                      "worst_console_ms": worst, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
