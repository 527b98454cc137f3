"""A query for several types (the library page's walk, a TAXII ``match[type]`` with a list) answers the
versions of those types in ``date_added`` order, page after page, exactly as one walk over the collection
filtered by type would, on both backends."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from kizuna.core.node import Node
from kizuna.store.base import VersionQuery, VersionSelector

CREATED = "2026-11-30T09:00:00.000Z"


def _object(stix_type: str) -> dict[str, Any]:
    obj: dict[str, Any] = {"type": stix_type, "spec_version": "2.1", "id": f"{stix_type}--{uuid.uuid4()}",
                           "created": CREATED, "modified": CREATED}
    if stix_type == "note":
        obj.update(content="seen twice", object_refs=[f"malware--{uuid.uuid4()}"])
    elif stix_type == "course-of-action":
        obj["name"] = "block it"
    else:
        obj.update(name="a family", is_family=True)
    return obj


def test_several_types_come_in_date_added_order_page_by_page(store_url: str, tmp_path: Path) -> None:
    node = Node.init(tmp_path / "node", store_url, org_name="UK NCSC", country="GBR")
    collection = node.create_collection("Library", alias="library")
    kinds = ["malware"] * 6 + ["note", "course-of-action"]
    objects = [_object(kinds[i % len(kinds)]) for i in range(40)]
    for start in range(0, len(objects), 7):  # several transactions, so the types interleave in date_added
        assert not node.import_objects(collection, objects[start:start + 7]).failures
    wanted = ("note", "course-of-action")
    everything = node.store.query_versions(VersionQuery(collection.pk, versions=VersionSelector(all=True)))
    expected = [row.stix_id for row in everything if row.type in wanted]
    assert len(expected) == 10
    seen: list[str] = []
    after = None
    while True:
        page = node.store.query_versions(VersionQuery(collection.pk, types=wanted, added_after=after, limit=3,
                                                      versions=VersionSelector(all=True)))
        if not page:
            break
        assert [row.date_added for row in page] == sorted(row.date_added for row in page)
        seen += [row.stix_id for row in page]
        after = page[-1].date_added
    assert seen == expected
    node.close()
