"""IOC list import and blocklist/RPZ export speed, side by side with a plain read/write floor.

Goals (the interchange issue): CSV import >= 50,000 lines/s; blocklist and RPZ export of 1M indicators
<= 5 s with peak RSS <= 300 MB. Every measurement runs in its own child process, so its peak RSS is its
own; each is repeated ``--runs`` times and the median reported. The floors do the plain work on the same
files — read every line, split it, write a line — and show what the machine gives at the moment (it is
shared and noisy: compare the ratio, not absolute numbers across days). ioc-finder is measured on a
sample to show why well-formed columns take Kizuna's exact path instead.

    python -m bench.bench_formats                      # 200k CSV lines, 1M indicators, 3 runs
    python -m bench.bench_formats --lines 50000 --indicators 100000 --runs 1 --json

The Suricata file of the same indicators is timed too (2.5 rules an indicator), and the shared-rule path on
its own: 10,000 indicators whose patterns are three Snort rules each, rewritten with Kizuna's sids.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import positive_int

GOALS = {"csv_lines_per_s": 50_000, "export_seconds_per_1m": 5.0, "peak_rss_mb": 300}

# --- data -----------------------------------------------------------------------------------------

def write_csv_list(path: Path, lines: int, seed: int = 7) -> None:
    """A typed CSV list with every kind in realistic proportions (well-formed, as exported by tools)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        out.write("type,value,comment,first_seen\n")
        for i in range(lines):
            r = i % 6
            if r == 0:
                value = f"ip,{rng.randint(11, 220)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            elif r == 1:
                value = f"domain,host{i}.evil-{i % 977}.com"
            elif r == 2:
                value = f"url,http://site{i}.bad-{i % 131}.net/p/{i}.php?id={i}"
            elif r == 3:
                value = f"sha256,{rng.getrandbits(256):064x}"
            elif r == 4:
                value = f"md5,{rng.getrandbits(128):032x}"
            else:
                value = f"email,user{i}@phish-{i % 53}.org"
            out.write(f"{value},seen in campaign {i % 40},2025-0{1 + i % 9}-1{i % 10}\n")


def write_indicators(path: Path, count: int, seed: int = 11) -> None:
    """JSON lines of STIX indicators as a node stores them: half IPv4 addresses, half domains."""
    from kizuna.formats.iocs import indicator_id, pattern_for

    rng = random.Random(seed)
    green = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
    with path.open("wb") as out:
        for i in range(count):
            if i % 2:
                a, b, c = rng.randint(11, 220), rng.randint(0, 255), rng.randint(0, 255)
                kind, value = "ipv4", f"{a}.{b}.{c}.{i % 250 + 1}"
            else:
                kind, value = "domain", f"h{i}.bad-{i % 9973}.com"
            obj = {"type": "indicator", "spec_version": "2.1", "id": indicator_id(kind, value),
                   "created": "2025-03-01T10:00:00.000Z", "modified": "2025-03-01T10:00:00.000Z", "name": value,
                   "pattern": pattern_for(kind, value), "pattern_type": "stix", "pattern_version": "2.1",
                   "valid_from": "2025-03-01T10:00:00.000Z", "confidence": 80, "labels": ["c2"],
                   "object_marking_refs": [green]}
            out.write(orjson.dumps(obj) + b"\n")


SHARED_RULE_INDICATORS = 10_000


def _shared_rule_indicator(i: int) -> dict[str, Any]:
    """A partner's indicator whose pattern is three Snort rules, shaped like the real ones MISP events carry."""
    rules = "\n".join(
        f'alert udp any any -> any 53 (msg:"Partner C2 domain {i}-{n}"; content:"|01 00 00 01|"; depth:4; '
        f'offset:2; content:"|03|c{n}|05|bad{i % 977}|03|com"; fast_pattern; nocase; distance:0; '
        f'reference:url,example.org/{i}; sid:{8_000_000 + 3 * i + n}; rev:2;)' for n in range(3))
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--00000000-0000-4000-8000-{i:012d}",
            "created": "2025-03-01T10:00:00.000Z", "modified": "2025-03-01T10:00:00.000Z", "pattern": rules,
            "pattern_type": "snort", "valid_from": "2025-03-01T10:00:00.000Z"}


# --- measurements (each in a child process) ---------------------------------------------------------

