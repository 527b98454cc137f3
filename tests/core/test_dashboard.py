"""The dashboard's numbers on real nodes (SQLite and PostgreSQL): what each principal may count is what
the same principal may read, shared counts come from what partners were really served, and sync health
from a real (failing) sync run."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from kizuna.core import dashboard as dashboard_module
from kizuna.core import partner_health as partner_health_module
from kizuna.core.dashboard import Dashboard, build_dashboard
from kizuna.core.filters import Endpoint, Filters
from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN, Principal, partner_reader
from kizuna.federation.config import CollectionMapping, Direction, PartnerConfig
from kizuna.federation.state import CursorKey, FederationState
from kizuna.policy import TlpLevel
from kizuna.policy.tlp import TLP2_IDS
from kizuna.store.base import Collection, VersionQuery, VersionSelector
from kizuna.store.stats import FURNITURE
from tests.conftest import TAXII, free_port, kizuna, start_server

CREATED = "2026-11-30T09:00:00.000Z"
CLEAR, GREEN, AMBER, STRICT, RED = (TLP2_IDS[level] for level in TlpLevel)


def _sdo(stix_type: str, producer: str, marking: str | None, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"type": stix_type, "spec_version": "2.1", "id": f"{stix_type}--{uuid.uuid4()}",
                           "created": CREATED, "modified": CREATED, "created_by_ref": producer, **extra}
    if marking is not None:
        obj["object_marking_refs"] = [marking]
    return obj


def _indicator(producer: str, marking: str | None, **extra: Any) -> dict[str, Any]:
    return _sdo("indicator", producer, marking, pattern_type="stix", valid_from=CREATED,
                pattern="[ipv4-addr:value = '198.51.100.9']", **extra)


@dataclass
class World:
    node: Node
    shared: Collection
    principals: dict[str, Principal]
    secrets: dict[str, str]
    home_green: dict[str, Any]
    home_amber: dict[str, Any]


@pytest.fixture
def world(store_url: str, tmp_path: Path) -> World:
    """UK NCSC's node: JP NISC (agreement up to AMBER) pushes in through its partner node entry, AU ACSC
    (up to GREEN), KR KISA (up to AMBER+STRICT) and GB Rail, a client of UK NCSC (up to AMBER), only read;
    the node's own objects span every TLP level."""
    node = Node.init(tmp_path / "uk", store_url, org_name="UK NCSC", country="GBR")
    shared = node.create_collection("Shared", alias="shared")
    jp = node.create_organisation("JP NISC", "JPN")["id"]
    node.create_organisation("AU ACSC", "AUS")
    node.create_organisation("KR KISA", "KOR")
    node.set_agreement("jp", "JP NISC", max_tlp=TlpLevel.AMBER)
    node.set_agreement("au", "AU ACSC", max_tlp=TlpLevel.GREEN)
    node.set_agreement("kr", "KR KISA", max_tlp=TlpLevel.AMBER_STRICT)
    node.create_organisation("GB Rail", "GBR")
    node.set_organisation_groups("GB Rail", client_of=["UK NCSC"])
    node.set_agreement("rail", "GB Rail", max_tlp=TlpLevel.AMBER)
    secrets = {"jp": node.create_token("JP NISC", read=["shared"], write=["shared"])[1],
               "au": node.create_token("AU ACSC", read=["shared"])[1],
               "kr": node.create_token("KR KISA", read=["shared"])[1],
               "rail": node.create_token("GB Rail", read=["shared"])[1]}
    principals = {name: node.authenticate(secret) for name, secret in secrets.items()}
    FederationState(node.store).add_partner(PartnerConfig(
        "jp-node", f"http://127.0.0.1:{free_port()}/main/", (CollectionMapping("shared", "remote", Direction.BOTH),),
        token="kz_unused", organisation=jp, agreement="jp",
    ))
    home = node.home_organisation_id or ""
    home_green, home_amber = _indicator(home, GREEN), _indicator(home, AMBER)
    ours = [_indicator(home, CLEAR) for _ in range(3)] + [home_green, _indicator(home, GREEN), home_amber,
                                                           _indicator(home, AMBER), _indicator(home, RED)]
    ours.append(_sdo("report", home, GREEN, name="weekly", published=CREATED,
                     object_refs=[home_green["id"], home_amber["id"]]))
    ours.append(_sdo("relationship", home, GREEN, relationship_type="related-to",
                     source_ref=home_green["id"], target_ref=home_amber["id"]))
    assert not node.import_objects(shared, ours).failures
    theirs = [_indicator(jp, GREEN), _indicator(jp, GREEN), _indicator(jp, AMBER), _indicator(jp, STRICT),
              _sdo("sighting", jp, GREEN, sighting_of_ref=home_green["id"]),
              _sdo("sighting", jp, AMBER, sighting_of_ref=home_amber["id"])]
    jp_principal = principals["jp"]
    assert jp_principal is not None
    assert not node.add_objects(jp_principal, shared, theirs).failures
    found = {name: p for name, p in principals.items() if p is not None}
    return World(node, shared, {"admin": NODE_ADMIN, **found}, secrets, home_green, home_amber)


