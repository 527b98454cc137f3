"""Full read-out over HTTP: a partner's (policy-enforced) token against the node's own organisation, and
objects with granular markings against the same objects without, side by side in one run.

One node (set up through the public commands), three collections of N objects each:

* ``mixed``: the TAXII benchmark's corpus (`bench/gen_stix.py`: 55% indicators, 25% relationships,
  TLP CLEAR/GREEN/AMBER, several producers, revisions);
* ``plain``: N indicators, TLP:GREEN, a description and labels;
* ``granular``: the same indicators with granular markings: a TLP:GREEN description on every one, and on
  every fourth a TLP:AMBER+STRICT label the partner may not see (redacted for it).

Tokens: ``own`` (the node's organisation: no marking filter), ``partner`` (an organisation under an
agreement up to TLP:AMBER, in a community with the node, so it sees GREEN and AMBER and not AMBER+STRICT)
and ``reader`` (an organisation without agreement, as in the TAXII benchmark: it sees TLP:CLEAR only, so
most rows, relationships among them, are hidden from it).
Each read-out pages the whole collection (``match[version]=all``, ``limit=1000``, following ``next``) on one
keep-alive client; read-outs alternate and the medians of ``--runs`` are reported, as objects per second
of stored versions. Ratios: ``partner_vs_own`` (mixed; goal >= 0.8), ``granular_vs_plain`` (partner;
goal >= 0.8); goal for the partner's rate: 100,000 obj/s. Peak RSS of the server is read at the end.

With ``--compare PATH`` a second server runs the Kizuna code at PATH (e.g. a worktree of main) on the same
data, every read-out is repeated against it in the same rounds, and ``speedup`` gives this code's rate over
that code's for each read-out (the two servers take turns going first). ``--compare-env NAME=VALUE`` serves
the compared code with that variable set (this code, without ``--compare``): an A/B of a setting.
The server's minor page faults per read-out are reported beside its CPU.

    python -m bench.bench_read_floors                          # 50,000 objects a collection, 5 runs
    python -m bench.bench_read_floors --objects 1000000 --runs 3 --json
    python -m bench.bench_read_floors --compare /path/to/main-worktree
    python -m bench.bench_read_floors --objects 30000 --runs 8 --compare-env MALLOC_TRIM_THRESHOLD_=33554432
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import ServerProcess, free_loopback_port, kizuna_tree, positive_int, process_counters
from bench.gen_stix import generate
from kizuna.policy import TLP2_IDS, TlpLevel

TAXII = "application/taxii+json;version=2.1"
GOALS = {"partner_objects_per_s": 100_000, "partner_vs_own": 0.8, "granular_vs_plain": 0.8}
READS = (("mixed", "own"), ("mixed", "partner"), ("mixed", "reader"), ("plain", "partner"), ("granular", "partner"))


def kizuna(data: Path, *args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "kizuna", "--data", str(data), *args, "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def indicators(count: int, producer: str, granular: bool) -> list[dict[str, Any]]:
    green, amber, strict = (TLP2_IDS[level] for level in (TlpLevel.GREEN, TlpLevel.AMBER, TlpLevel.AMBER_STRICT))
    out = []
    for i in range(count):
        obj: dict[str, Any] = {
            "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "created_by_ref": producer, "name": f"C2 address {i}", "object_marking_refs": [green],
            "description": "Command and control address observed in the campaign",
            "labels": ["c2", "apt", "infrastructure"], "pattern_type": "stix",
            "pattern": f"[ipv4-addr:value = '10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}']",
            "valid_from": "2026-01-01T00:00:00Z",
        }
        if granular:
            obj["granular_markings"] = [{"selectors": ["description"], "marking_ref": green}]
            if i % 4 == 0:
                obj["granular_markings"].append({"selectors": ["labels.[1]"], "marking_ref": strict})
            elif i % 4 == 1:
                obj["granular_markings"].append({"selectors": ["labels.[2]"], "marking_ref": amber})
        out.append(obj)
    return out


def setup(folder: Path, count: int) -> tuple[Path, dict[str, str], dict[str, str], dict[str, int]]:
    data = folder / "node"
    identity = kizuna(data, "init", "--org-name", "NCSC UK", "--country", "GBR")["identity"]["id"]
    collections = {name: kizuna(data, "collections", "create", "--title", name, "--alias", name)["id"]
                   for name in dict.fromkeys(name for name, _ in READS)}
    kizuna(data, "orgs", "create", "JPCERT/CC", "--country", "JPN")
    kizuna(data, "orgs", "create", "Bench Reader")
    kizuna(data, "agreements", "set", "jp", "--partner", "JPCERT/CC", "--max-tlp", "amber")
    kizuna(data, "policy", "communities", "uk-jp")
    kizuna(data, "policy", "org", "JPCERT/CC", "--community", "uk-jp")
    read = [flag for name in collections for flag in ("--read", name)]
    tokens = {"own": kizuna(data, "tokens", "create", "--org", "NCSC UK", *read)["token"],
              "partner": kizuna(data, "tokens", "create", "--org", "JPCERT/CC", *read)["token"],
              "reader": kizuna(data, "tokens", "create", "--org", "Bench Reader", *read)["token"]}
    sources = {"mixed": list(generate(count)), "plain": indicators(count, identity, False),
               "granular": indicators(count, identity, True)}
    stored = {}
    for name, objects in sources.items():
        print(f"importing {count:,} objects into {name} ...", file=sys.stderr)
        bundle = folder / f"{name}.json"
        bundle.write_bytes(orjson.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}))
        kizuna(data, "import", str(bundle), "--collection", name)
        bundle.unlink()
    for row in kizuna(data, "status")["collections"]:
        stored[row["alias"]] = row["objects"]
    return data, collections, tokens, stored


def read_out(client: httpx.Client, collection: str) -> tuple[int, float]:
    served = 0
    params: dict[str, str] = {"limit": "1000", "match[version]": "all"}
    started = time.perf_counter()
    while True:
        response = client.get(f"/main/collections/{collection}/objects/", params=params)
        response.raise_for_status()
        body = orjson.loads(response.content)
        served += len(body.get("objects", []))
        if not body.get("more"):
            return served, time.perf_counter() - started
        params = {"limit": "1000", "match[version]": "all", "next": body["next"]}


def serve(data: Path, code: str | None, extra_env: dict[str, str] | None = None) -> ServerProcess:
    port = free_loopback_port()
    env = {**os.environ, **(extra_env or {})}
    if code is not None:
        env["PYTHONPATH"] = str(Path(code).resolve()) + os.pathsep + env.get("PYTHONPATH", "")
        # without the working directory first on sys.path (python -m puts it there), or the
        # repository's own kizuna/ would shadow the code under comparison
        env["PYTHONSAFEPATH"] = "1"
    return ServerProcess([sys.executable, "-m", "kizuna", "--data", str(data), "serve", "--port", str(port),
                          "--no-sync"], f"http://127.0.0.1:{port}/healthz", env=env)


def measure(data: Path, collections: dict[str, str], tokens: dict[str, str], runs: int,
            compare: str | None, compare_env: dict[str, str] | None = None) -> dict[str, Any]:
    servers = {"this": serve(data, None)}
    if compare is not None or compare_env:
        servers["compared"] = serve(data, compare, compare_env)
    times: dict[tuple[str, str, str], list[float]] = {}
    cpu: dict[tuple[str, str, str], list[float]] = {}
    faults: dict[tuple[str, str, str], list[int]] = {}
    served: dict[tuple[str, str], int] = {}
    rss: dict[str, float | None] = {}
    try:
        for server in servers.values():
            server.start()
        clients = {(code, who): httpx.Client(base_url=server.ready_url.rsplit("/", 1)[0], timeout=600,
                                             headers={"Accept": TAXII, "Authorization": f"Bearer {token}"})
                   for code, server in servers.items() for who, token in tokens.items()}
        for code in servers:  # warm up: the first read-out of each server fills the page cache
            read_out(clients[(code, "own")], collections["mixed"])
        for run in range(runs):
            for name, who in READS:
                # each server goes first in every other round: whichever reads second finds the other's
                # pages in the operating system's cache and the machine warmer
                for code, server in list(servers.items())[::1 if run % 2 == 0 else -1]:
                    pid = server.process.pid if server.process is not None else 0
                    before, faulted = process_counters(pid)
                    count, seconds = read_out(clients[(code, who)], collections[name])
                    after, faulted_after = process_counters(pid)
                    cpu.setdefault((code, name, who), []).append(after - before)
                    faults.setdefault((code, name, who), []).append(faulted_after - faulted)
                    served[(name, who)] = count
                    times.setdefault((code, name, who), []).append(seconds)
        for client in clients.values():
            client.close()
    finally:
        for code, server in servers.items():
            rss[code] = server.sample_peak_rss()
            server.stop()
    return {"times": times, "cpu": cpu, "faults": faults, "served": served, "rss": rss}


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 3) if whole else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=positive_int, default=50_000, help="objects in each of the three collections")
    parser.add_argument("--runs", type=positive_int, default=5, help="read-outs of each kind (median reported)")
    parser.add_argument("--compare", metavar="PATH", type=kizuna_tree,
                        help="also serve the Kizuna code at PATH, read out alike")
    parser.add_argument("--compare-env", metavar="NAME=VALUE", action="append", default=[],
                        help="serve the compared code (this code without --compare) with this environment "
                             "variable set; repeatable (e.g. MALLOC_ARENA_MAX=2)")
    parser.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    args = parser.parse_args()
    if any("=" not in pair for pair in args.compare_env):
        parser.error("--compare-env takes NAME=VALUE")
    compare_env = dict(pair.split("=", 1) for pair in args.compare_env)
    with tempfile.TemporaryDirectory(prefix="kizuna-bench-read-") as tmp:
        data, collections, tokens, stored = setup(Path(tmp), args.objects)
        found = measure(data, collections, tokens, args.runs, args.compare, compare_env)
    rates: dict[str, dict[str, float]] = {}
    cpu_rates: dict[str, dict[str, float]] = {}
    faults: dict[str, dict[str, int]] = {}
    for (code, name, who), values in found["faults"].items():
        faults.setdefault(code, {})[f"{name}/{who}"] = round(statistics.median(values))
    for (code, name, who), seconds in found["times"].items():
        rates.setdefault(code, {})[f"{name}/{who}"] = round(stored[name] / statistics.median(seconds))
        used = statistics.median(found["cpu"][(code, name, who)])
        cpu_rates.setdefault(code, {})[f"{name}/{who}"] = round(stored[name] / used) if used else 0
    this, this_cpu = rates["this"], cpu_rates["this"]
    summary: dict[str, Any] = {
        "bench": "read_floors", "objects": args.objects, "runs": args.runs, "stored": stored,
        "served": {f"{name}/{who}": n for (name, who), n in found["served"].items()},
        "objects_per_s": this,
        # the server's own CPU per read-out (from /proc): what a loaded machine disturbs least
        "objects_per_server_cpu_s": this_cpu,
        "server_cpu_partner_vs_own": _ratio(this_cpu["mixed/partner"], this_cpu["mixed/own"]),
        "server_cpu_granular_vs_plain": _ratio(this_cpu["granular/partner"], this_cpu["plain/partner"]),
        "partner_objects_per_s": this["mixed/partner"],
        "partner_vs_own": round(this["mixed/partner"] / this["mixed/own"], 3),
        "granular_vs_plain": round(this["granular/partner"] / this["plain/partner"], 3),
        "server_peak_rss_mb": found["rss"]["this"], "goals": GOALS,
        # page faults a read-out cost the server (median): memory handed back to the kernel and taken again
        "server_minor_faults_per_readout": faults["this"],
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    if "compared" in rates:
        other = rates["compared"]
        other_cpu = cpu_rates["compared"]
        summary["compared"] = {"code": args.compare or "this", "env": compare_env, "objects_per_s": other,
                               "objects_per_server_cpu_s": other_cpu,
                               "server_minor_faults_per_readout": faults["compared"],
                               "partner_vs_own": round(other["mixed/partner"] / other["mixed/own"], 3),
                               "granular_vs_plain": round(other["granular/partner"] / other["plain/partner"], 3),
                               "server_peak_rss_mb": found["rss"]["compared"]}
        summary["speedup"] = {key: round(this[key] / other[key], 2) for key in this}
        summary["server_cpu_speedup"] = {key: round(this_cpu[key] / other_cpu[key], 2) if other_cpu[key] else None
                                         for key in this_cpu}
    compared = "compared" in rates
    print(f"{'read-out':18} {'served':>9} {'obj/s':>9} {'obj/cpu-s':>10}"
          + (f" {'compared':>9} {'cpu':>10} {'speedup':>7} {'cpu':>5}" if compared else ""), file=sys.stderr)
    for key, rate in this.items():
        line = f"{key:18} {summary['served'][key]:>9,} {rate:>9,} {this_cpu[key]:>10,}"
        if compared:
            line += (f" {rates['compared'][key]:>9,} {cpu_rates['compared'][key]:>10,} {summary['speedup'][key]:>7}"
                     f" {summary['server_cpu_speedup'][key]:>5}")
        print(line, file=sys.stderr)
    print(f"partner/own {summary['partner_vs_own']}, granular/plain {summary['granular_vs_plain']}, server peak RSS "
          f"{summary['server_peak_rss_mb']} MB; goals {GOALS}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
