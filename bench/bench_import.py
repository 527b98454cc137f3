"""`kizuna import` end to end: CSV lines/s and MISP attributes/s through the command, beside their floors.

Each timed run is a real `kizuna import` process into a fresh SQLite node (created before the clock
starts), so the figures include process start, format detection, conversion, warninglist flagging,
ingest, the audit record and the report — what an operator waits for. Beside them, in the same run:

- CSV: `read_ioc_list` alone on the same file, in a child process (the converter's floor), and the same
  import with `--workers 1` (every object prepared for storage in the importing process);
- MISP: misp-stix's own conversion of the same events (`MISPtoSTIX21Parser`, objects in memory, one
  process), the floor for anything built on it (bench/bench_misp.py measures the converter itself), and
  the same import with `--workers 1` (every file converted in the importing process). The default import
  converts the directory's files in one worker a core; its peak RSS is that of the largest process (each
  worker is a fork that shares the importer's pages until it writes them).

The CSV is generated (unique domains, IPv4 addresses and SHA-256 hashes, a type column); the MISP
events are the real CIRCL events of tests/fixtures/misp/ that misp-stix converts on its own. Medians
of `--runs`; peak RSS per process (wait4). Goals: CSV ≥ 50,000 lines/s; MISP ≥ 5,000 attributes/s and
≥ 0.7 × misp-stix.

    python -m bench.bench_import                      # table on stderr, one JSON line on stdout
    python -m bench.bench_import --lines 200000 --runs 5
    python -m bench.bench_import --misp-copies 20 --runs 3   # 220 events, ~22,700 attributes
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.bench_misp import attribute_count, convertible_by_misp_stix, load_events, measure
from bench.common import positive_int

ROOT = Path(__file__).resolve().parent.parent

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_COPIES = uuid.UUID("6f1d6a52-0c0e-4c43-9d3e-2f4a7b9e1c55")


def event_copy(document: bytes, copy: int) -> bytes:
    """The event with every uuid in it (event, attributes, objects, references, galaxies) replaced by one
    derived from it and ``copy``, consistently, so copies are distinct events that convert alike."""
    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, str) and _UUID.match(value):
            return str(uuid.uuid5(_COPIES, f"{copy}/{value.lower()}"))
        return value

    return json.dumps(walk(json.loads(document))).encode()


def write_csv(path: Path, lines: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("type,value,comment\n")
        for n in range(lines):
            if n % 3 == 0:
                out.write(f"domain,host{n}.bench-{n % 97}.example.net,generated\n")
            elif n % 3 == 1:
                out.write(f"ip,{11 + n % 200}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255},generated\n")
            else:
                out.write(f"sha256,{hashlib.sha256(str(n).encode()).hexdigest()},generated\n")


def _kizuna(*args: str) -> tuple[float, float, str]:
    """(seconds, peak RSS MB, stdout) of one `kizuna` process (output spooled to files, so wait4 sees it end)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "kizuna", *args], stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode not in (0, 1):
            raise SystemExit(f"kizuna {' '.join(args)} failed: {err.read().decode()[-500:]}")
        return seconds, usage.ru_maxrss / 1024, out.read().decode()


def _fresh_node(base: Path) -> Path:
    node = Path(tempfile.mkdtemp(dir=base))
    _kizuna("--data", str(node), "init", "--org-name", "Bench", "--country", "GBR", "--json")
    _kizuna("--data", str(node), "collections", "create", "--title", "Bench", "--alias", "bench", "--json")
    return node


def import_runs(base: Path, source: Path, runs: int, *extra: str) -> tuple[list[float], float, dict[str, Any]]:
    times, peak, report = [], 0.0, {}
    for _ in range(runs):
        node = _fresh_node(base)
        seconds, rss, out = _kizuna("--data", str(node), "import", str(source), "--collection", "bench", "--json",
                                    *extra)
        times.append(seconds)
        peak = max(peak, rss)
        report = json.loads(out)
        shutil.rmtree(node)
    return times, peak, report


