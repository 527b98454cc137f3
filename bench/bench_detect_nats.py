"""Benchmark: the detection tier on NATS JetStream, 1 and 2 workers, with the in-process floor beside it.

    .venv/bin/python -m bench.bench_detect_nats            # 200k events, 3 runs each
    .venv/bin/python -m bench.bench_detect_nats --quick    # 40k events, 1 run each
    .venv/bin/python -m bench.bench_detect_nats --json     # one JSON line with every figure

A private `nats-server -js` on a free port and a private SQLite node (1,000 IOC indicators, 1% of
events hit one) are created in a temporary directory. Events are Zeek DNS JSON lines, published by
`kizuna detect publish` in 500-line chunks. Figures, medians of the runs:

* floor: the same lines through one in-process `LineMatcher` (no NATS, no store), what one core
  can match at best;
* publish: lines/s stored into the events stream by `kizuna detect publish`;
* workers N=1, 2: lines/s from the first chunk delivered to the stream drained (every chunk's
  sightings stored and the chunk acknowledged), the log published beforehand so the publisher does
  not bound the workers (the second worker starts within about a second of the first, which
  understates N=2 slightly); peak RSS per worker;
* latency: one chunk with one hit published to an idle worker, until JetStream reports it
  acknowledged (so its sighting is stored): median and p95 of 20 samples.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
import orjson

from bench.common import free_loopback_port, peak_rss_mb
from kizuna.core.node import Node
from kizuna.detect.engine import DetectionEngine
from kizuna.detect.mappings import LogReader, shipped_mappings

BASE_TS = 1_700_000_000


def _indicators(n: int) -> list[dict[str, Any]]:
    return [{"type": "indicator", "spec_version": "2.1", "id": f"indicator--00000000-0000-4000-8000-{i:012d}",
             "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
             "pattern": f"[domain-name:value = 'bad{i}.example']", "pattern_type": "stix",
             "valid_from": "2020-01-01T00:00:00Z"} for i in range(n)]


def _log(path: Path, events: int, indicators: int, seed: int = 3) -> list[bytes]:
    rng = random.Random(seed)
    lines = []
    for n in range(events):
        query = f"bad{rng.randrange(indicators)}.example" if rng.random() < 0.01 else f"host{n}.example.org"
        lines.append(orjson.dumps({"ts": BASE_TS + n * 0.01, "id.orig_h": f"10.0.{n % 250}.{n % 200 + 1}",
                                   "id.resp_h": "192.0.2.53", "query": query}))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return lines


def _floor(indicators: list[dict[str, Any]], lines: list[bytes]) -> float:
    engine = DetectionEngine("identity--00000000-0000-4000-8000-000000000000")
    engine.load_indicators(indicators)
    matcher = engine.line_matcher(LogReader(shipped_mappings().values()))
    start = time.perf_counter()
    for _ in matcher.alerts(lines):
        pass
    return len(lines) / (time.perf_counter() - start)


async def _consumer(url: str) -> Any:
    nc = await nats.connect(url)
    try:
        return await nc.jetstream().consumer_info("KIZUNA_EVENTS", "kizuna-detect")
    except nats.js.errors.NotFoundError:
        return None
    finally:
        await nc.close()


async def _reset(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    for stream in ("KIZUNA_EVENTS", "KIZUNA_HITS"):
        try:
            await js.delete_stream(stream)
        except nats.js.errors.NotFoundError:
            pass
    await nc.close()


def _kizuna(data: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "kizuna", "--data", str(data), *args]


def _poll(url: str, condition: Any, rss: dict[int, float], workers: list[subprocess.Popen[bytes]]) -> float:
    while True:
        info = asyncio.run(_consumer(url))
        for w in workers:
            if w.poll() is not None:
                raise SystemExit(f"a worker exited early with status {w.returncode}")
            rss[w.pid] = max(rss.get(w.pid, 0.0), peak_rss_mb(w.pid))
        if condition(info):
            return time.perf_counter()
        time.sleep(0.02)  # polling the consumer's state, bounded by the caller's work


def _workers_run(data: Path, url: str, log: Path, n: int, events: int) -> tuple[float, float, float]:
    """(drain events/s, publish events/s, peak RSS MB of a worker) for n workers.

    The log is published first, so the publisher does not bound the workers; the workers are then
    started together and timed from the first chunk delivered to the stream drained.
    """
    asyncio.run(_reset(url))
    start = time.perf_counter()
    subprocess.run(_kizuna(data, "detect", "publish", str(log), "--nats", url), check=True,
                   stdout=subprocess.DEVNULL)
    published = time.perf_counter()
    worker_args = _kizuna(data, "detect", "worker", "--nats", url, "--from-collection", "intel",
                          "--collection", "sightings", "--batch", "8")
    workers = [subprocess.Popen(worker_args, stdout=subprocess.DEVNULL) for _ in range(n)]  # stderr shows failures
    rss: dict[int, float] = {}
    try:
        first = _poll(url, lambda i: i is not None and i.delivered.stream_seq > 0, rss, workers)
        done = _poll(url, lambda i: i.num_pending == 0 and i.num_ack_pending == 0, rss, workers)
    finally:
        for w in workers:
            w.terminate()
            w.wait(timeout=60)
    return events / (done - first), events / (published - start), max(rss.values())


def _latency(data: Path, url: str, base: Path, samples: int) -> list[float]:
    asyncio.run(_reset(url))
    worker = subprocess.Popen(_kizuna(data, "detect", "worker", "--nats", url, "--from-collection", "intel",
                                      "--collection", "sightings", "--batch", "1"), stdout=subprocess.DEVNULL)
    found = []
    try:
        _poll(url, lambda i: i is not None and i.num_waiting >= 1, {}, [])
        for k in range(samples):
            one = base / f"one-{k}.log"
            one.write_bytes(orjson.dumps({"ts": BASE_TS + 7200 + k, "id.orig_h": "10.9.9.9", "id.resp_h": "192.0.2.53",
                                          "query": f"bad{k}.example"}) + b"\n")
            start = time.perf_counter()
            asyncio.run(_publish_one(url, one.read_bytes()))
            done = _poll(url, lambda i, k=k: i.ack_floor.stream_seq >= k + 1, {}, [])
            found.append(done - start)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    return found


async def _publish_one(url: str, payload: bytes) -> None:
    nc = await nats.connect(url)
    await nc.jetstream().publish("kizuna.events.logs", payload.rstrip(b"\n"),
                                 headers={"Kizuna-File": "latency", "Kizuna-Line": "1"})
    await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40k events, one run each")
    parser.add_argument("--json", action="store_true", help="print one JSON line with every figure")
    args = parser.parse_args()
    events = 40_000 if args.quick else 200_000
    runs = 1 if args.quick else 3
    n_indicators = 1000
    base = Path(tempfile.mkdtemp(prefix="kizuna-bench-nats-"))
    port = free_loopback_port()
    server = subprocess.Popen(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(base / "js")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"nats://127.0.0.1:{port}"
    try:
        node = Node.init(base / "node", org_name="Bench SOC", country="JPN")
        intel = node.create_collection("Intel", alias="intel")
        node.create_collection("Sightings", alias="sightings")
        indicators = _indicators(n_indicators)
        node.import_objects(intel, indicators)
        node.close()
        log = base / "dns.json.log"
        lines = _log(log, events, n_indicators)
        figures: dict[str, Any] = {"events": events, "indicators": n_indicators, "hit_share": 0.01, "runs": runs}
        figures["floor_in_process_events_per_s"] = round(statistics.median(_floor(indicators, lines)
                                                                          for _ in range(runs)))
        for n in (1, 2):
            results = [_workers_run(base / "node", url, log, n, events) for _ in range(runs)]
            figures[f"workers_{n}"] = {
                "events_per_s": round(statistics.median(r[0] for r in results)),
                "publish_events_per_s": round(statistics.median(r[1] for r in results)),
                "peak_rss_mb_per_worker": round(max(r[2] for r in results), 1),
            }
            print(f"{n} worker(s): {figures[f'workers_{n}']}", file=sys.stderr)
        latencies = _latency(base / "node", url, base, 20)
        figures["latency_ms"] = {"median": round(statistics.median(latencies) * 1000, 1),
                                 "p95": round(sorted(latencies)[int(0.95 * (len(latencies) - 1))] * 1000, 1)}
        one, two = figures["workers_1"]["events_per_s"], figures["workers_2"]["events_per_s"]
        figures["ratio_2_over_1"] = round(two / one, 2)
        figures["ratio_1_worker_over_floor"] = round(
            figures["workers_1"]["events_per_s"] / figures["floor_in_process_events_per_s"], 2)
        print(f"floor {figures['floor_in_process_events_per_s']:,} events/s; latency {figures['latency_ms']}",
              file=sys.stderr)
        if args.json:
            print(orjson.dumps(figures).decode())
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
