"""Policy cost: decisions per second and read throughput with enforcement vs. a read that sees everything.

Run:  python -m bench.bench_policy [--objects 20000] [--runs 7] [--json]

Cases (each on the same objects, side by side in one run):
  no-markings      objects without any marking (the fast path)
  tlp              one TLP 2.0 marking per object (CLEAR/GREEN/AMBER/RED mix)
  tlp+rel-to       one TLP marking and one REL TO marking
  granular         TLP plus granular markings on description/labels (some get redacted)

For each case it reports the median over runs of:
  decide_ns        nanoseconds per ``ViewerPolicy.decide`` call (policy compiled once per run)
  passthrough_ns   nanoseconds per object of the same loop with no decision (the reference)
  read_ratio       throughput of a modelled read page (orjson.loads of the stored bytes, decide,
                   orjson.dumps of the envelope) with enforcement, divided by the same read with a
                   principal that sees everything; the target is >= 0.80.
Peak RSS of the process is printed at the end.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.common import positive_int
from kizuna.policy import (
    TLP2_IDS,
    Agreement,
    Organisation,
    PolicyContext,
    PolicyOptions,
    TlpLevel,
    Viewer,
    build_rel_to_marking,
    compile_viewer,
)

PRODUCERS = [f"identity--0c8a9c0e-5a3f-4c1e-9d0a-{i:012d}" for i in range(8)]
VIEWER_ORG = Organisation("identity--2e0c1e2a-7c5b-4e3a-9f2c-3b8d4a5e6f73", "JP CERT", "JPN", frozenset({"uk-jp"}))
REL_TOS = [build_rel_to_marking(["GBR", "JPN"]), build_rel_to_marking(["AUS"]), build_rel_to_marking(["JPN", "FRA"])]
TLPS = [TLP2_IDS[TlpLevel.CLEAR], TLP2_IDS[TlpLevel.GREEN], TLP2_IDS[TlpLevel.GREEN], TLP2_IDS[TlpLevel.AMBER]]


def make_objects(n: int, case: str, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        obj: dict[str, Any] = {
            "type": "indicator",
            "spec_version": "2.1",
            "id": f"indicator--8e2e2d2b-17d4-4cbf-938f-{i:012d}",
            "created_by_ref": rng.choice(PRODUCERS),
            "created": "2026-01-10T09:00:00.000Z",
            "modified": "2026-01-10T09:00:00.000Z",
            "name": f"C2 address {i}",
            "description": "Command and control address observed in the campaign against the ministry",
            "pattern": f"[ipv4-addr:value = '198.51.{i % 256}.{i // 256 % 256}']",
            "pattern_type": "stix",
            "valid_from": "2026-01-10T09:00:00.000Z",
            "indicator_types": ["malicious-activity"],
            "labels": ["c2", "apt", "infrastructure"],
        }
        if case in ("tlp", "tlp+rel-to", "granular"):
            obj["object_marking_refs"] = [rng.choice(TLPS)]
        if case == "tlp+rel-to":
            obj["object_marking_refs"].append(rng.choice(REL_TOS)["id"])
        if case == "granular":
            obj["granular_markings"] = [
                {"selectors": ["description"], "marking_ref": rng.choice(TLPS)},
                {"selectors": [f"labels.[{rng.randrange(3)}]"], "marking_ref": TLP2_IDS[TlpLevel.AMBER]},
            ]
        out.append(obj)
    return out


def context() -> PolicyContext:
    return PolicyContext(
        marking_definitions=REL_TOS,
        organisations=[VIEWER_ORG],
        agreements=[Agreement("a1", 1, VIEWER_ORG.identity_id, frozenset(PRODUCERS[:3]), max_tlp=TlpLevel.AMBER)],
        shared_communities=["uk-jp"],
        options=PolicyOptions(admins_see_everything=True),
    )


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter_ns()
    fn()
    return float(time.perf_counter_ns() - start)


def run_case(case: str, n: int, runs: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    objects = make_objects(n, case, rng)
    stored = [orjson.dumps(o) for o in objects]
    ctx = context()
    viewer = Viewer("analyst", organisation=VIEWER_ORG)
    admin = Viewer("root", organisation=VIEWER_ORG, is_node_admin=True)

    def decide_all() -> None:
        decide = compile_viewer(viewer, ctx).decide
        for obj in objects:
            decide(obj)

    def passthrough() -> None:
        sink = []
        append = sink.append
        for obj in objects:
            append(obj)

    def read(principal: Viewer) -> Callable[[], object]:
        def page() -> bytes:
            policy = compile_viewer(principal, ctx)
            served = policy.visible_objects([orjson.loads(raw) for raw in stored])
            return orjson.dumps({"more": False, "objects": served})

        return page

    decide_ns, pass_ns, enforced_ns, open_ns = [], [], [], []
    for _ in range(runs):
        decide_ns.append(timed(decide_all) / n)
        pass_ns.append(timed(passthrough) / n)
        enforced_ns.append(timed(read(viewer)))
        open_ns.append(timed(read(admin)))
    policy = compile_viewer(viewer, ctx)
    outcomes: dict[str, int] = {}
    for obj in objects:
        key = policy.decide(obj).outcome.value
        outcomes[key] = outcomes.get(key, 0) + 1
    ratios = [o / e for o, e in zip(open_ns, enforced_ns, strict=True)]
    decide_med = statistics.median(decide_ns)
    return {
        "case": case,
        "objects": n,
        "decide_ns": round(decide_med, 1),
        "decides_per_s": round(1e9 / decide_med),
        "passthrough_ns": round(statistics.median(pass_ns), 1),
        "decide_vs_passthrough": round(decide_med / statistics.median(pass_ns), 2),
        "read_enforced_objects_per_s": round(n * 1e9 / statistics.median(enforced_ns)),
        "read_open_objects_per_s": round(n * 1e9 / statistics.median(open_ns)),
        "read_ratio": round(statistics.median(ratios), 3),
        "outcomes": outcomes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=positive_int, default=20000, help="objects judged")
    parser.add_argument("--runs", type=positive_int, default=7, help="runs; medians are reported")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated objects")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args(argv)
    results = [run_case(case, args.objects, args.runs, args.seed)
               for case in ("no-markings", "tlp", "tlp+rel-to", "granular")]
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        figures = {"bench": "policy", "runs": args.runs, "cases": results, "peak_rss_mb": round(peak_rss_mb, 1)}
        print(json.dumps(figures))
        return 0
    header = f"{'case':<12} {'decide ns':>10} {'decides/s':>11} {'pass ns':>8} {'x pass':>7} " \
             f"{'read enf/s':>11} {'read open/s':>12} {'ratio':>6}  outcomes"
    print(header)
    for r in results:
        print(f"{r['case']:<12} {r['decide_ns']:>10} {r['decides_per_s']:>11} {r['passthrough_ns']:>8} "
              f"{r['decide_vs_passthrough']:>7} {r['read_enforced_objects_per_s']:>11} "
              f"{r['read_open_objects_per_s']:>12} {r['read_ratio']:>6}  {r['outcomes']}")
    print(f"peak RSS {peak_rss_mb:.1f} MB (medians of {args.runs} runs, {args.objects} objects per case)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
