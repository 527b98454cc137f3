"""``match[version]=last``/``first`` chooses among the versions each reader sees (docs/policy.md, "Each principal
sees its own history"): a stored version that some reader may take for its last, but not the stored last one,
sends the reader to the object's other versions. Only a reader who sees that version needs them; one who sees
none of a page's such versions asks nothing more of the store, and both still get their own history. Real
SQLite and PostgreSQL stores."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from kizuna.core.filters import Endpoint, Filters
from kizuna.core.node import Node
from kizuna.policy import TLP2_IDS, TlpLevel
from kizuna.store.base import VersionRow, VersionSelector
from tests.conftest import BACKENDS, create_pg_database

GREEN, RED = TLP2_IDS[TlpLevel.GREEN], TLP2_IDS[TlpLevel.RED]


def _version(object_id: str, day: int, marking: str) -> dict[str, Any]:
    return {"type": "malware", "spec_version": "2.1", "id": object_id, "name": "Implant", "is_family": False,
            "created": "2026-03-01T00:00:00.000Z", "modified": f"2026-03-0{day}T00:00:00.000Z",
            "object_marking_refs": [marking]}


@pytest.fixture(params=BACKENDS)
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Node]:
    database = create_pg_database() if request.param == "postgresql" else None
    opened = Node.init(tmp_path / "node", database.url if database else None, org_name="NCSC UK", country="GBR")
    try:
        yield opened
    finally:
        opened.close()
        if database:
            database.drop()


def test_only_a_reader_who_sees_a_candidate_looks_up_its_other_versions(node: Node) -> None:
    collection = node.create_collection("Shared", alias="shared")
    node.create_organisation("JPCERT/CC", "JPN")
    node.create_organisation("Outsider CERT", "FRA")
    node.set_agreement("uk-jp", "JPCERT/CC", max_tlp=TlpLevel.AMBER)
    # Ten objects, each GREEN then RED: the stored last version is RED, and the GREEN one is the last for
    # every reader who sees GREEN but not RED.
    ids = [f"malware--{uuid.uuid4()}" for _ in range(10)]
    report = node.import_objects(collection, [_version(i, day, mark) for i in ids
                                              for day, mark in ((1, GREEN), (2, RED))])
    assert not report.failures

    asked: list[str] = []
    looked_up = node.reader._siblings

    def recording(collection_pk: int, wanted: Sequence[str]) -> dict[str, list[VersionRow]]:
        asked.extend(wanted)
        return looked_up(collection_pk, wanted)

    node.reader._siblings = recording  # type: ignore[method-assign]
    served = {}
    for org in ("JPCERT/CC", "Outsider CERT"):
        principal = node.authenticate(node.create_token(org, read=["shared"])[1])
        assert principal is not None
        asked.clear()
        page = node.read(node.viewer_for(principal, collection), Endpoint.OBJECTS,
                         Filters(types=("malware",), versions=VersionSelector(last=True)))
        served[org] = ({row.stix_id for row, _ in page.items}, {row.version for row, _ in page.items}, set(asked))

    jp_ids, jp_versions, jp_asked = served["JPCERT/CC"]
    assert jp_ids == set(ids) and len(jp_versions) == 1  # each object's GREEN version, the same day for all
    assert jp_asked == set(ids)  # it had to rule out a later version it sees
    outsider_ids, _, outsider_asked = served["Outsider CERT"]
    assert outsider_ids == set()
    assert outsider_asked == set()  # sees neither version: nothing to choose between
