"""The reference index (store/object_refs.py) behind the console's object page and graph, on real SQLite
files and a real PostgreSQL database.

NCSC UK runs the node; JPCERT/CC reads under an agreement up to TLP:AMBER, ACSC under one capped at
TLP:GREEN. Every assertion compares what a reader is shown with what it is entitled to read: the index
only proposes candidates, the one visibility check decides.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kizuna.core.graph import relationship_graph
from kizuna.core.ingest import prepare
from kizuna.core.node import Node
from kizuna.core.object_view import object_view, referring
from kizuna.core.principal import NODE_ADMIN, Principal
from kizuna.policy import TLP2_IDS, TlpLevel
from kizuna.store import object_refs
from kizuna.store.base import NewVersion, VersionQuery, VersionSelector

CLEAR, GREEN, AMBER, AMBER_STRICT, RED = (TLP2_IDS[level] for level in TlpLevel)


@dataclass
class World:
    node: Node
    uk: str
    jp: Principal
    au: Principal

    def add(self, *objects: dict[str, Any]) -> None:
        report = self.node.import_objects(self.node.find_collection("shared"), list(objects))
        assert not report.failures, report.failures

    def related(self, principal: Principal, object_id: str) -> set[str]:
        view = object_view(self.node, principal, object_id, "shared")
        return {obj["id"] for obj in (*view.relationships, *view.sightings)}


@pytest.fixture
def world(store_url: str, tmp_path: Path) -> Iterator[World]:
    node = Node.init(tmp_path / "node", store_url, org_name="NCSC UK", country="GBR")
    shared = node.create_collection("Shared indicators", alias="shared").id
    node.create_organisation("JPCERT/CC", "JPN")
    node.create_organisation("ACSC", "AUS")
    node.set_agreement("uk-jp", "JPCERT/CC", max_tlp=TlpLevel.AMBER)
    node.set_agreement("uk-au", "ACSC", max_tlp=TlpLevel.GREEN)
    readers = []
    for org, agreement in (("JPCERT/CC", "uk-jp"), ("ACSC", "uk-au")):
        _, secret = node.create_token(org, read=[shared], agreement=agreement)
        principal = node.authenticate(secret)
        assert principal is not None
        readers.append(principal)
    try:
        yield World(node, node.home_organisation_id or "", *readers)
    finally:
        node.close()


def sdo(stix_type: str, producer: str, marking: str = GREEN, **fields: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": stix_type, "spec_version": "2.1", "id": f"{stix_type}--{uuid.uuid4()}",
        "created": "2026-03-01T00:00:00.000Z", "modified": "2026-03-01T00:00:00.000Z", "created_by_ref": producer,
        "object_marking_refs": [marking],
    }
    if stix_type == "malware":
        obj.update(is_family=True, name="Implant")
    obj.update(fields)
    return obj


def link(producer: str, source: str, target: str, marking: str = GREEN, **fields: Any) -> dict[str, Any]:
    return sdo("relationship", producer, marking, relationship_type="uses", source_ref=source, target_ref=target,
               **fields)


def test_the_object_page_lists_what_points_at_it_as_each_reader_sees_it(world: World) -> None:
    malware, tool, other = (sdo("malware", world.uk) for _ in range(3))
    uses = link(world.uk, malware["id"], tool["id"])
    hidden = link(world.uk, malware["id"], tool["id"], AMBER_STRICT)
    moved = link(world.uk, malware["id"], tool["id"])
    # The newest version of `moved` points elsewhere and is AMBER: ACSC (GREEN) still reads the old one.
    moved_on = {**moved, "modified": "2026-03-02T00:00:00.000Z", "target_ref": other["id"],
                "object_marking_refs": [AMBER]}
    sighting = sdo("sighting", world.uk, sighting_of_ref=tool["id"], count=2)
    world.add(malware, tool, other, uses, hidden, moved, moved_on, sighting)
    assert world.related(NODE_ADMIN, tool["id"]) == {uses["id"], hidden["id"], sighting["id"]}
    assert world.related(world.jp, tool["id"]) == {uses["id"], sighting["id"]}
    assert world.related(world.au, tool["id"]) == {uses["id"], moved["id"], sighting["id"]}
    assert world.related(world.jp, other["id"]) == {moved["id"]}
    assert world.related(world.au, other["id"]) == set()
    assert object_view(world.node, world.jp, tool["id"], "shared").complete


def test_a_deleted_relationship_and_a_fuller_form_are_reindexed(world: World) -> None:
    malware, tool, other = (sdo("malware", world.uk) for _ in range(3))
    uses = link(world.uk, malware["id"], tool["id"])
    world.add(malware, tool, other, uses)
    collection = world.node.find_collection("shared")
    [row] = world.node.store.query_versions(VersionQuery(collection.pk, ids=(uses["id"],)))
    fuller = prepare({**uses, "target_ref": other["id"], "description": "the full form"})
    assert isinstance(fuller, NewVersion)
    assert world.node.store.replace_form(collection.pk, fuller, row.version) is not None
    assert world.related(world.jp, tool["id"]) == set()
    assert world.related(world.jp, other["id"]) == {uses["id"]}
    assert world.node.store.delete_versions(collection.pk, uses["id"], VersionSelector(all=True), None) == 1
    assert world.related(world.jp, other["id"]) == set()
    assert world.related(world.jp, malware["id"]) == set()


def test_the_graph_reaches_two_hops_and_never_through_a_hidden_object(world: World) -> None:
    centre, near, far, secret, beyond, too_far = (sdo("malware", world.uk) for _ in range(6))
    secret["object_marking_refs"] = [AMBER_STRICT]
    world.add(centre, near, far, secret, beyond, too_far,
              link(world.uk, centre["id"], near["id"]), link(world.uk, near["id"], far["id"]),
              link(world.uk, far["id"], too_far["id"]),  # three hops away
              link(world.uk, centre["id"], secret["id"]), link(world.uk, secret["id"], beyond["id"]))
    for principal, expected in ((NODE_ADMIN, [centre, near, far, secret, beyond]), (world.jp, [centre, near, far])):
        graph = relationship_graph(world.node, principal, centre["id"], "shared")
        assert {n.id for n in graph.nodes} == {obj["id"] for obj in expected}
        assert all(e.source in {n.id for n in graph.nodes} and e.target in {n.id for n in graph.nodes}
                   for e in graph.edges)
        assert len(graph.edges) == len(expected) - 1 and graph.complete
        assert {n.id: n.hops for n in graph.nodes}[far["id"]] == 2


def test_a_hub_with_more_candidates_than_the_limit_says_so(world: World) -> None:
    hub = sdo("malware", world.uk)
    spokes = [sdo("malware", world.uk) for _ in range(5)]
    world.add(hub, *spokes, *(link(world.uk, spoke["id"], hub["id"]) for spoke in spokes))
    viewer = world.node.viewer_for(world.jp, world.node.find_collection("shared"))
    found, complete = referring(world.node, viewer, [hub["id"]], ["relationship"], 3)
    assert len(found) == 3 and not complete
    found, complete = referring(world.node, viewer, [hub["id"]], ["relationship"], 5)
    assert len(found) == 5 and complete


def test_existing_relationships_are_indexed_by_the_migration(world: World) -> None:
    malware, tool = sdo("malware", world.uk), sdo("malware", world.uk)
    uses = link(world.uk, malware["id"], tool["id"])
    world.add(malware, tool, uses)
    store: Any = world.node.store
    with store._write() as cur:  # the store as a node before step 16 left it
        cur.execute("DELETE FROM schema_migrations WHERE version = 16")
        cur.execute("DROP TABLE object_refs")
    assert world.node.store.migrate() == world.node.store.schema_versions()[1]  # back at the newest step
    assert world.related(world.jp, tool["id"]) == {uses["id"]}


def test_existing_translations_are_indexed_by_the_migration(world: World) -> None:
    malware = sdo("malware", world.uk)
    translation = sdo("language-content", world.uk, object_ref=malware["id"], object_modified=malware["modified"],
                      contents={"ja": {"name": "インプラント"}})
    world.add(malware, translation)
    store: Any = world.node.store
    collection = world.node.find_collection("shared")
    assert [row.stix_id for row in store.referencing(collection.pk, [malware["id"]], ["language-content"], 10)] == [
        translation["id"]]
    with store._write() as cur:  # the store as a node before step 25 left it
        cur.execute("DELETE FROM schema_migrations WHERE version = 25")
        cur.execute("DELETE FROM object_refs WHERE ref = ?", (malware["id"],))
    assert store.referencing(collection.pk, [malware["id"]], ["language-content"], 10) == []
    assert store.migrate() == store.schema_versions()[1]  # back at the newest step
    assert [row.stix_id for row in store.referencing(collection.pk, [malware["id"]], ["language-content"], 10)] == [
        translation["id"]]


def test_the_references_noted_at_ingest_equal_those_read_back_from_the_bodies(world: World) -> None:
    """Ingest passes each version's references from the object it parsed (``NewVersion.refs``); the
    migration's backfill reads them from the stored bodies: both must write the same rows."""
    malware, tool, hub = sdo("malware", world.uk), sdo("malware", world.uk), sdo("infrastructure", world.uk, name="hub")
    seen = {"type": "sighting", "spec_version": "2.1", "id": "sighting--6b1b0f0e-9d8a-4c39-8f7e-4d2c1b0a9f10",
            "created": "2025-03-01T10:00:00.000Z", "modified": "2025-03-01T10:00:00.000Z",
            "sighting_of_ref": malware["id"], "created_by_ref": world.uk, "object_marking_refs": [GREEN]}
    world.add(malware, tool, hub, link(world.uk, malware["id"], tool["id"]), link(world.uk, tool["id"], hub["id"]),
              link(world.uk, malware["id"], malware["id"]), seen)
    store: Any = world.node.store
    with store._write() as cur:
        cur.execute("SELECT ref, seq FROM object_refs ORDER BY seq, ref")
        noted = cur.fetchall()
        cur.execute("DELETE FROM object_refs")
        object_refs.backfill(cur)
        cur.execute("SELECT ref, seq FROM object_refs ORDER BY seq, ref")
        assert cur.fetchall() == noted and len(noted) == 6  # the self-link names its one id once
