"""Streaming a large STIX bundle file: objects/s and peak RSS, Kizuna's reader beside the alternatives.

A bundle of about --size-mb is written to a temporary directory from the seeded objects of
bench/gen_stix.py, in two layouts: "lines" (one compact object per line, as exports usually are)
and "pretty" (indent 2, as ATT&CK publishes).  Each reader then runs in a fresh child process
(spawned, so its peak RSS is its own; read from VmHWM, see peak_rss_mb):

- kizuna: `iter_bundle_objects` (objects with line numbers);
- kizuna-raw: `iter_bundle_objects_raw` (exact bytes per object, checked as JSON);
- ijson: `ijson.items(fp, "objects.item")` with the yajl2_c backend (no line numbers);
- orjson-whole (with --whole): read and parse the whole file at once, the memory it costs.

Figures are medians over --runs; --json prints them as one JSON line.

    python -m bench.bench_bundle_stream                 # 200 MB, both layouts, 3 runs
    python -m bench.bench_bundle_stream --size-mb 1024  # 1 GB
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import positive_int

READERS = ("kizuna", "kizuna-raw", "ijson")


def write_bundle(path: Path, size_bytes: int, pretty: bool) -> int:
    """Write a bundle of about ``size_bytes`` without holding it in memory; returns the object count."""
    from bench.gen_stix import generate

    pool = [orjson.dumps(obj, option=orjson.OPT_INDENT_2 if pretty else 0) for obj in generate(20000)]
    if pretty:  # indent the pretty objects one level, as inside the objects array
        pool = [b"  " + item.replace(b"\n", b"\n  ") for item in pool]
    count = 0
    written = 0
    with open(path, "wb") as out:
        head = b'{\n  "type": "bundle",\n  "id": "bundle--6b0cd2f4-1d1a-4f8b-9d3c-0b8a5b9a4c11",\n  "objects": [\n'
        out.write(head)
        written += len(head)
        while written < size_bytes:
            item = pool[count % len(pool)]
            out.write((b",\n" if count else b"") + item)
            written += len(item) + 2
            count += 1
        out.write(b"\n  ]\n}\n")
    return count


def _run_reader(reader: str, path: str, queue: Any) -> None:
    started = time.perf_counter()
    count = 0
    with open(path, "rb") as handle:
        if reader == "kizuna":
            from kizuna.stix.bundle_stream import iter_bundle_objects

            for _ in iter_bundle_objects(handle, path):
                count += 1
        elif reader == "kizuna-raw":
            from kizuna.stix.bundle_stream import iter_bundle_objects_raw

            for _ in iter_bundle_objects_raw(handle, path):
                count += 1
        elif reader == "ijson":
            import ijson

            for _ in ijson.items(handle, "objects.item", use_float=True):
                count += 1
        elif reader == "orjson-whole":
            count = len(orjson.loads(handle.read())["objects"])
    elapsed = time.perf_counter() - started
    queue.put((count, elapsed, peak_rss_mb()))


def peak_rss_mb() -> float:
    """This process's own peak RSS.

    getrusage's ru_maxrss is not usable here: Linux carries the pre-exec high-water mark of the
    forked parent image into the spawned child, so every child would report the parent's size.
    VmHWM belongs to the child's own address space; getrusage is the fallback off Linux.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(reader: str, path: Path) -> tuple[int, float, float]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_run_reader, args=(reader, str(path), queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=positive_int, default=200, help="bundle size to generate (1024 for 1 GB)")
    parser.add_argument("--runs", type=positive_int, default=3, help="runs per reader; medians are reported")
    parser.add_argument("--layouts", default="lines,pretty", help="comma-separated: lines, pretty")
    parser.add_argument("--whole", action="store_true", help="also parse the whole file with orjson")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    parser.add_argument("--dir", default=None, help="where to write the temporary bundle")
    args = parser.parse_args(argv)

    readers = READERS + (("orjson-whole",) if args.whole else ())
    results: dict[str, Any] = {"size_mb": args.size_mb, "runs": args.runs, "layouts": {}}
    with tempfile.TemporaryDirectory(dir=args.dir) as workdir:
        for layout in args.layouts.split(","):
            path = Path(workdir) / f"bundle-{layout}.json"
            count = write_bundle(path, args.size_mb * 1024 * 1024, pretty=layout == "pretty")
            size_mb = os.path.getsize(path) / 1e6
            figures: dict[str, Any] = {"objects": count, "file_mb": round(size_mb, 1)}
            for reader in readers:
                runs = [measure(reader, path) for _ in range(args.runs)]
                assert all(found == count for found, _, _ in runs), (reader, runs, count)
                seconds = statistics.median(elapsed for _, elapsed, _ in runs)
                figures[reader] = {
                    "objects_per_s": round(count / seconds),
                    "mb_per_s": round(size_mb / seconds, 1),
                    "peak_rss_mb": round(max(rss for _, _, rss in runs), 1),
                }
            path.unlink()
            results["layouts"][layout] = figures
            print(f"{layout}: {count} objects, {size_mb:.0f} MB", file=sys.stderr)
            for reader in readers:
                row = figures[reader]
                print(
                    f"  {reader:<13} {row['objects_per_s']:>9} obj/s {row['mb_per_s']:>7} MB/s "
                    f"peak RSS {row['peak_rss_mb']:>7} MB",
                    file=sys.stderr,
                )
    if args.json:
        print(json.dumps(results, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
