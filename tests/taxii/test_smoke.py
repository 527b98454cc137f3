"""A first walk through a running node with the real taxii2-client."""

from __future__ import annotations

import json
import uuid

from taxii2client.v21 import Server, as_pages

from tests.conftest import Node


def _indicator(value: str) -> dict[str, object]:
    return {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
        "pattern": f"[ipv4-addr:value = '{value}']", "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z",
    }


def test_taxii2_client_round_trip(node: Node) -> None:
    server = Server(f"{node.base}/taxii2/", user="analyst", password=node.tokens["writer"])
    root = server.default
    assert root is not None and "application/taxii+json;version=2.1" in root.versions
    collection = next(c for c in root.collections if c.id == node.collection)
    assert collection.can_read and collection.can_write
    sent = [_indicator(f"198.51.100.{i}") for i in range(5)]
    status = collection.add_objects(json.dumps({"objects": sent}))
    assert (status.status, status.total_count, status.success_count) == ("complete", 5, 5)
    wanted = {o["id"] for o in sent}
    seen = []
    for envelope in as_pages(collection.get_objects, per_request=2, type=["indicator"]):
        seen += [o["id"] for o in envelope.get("objects", []) if o["id"] in wanted]
    assert seen == [o["id"] for o in sent]
