"""The collection's stored shapes let a partner's read-out skip endpoint look-ups, and never serve stale.

`core/stored_shapes.py` learns every (producer, markings) a collection stores on the column-decided types
(the types themselves are not kept: the verdict is the pair's); when a reader's policy
shows each of them whole, `core/visibility.py` resolves the endpoints of relationships, sightings and
reports of column-decided types without asking the store. Each read-out here is compared with the general
path (every version parsed and decided, `tests/core/test_read_fast_path.py`), after each change that must
turn the shortcut off or back on: a new hidden object that an already served relationship points at, a
narrower agreement, a delete. The endpoint verdicts kept across pages follow every add and delete, and the relay
rule (TLP:AMBER+STRICT received from a partner node stops here, TLP:AMBER at the clients of this node's
organisation) holds for endpoints as for the objects themselves.
Real SQLite and PostgreSQL stores.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from kizuna.core.filters import Filters
from kizuna.core.node import DEFAULT_API_ROOT, Node
from kizuna.core.principal import NODE_ADMIN, Principal
from kizuna.core.stored_shapes import StoredShapes
from kizuna.federation.config import CollectionMapping, Direction, PartnerConfig
from kizuna.federation.state import FederationState
from kizuna.policy import PolicyOptions, TlpLevel
from kizuna.store.base import Collection, VersionQuery, VersionSelector
from kizuna.store.view_edges import UNDECIDED_TYPES as UNDECIDED
from tests.conftest import BACKENDS, create_pg_database
from tests.core.test_read_fast_path import ALL, AMBER, AMBER_STRICT, GREEN, _expected, _general_view, _obj, _read

World = tuple[Node, Collection, Principal, list[dict[str, Any]]]


def _seen_by_general_path(node: Node, principal: Principal, collection: Collection) -> list[tuple[str, int, bytes]]:
    rows = node.store.query_versions(VersionQuery(collection_pk=collection.pk, versions=ALL, limit=100_000))
    policy = node.viewer_for(principal, collection).policy
    assert policy is not None
    referenced = [ref for row in rows for ref in _refs(orjson.loads(row.body))]
    return _expected(_general_view(policy, rows, node.store.withdrawn_copies(collection.pk, referenced)), "all")


def _refs(obj: dict[str, Any]) -> list[str]:
    return [obj[name] for name in ("source_ref", "target_ref") if name in obj] + list(obj.get("object_refs", []))


def _shortcut(node: Node, principal: Principal, collection: Collection) -> bool:
    viewer = node.viewer_for(principal, collection)
    viewer.begin_batch()  # the shortcut holds for one batch of rows: relayed content may arrive between two
    return viewer.endpoints_whole()


def _ids(read: list[tuple[str, int, bytes]]) -> set[str]:
    return {object_id for object_id, _, _ in read}


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    database = create_pg_database() if request.param == "postgresql" else None
    node = Node.init(tmp_path / "node", database.url if database else None, org_name="NCSC UK", country="GBR")
    try:
        collection = node.create_collection("Shapes", alias="shapes")
        uk = node.home_organisation_id or ""
        node.create_organisation("JPCERT/CC", "JPN")
        node.set_agreement("uk-jp", "JPCERT/CC", max_tlp=TlpLevel.AMBER)
        third = f"identity--{uuid.uuid4()}"
        targets = [_obj(kind, producer, [markings]) for kind in ("indicator", "malware")
                   for producer in (uk, third) for markings in (GREEN, AMBER)]
        objects = [*targets, _obj("identity", third, [GREEN], object_id=third, name="Third party",
                                  identity_class="organization")]
        for index, source in enumerate(targets):
            objects.append(_obj("relationship", uk, [GREEN], relationship_type="related-to", source_ref=source["id"],
                                target_ref=targets[-1 - index]["id"]))
        objects.append(_obj("relationship", third, [AMBER], relationship_type="attributed-to",
                            source_ref=targets[0]["id"], target_ref=third))
        objects.append(_obj("report", uk, [GREEN], name="Campaign", published="2026-03-01T00:00:00.000Z",
                            object_refs=[t["id"] for t in targets]))
        report = node.import_objects(collection, objects)
        assert not report.failures, report.failures
        secret = node.create_token("JPCERT/CC", read=["shapes"])[1]
        principal = node.authenticate(secret)
        assert principal is not None
        yield node, collection, principal, targets
    finally:
        node.close()
        if database:
            database.drop()


def test_a_partner_who_sees_every_stored_shape_reads_what_the_general_path_serves(world: World) -> None:
    node, collection, principal, _ = world
    assert _shortcut(node, principal, collection)
    read = _read(node, principal, collection, "all")
    assert read == _seen_by_general_path(node, principal, collection)
    assert len(read) == len(node.store.query_versions(
        VersionQuery(collection_pk=collection.pk, versions=ALL, limit=100_000)))  # everything, whole


def test_a_hidden_object_stored_after_the_relationship_pointing_at_it_hides_the_relationship(world: World) -> None:
    node, collection, principal, targets = world
    strict_id = f"malware--{uuid.uuid4()}"
    pointing = _obj("relationship", None, [GREEN], relationship_type="uses", source_ref=targets[0]["id"],
                    target_ref=strict_id)
    assert not node.import_objects(collection, [pointing]).failures
    assert _shortcut(node, principal, collection)
    assert pointing["id"] in _ids(_read(node, principal, collection, "all"))  # its target is absent: not hidden
    assert not node.import_objects(collection, [_obj("malware", None, [AMBER_STRICT], object_id=strict_id)]).failures
    assert not _shortcut(node, principal, collection)
    read = _read(node, principal, collection, "all")
    assert pointing["id"] not in _ids(read) and strict_id not in _ids(read)
    assert read == _seen_by_general_path(node, principal, collection)


def test_a_narrower_agreement_turns_the_shortcut_off(world: World) -> None:
    node, collection, principal, targets = world
    assert _shortcut(node, principal, collection)
    node.set_agreement("uk-jp", "JPCERT/CC", max_tlp=TlpLevel.GREEN)
    assert not _shortcut(node, principal, collection)
    read = _read(node, principal, collection, "all")
    assert read == _seen_by_general_path(node, principal, collection)
    amber = {t["id"] for t in targets if t["object_marking_refs"] == [AMBER]}
    assert amber and not amber & _ids(read)
    node.set_agreement("uk-jp", "JPCERT/CC", max_tlp=TlpLevel.AMBER)
    assert _shortcut(node, principal, collection)


def test_after_a_delete_the_shapes_stay_a_safe_superset(world: World) -> None:
    node, collection, principal, targets = world
    strict = _obj("malware", None, [AMBER_STRICT])
    pointing = _obj("relationship", None, [GREEN], relationship_type="uses", source_ref=targets[1]["id"],
                    target_ref=strict["id"])
    assert not node.import_objects(collection, [strict, pointing]).failures
    assert pointing["id"] not in _ids(_read(node, principal, collection, "all"))
    node.delete_object(NODE_ADMIN, DEFAULT_API_ROOT, "shapes", strict["id"], Filters(versions=ALL))
    assert not _shortcut(node, principal, collection)  # the deleted shape is still counted: looked up as before
    read = _read(node, principal, collection, "all")
    # Its target is gone, but was hidden from the partner: the relationship would name it, so it stays hidden.
    assert pointing["id"] not in _ids(read)
    assert read == _seen_by_general_path(node, principal, collection)
    # Learnt afresh (a restart), the shapes take in the deleted version's from its kept copy, and the
    # relationship stays hidden.
    node._stored_shapes = StoredShapes(node.store)
    assert not _shortcut(node, principal, collection)
    assert pointing["id"] not in _ids(_read(node, principal, collection, "all"))


def test_the_shapes_are_learnt_in_bounded_steps_and_then_kept_up_to_date(world: World) -> None:
    node, collection, _, _ = world
    rows = node.store.query_versions(VersionQuery(collection_pk=collection.pk, versions=ALL, limit=100_000))
    stored = {(row.created_by_ref, row.markings) for row in rows if row.type not in UNDECIDED}
    assert len(stored) < len({(row.type, row.created_by_ref, row.markings) for row in rows})
    shapes = StoredShapes(node.store, step=4)
    steps = 0
    while (found := shapes.of(collection.pk)) is None:
        steps += 1
        assert steps <= len(rows) // 4 + 1
    assert steps >= len(rows) // 4 - 1  # no step read more than four versions
    assert found.pairs == stored and found.markings == {markings for _, markings in stored}
    assert shapes.of(collection.pk) is found  # nothing new: the same set, so verdicts on it are kept
    added = _obj("indicator", None, [AMBER_STRICT])
    assert not node.import_objects(collection, [added]).failures
    again = shapes.of(collection.pk)
    assert again is not None and again.pairs is not None and found.pairs is not None
    assert again.pairs - found.pairs == {(None, f'["{AMBER_STRICT}"]')}
    assert again.markings - found.markings == {f'["{AMBER_STRICT}"]'}
    relationship = _obj("relationship", "identity--" + str(uuid.uuid4()), [AMBER_STRICT], relationship_type="uses",
                        source_ref=added["id"], target_ref=added["id"])
    assert not node.import_objects(collection, [relationship]).failures
    assert shapes.of(collection.pk) is again  # a type the columns never decide adds no pair
    assert StoredShapes(node.store, cap=len(again.pairs)).of(collection.pk) == again
    # More pairs than the cap: the markings alone are kept; more markings than the cap: not summarised.
    assert StoredShapes(node.store, cap=len(again.pairs) - 1).of(collection.pk) == (None, again.markings)
    assert StoredShapes(node.store, cap=len(again.markings) - 1).of(collection.pk) is None


def test_past_the_pairs_cap_the_markings_alone_are_judged_as_if_no_producer_made_them(world: World) -> None:
    """With more (producer, markings) pairs than the cap, only the collection's markings are kept, each judged for a
    version without a producer, the strictest case: enough for a partner whose agreement covers any producer, not
    for one whose agreement lists producers (a third party's AMBER is hidden from it). Both read what the general
    path serves."""
    node, collection, principal, targets = world
    # Five pairs (two producers by GREEN and AMBER; the TLP extension's definition, unmarked), three markings.
    node._stored_shapes = StoredShapes(node.store, cap=3)
    summary = node._stored_shapes.of(collection.pk)
    assert summary is not None and summary.pairs is None and len(summary.markings) == 3
    assert _shortcut(node, principal, collection)
    read = _read(node, principal, collection, "all")
    assert read == _seen_by_general_path(node, principal, collection)
    uk = node.home_organisation_id or ""
    node.set_agreement("uk-jp", "JPCERT/CC", max_tlp=TlpLevel.AMBER, producers=[uk])  # the third party's: GREEN only
    assert not _shortcut(node, principal, collection)
    listed = _read(node, principal, collection, "all")
    assert listed == _seen_by_general_path(node, principal, collection)
    third_amber = {t["id"] for t in targets if t["created_by_ref"] != uk and t["object_marking_refs"] == [AMBER]}
    assert third_amber and not third_amber & _ids(listed) and len(listed) < len(read)


def test_endpoint_verdicts_kept_across_pages_follow_every_add_and_delete(world: World) -> None:
    node, collection, principal, targets = world
    absent, later = f"identity--{uuid.uuid4()}", f"identity--{uuid.uuid4()}"
    to_absent = _obj("relationship", None, [GREEN], relationship_type="targets", source_ref=targets[0]["id"],
                     target_ref=absent)
    versions = [_obj("identity", None, [GREEN], 1, later, name="Later", identity_class="organization"),
                _obj("identity", None, [AMBER_STRICT], 2, later, name="Later", identity_class="organization")]
    to_later = _obj("relationship", None, [GREEN], relationship_type="targets", source_ref=targets[1]["id"],
                    target_ref=later)
    assert not node.import_objects(collection, [to_absent, *versions, to_later]).failures
    for _ in range(2):  # the second read-out is decided from the verdicts the first one kept
        read = _read(node, principal, collection, "all")
        assert {to_absent["id"], to_later["id"]} <= _ids(read)  # an absent endpoint is not hidden; one version seen
    # the absent identity arrives, hidden from the partner: the kept "absent" verdict must not serve the relationship
    assert not node.import_objects(collection, [_obj("identity", None, [AMBER_STRICT], object_id=absent,
                                                     name="Hidden", identity_class="organization")]).failures
    read = _read(node, principal, collection, "all")
    assert to_absent["id"] not in _ids(read) and to_later["id"] in _ids(read)
    assert read == _seen_by_general_path(node, principal, collection)
    # the version the partner saw is deleted: only the hidden one is left
    first = VersionQuery(collection_pk=collection.pk, ids=(later,), versions=ALL, limit=10)
    seen_version = min(row.version for row in node.store.query_versions(first))
    node.store.delete_versions(collection.pk, later, VersionSelector(exact=(seen_version,)), None)
    read = _read(node, principal, collection, "all")
    assert to_later["id"] not in _ids(read)
    assert read == _seen_by_general_path(node, principal, collection)


def test_amber_strict_from_a_partner_node_stops_here_from_the_next_page(world: World) -> None:
    """A collection holding nothing from a partner node skips the relay rule's per-row work; from the page after a
    version's provenance is recorded, that version and the relationship naming it are hidden."""
    node, collection, _, _ = world
    node.create_organisation("ACSC", "AUS")
    node.set_agreement("uk-au", "ACSC", max_tlp=TlpLevel.AMBER_STRICT)
    principal = node.authenticate(node.create_token("ACSC", read=["shapes"])[1])
    assert principal is not None
    third = f"identity--{uuid.uuid4()}"
    strict = [_obj("indicator", third, [AMBER_STRICT]) for _ in range(3)]
    pointing = _obj("relationship", third, [AMBER_STRICT], relationship_type="related-to",
                    source_ref=strict[0]["id"], target_ref=strict[1]["id"])
    assert not node.import_objects(collection, [*strict, pointing]).failures
    ids = {obj["id"] for obj in (*strict, pointing)}
    assert not node.store.holds_provenance(collection.pk)
    for versions in ("all", "last"):
        assert _ids(_read(node, principal, collection, versions)) & ids == ids
    relayed = node.store.query_versions(VersionQuery(collection_pk=collection.pk, ids=(strict[0]["id"],),
                                                     versions=ALL, limit=10))
    node.store.add_provenance([(collection.pk, strict[0]["id"], relayed[0].version, "jp-node", "remote", 1)])
    assert node.store.holds_provenance(collection.pk)
    for versions in ("all", "last", "first"):
        assert _ids(_read(node, principal, collection, versions)) & ids == ids - {strict[0]["id"], pointing["id"]}


def test_amber_from_a_partner_node_reaches_only_clients_of_this_nodes_organisation(world: World) -> None:
    """TLP 2.0, TLP:AMBER: "Recipients may share TLP:AMBER information with members of their own organization and
    its clients". Once an AMBER version's provenance is recorded, JPCERT/CC (an agreement up to AMBER, not a
    client) no longer sees it or the relationships naming it, and its endpoint shortcut is off; GB Rail, a client
    of this node's organisation under the same ceiling, sees everything still."""
    node, collection, principal, targets = world
    node.create_organisation("GB Rail", "GBR")
    node.set_organisation_groups("GB Rail", client_of=["NCSC UK"])
    node.set_agreement("uk-rail", "GB Rail", max_tlp=TlpLevel.AMBER)
    client = node.authenticate(node.create_token("GB Rail", read=["shapes"])[1])
    assert client is not None
    target = next(t for t in targets if t["object_marking_refs"] == [AMBER] and t["type"] == "malware"
                  and t["created_by_ref"] != node.home_organisation_id)
    pointing = _obj("relationship", None, [GREEN], relationship_type="uses", source_ref=targets[0]["id"],
                    target_ref=target["id"])
    assert not node.import_objects(collection, [pointing]).failures
    everything = _ids(_read(node, principal, collection, "all"))
    assert {target["id"], pointing["id"]} <= everything and _ids(_read(node, client, collection, "all")) == everything
    assert _shortcut(node, principal, collection) and _shortcut(node, client, collection)

    stored = node.store.query_versions(VersionQuery(collection_pk=collection.pk, ids=(target["id"],), versions=ALL,
                                                    limit=10))
    node.store.add_provenance([(collection.pk, target["id"], stored[0].version, "jp-node", "remote", 1)])
    assert not _shortcut(node, principal, collection) and _shortcut(node, client, collection)
    for versions in ("all", "last", "first"):
        seen = _ids(_read(node, principal, collection, versions))
        assert target["id"] not in seen and pointing["id"] not in seen and targets[0]["id"] in seen
        assert _ids(_read(node, client, collection, versions)) == _ids(_read(node, NODE_ADMIN, collection, versions))

    # This node's organisation is the recipient: judged like a partner (a tightening option), nothing relayed stops
    # for it, AMBER+STRICT included.
    strict = _obj("malware", f"identity--{uuid.uuid4()}", [AMBER_STRICT])
    assert not node.import_objects(collection, [strict]).failures
    strict_row = node.store.query_versions(VersionQuery(collection_pk=collection.pk, ids=(strict["id"],),
                                                        versions=ALL, limit=10))[0]
    node.store.add_provenance([(collection.pk, strict["id"], strict_row.version, "jp-node", "remote", 1)])
    node.set_policy_options(PolicyOptions(home_organisation_sees_everything=False))
    node.set_agreement("uk-own", "NCSC UK", max_tlp=TlpLevel.AMBER_STRICT)  # what its markings then let it see
    home = node.authenticate(node.create_token("NCSC UK", read=["shapes"])[1])
    assert home is not None and node.viewer_for(home, collection).policy is not None  # judged by the policy
    assert {target["id"], pointing["id"], strict["id"]} <= _ids(_read(node, home, collection, "all"))
    assert strict["id"] not in _ids(_read(node, client, collection, "all"))  # AMBER+STRICT stops for clients

    # Had JPCERT/CC's own node sent it (the partner entry "jp-node" stands for JPCERT/CC), JPCERT/CC holds it
    # already: it is not stopped for JPCERT/CC, nor is the relationship that names it.
    jp = node.store.get_organisation("JPCERT/CC")
    assert jp is not None
    FederationState(node.store).add_partner(PartnerConfig(
        "jp-node", "http://127.0.0.1:9/main/", (CollectionMapping("shapes", "remote", Direction.PULL),),
        token="kz_unused", organisation=jp.id, agreement="uk-jp"))
    assert {target["id"], pointing["id"]} <= _ids(_read(node, principal, collection, "all"))


class _CountingStore:
    """The node's store, noting which thread asked for each step of shapes."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.callers: list[int] = []

    def lean_reads(self) -> None:
        self.store.lean_reads()

    def column_shapes(self, collection_pk: int, after: int, limit: int) -> Any:
        self.callers.append(threading.get_ident())
        return self.store.column_shapes(collection_pk, after, limit)


def test_in_the_background_the_steps_are_the_learning_threads_not_the_requests(world: World) -> None:
    node, collection, _, _ = world
    rows = node.store.query_versions(VersionQuery(collection_pk=collection.pk, versions=ALL, limit=100_000))
    stored = {(row.created_by_ref, row.markings) for row in rows if row.type not in UNDECIDED}
    counting = _CountingStore(node.store)
    shapes = StoredShapes(counting, step=4, background=True)  # type: ignore[arg-type]
    here = threading.get_ident()
    assert shapes.of(collection.pk) is None  # not known yet: the caller takes no step, the thread starts
    shapes.wait(60)
    assert counting.callers and here not in counting.callers
    assert len(counting.callers) >= len(rows) // 4
    complete = shapes.of(collection.pk)  # complete: one (empty) step in the caller keeps it current
    assert complete is not None and complete.pairs == stored
    assert counting.callers.count(here) == 1
    more = [_obj("indicator", None, [AMBER_STRICT]) for _ in range(5)]  # more than a step since: learnt again
    assert not node.import_objects(collection, more).failures
    assert shapes.of(collection.pk) is None
    shapes.wait(60)
    again = shapes.of(collection.pk)
    assert again is not None and again.pairs is not None and (None, f'["{AMBER_STRICT}"]') in again.pairs
    shapes.stop()
