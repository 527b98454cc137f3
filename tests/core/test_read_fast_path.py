"""The read path's shortcuts serve byte for byte what the general decision serves.

`core/visibility.view` decides most rows from their producer and markings columns, keeps verdicts
across a reader's pages, hides a relationship its own markings hide without parsing it, and serves a
row with granular markings unparsed when the reader may see every marking on it. Here a mixed
collection (TLP levels, REL TO, TLP:RED with recipients, unknown markings, granular markings shown,
redacted and hiding, revoked objects, re-marked versions, relationships, sightings, reports, identities)
is read out by partners of every kind through `Node.read`, in small pages, and each page is compared with
the general path: every version parsed and decided by `ViewerPolicy.decide` with the no-dangling rule,
computed here without the column verdicts. Real SQLite and PostgreSQL stores.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from kizuna.core.filters import Endpoint, Filters
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.policy import (
    TLP2_IDS,
    PolicyOptions,
    TlpLevel,
    build_recipients_marking,
    build_rel_to_marking,
    hide_dangling,
)
from kizuna.policy.decide import Outcome, ViewerPolicy
from kizuna.store.base import Collection, VersionQuery, VersionSelector
from tests.conftest import BACKENDS, create_pg_database

CLEAR, GREEN, AMBER, AMBER_STRICT, RED = (TLP2_IDS[level] for level in TlpLevel)
UNKNOWN = "marking-definition--00000000-1111-4222-8333-444444444444"
ALL = VersionSelector(all=True)


def _stamp(version: int) -> str:
    return f"2026-03-01T00:00:{version:02d}.000Z"


def _obj(stix_type: str, producer: str | None, markings: list[str] | None, version: int = 0,
         object_id: str | None = None, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": stix_type, "spec_version": "2.1", "id": object_id or f"{stix_type}--{uuid.uuid4()}",
        "created": _stamp(0), "modified": _stamp(version),
    }
    if producer is not None:
        obj["created_by_ref"] = producer
    if markings:
        obj["object_marking_refs"] = markings
    if stix_type == "indicator":
        obj.update(pattern="[ipv4-addr:value = '198.51.100.7']", pattern_type="stix",
                   valid_from="2026-03-01T00:00:00Z", name="Scanner", description="Seen scanning",
                   labels=["scanner", "c2", "infrastructure"])
    elif stix_type == "malware":
        obj.update(name="Implant", is_family=False)
    obj.update(extra)
    return obj


def _corpus(uk: str, jp: str, third: str) -> list[dict[str, Any]]:
    rel_jp = build_rel_to_marking(["GBR", "JPN"])
    rel_au = build_rel_to_marking(["AUS"])
    to_jp = build_recipients_marking([jp], created_by_ref=uk)
    definitions = [rel_jp, rel_au, to_jp]
    object_markings: list[list[str] | None] = [
        None, [CLEAR], [GREEN], [AMBER], [AMBER_STRICT], [RED], [RED, to_jp["id"]], [GREEN, rel_jp["id"]],
        [AMBER, rel_au["id"]], [UNKNOWN], [CLEAR, UNKNOWN],
    ]
    granular: list[tuple[list[str] | None, list[dict[str, Any]]]] = [
        ([GREEN], [{"selectors": ["description"], "marking_ref": AMBER}]),
        ([CLEAR], [{"selectors": ["labels.[1]"], "marking_ref": CLEAR}]),
        ([GREEN], [{"selectors": ["labels.[0]"], "marking_ref": RED},
                   {"selectors": ["labels"], "marking_ref": to_jp["id"]}]),
        ([GREEN], [{"selectors": ["labels.[2]"], "marking_ref": RED},
                   {"selectors": ["description"], "marking_ref": to_jp["id"]}]),
        ([AMBER], [{"selectors": ["description"], "marking_ref": GREEN}]),
        ([GREEN], [{"selectors": ["name", "pattern"], "marking_ref": AMBER_STRICT}]),
        (None, [{"selectors": ["description"], "marking_ref": rel_au["id"]}]),
        (None, [{"selectors": ["description"], "marking_ref": GREEN}]),
        (None, [{"selectors": ["description"], "marking_ref": CLEAR}]),  # the object itself counts as unmarked
    ]
    objects: list[dict[str, Any]] = list(definitions)
    targets: list[str] = []
    for producer in (uk, third, None):
        for markings in object_markings:
            indicator = _obj("indicator", producer, markings)
            malware = _obj("malware", producer, markings)
            objects += [indicator, malware]
            targets += [indicator["id"], malware["id"]]
        for markings, entries in granular:
            objects.append(_obj("indicator", producer, markings, granular_markings=entries))
    # versions that change markings, producer or revocation: the reader's first/last differ from the stored ones
    for histories in (([GREEN], [AMBER], [CLEAR]), ([CLEAR], [RED]), ([AMBER], [AMBER], [GREEN]), ([CLEAR], None)):
        object_id = f"indicator--{uuid.uuid4()}"
        for version, markings in enumerate(histories, start=1):
            revoked = version == len(histories) and len(histories) > 2  # a revoked last version
            objects.append(_obj("indicator", uk, markings, version, object_id, revoked=revoked))
        targets.append(object_id)
    third_identity = _obj("identity", third, [GREEN], object_id=third, name="Third party",
                          identity_class="organization")
    objects.append(third_identity)
    # relationships, sightings and reports between every kind of object above
    for index in range(len(targets) - 1):
        markings = object_markings[index % len(object_markings)]
        objects.append(_obj("relationship", uk, markings, relationship_type="indicates",
                            source_ref=targets[index], target_ref=targets[-1 - index]))
        if index % 3 == 0:
            objects.append(_obj("sighting", third, markings, sighting_of_ref=targets[index],
                                where_sighted_refs=[jp, third]))
        if index % 4 == 0:
            objects.append(_obj("report", uk, markings, name="Campaign", published=_stamp(0),
                                object_refs=targets[index:index + 5]))
    objects.append(_obj("relationship", uk, [GREEN], relationship_type="indicates", source_ref=targets[0],
                        target_ref=targets[1], granular_markings=[{"selectors": ["description"], "marking_ref": AMBER}],
                        description="granular on a relationship"))
    return objects


def _general_view(
    policy: ViewerPolicy, rows: list[Any], withdrawn: Sequence[Any] = (),
) -> dict[tuple[str, int], bytes | None]:
    """Every stored version as the general path serves it: parsed, decided, dangling references applied. An id
    deleted from the collection is decided by the kept copies of its versions (``withdrawn``)."""
    decided = {(row.stix_id, row.version): (row, orjson.loads(row.body)) for row in rows}
    visible_ids = {obj["id"] for _, obj in decided.values() if policy.decide(obj).visible}
    stored_ids = {obj["id"] for _, obj in decided.values()}
    gone = [orjson.loads(row.body) for row in withdrawn if row.stix_id not in stored_ids]
    visible_ids |= {obj["id"] for obj in gone if policy.decide(obj).visible}
    stored_ids |= {obj["id"] for obj in gone}

    def is_visible(ref: str) -> bool:
        return ref in visible_ids or ref not in stored_ids  # an object absent from the collection is not hidden

    served: dict[tuple[str, int], bytes | None] = {}
    for key, (row, obj) in decided.items():
        decision = hide_dangling(obj, policy.decide(obj), is_visible)
        if decision.outcome is Outcome.VISIBLE:
            served[key] = row.body
        elif decision.outcome is Outcome.REDACTED and decision.redacted is not None:
            served[key] = orjson.dumps(decision.redacted)
        else:
            served[key] = None
    return served


def _expected(served: dict[tuple[str, int], bytes | None], versions: str) -> list[tuple[str, int, bytes]]:
    by_id: dict[str, list[tuple[int, bytes]]] = {}
    for (object_id, version), body in sorted(served.items()):
        if body is not None:
            by_id.setdefault(object_id, []).append((version, body))
    out = []
    for object_id, seen in by_id.items():
        chosen = seen if versions == "all" else [seen[-1] if versions == "last" else seen[0]]
        out += [(object_id, version, body) for version, body in chosen]
    return sorted(out)


def _read(node: Node, principal: Principal, collection: Collection, versions: str) -> list[tuple[str, int, bytes]]:
    selector = {"all": ALL, "last": VersionSelector(last=True), "first": VersionSelector(first=True)}[versions]
    viewer = node.viewer_for(principal, collection)
    filters = Filters(limit=7, versions=selector)  # small pages: verdicts and references cross page borders
    out: list[tuple[str, int, bytes]] = []
    while True:
        page = node.read(viewer, Endpoint.OBJECTS, filters)
        out += [(row.stix_id, row.version, body) for row, body in page.items]
        if not page.more:
            return sorted(out)
        viewer = node.viewer_for(principal, collection)  # a new request, as TAXII makes one per page
        filters = Filters(limit=7, versions=selector, next=page.next)


@pytest.fixture(params=BACKENDS)
def mixed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Node, Collection, dict[str, Principal]]]:
    database = create_pg_database() if request.param == "postgresql" else None
    node = Node.init(tmp_path / "node", database.url if database else None, org_name="NCSC UK", country="GBR")
    try:
        collection = node.create_collection("Mixed", alias="mixed")
        uk = node.home_organisation_id or ""
        jp = node.create_organisation("JPCERT/CC", "JPN")["id"]
        node.create_organisation("ACSC", "AUS")
        node.create_organisation("Anon CERT", "FRA")
        node.create_organisation("Community CERT", "NZL")
        third = f"identity--{uuid.uuid4()}"
        node.set_agreement("uk-jp", "JPCERT/CC", max_tlp=TlpLevel.AMBER, releasability=["JPN"])
        node.set_agreement("uk-au", "ACSC", max_tlp=TlpLevel.AMBER_STRICT, releasability=["AUS"], producers=[uk])
        node.set_agreement("anon", "Anon CERT", max_tlp=TlpLevel.AMBER, anonymise_producer=True)
        node.set_shared_communities(["pact"])
        node.set_organisation_groups("Community CERT", communities=["pact"])
        report = node.import_objects(collection, _corpus(uk, jp, third))
        assert not report.failures, report.failures
        principals = {}
        for name, org, agreement in (("jp", "JPCERT/CC", None), ("jp-bound", "JPCERT/CC", "uk-jp"),
                                     ("au", "ACSC", None), ("anon", "Anon CERT", None),
                                     ("community", "Community CERT", None)):
            secret = node.create_token(org, read=["mixed"], agreement=agreement)[1]
            principal = node.authenticate(secret)
            assert principal is not None
            principals[name] = principal
        yield node, collection, principals
    finally:
        node.close()
        if database:
            database.drop()


@pytest.mark.parametrize("unmarked", [None, TlpLevel.GREEN])
def test_every_partner_reads_what_the_general_decision_serves(
    mixed: tuple[Node, Collection, dict[str, Principal]], unmarked: TlpLevel | None,
) -> None:
    node, collection, principals = mixed
    if unmarked is not None:
        node.set_policy_options(PolicyOptions(unmarked_tlp=unmarked))
    rows = node.store.query_versions(VersionQuery(collection_pk=collection.pk, versions=ALL, limit=100_000))
    assert any(b'"granular_markings"' in row.body for row in rows)
    for name, principal in principals.items():
        policy = node.viewer_for(principal, collection).policy
        assert policy is not None, name
        served = _general_view(policy, rows)
        hidden = sum(body is None for body in served.values())
        redacted = sum(body is not None and body != row.body for row in rows
                       for body in [served[(row.stix_id, row.version)]])
        assert 0 < hidden < len(rows), (name, hidden)  # the corpus exercises both sides for every reader
        for versions in ("all", "last", "first"):
            assert _read(node, principal, collection, versions) == _expected(served, versions), (name, versions)
        if name in ("jp", "anon"):
            assert redacted, name


def test_a_granular_row_the_reader_sees_whole_is_served_as_stored(
    mixed: tuple[Node, Collection, dict[str, Principal]],
) -> None:
    node, collection, principals = mixed
    rows = node.store.query_versions(VersionQuery(collection_pk=collection.pk, versions=ALL, limit=100_000))
    policy = node.viewer_for(principals["jp"], collection).policy
    assert policy is not None
    whole = [row for row in rows if b'"granular_markings"' in row.body and row.markings is not None
             and policy.sees_every_marking(orjson.loads(row.markings), row.created_by_ref)]
    assert whole  # the GREEN description on a CLEAR object, for instance
    served = dict(((s, v), b) for s, v, b in _read(node, principals["jp"], collection, "all"))
    for row in whole:
        assert served[(row.stix_id, row.version)] == row.body
