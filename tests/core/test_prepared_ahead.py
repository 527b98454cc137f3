"""A large import's objects prepared (validated, serialised, their text and facts taken) by forked workers
ahead of the batch being stored: the node stores and reports exactly what preparing them in process does.

Objects the TLP rewriting changes before they are stored (a TLP 1.0 marking id) are prepared again after
it; objects that fail validation are refused with the same message at the same position.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from kizuna.core.node import PREPARED_AHEAD_FROM, Node
from kizuna.policy.tlp import TLP1_IDS, TLP2_IDS, TlpLevel

TLP1_AMBER = next(i for i, level in TLP1_IDS.items() if level is TlpLevel.AMBER)
COUNT = PREPARED_AHEAD_FROM + 2_500


def _objects() -> list[dict[str, Any]]:
    rng_ids = uuid.UUID("4d1c1e0e-8f6b-4c59-9a6c-0c4e1f0b2a77")
    out: list[dict[str, Any]] = []
    for n in range(COUNT):
        obj: dict[str, Any] = {
            "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid5(rng_ids, str(n))}",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "name": f"C2 {n}", "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z",
            "pattern": f"[ipv4-addr:value = '10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}']",
            "object_marking_refs": [TLP2_IDS[TlpLevel.GREEN]],
        }
        if n % 997 == 0:
            obj["object_marking_refs"] = [TLP1_AMBER]  # rewritten to TLP 2.0 before it is stored
        if n % 1499 == 0:
            obj["pattern"] = "[ipv4-addr:value = "  # refused by validation
        out.append(obj)
    return out


def _children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


def _import(tmp_path: Path, name: str, workers: int) -> tuple[Any, list[tuple[Any, ...]]]:
    node = Node.init(tmp_path / name, None, org_name="NCSC UK", country="GBR")
    try:
        collection = node.create_collection("In", alias="in")
        objects = _objects()
        report = node.import_objects(collection, iter(objects), ahead=objects, workers=workers)
        with node.store._read() as cur:  # type: ignore[attr-defined]
            cur.execute("SELECT stix_id, version, markings, body, feed FROM objects ORDER BY date_added")
            rows = [tuple(row) for row in cur.fetchall()]
        return report, rows
    finally:
        node.close()


def test_objects_prepared_by_workers_are_stored_and_reported_as_prepared_here(tmp_path: Path) -> None:
    before = _children_cpu()
    here, stored_here = _import(tmp_path, "here", 0)
    assert _children_cpu() == before
    ahead, stored_ahead = _import(tmp_path, "ahead", 2)
    assert _children_cpu() > before  # the workers prepared, and were reaped
    assert stored_ahead == stored_here and len(stored_here) > PREPARED_AHEAD_FROM
    assert ahead.failures == here.failures and len(here.failures) == len(range(0, COUNT, 1499))
    assert (ahead.success_count, ahead.normalisation_count) == (here.success_count, here.normalisation_count)
    assert here.normalisation_count >= len(range(0, COUNT, 997)) - 1
    rewritten = [row for row in stored_ahead if row[0].endswith(str(uuid.uuid5(
        uuid.UUID("4d1c1e0e-8f6b-4c59-9a6c-0c4e1f0b2a77"), "997")))]
    assert rewritten and TLP2_IDS[TlpLevel.AMBER] in rewritten[0][2] and TLP1_AMBER not in rewritten[0][3].decode()
