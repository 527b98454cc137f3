"""A built feed's validator is the digest of its lines without the build time, however the lines are batched.

`build_feed` encodes and hashes lines a thousand at a time; a line that says when the list was written
(an RPZ zone's SOA serial, a "# Kizuna … as of" comment) must still stay out of the digest, wherever it
falls, and an indicator whose name happens to contain such text is judged by the same per-line rule.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from kizuna.core.feeds import FeedDefinition
from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN
from kizuna.formats.feed_build import build_feed
from kizuna.formats.iocs import indicator_id, pattern_for


def _indicator(kind: str, value: str, name: str) -> dict[str, object]:
    return {"type": "indicator", "spec_version": "2.1", "id": indicator_id(kind, value),
            "created": "2025-03-01T10:00:00.000Z", "modified": "2025-03-01T10:00:00.000Z", "name": name,
            "pattern": pattern_for(kind, value), "pattern_type": "stix", "valid_from": "2025-03-01T10:00:00.000Z"}


def _reference_etag(body: bytes) -> str:
    digest = hashlib.sha256()
    for line in body.decode("utf-8").splitlines(keepends=True):
        if not (line.startswith("# Kizuna ") or " IN SOA " in line):
            digest.update(line.encode("utf-8"))
    return '"' + digest.hexdigest()[:40] + '"'


@pytest.mark.parametrize("fmt", ["txt", "rpz", "zeek", "suricata", "csv"])
def test_the_validator_leaves_out_exactly_the_build_time_lines(tmp_path: Path, fmt: str) -> None:
    node = Node.init(tmp_path / "node", org_name="NCSC UK")
    try:
        collection = node.create_collection("Feeds", alias="feeds")
        objects = [_indicator("ipv4", f"203.0.{i // 200}.{i % 200 + 1}", f"Scanner {i}") for i in range(2400)]
        objects += [_indicator("domain", f"host{i}.example.org", f"Phishing {i}") for i in range(900)]
        # a name carrying the SOA text, far past the first batch: its lines are judged one by one
        objects.append(_indicator("ipv4", "198.51.100.77", "zone x IN SOA y"))
        report = node.import_objects(collection, objects)
        assert not report.failures
        feed = FeedDefinition("all", fmt, "main", collection.id, kind="ip" if fmt == "txt" else None)
        built = build_feed(node, feed, collection, NODE_ADMIN)
        with built.body:
            body = built.body.read()
        assert len(body) == built.size
        assert body.count(b"\n") > 2 * 1024  # several batches
        assert built.etag == _reference_etag(body)
    finally:
        node.close()
