"""Federation benchmark: two Kizuna nodes on loopback, one pulls the other's collection.

Figures (medians over --runs fresh target nodes):
  full_sync_objects_per_s   first full pull of N object versions, end to end (`kizuna sync`, a real process)
  incremental_s             a pull of 100 new versions on top of the synced collection
  peak_rss_mb               peak RSS of the syncing process (the largest over runs)
Side by side in the same run: `kizuna export` + `kizuna import` of the same collection on the same machine
(what a manual file transfer costs), so the ratio says what the network sync adds.

    python -m bench.bench_federation [--count 100000] [--runs 3] [--quick] [--json]

Targets from the issue: ≥ 10,000 objects/s full sync, incremental ≤ 1 s, peak RSS ≤ 200 MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.common import free_loopback_port, median, positive_int, run_measured
from bench.gen_stix import TLP_CLEAR, generate

KIZUNA = [sys.executable, "-m", "kizuna"]


def _cli(data: Path, *args: str) -> Any:
    result = subprocess.run([*KIZUNA, "--data", str(data), *args, "--json"], capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout)


def _write_bundle(path: Path, objects: Iterable[dict[str, Any]]) -> None:
    # Streamed: a benchmark process holding 100k parsed objects would inflate the measured children's peak
    # RSS, because a forked child's ru_maxrss includes the parent pages it shared before exec.
    with path.open("w") as out:
        out.write('{"type": "bundle", "id": "bundle--8e8a1a4e-0a3b-4c46-9f0b-9d2b5c2a7d11", "objects": [')
        for index, obj in enumerate(objects):
            out.write(("," if index else "") + json.dumps(obj))
        out.write("]}")


def _fresh_indicators(count: int) -> list[dict[str, Any]]:
    return [
        {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
         "created": "2026-02-01T00:00:00.000Z", "modified": "2026-02-01T00:00:00.000Z", "pattern_type": "stix",
         "pattern": f"[ipv4-addr:value = '192.0.2.{i % 250}']", "valid_from": "2026-02-01T00:00:00Z"}
        for i in range(count)
    ]


def _node(base: Path, name: str) -> tuple[Path, str]:
    data = base / name
    _cli(data, "init", "--org-name", f"{name} CERT")
    collection = _cli(data, "collections", "create", "--title", "Shared", "--alias", "shared")["id"]
    return data, collection


def run(count: int, runs: int, page_size: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kizuna-bench-fed-") as tmp:
        base = Path(tmp)
        source, source_collection = _node(base, "source")
        bundle = base / "objects.json"
        # TLP:CLEAR throughout: the partner may see every version, so the figure is what crosses.
        _write_bundle(bundle, generate(count, markings=(TLP_CLEAR,)))
        _cli(source, "import", str(bundle), "--collection", "shared")
        _cli(source, "orgs", "create", "Target CERT")
        token = _cli(source, "tokens", "create", "--org", "Target CERT", "--read", "shared")["token"]
        port = free_loopback_port()
        server = subprocess.Popen([*KIZUNA, "--data", str(source), "serve", "--port", str(port), "--no-sync"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            import httpx

            for _ in range(200):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/taxii2/", timeout=1)
                    break
                except httpx.HTTPError:
                    import time

                    time.sleep(0.1)
            full_rates: list[float] = []
            incremental: list[float] = []
            rss: list[float] = []
            full_rss: list[float] = []
            manual: list[float] = []
            stored = 0
            for index in range(runs):
                target, _ = _node(base, f"target{index}")
                _cli(target, "partners", "add", "source", "--url", f"http://127.0.0.1:{port}/main/",
                     "--map", f"shared={source_collection}:pull", "--token", token, "--page-size", str(page_size))
                code, wall, peak, out, err = run_measured([*KIZUNA, "--data", str(target), "sync", "source", "--json"])
                if code != 0:
                    raise RuntimeError(f"sync failed: {err or out}")
                stored = json.loads(out)["runs"][0]["pulled"]
                full_rates.append(stored / wall)
                rss.append(peak)
                full_rss.append(peak)
                extra = base / f"extra{index}.json"
                _write_bundle(extra, _fresh_indicators(100))
                _cli(source, "import", str(extra), "--collection", "shared")
                code, wall, peak, out, err = run_measured([*KIZUNA, "--data", str(target), "sync", "source", "--json"])
                if code != 0 or json.loads(out)["runs"][0]["pulled"] != 100:
                    raise RuntimeError(f"incremental sync failed: {err or out}")
                incremental.append(wall)
                rss.append(peak)
                # Reference: the same transfer by hand, export to a file and import it.
                exported = base / f"export{index}.json"
                copy, _ = _node(base, f"copy{index}")
                code, export_wall, _, _, _ = run_measured(
                    [*KIZUNA, "--data", str(source), "export", "--collection", "shared", "-o", str(exported)])
                code, import_wall, _, _, _ = run_measured(
                    [*KIZUNA, "--data", str(copy), "import", str(exported), "--collection", "shared", "--json"])
                manual.append(stored / (export_wall + import_wall))
        finally:
            server.terminate()
            server.wait(timeout=30)
    full = median(full_rates) or 0.0
    reference = median(manual) or 0.0
    return {
        "bench": "federation", "count": count, "runs": runs, "page_size": page_size, "stored": stored,
        "full_sync_objects_per_s": round(full), "export_import_objects_per_s": round(reference),
        "sync_vs_export_import": round(full / reference, 2) if reference else None,
        "incremental_100_s": round(median(incremental) or 0.0, 3),
        "peak_rss_mb": max(rss), "full_sync_peak_rss_mb": max(full_rss),
        "targets": {"full_sync_objects_per_s": 10000, "incremental_100_s": 1.0, "peak_rss_mb": 200},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=positive_int, default=100_000, help="objects in the collection synced")
    parser.add_argument("--runs", type=positive_int, default=3, help="runs; medians are reported")
    parser.add_argument("--page-size", type=positive_int, default=2000,
                        help="objects per TAXII page the partner asks for")
    parser.add_argument("--quick", action="store_true", help="10,000 objects, one run.")
    parser.add_argument("--json", action="store_true", help="Print one JSON line.")
    args = parser.parse_args(argv)
    count, runs = (10_000, 1) if args.quick else (args.count, args.runs)
    result = run(count, runs, args.page_size)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>30}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