def converter_floor(source: Path, runs: int) -> tuple[list[float], float]:
    code = ("import sys, time, resource; from kizuna.formats.ioc_lists import read_ioc_list\n"
            "read_ioc_list(['a.example.net'])\n"
            "t = time.perf_counter(); r = read_ioc_list(sys.argv[1]); s = time.perf_counter() - t\n"
            "print(s, len(r.objects), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    times, peak = [], 0.0
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code, str(source)], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout.split()
        times.append(float(out[0]))
        peak = max(peak, float(out[2]))
    return times, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=positive_int, default=100_000, help="lines of the generated CSV")
    parser.add_argument("--runs", type=positive_int, default=3, help="timed runs per side; the median counts")
    parser.add_argument("--misp-copies", type=positive_int, default=1,
                        help="import the CIRCL events this many times over, each copy with its own uuids "
                             "(a throughput figure needs enough attributes to outweigh the process start)")
    args = parser.parse_args()
    line: dict[str, Any] = {"bench": "import", "runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="kizuna-bench-import-") as spool:
        base = Path(spool)
        csv_path = base / "iocs.csv"
        write_csv(csv_path, args.lines)
        times, rss, report = import_runs(base, csv_path, args.runs)
        csv_serial, csv_serial_rss, _ = import_runs(base, csv_path, args.runs, "--workers", "1")
        floor, floor_rss = converter_floor(csv_path, args.runs)
        cli_s, floor_s = statistics.median(times), statistics.median(floor)
        csv_serial_s = statistics.median(csv_serial)
        line["csv"] = {"lines": args.lines, "stored": report["stored"],
                       "kizuna_import": {"median_s": round(cli_s, 3), "lines_per_s": round(args.lines / cli_s),
                                         "peak_rss_mb": round(rss, 1)},
                       "kizuna_import_one_process": {"median_s": round(csv_serial_s, 3),
                                                     "lines_per_s": round(args.lines / csv_serial_s),
                                                     "peak_rss_mb": round(csv_serial_rss, 1)},
                       "workers_speedup": round(csv_serial_s / cli_s, 2),
                       "read_ioc_list_alone": {"median_s": round(floor_s, 3),
                                               "lines_per_s": round(args.lines / floor_s),
                                               "peak_rss_mb": round(floor_rss, 1)}}

        events = load_events()
        names = convertible_by_misp_stix(events)
        directory = base / "events"
        directory.mkdir()
        documents = [events[name] if copy == 0 else event_copy(events[name], copy)
                     for copy in range(args.misp_copies) for name in names]
        for number, document in enumerate(documents):
            (directory / f"{number:05d}.json").write_bytes(document)
        attributes = sum(attribute_count(d) for d in documents)
        times, rss, report = import_runs(base, directory, args.runs, "--no-warninglists")
        serial_times, serial_rss, _ = import_runs(base, directory, args.runs, "--no-warninglists", "--workers", "1")
        alone = measure({"misp-stix": documents}, args.runs)["misp-stix"]
        cli_s, alone_s = statistics.median(times), statistics.median(alone["times"])
        serial_s = statistics.median(serial_times)
        line["misp"] = {"events": len(documents), "copies": args.misp_copies, "attributes": attributes,
                        "stored": report["stored"],
                        "kizuna_import": {"median_s": round(cli_s, 3), "attributes_per_s": round(attributes / cli_s),
                                          "peak_rss_mb": round(rss, 1),
                                          "conversion_workers": report["conversion_workers"]},
                        "kizuna_import_one_process": {"median_s": round(serial_s, 3),
                                                      "attributes_per_s": round(attributes / serial_s),
                                                      "peak_rss_mb": round(serial_rss, 1)},
                        "workers_speedup": round(serial_s / cli_s, 2),
                        "misp_stix_alone": {"median_s": round(alone_s, 3),
                                            "attributes_per_s": round(attributes / alone_s),
                                            "peak_rss_mb": alone["peak_rss_mb"]},
                        "ratio_to_misp_stix": round(alone_s / cli_s, 3)}
    csv_rate = line["csv"]["kizuna_import"]["lines_per_s"]
    misp_rate = line["misp"]["kizuna_import"]["attributes_per_s"]
    line["targets"] = {"csv_lines_per_s>=50000": csv_rate >= 50_000, "misp_attributes_per_s>=5000": misp_rate >= 5000,
                       "misp_ratio>=0.7": line["misp"]["ratio_to_misp_stix"] >= 0.7}
    c, m = line["csv"], line["misp"]
    print(f"CSV  {c['lines']} lines: kizuna import {csv_rate:>8} lines/s (peak {c['kizuna_import']['peak_rss_mb']} MB; "
          f"one process {c['kizuna_import_one_process']['lines_per_s']} lines/s)"
          f"  read_ioc_list alone {c['read_ioc_list_alone']['lines_per_s']:>8} lines/s", file=sys.stderr)
    print(f"MISP {m['events']} events, {m['attributes']} attributes: kizuna import {misp_rate:>6} attr/s "
          f"(peak {m['kizuna_import']['peak_rss_mb']} MB, {m['kizuna_import']['conversion_workers']} workers; "
          f"one process {m['kizuna_import_one_process']['attributes_per_s']} attr/s)  misp-stix alone "
          f"{m['misp_stix_alone']['attributes_per_s']:>6} attr/s  ratio {m['ratio_to_misp_stix']}", file=sys.stderr)
    print(f"targets {line['targets']}", file=sys.stderr)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
