"""Incremental sync as the collection grows: does pulling +100 new versions stay flat from 10k to 1M?

Two Kizuna nodes on loopback, set up only through the `kizuna` command. The source's collection grows
in stages (`--sizes`); at each stage the target catches up with one `kizuna sync` (at the first stage
that is the target's first sync), then `--increments` times the source receives 100 new indicators and
the target runs `kizuna sync` again, a real process timed end to end (start-up, pull, store, exit).

Side by side in the same run, at the first stage: `kizuna export` + `kizuna import` of the same
collection into a fresh node (what a manual file transfer costs), so `first_sync_vs_export_import`
says what the network sync adds. Peak RSS: every sync process (VmHWM) and the source server; for each
catch-up also its largest anonymous RSS (the process's own memory) and file-backed RSS (pages of the
database file SQLite maps, at most its ``mmap_size`` a connection, which the kernel may drop).

    python -m bench.bench_sync_scale                                   # quick: 10k, 100k (SQLite)
    python -m bench.bench_sync_scale --sizes 10000,100000,1000000      # the issue's figure (quiet machine)
    python -m bench.bench_sync_scale --store postgresql --json

Goals (issue 15): incremental +100 on a 1M-object collection ≤ 1 s; first sync ≥ 0.9× export + import;
no peak RSS grows with the collection size.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bench.common import ServerProcess, free_loopback_port, median, positive_int, run_measured, store_url
from bench.gen_stix import TLP_CLEAR, generate

INCREMENT = 100
#: This interpreter's Kizuna (the checkout under test), as bench_federation runs it.
KIZUNA = [sys.executable, "-m", "kizuna"]
GOALS = {"incremental_s": 1.0, "first_sync_vs_export_import": 0.9}


class Node:
    """One node's data directory, driven through the public command only."""

    def __init__(self, data: Path) -> None:
        self.data = data

    def command(self, *args: str) -> list[str]:
        return [*KIZUNA, "--data", str(self.data), *args, "--json"]

    def run(self, *args: str, parts: dict[str, float] | None = None) -> tuple[float, float, dict[str, Any]]:
        """(wall s, peak RSS MB, the JSON answer) of one command; a failure stops the benchmark. ``parts``
        receives the peak anonymous and file-backed RSS (see ``run_measured``)."""
        code, wall, peak, out, err = run_measured(self.command(*args), timeout_s=7200, parts=parts)
        if code != 0:
            raise RuntimeError(f"kizuna {' '.join(args)} -> exit {code}: {(err or out)[-1500:]}")
        lines = out.strip().splitlines()
        return wall, peak, orjson.loads(lines[-1]) if lines else {}


def write_bundle(path: Path, objects: Iterator[dict[str, Any]]) -> int:
    """A bundle, one object per line, streamed so the benchmark's own memory stays flat."""
    count = 0
    with path.open("wb") as out:
        out.write(b'{"type": "bundle", "id": "bundle--' + str(uuid.uuid4()).encode() + b'", "objects": [\n')
        for obj in objects:
            out.write((b",\n" if count else b"") + orjson.dumps(obj))
            count += 1
        out.write(b"\n]}\n")
    return count


def fresh_indicators(count: int, stamp: str) -> Iterator[dict[str, Any]]:
    for index in range(count):
        yield {
            "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": stamp,
            "modified": stamp, "pattern_type": "stix", "valid_from": stamp, "object_marking_refs": [TLP_CLEAR],
            "pattern": f"[ipv4-addr:value = '198.51.100.{index % 250}']",
        }


def make_node(base: Path, name: str, url: str) -> tuple[Node, str]:
    node = Node(base / name)
    node.run("init", "--store", url, "--org-name", f"{name} CERT")
    _, _, collection = node.run("collections", "create", "--title", "Shared", "--alias", "shared")
    return node, str(collection["id"])


def grow(source: Node, work: Path, stage: int, count: int) -> dict[str, Any]:
    """Import ``count`` generated objects (seeded per stage, so ids never repeat across stages)."""
    bundle = work / f"stage{stage}.json"
    write_bundle(bundle, generate(count, seed=1000 + stage, markings=(TLP_CLEAR,)))
    wall, peak, report = source.run("import", str(bundle), "--collection", "shared")
    bundle.unlink()
    return {"objects": count, "stored": report.get("stored"), "seconds": round(wall, 3),
            "objects_per_s": round(count / wall), "peak_rss_mb": peak}


def sync(target: Node, parts: dict[str, float] | None = None) -> tuple[float, float, int]:
    wall, peak, report = target.run("sync", "source", parts=parts)
    return wall, peak, int(report["runs"][0]["pulled"])


def export_import(source: Node, base: Path, url: str, stored: int) -> dict[str, Any]:
    """The manual transfer of the same collection: export to a file, import into a fresh node."""
    exported = base / "export.json"
    export_wall, _, _ = source.run("export", "--collection", "shared", "-o", str(exported))
    copy, _ = make_node(base, "copy", url)
    import_wall, import_peak, _ = copy.run("import", str(exported), "--collection", "shared")
    exported.unlink()
    seconds = export_wall + import_wall
    return {"seconds": round(seconds, 3), "objects_per_s": round(stored / seconds), "import_peak_rss_mb": import_peak}


