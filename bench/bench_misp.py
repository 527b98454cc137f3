"""MISP import speed: Kizuna's `read_misp` beside misp-stix's conversion alone, on the same real events.

Both sides convert the real CIRCL MISP events of tests/fixtures/misp/ from their JSON bytes, one event at a
time, in the same run:

- misp-stix: `json.loads` + `MISPtoSTIX21Parser().parse_json_content` (the STIX objects in memory, not
  serialised), which is the floor for anything built on it;
- kizuna: `kizuna.formats.misp_in.read_misp(bytes)`: the same conversion plus input checks, STIX objects as
  JSON dicts, TLP 2.0 and REL TO markings and the loss report.

The comparison uses the events misp-stix converts on its own (it crashes on galaxy clusters without a
uuid, which Kizuna repairs); Kizuna's rate on all events is reported too. Each side runs in its own child
process (separate peak RSS); runs alternate between the sides, `--runs` times; the median counts.
Targets: kizuna ≥ 5,000 attributes/s and ≥ 0.7 × misp-stix.

    python -m bench.bench_misp            # table on stderr
    python -m bench.bench_misp --json     # one JSON line on stdout as well
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import positive_int

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "misp"


def load_events() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(FIXTURES.glob("*.json"))}


def attribute_count(document: bytes) -> int:
    event = json.loads(document)
    event = event.get("Event", event)
    return len(event.get("Attribute", [])) + sum(len(o.get("Attribute", [])) for o in event.get("Object", []))


def _misp_stix(documents: list[bytes]) -> int:
    from misp_stix_converter import MISPtoSTIX21Parser

    produced = 0
    for document in documents:
        parser = MISPtoSTIX21Parser()
        parser.parse_json_content(json.loads(document))
        produced += len(parser.stix_objects)
    return produced


def _kizuna(documents: list[bytes]) -> int:
    from kizuna.formats.misp_in import read_misp

    return sum(len(read_misp(document, "bench.json").objects) for document in documents)


def _worker(side: str, documents: list[bytes], connection: Any) -> None:
    """Convert all documents each time the parent asks; answer with the seconds it took."""
    logging.disable(logging.CRITICAL)  # the converters' per-attribute warnings are not the subject here
    convert = _misp_stix if side == "misp-stix" else _kizuna
    convert(documents[:1])  # imports and first-call set-up stay out of the timings
    objects = 0
    while connection.recv():
        started = time.perf_counter()
        objects = convert(documents)
        connection.send(time.perf_counter() - started)
    connection.send({"objects": objects,
                     "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})


def measure(sides: dict[str, list[bytes]], runs: int) -> dict[str, dict[str, Any]]:
    """One child process per side (separate peak RSS); runs alternate between them, so that a change in
    the machine's load during the benchmark hits both sides alike."""
    context = multiprocessing.get_context("spawn")
    workers = {}
    for side, documents in sides.items():
        parent, child = context.Pipe()
        process = context.Process(target=_worker, args=(side.split(":")[0], documents, child))
        process.start()
        workers[side] = (process, parent)
    times: dict[str, list[float]] = {side: [] for side in sides}
    for _ in range(runs):
        for side, (_, connection) in workers.items():
            connection.send(True)
            times[side].append(connection.recv())
    results = {}
    for side, (process, connection) in workers.items():
        connection.send(False)
        results[side] = {"times": times[side], **connection.recv()}
        process.join()
    return results


def convertible_by_misp_stix(events: dict[str, bytes]) -> list[str]:
    from misp_stix_converter import MISPtoSTIX21Parser

    logging.disable(logging.CRITICAL)
    names = []
    for name, document in events.items():
        try:
            MISPtoSTIX21Parser().parse_json_content(json.loads(document))
        except Exception:  # noqa: BLE001 - a crash means misp-stix alone cannot convert this event
            continue
        names.append(name)
    logging.disable(logging.NOTSET)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive_int, default=3, help="timed runs per side; the median counts")
    parser.add_argument("--json", action="store_true", help="also print one JSON line on stdout")
    args = parser.parse_args()
    events = load_events()
    common = convertible_by_misp_stix(events)
    documents = [events[n] for n in common]
    attributes = sum(attribute_count(d) for d in documents)
    all_attributes = sum(attribute_count(d) for d in events.values())
    results = measure({"misp-stix": documents, "kizuna": documents, "kizuna:all": list(events.values())},
                      args.runs)
    everything = results.pop("kizuna:all")
    line: dict[str, Any] = {"bench": "misp_import", "events": len(documents), "attributes": attributes,
                            "runs": args.runs}
    for side, result in results.items():
        seconds = statistics.median(result["times"])
        line[side] = {"median_s": round(seconds, 3), "attributes_per_s": round(attributes / seconds),
                      "objects": result["objects"], "peak_rss_mb": result["peak_rss_mb"]}
    line["kizuna_all_events"] = {"events": len(events), "attributes": all_attributes,
                                 "attributes_per_s": round(all_attributes / statistics.median(everything["times"])),
                                 "peak_rss_mb": everything["peak_rss_mb"]}
    ratio = line["kizuna"]["attributes_per_s"] / line["misp-stix"]["attributes_per_s"]
    line["ratio_to_misp_stix"] = round(ratio, 3)
    line["targets"] = {"attributes_per_s>=5000": line["kizuna"]["attributes_per_s"] >= 5000,
                       "ratio>=0.7": ratio >= 0.7}
    for side in ("misp-stix", "kizuna"):
        row = line[side]
        print(f"{side:10} {row['attributes_per_s']:>7} attributes/s  median {row['median_s']:.3f} s  "
              f"peak RSS {row['peak_rss_mb']} MB", file=sys.stderr)
    print(f"kizuna/misp-stix = {line['ratio_to_misp_stix']}  targets {line['targets']}", file=sys.stderr)
    if args.json:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