def _readable(node: Node, principal: Principal, collection: Collection) -> int:
    """Content versions the principal reads through the TAXII path (Node.read), every page."""
    viewer = node.viewer_for(principal, collection)
    filters = Filters(versions=VersionSelector(all=True))
    count = 0
    while True:
        page = node.read(viewer, Endpoint.OBJECTS, filters)
        count += sum(row.type not in FURNITURE for row, _ in page.items)
        if not page.more:
            return count
        filters = Filters(versions=VersionSelector(all=True), next=page.next)


def _received(board: Dashboard) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = {}
    for entry in board.received:
        totals[(entry.partner, entry.tlp)] = totals.get((entry.partner, entry.tlp), 0) + entry.objects
    return totals


def test_each_principal_counts_exactly_what_it_may_read(world: World) -> None:
    node = world.node
    boards = {name: build_dashboard(node, p) for name, p in world.principals.items()}
    for name, principal in world.principals.items():
        assert sum(e.objects for e in boards[name].received) == _readable(node, principal, world.shared), name
        assert not boards[name].partial
    totals = {name: sum(e.objects for e in board.received) for name, board in boards.items()}
    assert totals["admin"] == 16 and totals["admin"] > totals["jp"] > totals["au"] > 0
    admin, au = _received(boards["admin"]), _received(boards["au"])
    assert admin[("JP NISC", "TLP:GREEN")] == 3 and admin[("JP NISC", "TLP:AMBER+STRICT")] == 1
    assert admin[("UK NCSC", "TLP:RED")] == 1 and admin[("UK NCSC", "TLP:CLEAR")] == 3
    # What JP's node pushed in, per partner entry, for the node's own organisation only.
    assert [(e.partner, e.objects) for e in boards["admin"].received_from_partners] == [("jp-node", 6)]
    assert boards["au"].received_from_partners == [] and boards["jp"].received_from_partners == []
    # Nothing above a partner's agreement; KR may receive AMBER+STRICT, but not JP's, which stops here.
    assert {tlp for _, tlp in au} == {"TLP:CLEAR", "TLP:GREEN"}
    assert ("JP NISC", "TLP:AMBER+STRICT") not in _received(boards["kr"])
    # TLP:AMBER received from JP's node reaches UK NCSC's clients only (TLP 2.0: "members of their own
    # organization and its clients"): KR, outside them, does not count it; GB Rail, a client, does.
    kr, rail = _received(boards["kr"]), _received(boards["rail"])
    assert ("JP NISC", "TLP:AMBER") not in kr and kr[("UK NCSC", "TLP:AMBER")] == 2
    assert rail[("JP NISC", "TLP:AMBER")] == admin[("JP NISC", "TLP:AMBER")] == 2  # the indicator and the sighting
    assert au[("JP NISC", "TLP:GREEN")] == 3  # two indicators and the sighting of a GREEN indicator
    assert ("UK NCSC", "TLP:AMBER") not in au
    # The relationship points at an AMBER indicator AU may not see: it is hidden, and not counted.
    assert au[("UK NCSC", "TLP:GREEN")] == 3  # two indicators and the report (trimmed to what AU sees)


