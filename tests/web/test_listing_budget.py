"""Browse's walks when their budget runs out (a collection too large to walk within one page's time):
the counts say they are lower bounds, and following "next" still reaches every visible object once.
The budget is set to nothing here, on a real node (SQLite file and PostgreSQL), instead of storing
millions of objects."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kizuna.core import listing
from kizuna.core.listing import Budget, Criteria, browse
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.core.tokens import principal_of
from kizuna.policy import TLP2_IDS
from kizuna.policy.tlp import TlpLevel

COUNT = 1_300
INDICATORS = ("indicator",)


@pytest.fixture
def node(store_url: str, tmp_path: Path) -> Iterator[Node]:
    opened = Node.init(tmp_path / "node", store_url=store_url, org_name="NCSC UK", country="GBR")
    collection = opened.create_collection("Games security", alias="games")
    marks = [TLP2_IDS[TlpLevel.CLEAR], TLP2_IDS[TlpLevel.AMBER_STRICT]]
    objects = [{"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
                "created": "2026-11-02T00:00:00.000Z", "modified": "2026-11-02T00:00:00.000Z",
                "name": f"Bulk {n}", "pattern_type": "stix",
                "pattern": f"[ipv4-addr:value = '10.0.{n // 256}.{n % 256}']",
                "valid_from": "2026-11-02T00:00:00Z", "created_by_ref": opened.home_organisation_id,
                "object_marking_refs": [marks[n % 2]]} for n in range(COUNT)]
    assert opened.import_objects(collection, objects).success_count == COUNT
    try:
        yield opened
    finally:
        opened.close()


def _partner(node: Node) -> Principal:
    org = node.create_organisation("JPCERT/CC", "JPN")
    collection = node.find_collection("games")
    token_id, _ = node.create_token(org["id"], read=[collection.id])
    record = node.store.get_token(token_id)
    assert record is not None
    return principal_of(node.store, record)


def test_an_exhausted_budget_gives_lower_bounds_and_next_still_reaches_everything(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    collection = node.find_collection("games")
    partner = _partner(node)
    full = browse(node, partner, collection, Criteria(types=INDICATORS, limit=10_000))
    assert full.complete and full.total == COUNT // 2  # the partner sees the TLP:CLEAR half
    monkeypatch.setattr(listing, "COUNT_BUDGET", Budget(floor=500, seconds=0.0))
    monkeypatch.setattr(listing, "PAGE_BUDGET", Budget(floor=500, seconds=0.0))
    first = browse(node, partner, collection, Criteria(types=INDICATORS, limit=50))
    assert not first.complete and 0 < first.total < COUNT // 2  # "at least": never more than it sees
    seen: list[str] = []
    after = None
    while True:
        page = browse(node, partner, collection, Criteria(types=INDICATORS, after=after, limit=400))
        seen += [entry.row.stix_id for entry in page.entries]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == [entry.row.stix_id for entry in full.entries]
    assert not any(entry.tlp == TlpLevel.AMBER_STRICT for entry in full.entries)
