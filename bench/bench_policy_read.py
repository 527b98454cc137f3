"""Cost of the read policy on the real read path: a running node, paged full read-outs over HTTP.

The collection holds N indicators: a third unmarked, a third TLP (GREEN/AMBER/AMBER+STRICT),
a third TLP + REL TO.  Two tokens read it all out, page by page (limit 1000), alternately:

- ``unrestricted``: an organisation under an agreement up to AMBER+STRICT that satisfies every
  REL TO used, so it receives everything (the policy still runs for it);
- ``partner``: an organisation under an agreement up to AMBER that satisfies only some REL TO
  lists, so part of the collection is hidden.

Throughput is stored versions read out per second (both tokens page through the same rows);
``ratio`` = partner / unrestricted, goal >= 0.8.  Medians of ``--runs`` runs; peak RSS of the server.

The egress audit record (one per page) is measured in process on the same store, for the partner,
side by side: the read-out without any record, with the record as Kizuna writes it (the served
(id, version) pairs packed), and with the pairs as a plain JSON list (the earlier format).
``audit_share`` = record cost / read-out time over HTTP, goal < 0.10; ``audit_bytes_per_page``
is the size of the record body for a full page.

    python -m bench.bench_policy_read [--objects 20000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_loopback_port, peak_rss_mb  # noqa: E402

from bench.common import positive_int
from kizuna.core.filters import Endpoint, Filters  # noqa: E402
from kizuna.core.node import Node  # noqa: E402
from kizuna.policy import TLP2_IDS, TlpLevel, build_rel_to_marking  # noqa: E402

TAXII = "application/taxii+json;version=2.1"


def kizuna(data: Path, *args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "kizuna", "--data", str(data), *args, "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def make_objects(count: int, producer: str) -> list[dict[str, Any]]:
    rel_to = [build_rel_to_marking(["GBR", "JPN"]), build_rel_to_marking(["GBR", "AUS"])]
    tlp = [TLP2_IDS[TlpLevel.GREEN], TLP2_IDS[TlpLevel.AMBER], TLP2_IDS[TlpLevel.AMBER_STRICT]]
    objects: list[dict[str, Any]] = list(rel_to)
    for i in range(count):
        obj: dict[str, Any] = {
            "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "created_by_ref": producer, "name": f"Indicator {i}", "pattern_type": "stix",
            "pattern": f"[ipv4-addr:value = '10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}']",
            "valid_from": "2026-01-01T00:00:00Z",
        }
        kind = i % 3
        if kind == 1:
            obj["object_marking_refs"] = [tlp[i % 3 if i % 9 else 0]]
        elif kind == 2:
            obj["object_marking_refs"] = [tlp[(i // 3) % 2], rel_to[(i // 3) % 2]["id"]]
        objects.append(obj)
    return objects


def read_out(base: str, collection: str, token: str) -> tuple[int, float]:
    headers = {"Accept": TAXII, "Authorization": f"Bearer {token}"}
    served = 0
    params: dict[str, str] = {"limit": "1000"}
    start = time.perf_counter()
    with httpx.Client(headers=headers, timeout=120) as client:
        while True:
            body = client.get(f"{base}/main/collections/{collection}/objects/", params=params).json()
            served += len(body.get("objects", []))
            if not body.get("more"):
                break
            params = {"limit": "1000", "next": body["next"]}
    return served, time.perf_counter() - start


def audit_cost(data: Path, token: str, runs: int) -> dict[str, Any]:
    """Seconds per full read-out (limit 1000) without a record, packed pairs, and a JSON list of pairs."""
    node = Node.open(data)
    try:
        principal = node.authenticate(token)
        assert principal is not None
        collection = node.find_collection("bench")

        def plain_pairs(viewer: Any, page: Any) -> None:
            body: dict[str, Any] = {
                "collection": collection.id, "endpoint": Endpoint.OBJECTS.value,
                "served": [[row.stix_id, row.version] for row, _ in page.items],
            }
            if viewer.hidden:
                body["hidden"] = dict(viewer.hidden)
            viewer.hidden.clear()
            viewer.redacted.clear()
            node.audit.record("egress", principal.key, body)

        def read_out(mode: str) -> float:
            viewer = node.viewer_for(principal, collection)
            filters = Filters(limit=1000)
            start = time.perf_counter()
            while True:
                if mode == "packed":
                    page = node.read(viewer, Endpoint.OBJECTS, filters)
                else:
                    page = node.reader.page(viewer, Endpoint.OBJECTS, filters)
                    if mode == "json":
                        plain_pairs(viewer, page)
                if not page.more:
                    return time.perf_counter() - start
                filters = Filters(limit=1000, next=page.next)

        read_out("packed")
        times: dict[str, list[float]] = {"none": [], "packed": [], "json": []}
        for _ in range(runs):
            for mode in times:
                times[mode].append(read_out(mode))
        sizes: dict[str, int] = {}
        for record in node.audit.records():
            if record.kind == "egress":
                served = json.loads(record.body)["served"]
                count = served["n"] if isinstance(served, dict) else len(served)
                if count == 1000:
                    sizes["packed" if isinstance(served, dict) else "json"] = len(record.body)
        return {"seconds": {mode: statistics.median(t) for mode, t in times.items()}, "bytes": sizes}
    finally:
        node.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=positive_int, default=20000, help="objects read")
    parser.add_argument("--runs", type=positive_int, default=5, help="runs; medians are reported")
    parser.add_argument("--json", action="store_true", help="print one JSON line on standard output")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "node"
        identity = kizuna(data, "init", "--org-name", "NCSC UK", "--country", "GBR")["identity"]["id"]
        collection = kizuna(data, "collections", "create", "--title", "Bench", "--alias", "bench")["id"]
        kizuna(data, "orgs", "create", "Everyone CERT", "--country", "GBR")
        kizuna(data, "orgs", "create", "JPCERT/CC", "--country", "JPN")
        kizuna(data, "agreements", "set", "all", "--partner", "Everyone CERT", "--max-tlp", "amber+strict",
               "--releasability", "GBR,JPN,AUS")
        kizuna(data, "agreements", "set", "jp", "--partner", "JPCERT/CC", "--max-tlp", "amber")
        tokens = {
            "unrestricted": kizuna(data, "tokens", "create", "--org", "Everyone CERT", "--read", "bench")["token"],
            "partner": kizuna(data, "tokens", "create", "--org", "JPCERT/CC", "--read", "bench")["token"],
        }
        objects = make_objects(args.objects, identity)
        bundle = Path(tmp) / "bundle.json"
        bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}))
        kizuna(data, "import", str(bundle), "--collection", "bench")
        stored = kizuna(data, "status")["collections"][0]["objects"]
        port = free_loopback_port()
        server = subprocess.Popen([sys.executable, "-m", "kizuna", "--data", str(data), "serve", "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    httpx.get(f"{base}/taxii2/", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            read_out(base, collection, tokens["unrestricted"])  # warm caches
            times: dict[str, list[float]] = {"unrestricted": [], "partner": []}
            served: dict[str, int] = {}
            for _ in range(args.runs):
                for name, token in tokens.items():
                    count, seconds = read_out(base, collection, token)
                    served[name] = count
                    times[name].append(seconds)
            rss = peak_rss_mb(server.pid)
            audit = audit_cost(data, tokens["partner"], args.runs)
        finally:
            server.terminate()
            server.wait(timeout=10)
    rate = {name: stored / statistics.median(t) for name, t in times.items()}
    result = {
        "bench": "policy_read", "stored_versions": stored, "runs": args.runs,
        "served": served,
        "unrestricted_objects_per_s": round(rate["unrestricted"]),
        "partner_objects_per_s": round(rate["partner"]),
        "ratio": round(rate["partner"] / rate["unrestricted"], 3),
        "goal_ratio": 0.8,
        "server_peak_rss_mb": round(rss, 1),
    }
    seconds = audit["seconds"]
    http_partner = statistics.median(times["partner"])
    for mode in ("packed", "json"):
        cost = max(seconds[mode] - seconds["none"], 0.0)
        result[f"audit_{mode}_ms_per_readout"] = round(cost * 1000, 2)
        result[f"audit_{mode}_share"] = round(cost / http_partner, 3)
        result[f"audit_{mode}_bytes_per_page"] = audit["bytes"].get(mode)
    result["in_process_readout_ms"] = round(seconds["none"] * 1000, 1)
    result["audit_share"] = result["audit_packed_share"]
    result["goal_audit_share"] = 0.1
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value}")


if __name__ == "__main__":
    main()