def test_granular_markings_count_under_the_markings_of_the_object_each_reader_receives(world: World) -> None:
    node = world.node
    home = node.home_organisation_id or ""
    partly = _indicator(home, GREEN, description="from our sensor at site 4",
                        granular_markings=[{"marking_ref": AMBER, "selectors": ["description"]}])
    secret = _indicator(home, CLEAR, description="the source's name",
                        granular_markings=[{"marking_ref": RED, "selectors": ["description"]}])
    report = _sdo("report", home, CLEAR, name="clear report", published=CREATED, object_refs=[secret["id"]],
                  description="what only we may read", granular_markings=[{"marking_ref": RED,
                                                                           "selectors": ["description"]}])
    before = {name: _received(build_dashboard(node, p)) for name, p in world.principals.items()}
    assert not node.import_objects(world.shared, [partly, secret, report]).failures
    for name, principal in world.principals.items():
        board = build_dashboard(node, principal)
        # Counted as read: AU reads each without its description (and without the marking that covered it).
        assert sum(e.objects for e in board.received) == _readable(node, principal, world.shared), name
        after = _received(board)
        added = {key: n - before[name].get(key, 0) for key, n in after.items() if n != before[name].get(key, 0)}
        # Under the markings of the object, for every reader: a granular marking covers only its selectors.
        assert added == {("UK NCSC", "TLP:GREEN"): 1, ("UK NCSC", "TLP:CLEAR"): 2}, name
    # AU's copies carry neither description nor the RED marking; the page served is recorded under CLEAR.
    au = world.principals["au"]
    page = node.read(node.viewer_for(au, world.shared), Endpoint.OBJECTS,
                     Filters(ids=(secret["id"], report["id"])))
    assert [json.loads(body).get("description") for _, body in page.items] == [None, None]
    assert RED not in str([body for _, body in page.items])
    egress = [r for r in node.audit.records() if r.kind == "egress" and r.principal == au.key][-1]
    assert json.loads(egress.body)["tlp"] == {"TLP:CLEAR": 2}


def test_versions_decided_one_by_one_are_bounded_and_the_board_says_so(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard_module, "PER_ROW_LIMIT", 1)
    au_board = build_dashboard(world.node, world.principals["au"])
    assert au_board.partial
    assert sum(e.objects for e in au_board.received) < _readable(world.node, world.principals["au"], world.shared)
    assert not build_dashboard(world.node, NODE_ADMIN).partial  # counted in groups, nothing to bound


def test_shared_counts_what_each_partner_was_served_by_the_taxii_server(world: World) -> None:
    node = world.node
    server = start_server(node.config.data_dir, sync=False)
    try:
        served: dict[str, int] = {}
        for name in ("jp", "au"):
            response = requests.get(
                f"{server.base}/main/collections/{world.shared.id}/objects/?match[version]=all",
                headers={"Accept": TAXII, "Authorization": f"Bearer {world.secrets[name]}"}, timeout=30)
            assert response.status_code == 200, response.text
            served[name] = sum(o["type"] not in FURNITURE for o in response.json()["objects"])
    finally:
        server.stop()
    list(node.export_objects(world.shared))  # the operator's own export is not sharing
    board = build_dashboard(node, NODE_ADMIN)
    by_partner: dict[str, int] = {}
    for entry in board.shared:
        by_partner[entry.partner] = by_partner.get(entry.partner, 0) + entry.objects
    assert by_partner == {"JP NISC": served["jp"], "AU ACSC": served["au"]}  # KR read nothing
    assert {e.tlp for e in board.shared if e.partner == "AU ACSC"} <= {"TLP:CLEAR", "TLP:GREEN"}
    assert any(e.tlp == "TLP:AMBER" for e in board.shared if e.partner == "JP NISC")
    # Each partner's analyst sees only what was shared with its own organisation.
    assert {e.partner for e in build_dashboard(node, world.principals["au"]).shared} == {"AU ACSC"}


def test_newest_objects_and_sightings_of_our_indicators_pass_the_visibility_check(world: World) -> None:
    node = world.node
    admin = build_dashboard(node, NODE_ADMIN, newest=3)
    assert [item.object["id"] for item in admin.reports] == [r.object["id"] for r in admin.reports][:1]
    assert len(admin.indicators) == 3
    added = [item.date_added for item in admin.indicators]
    assert added == sorted(added, reverse=True)
    assert {s.object["sighting_of_ref"] for s in admin.sightings} == {world.home_green["id"], world.home_amber["id"]}
    au = build_dashboard(node, world.principals["au"], newest=50)
    assert {s.object["sighting_of_ref"] for s in au.sightings} == {world.home_green["id"]}
    markings = {m for item in au.indicators for m in item.object.get("object_marking_refs", [])}
    assert markings <= {CLEAR, GREEN} and len(au.indicators) == 7
    # The report is served as AU may see it: without the AMBER indicator it also lists.
    assert [r.object["object_refs"] for r in au.reports] == [[world.home_green["id"]]]
    # What the board showed AU is in the audit log, like any page served.
    egress = [r for r in node.audit.records() if r.kind == "egress" and r.principal == world.principals["au"].key]
    assert egress and '"endpoint":"dashboard"' in egress[-1].body


