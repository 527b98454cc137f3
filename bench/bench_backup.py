"""`kizuna backup` and `kizuna restore` of an SQLite node, beside the floor of copying its file.

A node is built in a temporary directory with --objects seeded indicators (bench/gen_stix.py shapes,
through the node's own import path, before any clock starts). Then, in the same run:

- floor: `shutil.copyfile` of kizuna.db (what copying the bytes costs, no consistency, no checks);
- backup API: the SQLite online backup alone (store/backup.copy_sqlite), in this process;
- kizuna backup: the whole command as an operator runs it, in a child process (copy, audit chain
  verification, version count, checksum, fsync), with its peak RSS (wait4);
- kizuna restore: the whole command into a fresh data directory, with its peak RSS;
- anchor: `kizuna audit verify` on the same node, a command that starts, opens the node and checks the
  chain, so what backup and restore add beyond a command's start-up can be read off.

Medians of --runs; a table on stderr and one JSON line on stdout.

    python -m bench.bench_backup                       # 50,000 objects, 3 runs
    python -m bench.bench_backup --objects 200000 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import positive_int


def build_node(data_dir: Path, count: int) -> None:
    from kizuna.core.node import Node
    from kizuna.stix.timestamps import format_timestamp, now_micros

    node = Node.init(data_dir, org_name="Bench")
    collection = node.create_collection("Bench")
    stamp = format_timestamp(now_micros())
    objects = (
        {"type": "indicator", "spec_version": "2.1", "id": f"indicator--00000000-0000-4000-8000-{n:012d}",
         "created": stamp, "modified": stamp, "name": f"bench {n}", "pattern_type": "stix",
         "pattern": f"[domain-name:value = 'host{n}.example']", "valid_from": stamp}
        for n in range(count)
    )
    node.import_objects(collection, objects)
    node.close()


def timed_command(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one `kizuna` process."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "kizuna", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"kizuna {' '.join(args)} failed: {process.stderr.read().decode() if process.stderr else ''}")
    return elapsed, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=positive_int, default=50_000, help="Indicators in the node.")
    parser.add_argument("--runs", type=positive_int, default=3, help="Timed runs of each measurement.")
    options = parser.parse_args(argv)

    from kizuna.store.backup import copy_sqlite

    with tempfile.TemporaryDirectory(prefix="kizuna-bench-backup-") as temporary:
        base = Path(temporary)
        node = base / "node"
        build_node(node, options.objects)
        db = node / "kizuna.db"
        url = "sqlite:///" + str(db).lstrip("/")
        size_mb = db.stat().st_size / 1e6
        names = ("floor_copy_s", "backup_api_s", "backup_s", "backup_rss_mb", "restore_s", "restore_rss_mb",
                 "anchor_verify_s")
        figures: dict[str, list[float]] = {name: [] for name in names}
        for run in range(options.runs):
            started = time.perf_counter()
            shutil.copyfile(db, base / f"floor-{run}.db")
            figures["floor_copy_s"].append(time.perf_counter() - started)
            started = time.perf_counter()
            copy_sqlite(url, base / f"api-{run}.db")
            figures["backup_api_s"].append(time.perf_counter() - started)
            seconds, rss = timed_command(["--data", str(node), "backup", str(base / f"backup-{run}"), "--json"])
            figures["backup_s"].append(seconds)
            figures["backup_rss_mb"].append(rss)
            seconds, rss = timed_command(["--data", str(base / f"restored-{run}"), "restore",
                                          str(base / f"backup-{run}"), "--json"])
            figures["restore_s"].append(seconds)
            figures["restore_rss_mb"].append(rss)
            figures["anchor_verify_s"].append(timed_command(["--data", str(node), "audit", "verify", "--json"])[0])
        medians = {name: round(statistics.median(values), 3) for name, values in figures.items()}
    result: dict[str, Any] = {"bench": "backup", "objects": options.objects, "db_mb": round(size_mb, 1),
                              "runs": options.runs, **medians,
                              "backup_over_floor": round(medians["backup_s"] / medians["floor_copy_s"], 1)}
    for name, value in result.items():
        print(f"{name:>18}: {value}", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
