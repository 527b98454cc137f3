"""MISP feed partner speed: `kizuna sync` of a feed of N real events beside the conversion alone, same run.

The feed is built with `write_misp_feed` from the real CIRCL events of tests/fixtures/misp/, copied
`--copies` times with every uuid replaced by a derived one (so each copy is new content, not duplicates).
In each run, on a fresh SQLite node:

- sync: `kizuna sync FEED --json` (a real process) imports the whole feed from its directory: manifest,
  event files, misp-stix conversion, markings, loss report, ingest, provenance, audit;
- floor: a process that only converts the same event files with `read_misp` (no store), which is the
  least any importer built on misp-stix can cost;
- unchanged: a second `kizuna sync` with nothing changed (the manifest alone is read);
- one changed: a third after one event's timestamp moved (that event alone is fetched).

Runs alternate between the sides; medians count; peak RSS is the syncing process's VmHWM.

    python -m bench.bench_misp_feed                 # 13 events x 10 copies, 3 runs; table on stderr
    python -m bench.bench_misp_feed --copies 20 --runs 3 --json   # + one JSON line on stdout
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench.common import median, positive_int, run_measured

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "misp"
KIZUNA = [sys.executable, "-m", "kizuna"]
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_COPY = uuid.UUID("c0ffee00-5eed-4a11-9e57-000000000001")
FLOOR = ("import logging, pathlib, sys\n"
         "logging.disable(logging.CRITICAL)\n"
         "from kizuna.formats.misp_in import read_misp\n"
         "files = sorted(p for p in pathlib.Path(sys.argv[1]).glob('*.json') if p.name != 'manifest.json')\n"
         "print(sum(len(read_misp(p.read_bytes(), p.name).objects) for p in files))\n")


def build_feed(directory: Path, copies: int) -> int:
    """Write the feed; return its number of events."""
    from kizuna.formats.misp_feed import write_misp_feed

    sources = [p.read_bytes() for p in sorted(FIXTURES.glob("*.json")) if p.name != "existing_event_edited.json"]
    events = []
    for copy in range(copies):
        def renamed(match: re.Match[bytes], copy: int = copy) -> bytes:
            return str(uuid.uuid5(_COPY, f"{copy}:{match.group().decode()}")).encode()

        events += [json.loads(_UUID.sub(renamed, source)) for source in sources]
    return len(write_misp_feed(events, directory))


def _kizuna(data: Path, *args: str) -> tuple[float, float, dict[str, Any]]:
    code, wall, peak, out, err = run_measured([*KIZUNA, "--data", str(data), *args])
    if code != 0:
        raise RuntimeError(f"kizuna {' '.join(args)} failed: {err or out}")
    return wall, peak, json.loads(out) if out.strip().startswith("{") else {}


def run(copies: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kizuna-bench-mispfeed-") as tmp:
        base = Path(tmp)
        feed = base / "feed"
        events = build_feed(feed, copies)
        # Seconds per run of each side, and the peak RSS of every sync.
        sync_s, floor_s, unchanged_s, changed_s, rss = ([] for _ in range(5))
        stored = 0
        for index in range(runs):
            node = base / f"node{index}"
            _kizuna(node, "init", "--org-name", "Bench CERT", "--json")
            _kizuna(node, "collections", "create", "--title", "Feed", "--alias", "feed", "--json")
            _kizuna(node, "partners", "add", "FEED", "--misp-feed", str(feed), "--collection", "feed", "--json")
            wall, peak, out = _kizuna(node, "sync", "FEED", "--json")
            report = out["runs"][0]
            if report["error"] or report["events"] != events:
                raise RuntimeError(f"the sync did not import every event: {report}")
            stored = report["pulled"]
            sync_s.append(wall)
            rss.append(peak)
            code, wall, _, out_text, err = run_measured([sys.executable, "-c", FLOOR, str(feed)])
            if code != 0:
                raise RuntimeError(f"the conversion floor failed: {err}")
            floor_s.append(wall)
            wall, peak, out = _kizuna(node, "sync", "FEED", "--json")
            if out["runs"][0]["mappings"][0]["manifest"] != "unchanged":
                raise RuntimeError("the second sync did not find the feed unchanged")
            unchanged_s.append(wall)
            rss.append(peak)
            manifest = json.loads((feed / "manifest.json").read_text())
            first = sorted(manifest)[index]
            event = json.loads((feed / f"{first}.json").read_text())
            event["Event"]["timestamp"] = str(int(event["Event"]["timestamp"]) + 1)
            from kizuna.formats.misp_feed import write_misp_feed

            write_misp_feed([event], feed)
            wall, peak, out = _kizuna(node, "sync", "FEED", "--json")
            if out["runs"][0]["events"] != 1:
                raise RuntimeError(f"the third sync did not fetch exactly the changed event: {out}")
            changed_s.append(wall)
            rss.append(peak)
    sync, floor = median(sync_s) or 0.0, median(floor_s) or 0.0
    return {
        "bench": "misp-feed", "events": events, "copies": copies, "runs": runs, "objects_stored": stored,
        "sync_events_per_s": round(events / sync, 1) if sync else None,
        "sync_objects_per_s": round(stored / sync) if sync else None,
        "conversion_only_events_per_s": round(events / floor, 1) if floor else None,
        "sync_vs_conversion": round(floor / sync, 2) if sync else None,
        "unchanged_sync_s": round(median(unchanged_s) or 0.0, 3),
        "one_changed_event_sync_s": round(median(changed_s) or 0.0, 3),
        "peak_rss_mb": max(rss) if rss else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=positive_int, default=10, help="copies of the 13 real events (new uuids each)")
    parser.add_argument("--runs", type=positive_int, default=3, help="fresh nodes; the median counts")
    parser.add_argument("--json", action="store_true", help="also print one JSON line on stdout")
    args = parser.parse_args(argv)
    result = run(args.copies, args.runs)
    print(f"feed of {result['events']} events ({result['objects_stored']} STIX versions stored), "
          f"{args.runs} run(s), medians:", file=sys.stderr)
    print(f"  kizuna sync (whole feed)    {result['sync_events_per_s']} events/s, "
          f"{result['sync_objects_per_s']} objects/s", file=sys.stderr)
    print(f"  conversion alone (floor)    {result['conversion_only_events_per_s']} events/s "
          f"(sync takes {result['sync_vs_conversion']} x the floor's rate)", file=sys.stderr)
    print(f"  unchanged feed sync         {result['unchanged_sync_s']} s", file=sys.stderr)
    print(f"  one changed event sync      {result['one_changed_event_sync_s']} s", file=sys.stderr)
    print(f"  peak RSS of kizuna sync     {result['peak_rss_mb']} MB", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
