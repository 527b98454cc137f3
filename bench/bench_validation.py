"""Cost of STIX object validation on the ingest path: Kizuna's check_object beside the references.

Per object type (indicator, relationship, attack-pattern) it reports the median time of one
`check_object` call, and over a mixed set of real objects the objects/s of

- kizuna: `kizuna.stix.validation.check_object`;
- stix2-validator: `validate_parsed_json` (non-strict), the OASIS reference validator;
- stix2.parse: python-stix2 building objects (allow_custom=True), what many importers use.

Each reference runs in its own child process so that the peak RSS figures are separate.
Objects come from ATT&CK Enterprise 18.1 in /work/shared when present, else from the test fixtures
and the seeded generator in bench/gen_stix.py.

    python -m bench.bench_validation            # table on stderr
    python -m bench.bench_validation --json     # one JSON line on stdout as well
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import non_negative_int, positive_int

ROOT = Path(__file__).resolve().parent.parent
SHARED_ATTACK = Path("/work/shared/data/stix/attack/enterprise-attack-18.1.json.gz")
FIXTURES = ROOT / "tests" / "stix" / "fixtures"
HOT_TYPES = ("indicator", "relationship", "attack-pattern")


def load_objects() -> tuple[str, list[dict[str, Any]]]:
    objects: list[dict[str, Any]] = []
    source = "fixtures+generated"
    if SHARED_ATTACK.exists():
        with gzip.open(SHARED_ATTACK, "rb") as handle:
            objects = json.load(handle)["objects"]
        source = "enterprise-attack-18.1"
    else:
        for path in sorted(FIXTURES.rglob("*.json")):
            document = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(document, dict):
                objects.extend(document.get("objects", []))
    from bench.gen_stix import generate  # indicators with real-looking patterns

    objects.extend(generate(5000))
    return source, objects


def samples_by_type(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    from kizuna.stix.validation import check_object

    by_type: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        if obj.get("type") in HOT_TYPES and check_object(obj) is None:
            by_type.setdefault(obj["type"], []).append(obj)
    return {name: found[:500] for name, found in by_type.items()}


def per_call_median_us(check: Callable[[Any], Any], sample: list[dict[str, Any]], rounds: int) -> float:
    """Median over rounds of the mean time of one call across the sample."""
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        for obj in sample:
            check(obj)
        timings.append((time.perf_counter() - started) / len(sample) * 1e6)
    return statistics.median(timings)


def _throughput_child(target: str, objects: list[dict[str, Any]], rounds: int, queue: Any) -> None:
    check = _checker(target)
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        for obj in objects:
            check(obj)
        rates.append(len(objects) / (time.perf_counter() - started))
    queue.put((statistics.median(rates), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def _checker(target: str) -> Callable[[Any], Any]:
    if target == "kizuna":
        from kizuna.stix.validation import check_object

        return check_object
    if target == "stix2-validator":
        from stix2validator import ValidationOptions, validate_parsed_json

        options = ValidationOptions(version="2.1")
        return lambda obj: validate_parsed_json(obj, options)
    if target == "stix2.parse":
        import stix2

        def parse(obj: dict[str, Any]) -> Any:
            try:
                return stix2.parse(obj, allow_custom=True, version="2.1")
            except Exception:  # counted like a rejection: the work was done
                return None

        return parse
    raise ValueError(target)


def throughput(target: str, objects: list[dict[str, Any]], rounds: int) -> tuple[float, float]:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_throughput_child, args=(target, objects, rounds, queue))
    child.start()
    rate, peak_rss_mb = queue.get()
    child.join()
    return rate, peak_rss_mb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    parser.add_argument("--rounds", type=positive_int, default=5, help="repetitions; medians are reported")
    parser.add_argument("--mixed", type=non_negative_int, default=3000, help="objects in the mixed throughput set")
    args = parser.parse_args(argv)

    from kizuna.stix.validation import check_object

    source, objects = load_objects()
    by_type = samples_by_type(objects)
    per_type = {
        name: round(per_call_median_us(check_object, sample, args.rounds * 4), 2) for name, sample in by_type.items()
    }
    step = max(1, len(objects) // args.mixed)
    mixed = objects[::step][: args.mixed]
    # The references are slow: they get a smaller slice, which is still thousands of calls.
    reference_slice = mixed[: max(300, args.mixed // 10)]
    results: dict[str, Any] = {"source": source, "per_call_median_us": per_type, "targets": {}}
    for target, sample in (("kizuna", mixed), ("stix2-validator", reference_slice), ("stix2.parse", reference_slice)):
        rate, rss = throughput(target, sample, args.rounds if target == "kizuna" else max(1, args.rounds // 2))
        results["targets"][target] = {
            "objects_per_s": round(rate),
            "peak_rss_mb": round(rss, 1),
            "objects": len(sample),
        }
    kizuna_rate = results["targets"]["kizuna"]["objects_per_s"]
    for target in ("stix2-validator", "stix2.parse"):
        results["targets"][target]["kizuna_speedup"] = round(
            kizuna_rate / results["targets"][target]["objects_per_s"], 1
        )

    print(f"objects from {source}", file=sys.stderr)
    for name, micros in per_type.items():
        print(f"  check_object {name:<15} median {micros:6.2f} µs/object", file=sys.stderr)
    print(f"  {'target':<16} {'objects/s':>10} {'peak RSS MB':>12} {'kizuna ×':>9}", file=sys.stderr)
    for target, figures in results["targets"].items():
        speedup = figures.get("kizuna_speedup", "")
        print(
            f"  {target:<16} {figures['objects_per_s']:>10} {figures['peak_rss_mb']:>12} {speedup:>9}", file=sys.stderr
        )
    if args.json:
        print(json.dumps(results, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