def test_sync_health_comes_from_a_real_failed_run_and_only_for_the_node_itself(world: World) -> None:
    node = world.node
    run = kizuna(node.config.data_dir, "sync", "jp-node", "--json", check=False)
    assert run.returncode == 1 and json.loads(run.stdout)  # nothing listens on the partner's port
    [health] = build_dashboard(node, NODE_ADMIN).sync
    assert (health.name, health.organisation, health.state) == ("jp-node", "JP NISC", "backoff")
    assert health.consecutive_failures == 1 and health.last_error and health.last_success is None
    # Nothing was ever pushed. JP's agreement (up to AMBER) lets the partner read 15 of the 16 content versions
    # in the pushed collection, as the TAXII path reads for it (not the RED one); of those, the 6 its node pushed
    # in never go back to it (no echo), so 9 wait.
    assert health.push_backlog == 9 and not health.push_backlog_more
    [listed] = json.loads(kizuna(node.config.data_dir, "partners", "list", "--json").stdout)["partners"]
    assert (listed["health"], listed["push_backlog"], listed["push_backlog_more"]) == ("failing", 9, False)
    assert "health: failing; push backlog 9\n" in kizuna(node.config.data_dir, "partners", "list").stdout
    partner = partner_reader("jp-node", world.principals["jp"].organisation_id, "jp", [world.shared.pk])
    assert _readable(node, partner, world.shared) == 15
    assert build_dashboard(node, world.principals["jp"]).sync == []


def test_a_producer_known_by_its_identity_object_is_named_only_to_those_who_may_see_it(world: World) -> None:
    """A producer that is no organisation of the node (ATT&CK's MITRE identity, shipped with its objects) is
    named by its identity object, as `kizuna objects list` names it, and only for a principal that may read
    that identity: for the others it stays an unknown producer."""
    node = world.node
    identity = {"type": "identity", "spec_version": "2.1", "id": f"identity--{uuid.uuid4()}", "created": CREATED,
                "modified": CREATED, "name": "Example Research Lab", "identity_class": "organization",
                "object_marking_refs": [AMBER]}
    written = [identity, _indicator(identity["id"], GREEN), _indicator(identity["id"], GREEN)]
    assert not node.import_objects(world.shared, written).failures
    admin = _received(build_dashboard(node, NODE_ADMIN))
    assert admin[("Example Research Lab", "TLP:GREEN")] == 2
    assert ("unknown producer", "TLP:GREEN") not in admin
    au = _received(build_dashboard(node, world.principals["au"]))  # up to GREEN: the AMBER identity is hidden
    assert au[("unknown producer", "TLP:GREEN")] == 2
    assert not any(name == "Example Research Lab" for name, _ in au)


def test_a_reports_name_in_the_readers_language_comes_from_translations_it_may_see(world: World) -> None:
    node, home = world.node, world.node.home_organisation_id or ""
    report = next(item.object for item in build_dashboard(node, NODE_ADMIN).reports)
    translations = [
        _sdo("language-content", home, GREEN, object_ref=report["id"], object_modified=report["modified"],
             contents={"ja": {"name": "週報"}}),
        _sdo("language-content", home, AMBER, object_ref=report["id"], object_modified=report["modified"],
             contents={"ko": {"name": "주간 보고"}}),
        # For another version of the report: not its name now.
        _sdo("language-content", home, GREEN, object_ref=report["id"], object_modified="2025-01-01T00:00:00.000Z",
             contents={"fr": {"name": "hebdomadaire"}}),
    ]
    assert not node.import_objects(world.shared, translations).failures
    assert build_dashboard(node, NODE_ADMIN).reports[0].names == {"ja": "週報", "ko": "주간 보고"}
    # AU may read the GREEN report and its Japanese name, not the AMBER Korean one (hidden like any object).
    assert build_dashboard(node, world.principals["au"]).reports[0].names == {"ja": "週報"}


def test_a_translation_is_found_however_many_others_came_after_it(world: World) -> None:
    """The dashboard finds a report's translations by their object_ref (the reference index, schema step 25), not
    among the newest language-content objects: 50 translations of other objects stored after it hide nothing."""
    node, home = world.node, world.node.home_organisation_id or ""
    report = next(item.object for item in build_dashboard(node, NODE_ADMIN).reports)
    ours = _sdo("language-content", home, GREEN, object_ref=report["id"], object_modified=report["modified"],
                contents={"ja": {"name": "先の週報"}})
    assert not node.import_objects(world.shared, [ours]).failures
    others = [_sdo("indicator", home, GREEN, pattern_type="stix", valid_from=CREATED, name=f"other {n}",
                   pattern=f"[ipv4-addr:value = '198.51.100.{n}']") for n in range(50)]
    later = [_sdo("language-content", home, GREEN, object_ref=other["id"], object_modified=other["modified"],
                  contents={"ja": {"name": f"別 {n}"}}) for n, other in enumerate(others)]
    assert not node.import_objects(world.shared, others + later).failures
    assert build_dashboard(node, NODE_ADMIN).reports[0].names == {"ja": "先の週報"}


