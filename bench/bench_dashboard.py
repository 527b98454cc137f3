"""Server time of the console dashboard's numbers (core/dashboard.py) with a million objects stored.

One collection holds N object versions (default 1,000,000): indicators at TLP CLEAR/GREEN/AMBER/
AMBER+STRICT, plus relationships (5 %), sightings (1 %) and reports (0.5 %), produced by the node's
own organisation and by two partners; half of them arrive pushed in by a partner node, with their
provenance as federation stores it. The partner then reads the whole collection out once (a real
``Node.read`` of every page, so the audit log holds the egress records "shared" is counted from).

``date_added`` is spread evenly over ``--spread-days`` (default 365: a node that took a year to reach
N), so the dashboard's 14-day window holds N × 14 / spread of them; ``--spread-days 14`` puts every
stored version in the window, the worst case.

Timed in process, ``--runs`` times each, alternating: ``build_dashboard`` for the node operator (counts
decided in groups), for a partner's token (every group decided by its policy, per-row checks bounded
by ``PER_ROW_LIMIT``), and the **floor**: ``SELECT COUNT(*)`` over the same window of the same table,
the least any count over it costs. Medians and p99 in ms, peak RSS of the measuring phase (VmHWM
after a reset), one JSON line at the end.

    /work/main/.venv/bin/python -m bench.bench_dashboard [--objects 1000000] [--backend sqlite|postgresql]
        [--spread-days 365] [--runs 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import median, percentile  # noqa: E402

from bench.common import non_negative_int, positive_int
from kizuna.core.dashboard import PER_ROW_LIMIT, build_dashboard  # noqa: E402
from kizuna.core.filters import Endpoint, Filters  # noqa: E402
from kizuna.core.node import Node  # noqa: E402
from kizuna.core.principal import NODE_ADMIN, Principal  # noqa: E402
from kizuna.policy import TLP2_IDS, TlpLevel  # noqa: E402
from kizuna.stix.timestamps import now_micros, parse_timestamp  # noqa: E402
from kizuna.store.base import VersionSelector  # noqa: E402
from kizuna.store.stats import DAY_MICROS  # noqa: E402

CREATED = "2026-06-01T00:00:00.000Z"
VERSION = parse_timestamp(CREATED)
LEVELS = [TLP2_IDS[level] for level in (TlpLevel.CLEAR, TlpLevel.GREEN, TlpLevel.AMBER, TlpLevel.AMBER_STRICT)]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def objects(count: int, producers: list[str], rng: random.Random) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    indicators: list[str] = []
    for i in range(count):
        producer = producers[i % len(producers)]
        base = {"spec_version": "2.1", "created": CREATED, "modified": CREATED, "created_by_ref": producer,
                "object_marking_refs": [LEVELS[rng.randrange(len(LEVELS))]]}
        roll = rng.random()
        if indicators and roll < 0.05:
            out.append({"type": "relationship", "id": f"relationship--{uuid.uuid4()}", **base,
                        "relationship_type": "related-to", "source_ref": rng.choice(indicators),
                        "target_ref": rng.choice(indicators)})
        elif indicators and roll < 0.06:
            out.append({"type": "sighting", "id": f"sighting--{uuid.uuid4()}", **base,
                        "sighting_of_ref": rng.choice(indicators)})
        elif indicators and roll < 0.065:
            out.append({"type": "report", "id": f"report--{uuid.uuid4()}", **base, "name": f"report {i}",
                        "published": CREATED, "object_refs": [rng.choice(indicators) for _ in range(3)]})
        else:
            stix_id = f"indicator--{uuid.uuid4()}"
            indicators.append(stix_id)
            if len(indicators) > 5000:
                indicators.pop(0)
            out.append({"type": "indicator", "id": stix_id, **base, "name": f"ioc {i}", "pattern_type": "stix",
                        "pattern": f"[ipv4-addr:value = '10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}']",
                        "valid_from": CREATED})
    return out


def load(node: Node, count: int, spread_days: int) -> tuple[Principal, int]:
    """Fill the collection; return the partner's principal and the collection pk."""
    shared = node.create_collection("Shared", alias="shared")
    jp = node.create_organisation("JP NISC", "JPN")["id"]
    au = node.create_organisation("AU ACSC", "AUS")["id"]
    node.set_agreement("jp", "JP NISC", max_tlp=TlpLevel.AMBER)
    from kizuna.federation.config import CollectionMapping, Direction, PartnerConfig
    from kizuna.federation.state import FederationState

    FederationState(node.store).add_partner(PartnerConfig(
        "jp-node", "http://127.0.0.1:9/main/", (CollectionMapping("shared", "remote", Direction.BOTH),),
        token="kz_unused", organisation=jp, agreement="jp"))
    rng = random.Random(11)
    home = node.home_organisation_id or ""
    started = time.perf_counter()
    done = 0
    while done < count:
        batch = objects(min(10_000, count - done), [home, jp, au], rng)
        report = node.import_objects(shared, batch)
        assert not report.failures, report.failures[:3]
        if (done // 10_000) % 2:  # every other batch came from the partner node
            node.store.add_provenance([(shared.pk, o["id"], VERSION, "jp-node", "remote", now_micros())
                                       for o in batch])
        done += len(batch)
        if done % 100_000 == 0:
            log(f"  loaded {done:,} ({done / (time.perf_counter() - started):,.0f}/s)")
    spread(node, shared.pk, spread_days)
    token = node.create_token("JP NISC", read=["shared"])[1]
    principal = node.authenticate(token)
    assert principal is not None
    return principal, shared.pk


def spread(node: Node, collection_pk: int, days: int) -> None:
    """``date_added`` (and provenance ``received_at``) evenly over the last ``days``, order kept."""
    now = now_micros()
    with node.store._read() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT MIN(seq), MAX(seq) FROM objects WHERE collection_pk = ?", (collection_pk,))
        low, high = cur.fetchone()
    step = max(1, days * DAY_MICROS // max(1, high - low + 1))
    start = now - days * DAY_MICROS
    with node.store._write() as cur:  # type: ignore[attr-defined]
        # Negative first, so the unique (collection, date_added) index never sees two rows collide.
        cur.execute("UPDATE objects SET date_added = -seq WHERE collection_pk = ?", (collection_pk,))
        cur.execute("UPDATE objects SET date_added = ? + (seq - ?) * ? WHERE collection_pk = ?",
                    (start, low, step, collection_pk))
        cur.execute("UPDATE fed_provenance SET received_at = (SELECT o.date_added FROM objects o WHERE "
                    "o.collection_pk = fed_provenance.collection_pk AND o.stix_id = fed_provenance.stix_id AND "
                    "o.version = fed_provenance.version)")
    if node.store.url.startswith("postgresql"):
        with node.store._read() as cur:  # type: ignore[attr-defined]
            cur.execute("ANALYZE")


def partner_reads_everything(node: Node, principal: Principal) -> int:
    collection = next(c for c in node.store.list_collections() if c.alias == "shared")
    viewer = node.viewer_for(principal, collection)
    filters = Filters(versions=VersionSelector(all=True), limit=1000)
    pages = 0
    while True:
        page = node.read(viewer, Endpoint.OBJECTS, filters)
        pages += 1
        if not page.more:
            return pages
        filters = Filters(versions=VersionSelector(all=True), limit=1000, next=page.next)


def kept(node: Node) -> tuple[Principal, int, float]:
    """The partner's principal and the collection of a node an earlier ``--keep`` run built."""
    from kizuna.core.tokens import principal_of

    record = next(t for t in node.store.list_tokens() if t.grants and not t.grants[0].can_write)
    collection = next(c for c in node.store.list_collections() if c.alias == "shared")
    return principal_of(node.store, record), collection.pk, 0.0


def floor_count(node: Node, collection_pk: int, since: int) -> int:
    with node.store._read() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT COUNT(*) FROM objects WHERE collection_pk = ? AND date_added >= ?", (collection_pk, since))
        return int(cur.fetchone()[0])


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=positive_int, default=1_000_000, help="object versions stored")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite", help="store of the node")
    parser.add_argument("--spread-days", type=non_negative_int, default=365, help="days date_added is spread over")
    parser.add_argument("--runs", type=positive_int, default=20, help="timed calls per principal")
    parser.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="SQLite only: build the node in DIR and keep it; a later run with the same DIR "
                             "measures it again without loading")
    args = parser.parse_args()
    database = None
    with tempfile.TemporaryDirectory(prefix="kizuna-bench-dash-") as tmp:
        url = None
        home = args.keep if args.keep is not None and args.backend == "sqlite" else Path(tmp) / "node"
        if args.backend == "postgresql":
            from tests.conftest import create_pg_database

            database = create_pg_database("kizuna_bench")
            url = database.url
        try:
            if (home / "kizuna.toml").exists():
                node = Node.open(home)
                partner, pk, load_s = kept(node)
                log(f"measuring the node kept in {home}")
            else:
                node = Node.init(home, url, org_name="UK NCSC", country="GBR")
                log(f"loading {args.objects:,} versions into {args.backend}…")
                started = time.perf_counter()
                partner, pk = load(node, args.objects, args.spread_days)
                load_s = time.perf_counter() - started
                pages = partner_reads_everything(node, partner)
                log(f"loaded in {load_s:.0f}s; the partner read {pages} pages out")
            since = (now_micros() // DAY_MICROS - 13) * DAY_MICROS
            in_window = floor_count(node, pk, since)
            build_dashboard(node, NODE_ADMIN)  # warm the caches once, as a running server would be
            build_dashboard(node, partner)
            _reset_peak()
            times: dict[str, list[float]] = {"floor": [], "operator": [], "partner": []}
            partial = False
            for _ in range(args.runs):
                for name in times:
                    begin = time.perf_counter()
                    if name == "floor":
                        floor_count(node, pk, since)
                    else:
                        board = build_dashboard(node, NODE_ADMIN if name == "operator" else partner)
                        partial |= board.partial
                    times[name].append((time.perf_counter() - begin) * 1000)
            result: dict[str, Any] = {
                "bench": "dashboard", "backend": args.backend, "objects": args.objects,
                "spread_days": args.spread_days, "in_window": in_window, "runs": args.runs,
                "per_row_limit": PER_ROW_LIMIT, "partner_partial": partial, "load_s": round(load_s, 1),
                "peak_rss_mb": _peak_mb(),
            }
            for name, values in times.items():
                result[f"{name}_median_ms"] = round(median(values) or 0, 1)
                result[f"{name}_p99_ms"] = round(percentile(values, 0.99) or 0, 1)
            node.close()
        finally:
            if database is not None:
                database.drop()
    if not args.json:
        for key, value in result.items():
            log(f"{key:>20}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