def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(name: str, source: Path, target: Path) -> dict[str, Any]:
    """Run one measurement; ``start`` is reset after imports and list loading, ``cpu_start`` with it."""
    count = 0
    cpu_start = time.process_time()
    if name == "csv-floor":
        start, cpu_start = time.perf_counter(), time.process_time()
        rows = []
        with source.open("rb") as handle:
            for raw in handle:
                cells = raw.decode("utf-8").strip().split(",")
                rows.append({"type": cells[0], "value": cells[1], "comment": cells[2]})
        count = len(rows)
    elif name == "csv-kizuna":
        from kizuna.formats.base import ConversionReport
        from kizuna.formats.ioc_lists import iter_ioc_list
        from kizuna.formats.warninglists import load_warninglists

        load_warninglists()  # the default lists load once per process (reported on its own)
        start, cpu_start = time.perf_counter(), time.process_time()
        report = ConversionReport("ioc-list")
        for _ in iter_ioc_list(source, report=report, now="2025-06-01T00:00:00Z"):
            count += 1  # streamed, as an import hands batches to ingest
        count += len(report.rejected)
    elif name == "warninglists-load":
        from kizuna.formats.warninglists import load_warninglists

        start, cpu_start = time.perf_counter(), time.process_time()
        load_warninglists()
        count = 1
    elif name == "ioc-finder":
        from ioc_finder import find_iocs

        with source.open(encoding="utf-8") as handle:
            sample = [next(handle) for _ in range(1000)]
        start, cpu_start = time.perf_counter(), time.process_time()
        for line in sample:
            find_iocs(line)
        count = len(sample)
    elif name == "export-floor":
        start, cpu_start = time.perf_counter(), time.process_time()
        with source.open("rb") as handle, target.open("wb") as out:
            for raw in handle:
                out.write(raw[8:40] + b"\n")
                count += 1
    elif name in ("blocklist-kizuna", "rpz-kizuna"):
        from kizuna.formats.blocklists import write_blocklist
        from kizuna.formats.feeds import FeedOptions
        from kizuna.formats.rpz import write_rpz

        options = FeedOptions(now="2025-06-01T00:00:00Z")
        start, cpu_start = time.perf_counter(), time.process_time()
        with source.open("rb") as handle, target.open("w", encoding="utf-8") as out:
            lines = (write_blocklist(handle, "ip", options=options) if name == "blocklist-kizuna"
                     else write_rpz(handle, "rpz.bench.example", options=options))
            for piece in lines:  # pieces of whole lines
                out.write(piece)
                count += piece.count("\n")
    elif name == "suricata-kizuna":
        from kizuna.formats.feeds import FeedOptions
        from kizuna.formats.suricata import write_suricata

        options = FeedOptions(now="2025-06-01T00:00:00Z")
        start, cpu_start = time.perf_counter(), time.process_time()
        with source.open("rb") as handle, target.open("w", encoding="utf-8") as out:
            for line in write_suricata(handle, options=options):
                out.write(line)
                count += 1
    elif name == "shared-rules-kizuna":
        from kizuna.formats.feeds import FeedOptions
        from kizuna.formats.suricata import write_suricata

        shared = [_shared_rule_indicator(i) for i in range(SHARED_RULE_INDICATORS)]
        options = FeedOptions(now="2025-06-01T00:00:00Z")
        start, cpu_start = time.perf_counter(), time.process_time()
        with target.open("w", encoding="utf-8") as out:
            for line in write_suricata(shared, options=options):
                out.write(line)
                count += 1
    else:
        raise SystemExit(f"unknown measurement {name}")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu_seconds": time.process_time() - cpu_start, "count": count,
            "peak_rss_mb": round(_peak_mb(), 1)}