def run(args: argparse.Namespace) -> dict[str, Any]:
    stages: list[dict[str, Any]] = []
    result: dict[str, Any] = {"bench": "sync_scale", "store": args.store, "sizes": args.sizes,
                              "increments": args.increments, "stages": stages}
    with tempfile.TemporaryDirectory(prefix="kizuna-bench-sync-") as tmp, contextlib.ExitStack() as stack:
        base = Path(tmp)
        source, source_collection = make_node(base, "source", stack.enter_context(store_url(args.store, base / "s",
                                                                                             args.pg_url)))
        source.run("orgs", "create", "Target CERT")
        _, _, created = source.run("tokens", "create", "--org", "Target CERT", "--read", "shared")
        port = free_loopback_port()
        server = ServerProcess(
            [*KIZUNA, "--data", str(source.data), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--no-sync"],
            ready_url=f"http://127.0.0.1:{port}/taxii2/", log_path=base / "serve.log",
        )
        target, _ = make_node(base, "target", stack.enter_context(store_url(args.store, base / "t", args.pg_url)))
        target.run("partners", "add", "source", "--url", f"http://127.0.0.1:{port}/main/", "--map",
                   f"shared={source_collection}:pull", "--token", str(created["token"]),
                   "--page-size", str(args.page_size))
        held = 0
        with server:
            for stage, size in enumerate(args.sizes):
                print(f"stage {size:,}: growing the source ...", file=sys.stderr, flush=True)
                grown = grow(source, base, stage, size - held)
                held = size
                parts: dict[str, float] = {}
                wall, catch_up_peak, pulled = sync(target, parts)
                entry: dict[str, Any] = {
                    "size": size, "source_import": grown,
                    "catch_up": {"pulled": pulled, "seconds": round(wall, 3), "objects_per_s": round(pulled / wall),
                                 "peak_rss_mb": catch_up_peak, "peak_anon_mb": parts["anon_mb"],
                                 "peak_file_mb": parts["file_mb"]},
                }
                if stage == 0 and not args.no_reference:
                    print("  export + import reference ...", file=sys.stderr, flush=True)
                    reference = export_import(source, base, stack.enter_context(
                        store_url(args.store, base / "c", args.pg_url)), pulled)
                    entry["export_import"] = reference
                    entry["first_sync_vs_export_import"] = round(reference["seconds"] / wall, 2)
                times: list[float] = []
                peaks: list[float] = []
                for index in range(args.increments):
                    extra = base / "extra.json"
                    write_bundle(extra, fresh_indicators(INCREMENT, f"2026-12-0{1 + index % 9}T00:00:00.000Z"))
                    source.run("import", str(extra), "--collection", "shared")
                    held += INCREMENT
                    wall, peak, pulled = sync(target)
                    if pulled != INCREMENT:
                        raise RuntimeError(f"incremental sync pulled {pulled}, expected {INCREMENT}")
                    times.append(wall)
                    peaks.append(peak)
                entry["incremental"] = {"runs_s": [round(t, 3) for t in times],
                                        "median_s": round(median(times) or 0, 3), "peak_rss_mb": max(peaks)}
                server.sample_peak_rss()
                entry["source_server_peak_rss_mb"] = server.peak_rss_mb
                stages.append(entry)
                print(f"  catch-up {entry['catch_up']['objects_per_s']:,} obj/s, incremental "
                      f"{entry['incremental']['median_s']} s", file=sys.stderr, flush=True)
    largest = stages[-1]
    first = stages[0]
    result["goals"] = {
        f"incremental +{INCREMENT} at {largest['size']:,} <= 1 s": largest["incremental"]["median_s"]
        <= GOALS["incremental_s"],
    }
    if "first_sync_vs_export_import" in first:
        result["goals"]["first sync >= 0.9x export + import"] = (
            first["first_sync_vs_export_import"] >= GOALS["first_sync_vs_export_import"])
    return result


def render(result: dict[str, Any]) -> str:
    lines = ["| objects | catch-up sync obj/s | incremental +100 s (median) | sync peak RSS MB | "
             "catch-up peak anonymous / mapped-file MB | source server peak RSS MB |", "|---|---|---|---|---|---|"]
    for stage in result["stages"]:
        catch_up = stage["catch_up"]
        lines.append(
            f"| {stage['size']:,} | {catch_up['objects_per_s']:,} | {stage['incremental']['median_s']} | "
            f"{max(catch_up['peak_rss_mb'], stage['incremental']['peak_rss_mb'])} | "
            f"{catch_up['peak_anon_mb']} / {catch_up['peak_file_mb']} | {stage['source_server_peak_rss_mb']} |")
    first = result["stages"][0]
    if "export_import" in first:
        lines.append(f"first sync {first['catch_up']['objects_per_s']:,} obj/s vs export + import "
                     f"{first['export_import']['objects_per_s']:,} obj/s: {first['first_sync_vs_export_import']}x")
    lines += [f"[{'met' if met else 'NOT met'}] {goal}" for goal, met in result["goals"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="collection sizes, ascending (comma-separated)")
    parser.add_argument("--increments", type=positive_int, default=3,
                        help="incremental syncs of +100 per size (median)")
    parser.add_argument("--store", default="sqlite", choices=("sqlite", "postgresql"), help="backend of every node")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="admin connection; fresh kizuna_bench_* databases are created and dropped")
    parser.add_argument("--page-size", type=positive_int, default=2000, help="the partner's page size")
    parser.add_argument("--no-reference", action="store_true", help="skip the export + import reference")
    parser.add_argument("--json", action="store_true", help="print one JSON line (the table goes to stderr)")
    args = parser.parse_args(argv)
    args.sizes = sorted(int(size) for size in args.sizes.split(","))
    started = time.perf_counter()
    result = run(args)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(render(result), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
