"""Benchmark: Zeek TSV logs through the matcher, rows read whole (before) against compiled row readers (now).

    python -m bench.bench_zeek_tsv --json                   # 100,000 rows, 100,000 indicators, 5 runs
    python -m bench.bench_zeek_tsv --events 20000 --runs 3  # quick

The rows are the events of bench_match.py (conn, dns, http, files in equal parts, 1% carry an
indicator value) written as Zeek TSV logs with their real column sets, one header per log. Each
run times, on the same lines and the same compiled index, in alternation:

* floor   — `line.split("\\t")` alone: the least any TSV reader does per row;
* before  — `LineMatcher(tsv_rows=False)`: every row converted whole by `LogReader`, then probed;
* now     — `LineMatcher()`: the compiled row reader converts the probed cells only.

Rates are medians over runs; ratios are medians of the per-run ratios, so a burst of load on a
shared machine hits both sides. Peak RSS is the whole process's. The last line (`--json`) is one
JSON object with every figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import orjson

from bench.bench_match import _ioc_values, build_engine, events, indicators
from bench.common import own_peak_rss_mb, positive_int
from kizuna.detect.fast import LineMatcher
from kizuna.detect.mappings import LogReader, shipped_mappings

# The columns of Zeek's own logs (a subset, in Zeek's order) and their types.
LOGS: dict[str, list[tuple[str, str]]] = {
    "conn": [("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
             ("id.resp_h", "addr"), ("id.resp_p", "port"), ("proto", "enum"), ("service", "string"),
             ("duration", "interval"), ("orig_bytes", "count"), ("resp_bytes", "count"),
             ("conn_state", "string"), ("missed_bytes", "count"), ("history", "string"),
             ("orig_pkts", "count"), ("resp_pkts", "count"), ("tunnel_parents", "set[string]")],
    "dns": [("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
            ("id.resp_h", "addr"), ("id.resp_p", "port"), ("proto", "enum"), ("trans_id", "count"),
            ("query", "string"), ("qclass", "count"), ("qclass_name", "string"), ("qtype", "count"),
            ("qtype_name", "string"), ("rcode", "count"), ("rcode_name", "string"), ("AA", "bool"),
            ("TC", "bool"), ("RD", "bool"), ("RA", "bool"), ("Z", "count"), ("answers", "vector[string]"),
            ("TTLs", "vector[interval]"), ("rejected", "bool")],
    "http": [("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
             ("id.resp_h", "addr"), ("id.resp_p", "port"), ("trans_depth", "count"), ("method", "string"),
             ("host", "string"), ("uri", "string"), ("referrer", "string"), ("user_agent", "string"),
             ("request_body_len", "count"), ("response_body_len", "count"), ("status_code", "count"),
             ("status_msg", "string"), ("tags", "set[enum]"), ("resp_fuids", "vector[string]"),
             ("resp_mime_types", "vector[string]")],
    "files": [("ts", "time"), ("fuid", "string"), ("tx_hosts", "set[addr]"), ("rx_hosts", "set[addr]"),
              ("conn_uids", "set[string]"), ("source", "string"), ("depth", "count"),
              ("analyzers", "set[string]"), ("mime_type", "string"), ("filename", "string"),
              ("duration", "interval"), ("is_orig", "bool"), ("seen_bytes", "count"), ("total_bytes", "count"),
              ("missing_bytes", "count"), ("overflow_bytes", "count"), ("timedout", "bool"), ("md5", "string"),
              ("sha1", "string")],
}
FILLER = {"count": "0", "port": "0", "bool": "F", "interval": "0.000120", "enum": "tcp", "time": "0.0"}


def _log_of(record: dict[str, Any]) -> str:
    if "fuid" in record:
        return "files"
    if "query" in record:
        return "dns"
    return "http" if "method" in record else "conn"


def _cell(value: Any, kind: str) -> str:
    if isinstance(value, list):
        return ",".join(value) if value else "(empty)"
    if value is not None:
        return str(value)
    return "-" if kind.startswith(("set", "vector")) or kind == "string" else FILLER.get(kind, "-")


def tsv_lines(records: list[bytes]) -> list[bytes]:
    """The records as four Zeek TSV logs, concatenated, each after its header."""
    by_log: dict[str, list[dict[str, Any]]] = {name: [] for name in LOGS}
    for raw in records:
        record = orjson.loads(raw)
        by_log[_log_of(record)].append(record)
    out: list[bytes] = []
    for name, columns in LOGS.items():
        out += [b"#separator \\x09", b"#set_separator\t,", b"#empty_field\t(empty)", b"#unset_field\t-",
                f"#path\t{name}".encode(), ("#fields\t" + "\t".join(c for c, _ in columns)).encode(),
                ("#types\t" + "\t".join(k for _, k in columns)).encode()]
        for record in by_log[name]:
            out.append("\t".join(_cell(record.get(column), kind) for column, kind in columns).encode())
    return out


def split_floor(lines: list[bytes]) -> float:
    start = time.perf_counter()
    for line in lines:
        line.split(b"\t")
    return len(lines) / (time.perf_counter() - start)


def matcher_rate(engine: Any, lines: list[bytes], tsv_rows: bool) -> tuple[float, int]:
    matcher = LineMatcher(engine, LogReader(shipped_mappings().values()), tsv_rows=tsv_rows)
    engine.hits = 0
    start = time.perf_counter()
    for _ in matcher.alerts(lines):
        pass
    return len(lines) / (time.perf_counter() - start), engine.hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=positive_int, default=100_000, help="TSV rows (default 100,000)")
    parser.add_argument("--indicators", type=positive_int, default=100_000, help="IOC indicators (default 100,000)")
    parser.add_argument("--runs", type=positive_int, default=5, help="alternating runs; medians are reported")
    parser.add_argument("--json", action="store_true", help="print one JSON line with every figure")
    args = parser.parse_args()

    iocs = _ioc_values(args.indicators)
    lines = tsv_lines(events(args.events, iocs))
    engine, compile_s = build_engine(indicators(args.indicators))
    floors, before, now, hits = [], [], [], set()
    for _ in range(args.runs):
        floors.append(split_floor(lines))
        rate, found = matcher_rate(engine, lines, tsv_rows=False)
        before.append(rate)
        hits.add(found)
        rate, found = matcher_rate(engine, lines, tsv_rows=True)
        now.append(rate)
        hits.add(found)
    if len(hits) != 1:
        raise SystemExit(f"the two routes found different numbers of hits: {sorted(hits)}")
    figures = {
        "bench": "zeek_tsv",
        "rows": len(lines),
        "indicators": args.indicators,
        "runs": args.runs,
        "hits": hits.pop(),
        "compile_s": round(compile_s, 2),
        "split_floor_rows_per_s": round(statistics.median(floors)),
        "before_rows_per_s": round(statistics.median(before)),
        "now_rows_per_s": round(statistics.median(now)),
        "now_over_before": round(statistics.median(n / b for n, b in zip(now, before, strict=True)), 2),
        "floor_over_now": round(statistics.median(f / n for f, n in zip(floors, now, strict=True)), 2),
        "floor_over_before": round(statistics.median(f / b for f, b in zip(floors, before, strict=True)), 2),
        "peak_rss_mb": own_peak_rss_mb(),
    }
    print(
        f"{figures['rows']:,} TSV rows against {args.indicators:,} indicators: "
        f"before {figures['before_rows_per_s']:,}/s, now {figures['now_rows_per_s']:,}/s "
        f"({figures['now_over_before']}x); split floor {figures['split_floor_rows_per_s']:,}/s "
        f"(now is {figures['floor_over_now']}x the floor's cost); peak RSS {figures['peak_rss_mb']} MB",
        file=sys.stderr,
    )
    if args.json:
        print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