def run_child(name: str, source: Path, target: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.bench_formats", "--child", name, "--source", str(source),
         "--target", str(target)],
        capture_output=True, text=True, check=True,
    )
    loaded: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def measure(name: str, source: Path, target: Path, runs: int) -> dict[str, Any]:
    results = [run_child(name, source, target) for _ in range(runs)]
    return {
        "seconds": round(statistics.median(r["seconds"] for r in results), 3),
        "cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in results), 3),
        "count": results[0]["count"],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=positive_int, default=200_000, help="lines of the CSV list to import")
    parser.add_argument("--indicators", type=positive_int, default=1_000_000, help="indicators to export")
    parser.add_argument("--runs", type=positive_int, default=3, help="runs per measurement (median reported)")
    parser.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--target", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.source, args.target)))
        return
    with tempfile.TemporaryDirectory(prefix="kizuna-bench-formats-") as tmp:
        folder = Path(tmp)
        csv_path, jsonl_path, out_path = folder / "list.csv", folder / "indicators.jsonl", folder / "out.txt"
        print(f"writing {args.lines:,} CSV lines and {args.indicators:,} indicators ...", file=sys.stderr)
        write_csv_list(csv_path, args.lines)
        write_indicators(jsonl_path, args.indicators)
        r = {name: measure(name, csv_path, out_path, args.runs)
             for name in ("csv-floor", "csv-kizuna", "warninglists-load")}
        r["ioc-finder"] = measure("ioc-finder", csv_path, out_path, 1)
        r.update({name: measure(name, jsonl_path, out_path, args.runs)
                  for name in ("export-floor", "blocklist-kizuna", "rpz-kizuna", "suricata-kizuna",
                               "shared-rules-kizuna")})
    per_1m = 1_000_000 / args.indicators
    summary = {
        "bench": "formats", "runs": args.runs, "csv_lines": args.lines, "indicators": args.indicators,
        "csv_floor_lines_per_s": round(r["csv-floor"]["count"] / r["csv-floor"]["seconds"]),
        "csv_import_lines_per_s": round(args.lines / r["csv-kizuna"]["seconds"]),
        "csv_import_lines_per_cpu_s": round(args.lines / r["csv-kizuna"]["cpu_seconds"]),
        "csv_import_peak_rss_mb": r["csv-kizuna"]["peak_rss_mb"],
        "warninglists_load_s": r["warninglists-load"]["seconds"],
        "ioc_finder_lines_per_s": round(r["ioc-finder"]["count"] / r["ioc-finder"]["seconds"]),
        "export_floor_s": r["export-floor"]["seconds"],
        "blocklist_s": r["blocklist-kizuna"]["seconds"], "blocklist_lines": r["blocklist-kizuna"]["count"],
        "blocklist_peak_rss_mb": r["blocklist-kizuna"]["peak_rss_mb"],
        "blocklist_cpu_s": r["blocklist-kizuna"]["cpu_seconds"],
        "rpz_s": r["rpz-kizuna"]["seconds"], "rpz_lines": r["rpz-kizuna"]["count"],
        "rpz_cpu_s": r["rpz-kizuna"]["cpu_seconds"],
        "rpz_peak_rss_mb": r["rpz-kizuna"]["peak_rss_mb"],
        "suricata_s": r["suricata-kizuna"]["seconds"], "suricata_rules": r["suricata-kizuna"]["count"],
        "suricata_peak_rss_mb": r["suricata-kizuna"]["peak_rss_mb"],
        "shared_rules_per_s": round(r["shared-rules-kizuna"]["count"] / r["shared-rules-kizuna"]["seconds"]),
        "shared_rules": r["shared-rules-kizuna"]["count"],
        "blocklist_s_per_1m": round(r["blocklist-kizuna"]["seconds"] * per_1m, 2),
        "rpz_s_per_1m": round(r["rpz-kizuna"]["seconds"] * per_1m, 2),
        "goals": GOALS,
    }
    load = os.getloadavg()[0]
    summary["load_average_1m"] = round(load, 2)
    table = [
        ("CSV import (lines/s)", summary["csv_floor_lines_per_s"], summary["csv_import_lines_per_s"],
         f">= {GOALS['csv_lines_per_s']:,}"),
        ("ioc-finder on the same lines (lines/s)", "", summary["ioc_finder_lines_per_s"], "(why it is a fallback)"),
        (f"blocklist of {args.indicators:,} (s)", summary["export_floor_s"], summary["blocklist_s"],
         f"<= {GOALS['export_seconds_per_1m']} per 1M"),
        (f"RPZ of {args.indicators:,} (s)", summary["export_floor_s"], summary["rpz_s"],
         f"<= {GOALS['export_seconds_per_1m']} per 1M"),
        (f"Suricata rules of {args.indicators:,} (s)", summary["export_floor_s"], summary["suricata_s"],
         f"{summary['suricata_rules']:,} rules"),
        ("shared Snort rules rewritten (rules/s)", "", summary["shared_rules_per_s"],
         f"{SHARED_RULE_INDICATORS:,} indicators x 3"),
        ("CPU seconds: import / blocklist / RPZ", "", f"{r['csv-kizuna']['cpu_seconds']} / "
         f"{summary['blocklist_cpu_s']} / {summary['rpz_cpu_s']}", f"(load average {load:.1f})"),
        ("peak RSS blocklist / RPZ / import (MB)", "", f"{summary['blocklist_peak_rss_mb']} / "
         f"{summary['rpz_peak_rss_mb']} / {summary['csv_import_peak_rss_mb']}", f"<= {GOALS['peak_rss_mb']}"),
    ]
    print(f"{'measurement':42} {'floor':>10} {'Kizuna':>22}  goal", file=sys.stderr)
    for label, floor, value, goal in table:
        print(f"{label:42} {floor!s:>10} {value!s:>22}  {goal}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
