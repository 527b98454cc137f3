"""Server time of the web console's pages with many objects stored, on SQLite and on PostgreSQL.

A node holds N generated objects (bench/gen_stix.py: 55% indicators, 25% relationships, TLP
CLEAR/GREEN/AMBER) in one collection, served by a real `kizuna serve`. Two tokens sign in through the
console's own form: the node's organisation ("own", sees everything) and a partner organisation
("partner", sees only TLP:CLEAR, so most rows are hidden and the visibility check does real work).
Each page is fetched ``--runs`` times over one keep-alive connection on loopback; the figure is the
median wall time of the request, which on loopback is the server's time plus well under a millisecond.

Pages: Browse (first page with counts and facets), Browse filtered by a rare type, Browse at a
position in the middle of the collection, the object page of an indicator (its versions, plus a
walk over the collection's relationships and sightings), its two-hop relationship graph (graph.json)
and the library page (a walk over the collection's reports, courses of action, notes and
language-content). The anchor, in the same run: the TAXII
objects endpoint for the same token with ``limit=50`` (the page Browse shows, without counts).
Goal: every console page <= 300 ms.

    /work/main/.venv/bin/python -m bench.bench_console [--objects 100000] [--runs 5] [--json]
    /work/main/.venv/bin/python -m bench.bench_console --objects 1000000 --runs 3   # the issue's size
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ServerProcess, free_loopback_port  # noqa: E402
from gen_stix import generate  # noqa: E402

TAXII = "application/taxii+json;version=2.1"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def kizuna(data: Path, *args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "kizuna", "--data", str(data), *args, "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def write_bundle(path: Path, count: int) -> None:
    with open(path, "wb") as out:
        out.write(b'{"type":"bundle","id":"bundle--' + str(uuid.uuid4()).encode() + b'","objects":[\n')
        for index, obj in enumerate(generate(count)):
            out.write((b",\n" if index else b"") + orjson.dumps(obj))
        out.write(b"\n]}\n")


def sign_in(client: httpx.Client, token: str) -> None:
    form = client.get("/console/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, "no sign-in form"
    answer = client.post("/console/sign-in", data={"csrf": csrf.group(1), "token": token, "next": "/console/"})
    assert answer.status_code == 303, answer.text[:300]


def timed(client: httpx.Client, url: str, runs: int, headers: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
    return round(statistics.median(times), 1)


def micros(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1_000_000)


def measure(backend: str, objects: int, runs: int, base_dir: Path) -> dict[str, Any]:
    data = base_dir / backend
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
        bundle = base_dir / "bundle.json"
        if not bundle.exists():
            write_bundle(bundle, objects)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kizuna", "--data", str(data), "import", str(bundle),
                        "--collection", "bench", "--quiet"], check=True, capture_output=True)
        import_s = time.perf_counter() - started
        tokens = {who: kizuna(data, "tokens", "create", "--org", org, "--read", "bench")["token"]
                  for who, org in (("own", "NCSC UK"), ("partner", "JPCERT/CC"))}
        stats = next(c for c in kizuna(data, "status")["collections"] if c["alias"] == "bench")
        middle = (micros(stats["first_added"]) + micros(stats["last_added"])) // 2
        port = free_loopback_port()
        command = [sys.executable, "-m", "kizuna", "--data", str(data), "serve", "--port", str(port), "--no-sync"]
        result: dict[str, Any] = {"backend": backend, "objects": stats["objects"], "import_s": round(import_s, 1)}
        with ServerProcess(command, f"http://127.0.0.1:{port}/taxii2/") as server:
            for who, token in tokens.items():
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
                    sign_in(client, token)
                    first = client.get("/console/browse?collection=bench")
                    found = re.search(r'href="/console/objects/(indicator--[0-9a-f-]{36})', first.text)
                    pages = {
                        "browse_ms": timed(client, "/console/browse?collection=bench", runs),
                        "browse_rare_type_ms": timed(client, "/console/browse?collection=bench&type=identity", runs),
                        "browse_middle_ms": timed(client, f"/console/browse?collection=bench&after={middle}", runs),
                        "taxii_page_anchor_ms": timed(
                            client, "/main/collections/bench/objects/?limit=50", runs,
                            {"Accept": TAXII, "Authorization": f"Bearer {token}"}),
                    }
                    if found:
                        pages["object_ms"] = timed(client, f"/console/objects/{found.group(1)}?collection=bench", runs)
                        pages["graph_ms"] = timed(
                            client, f"/console/objects/{found.group(1)}/graph.json?collection=bench", runs)
                    pages["library_ms"] = timed(client, "/console/library", runs)
                    pages["count_shown"] = re.sub(r"\s+", " ", re.search(
                        r'id="result-count">\s*([^<]+?)\s*</p>', first.text).group(1))  # type: ignore[union-attr]
                    result[who] = pages
            result["server_peak_rss_mb"] = server.sample_peak_rss()
        return result
    finally:
        if database:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                              (database,))
                admin.execute(f'DROP DATABASE IF EXISTS "{database}"')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=100_000, help="objects generated into the collection")
    parser.add_argument("--runs", type=int, default=5, help="requests per page; the median is reported")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite,postgresql")
    parser.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="kizuna-bench-console-") as tmp:
        for backend in args.backends.split(","):
            result = measure(backend, args.objects, args.runs, Path(tmp))
            results.append(result)
            if not args.json:
                print(json.dumps(result, indent=2), file=sys.stderr)
    worst = max(v for r in results for who in ("own", "partner") for k, v in r[who].items()
                if k.endswith("_ms") and k != "taxii_page_anchor_ms")
    print(json.dumps({"bench": "console", "objects": args.objects, "runs": args.runs, "goal_ms": 300,
                      "worst_console_ms": worst, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