def test_a_push_backlog_leaves_out_what_a_push_never_relays(world: World) -> None:
    """A version another producer made at TLP:AMBER+STRICT is readable by KR KISA under its agreement, yet a push
    never forwards it onward (TLP 2.0: it stops at the recipient); the backlog counts what the push would send.
    A second partner entry for JP's node (same API root) gets nothing JP's node pushed in, through either entry."""
    node, state = world.node, FederationState(world.node.store)
    kr = node.store.get_organisation("KR KISA")
    au = node.store.get_organisation("AU ACSC")
    assert kr is not None and au is not None
    theirs = _indicator(au.id, STRICT)
    assert not node.import_objects(world.shared, [theirs]).failures
    [jp_node] = [p for p in state.list_partners() if p.name == "jp-node"]
    state.add_partner(PartnerConfig("kr-node", f"http://127.0.0.1:{free_port()}/kr/",
                                    (CollectionMapping("shared", "remote", Direction.PUSH),),
                                    token="kz_unused", organisation=kr.id, agreement="kr"))
    state.add_partner(PartnerConfig("jp-again", jp_node.api_root_url,
                                    (CollectionMapping("shared", "other", Direction.PUSH),),
                                    token="kz_unused", organisation=jp_node.organisation, agreement="jp"))
    backlog = {health.name: health.push_backlog for health in build_dashboard(node, NODE_ADMIN).sync}
    kr_reader = partner_reader("kr-node", kr.id, "kr", [world.shared.pk])
    viewer = node.viewer_for(kr_reader, world.shared)
    found = node.read(viewer, Endpoint.OBJECTS, Filters(ids=(theirs["id"],), versions=VersionSelector(all=True)))
    assert [row.stix_id for row, _ in found.items] == [theirs["id"]]  # KR may read it...
    readable = _readable(node, kr_reader, world.shared)
    assert backlog["kr-node"] == readable - 1  # ...and the push holds it back
    assert backlog["jp-node"] == backlog["jp-again"] == 9


def test_a_push_backlog_counts_from_the_start_once_what_the_partner_may_see_changed(world: World) -> None:
    """A push offers every version again when the partner's terms changed since its last push (a widened
    agreement, say): the backlog counts them all then, not only what came after the push's mark."""
    node, state = world.node, FederationState(world.node.store)
    [jp_node] = [p for p in state.list_partners() if p.name == "jp-node"]
    rows = node.store.query_versions(VersionQuery(collection_pk=world.shared.pk, versions=VersionSelector(all=True),
                                                  limit=10_000))
    reader = partner_reader("jp-node", jp_node.organisation, "jp", [world.shared.pk])
    terms = node.viewer_for(reader, world.shared).policy
    assert terms is not None
    # As a push leaves them: its mark past the newest version, and the terms it offered under.
    state.save_cursor(CursorKey("jp-node", "push", world.shared.id, "remote"), str(max(r.date_added for r in rows)))
    state.save_cursor(CursorKey("jp-node", "push-terms", world.shared.id, "remote"), terms.terms())
    [health] = build_dashboard(node, NODE_ADMIN).sync
    assert health.push_backlog == 0
    node.set_agreement("jp", "JP NISC", max_tlp=TlpLevel.AMBER_STRICT)  # widened
    [health] = build_dashboard(node, NODE_ADMIN).sync
    state.save_cursor(CursorKey("jp-node", "push", world.shared.id, "remote"), "")  # as if never pushed
    [never_pushed] = build_dashboard(node, NODE_ADMIN).sync
    assert never_pushed.push_backlog is not None and never_pushed.push_backlog > 0
    assert health.push_backlog == never_pushed.push_backlog


def test_a_push_backlog_past_what_is_read_says_there_is_more(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The count reads at most ``BACKLOG_READ`` stored versions after the mark; past them it is a floor, marked."""
    home = world.node.home_organisation_id or ""
    more = [_indicator(home, CLEAR) for _ in range(600)]
    assert not world.node.import_objects(world.shared, more).failures
    [health] = build_dashboard(world.node, NODE_ADMIN).sync
    assert health.push_backlog == 609 and not health.push_backlog_more  # the 9 waiting and these 600
    monkeypatch.setattr(partner_health_module, "BACKLOG_READ", 500)
    [health] = build_dashboard(world.node, NODE_ADMIN).sync
    assert health.push_backlog is not None and health.push_backlog < 500 and health.push_backlog_more
