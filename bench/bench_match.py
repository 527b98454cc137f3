"""Benchmark: Kizuna's indexed matcher against the OASIS reference matcher, in one run.

    python -m bench.bench_match            # full: 1k..1M curve
    python -m bench.bench_match --quick    # small sizes, about a minute
    python -m bench.bench_match --json     # one JSON line with every figure

Events are Zeek-style JSON lines (conn, dns, http, files); indicators are IOC-style equalities on
ip / domain / url / hash, 1% of events carry an indicator value. Figures are medians of several runs;
Kizuna runs through `DetectionEngine.line_matcher` (the fast path of kizuna/detect/fast.py), from
raw lines to alerts, as `kizuna match` does.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import random
import resource
import statistics
import sys
import time
import tracemalloc
from typing import Any

import orjson

from bench.common import positive_int
from kizuna.detect.engine import DetectionEngine
from kizuna.detect.mappings import LogReader, shipped_mappings

IDENTITY = "identity--00000000-0000-4000-8000-000000000000"


def _ip(rng: random.Random) -> str:
    return f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _ioc_values(n: int, seed: int = 7) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            out.append(("ip", _ip(rng)))
        elif kind == 1:
            out.append(("domain", f"bad{i}-{rng.randint(0, 10**6)}.example"))
        elif kind == 2:
            out.append(("url", f"http://evil{i}.example/p/{rng.randint(0, 10**6)}"))
        else:
            out.append(("md5", hashlib.md5(str(i).encode()).hexdigest()))
    return out


def _pattern(kind: str, value: str) -> str:
    return {
        "ip": f"[ipv4-addr:value = '{value}']",
        "domain": f"[domain-name:value = '{value}']",
        "url": f"[url:value = '{value}']",
        "md5": f"[file:hashes.MD5 = '{value}']",
    }[kind]


def indicators(n: int, complex_share: float = 0.0) -> list[dict[str, Any]]:
    out = []
    rng = random.Random(11)
    for i, (kind, value) in enumerate(_ioc_values(n)):
        if complex_share and rng.random() < complex_share:
            choice = i % 3
            if choice == 0:
                pattern = f"[domain-name:value LIKE '%.bad{i}.example']"
            elif choice == 1:
                pattern = f"[url:value MATCHES '^http://evil{i}\\\\.example/[a-z]+/']"
            else:
                pattern = f"[ipv4-addr:value ISSUBSET '{_ip(rng)}/{rng.choice([16, 20, 24, 28])}']"
        else:
            pattern = _pattern(kind, value)
        out.append(
            {"type": "indicator", "id": f"indicator--{i:08d}", "pattern": pattern, "pattern_type": "stix"}
        )
    return out


def events(n: int, iocs: list[tuple[str, str]], hit_rate: float = 0.01, seed: int = 3) -> list[bytes]:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        ts = 1_575_000_000 + i * 0.01
        src, dst = _ip(rng), _ip(rng)
        kind = i % 4
        hit = iocs[rng.randrange(len(iocs))] if rng.random() < hit_rate else None
        if hit and hit[0] == "ip":
            dst = hit[1]
        base = {
            "ts": ts,
            "uid": f"C{i}",
            "id.orig_h": src,
            "id.orig_p": 49152 + i % 1000,
            "id.resp_h": dst,
            "id.resp_p": 80,
        }
        if kind == 0:
            record = {**base, "proto": "tcp", "conn_state": "SF", "duration": 0.1}
        elif kind == 1:
            query = hit[1] if hit and hit[0] == "domain" else f"host{i}.benign.example"
            record = {**base, "proto": "udp", "query": query, "qtype_name": "A"}
        elif kind == 2:
            host, uri = f"www{i % 97}.benign.example", f"/index{i}.html"
            if hit and hit[0] == "url":
                host, uri = hit[1][7:].split("/", 1)[0], "/" + hit[1][7:].split("/", 1)[1]
            record = {**base, "method": "GET", "host": host, "uri": uri, "user_agent": "Mozilla/5.0"}
        else:
            md5 = hit[1] if hit and hit[0] == "md5" else hashlib.md5(f"f{i}".encode()).hexdigest()
            record = {
                "ts": ts,
                "fuid": f"F{i}",
                "tx_hosts": [dst],
                "rx_hosts": [src],
                "seen_bytes": 100,
                "md5": md5,
                "mime_type": "application/octet-stream",
            }
        lines.append(orjson.dumps(record))
    return lines


def _median(runs: int, fn: Any) -> float:
    return statistics.median(fn() for _ in range(runs))


def parse_floor(lines: list[bytes]) -> float:
    loads = orjson.loads
    start = time.perf_counter()
    for line in lines:
        loads(line)
    return len(lines) / (time.perf_counter() - start)


def build_engine(inds: list[dict[str, Any]]) -> tuple[DetectionEngine, float]:
    engine = DetectionEngine(IDENTITY)
    start = time.perf_counter()
    engine.load_indicators(inds)
    return engine, time.perf_counter() - start


def kizuna_rate(engine: DetectionEngine, lines: list[bytes]) -> tuple[float, int]:
    reader = LogReader(shipped_mappings().values())
    matcher = engine.line_matcher(reader)  # compiles its probes now, outside the timed loop
    engine.hits = 0
    start = time.perf_counter()
    for _ in matcher.alerts(lines):
        pass
    return len(lines) / (time.perf_counter() - start), engine.hits


def bytes_per_indicator(inds: list[dict[str, Any]]) -> float:
    gc.collect()
    tracemalloc.start()
    engine = DetectionEngine(IDENTITY)
    before = tracemalloc.get_traced_memory()[0]
    for ind in inds:
        engine.index.add(ind)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / len(inds)


def reference_rate(inds: list[dict[str, Any]], lines: list[bytes]) -> tuple[float, float]:
    """stix2-matcher events/s against these indicators (each pattern tried on each event)."""
    from stix2matcher.matcher import Pattern

    mappings = shipped_mappings()
    reader = LogReader(mappings.values())
    bundles = []
    for event in reader.events(lines):
        observation = event.build()
        stamp = observation.first_observed.strftime("%Y-%m-%dT%H:%M:%SZ")
        od = {
            "type": "observed-data",
            "id": "observed-data--1",
            "number_observed": 1,
            "first_observed": stamp,
            "last_observed": stamp,
            "object_refs": list(observation.objects),
            "spec_version": "2.1",
        }
        bundles.append(
            [{"type": "bundle", "id": "bundle--1", "objects": [od, *observation.objects.values()]}]
        )
    patterns = [Pattern(i["pattern"], stix_version="2.1") for i in inds]
    start = time.perf_counter()
    for bundle in bundles:
        for pattern in patterns:
            pattern.match(bundle)
    elapsed = time.perf_counter() - start
    pairs = len(bundles) * len(patterns)
    return len(bundles) / elapsed, pairs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    parser.add_argument("--json", action="store_true", help="print one JSON line with all figures")
    parser.add_argument("--runs", type=positive_int, default=3, help="runs; medians are reported")
    args = parser.parse_args()

    sizes = [1_000, 10_000, 100_000] if args.quick else [1_000, 10_000, 100_000, 1_000_000]
    n_events = 20_000 if args.quick else 100_000
    figures: dict[str, Any] = {"events": n_events, "runs": args.runs}
    all_inds = indicators(max(sizes))
    iocs = _ioc_values(max(sizes))

    curve = {}
    for size in sizes:
        lines = events(n_events, iocs[:size])
        inds = all_inds[:size]
        engine, compile_s = build_engine(inds)
        # Floor and Kizuna alternate within each run, so a burst of load on the shared machine hits
        # both sides of a ratio; the ratio's median is reported next to the medians of the rates.
        rates, floors = [], []
        for _ in range(args.runs):
            floors.append(parse_floor(lines))
            rates.append(kizuna_rate(engine, lines)[0])
        rate, floor = statistics.median(rates), statistics.median(floors)
        ratio = statistics.median(f / r for f, r in zip(floors, rates, strict=True))
        curve[str(size)] = {
            "events_per_s": round(rate),
            "parse_floor_per_s": round(floor),
            "ratio_to_floor": round(ratio, 2),
            "compile_s": round(compile_s, 3),
            "hits": kizuna_rate(engine, lines)[1],
        }
        del engine
        gc.collect()
        print(
            f"{size:>9} indicators: {rate:,.0f} events/s (parse floor {floor:,.0f}/s, "
            f"{ratio:.2f}x), compile {compile_s:.2f}s",
            file=sys.stderr,
        )
    figures["curve"] = curve

    mem_n = 10_000 if args.quick else 100_000
    figures["bytes_per_ioc_indicator"] = round(bytes_per_indicator(all_inds[:mem_n]))
    print(
        f"index memory: {figures['bytes_per_ioc_indicator']} bytes per IOC indicator ({mem_n:,})",
        file=sys.stderr,
    )

    complex_n = 10_000
    mixed = indicators(complex_n, complex_share=0.10)
    engine, compile_s = build_engine(mixed)
    lines = events(n_events, iocs[:complex_n])
    rate = _median(args.runs, lambda: kizuna_rate(engine, lines)[0])
    figures["mixed_10pct_complex"] = {
        "indicators": complex_n,
        "events_per_s": round(rate),
        "compile_s": round(compile_s, 3),
    }
    print(f"10% LIKE/MATCHES/ISSUBSET of {complex_n:,}: {rate:,.0f} events/s", file=sys.stderr)

    ref_events = 20 if args.quick else 50
    ref_lines = events(ref_events, iocs[:1000], seed=5)
    ref_eps, ref_pairs = reference_rate(all_inds[:1000], ref_lines)
    kiz_1k = curve["1000"]["events_per_s"]
    figures["reference_1k"] = {
        "events_per_s": round(ref_eps, 2),
        "pairs_per_s": round(ref_pairs),
        "kizuna_speedup": round(kiz_1k / ref_eps),
    }
    print(
        f"stix2-matcher, 1k indicators: {ref_eps:.1f} events/s ({ref_pairs:,.0f} pattern x event pairs/s); "
        f"Kizuna is {kiz_1k / ref_eps:,.0f}x faster",
        file=sys.stderr,
    )

    start = time.perf_counter()
    build_engine(all_inds[:100_000])
    figures["rebuild_100k_s"] = round(time.perf_counter() - start, 3)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(
        f"rebuild 100k on start: {figures['rebuild_100k_s']}s; peak RSS {figures['peak_rss_mb']} MB",
        file=sys.stderr,
    )
    if args.json:
        print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
