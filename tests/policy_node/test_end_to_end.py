"""Partner configurations end to end: real tokens, a real server, reads over HTTP (docs/policy.md).

Anonymised producers, TLP:AMBER to a recipient's clients, TLP:GREEN to shared communities, reasons
in the egress audit record, and ``kizuna export`` / federation push through the one check.
"""

from __future__ import annotations

import json
from typing import Any

from kizuna.core.audit import unpack_served
from kizuna.core.policy_source import ANONYMOUS_IDENTITY
from kizuna.federation.config import CollectionMapping, Direction, PartnerConfig
from kizuna.federation.state import FederationState
from kizuna.federation.sync import Syncer
from kizuna.policy import TlpLevel
from kizuna.stix.timestamps import parse_timestamp
from tests.policy_node.conftest import (
    AMBER,
    AMBER_STRICT,
    GREEN,
    RED,
    World,
    build_recipients_marking,
    build_rel_to_marking,
    cli_json,
    relationship,
    run_cli,
    sdo,
)

IEP = "marking-definition--00000000-0000-4000-8000-00000000beef"  # known to the node, no Kizuna rule
NEVER_DEFINED = "marking-definition--00000000-0000-4000-8000-111111111111"


def _ids(objects: list[dict[str, Any]]) -> set[str]:
    return {o["id"] for o in objects}


def _last_egress(world: World, token: str) -> dict[str, Any]:
    principal = world.core.authenticate(world.node.tokens[token])
    assert principal is not None
    bodies = [json.loads(r.body) for r in world.core.audit.records()
              if r.kind == "egress" and r.principal == principal.key]
    assert bodies, token
    return bodies[-1]


# -- anonymised producer ---------------------------------------------------------------------------


def test_anonymised_partner_receives_the_anonymous_identity_and_never_the_producer(world: World) -> None:
    data = world.node.data_dir
    world.organisation("KISA", "KOR")
    stored = cli_json(data, "agreements", "set", "uk-kr", "--partner", "KISA", "--max-tlp", "amber",
                      "--anonymise-producer")
    assert stored["anonymise_producer"] is True
    world.token("kr_sync", "KISA", agreement="uk-kr")
    anonymous = world.core.store.get_setting(ANONYMOUS_IDENTITY)
    assert anonymous is not None and anonymous != world.uk

    producer = sdo("identity", world.uk, name="NCSC UK", id=world.uk)  # an organisation's own identity
    victim = sdo("identity", world.uk, [GREEN], name="Ministry of Examples")
    indicator = sdo("indicator", world.uk, [AMBER])
    attributed = relationship(world.uk, indicator["id"], world.uk, [GREEN])
    targets = sdo("relationship", world.uk, [GREEN], relationship_type="targets",
                  source_ref=indicator["id"], target_ref=victim["id"])
    status = world.node.post([producer, victim, indicator, attributed, targets])
    assert status["failure_count"] == 0, status
    ids = [producer["id"], victim["id"], indicator["id"], attributed["id"], targets["id"], anonymous]
    query = {"match[id]": ",".join(ids)}

    session = world.node.session("kr_sync")
    response = session.get(world.node.collection_url() + "objects/", params=query)
    assert response.status_code == 200
    served = {o["id"]: o for o in response.json()["objects"]}
    # The producer's identity, and the relationship that would name it, are not served; nothing
    # in the response names the producer at all.
    assert set(served) == {victim["id"], indicator["id"], targets["id"], anonymous}
    assert world.uk not in response.text
    assert all(o.get("created_by_ref") in (None, anonymous) for o in served.values())
    assert served[anonymous]["type"] == "identity" and "created_by_ref" not in served[anonymous]
    assert served[indicator["id"]] == {**indicator, "created_by_ref": anonymous}
    url = world.node.collection_url() + "objects/"
    assert session.get(url + world.uk + "/").status_code == 404
    assert session.get(url + anonymous + "/").json()["objects"][0]["id"] == anonymous
    manifest = session.get(world.node.collection_url() + "manifest/", params=query).json()
    assert {r["id"] for r in manifest["objects"]} == set(served)

    # A partner without anonymisation sees the producer as it is.
    plain = {o["id"]: o for o in world.objects("reader", **query)}
    assert producer["id"] in plain and plain[indicator["id"]]["created_by_ref"] == world.uk

    egress = _last_egress(world, "kr_sync")
    assert egress["hidden"].get("anonymised-producer") == 1 and egress["hidden"].get("references") == 1
    assert egress["redacted"].get("anonymised", 0) >= 3


# -- TLP:AMBER to clients, TLP:GREEN to communities ------------------------------------------------


def test_amber_reaches_a_recipients_clients_only_when_the_agreement_says_so(world: World) -> None:
    data = world.node.data_dir
    world.organisation("CERT NZ", "NZL")
    world.organisation("NZ Bank", "NZL")
    world.organisation("NZ Shop", "NZL")
    cli_json(data, "agreements", "set", "uk-nz", "--partner", "CERT NZ", "--max-tlp", "amber")
    client = cli_json(data, "policy", "org", "NZ Bank", "--client-of", "CERT NZ")
    assert client["client_of"] == [world.core.store.get_organisation("CERT NZ").id]  # type: ignore[union-attr]
    world.token("nz", "CERT NZ")
    world.token("nz_bank", "NZ Bank")
    world.token("nz_shop", "NZ Shop")

    green, amber, strict = (sdo("indicator", world.uk, [level]) for level in (GREEN, AMBER, AMBER_STRICT))
    world.node.post([green, amber, strict])
    query = {"match[id]": f"{green['id']},{amber['id']},{strict['id']}"}

    def seen() -> dict[str, set[str]]:
        return {name: _ids(world.objects(name, **query)) for name in ("nz", "nz_bank", "nz_shop")}

    assert seen() == {"nz": {green["id"], amber["id"]}, "nz_bank": set(), "nz_shop": set()}
    cli_json(data, "agreements", "set", "uk-nz", "--amber-to-clients")
    assert seen() == {"nz": {green["id"], amber["id"]}, "nz_bank": {green["id"], amber["id"]}, "nz_shop": set()}
    cli_json(data, "agreements", "set", "uk-nz", "--no-amber-to-clients")
    assert seen()["nz_bank"] == set()


def test_green_reaches_members_of_a_shared_community_and_no_one_else(world: World) -> None:
    data = world.node.data_dir
    world.organisation("CERT-LT", "LTU")
    world.organisation("CERT-LV", "LVA")
    world.organisation("CERT-XX")
    shared = sorted(world.core.policy.context().shared_communities | {"baltic-green"})
    cli_json(data, "policy", "communities", *shared)
    cli_json(data, "policy", "org", "CERT-LT", "--community", "baltic-green")
    cli_json(data, "policy", "org", "CERT-LV", "--community", "baltic-closed")
    for name, org in (("lt", "CERT-LT"), ("lv", "CERT-LV"), ("xx", "CERT-XX")):
        world.token(name, org)
    green, amber = sdo("indicator", world.uk, [GREEN]), sdo("indicator", world.uk, [AMBER])
    world.node.post([green, amber])
    query = {"match[id]": f"{green['id']},{amber['id']}"}
    assert _ids(world.objects("lt", **query)) == {green["id"]}
    assert world.objects("lv", **query) == [] and world.objects("xx", **query) == []
    assert _last_egress(world, "lv")["hidden"] == {"tlp-green": 1, "tlp-amber": 1}
    cli_json(data, "policy", "org", "CERT-LV", "--community", "baltic-green")
    assert _ids(world.objects("lv", **query)) == {green["id"]}


# -- reasons and exact pairs in the egress record --------------------------------------------------


def test_egress_record_names_exactly_what_was_served_and_why_the_rest_was_not(world: World) -> None:
    rel_to_gbr = build_rel_to_marking(["GBR"])
    recipients = build_recipients_marking([world.uk], created_by_ref=world.uk)
    iep = {"type": "marking-definition", "spec_version": "2.1", "id": IEP,
               "created": "2026-03-01T00:00:00.000Z", "name": "IEP sharing", "definition_type": "iep",
               "definition": {"iep": "restricted"}}
    shown = [sdo("indicator", world.uk, [GREEN]), sdo("indicator", world.uk),
             sdo("indicator", world.uk, [GREEN], description="only for AMBER readers",
                 granular_markings=[{"selectors": ["description"], "marking_ref": AMBER}])]
    hidden = {
        "tlp-amber": sdo("indicator", world.uk, [AMBER]),
        "rel-to": sdo("indicator", world.uk, [GREEN, rel_to_gbr["id"]]),
        "unenforced-marking": sdo("indicator", world.uk, [IEP]),
        "unknown-marking": sdo("indicator", world.uk, [NEVER_DEFINED]),
        "tlp-red": sdo("indicator", world.uk, [RED]),
    }
    hidden["references"] = relationship(world.uk, shown[0]["id"], hidden["tlp-amber"]["id"], [GREEN])
    red_named = sdo("indicator", world.uk, [RED, recipients["id"]])
    everything = [rel_to_gbr, recipients, iep, *shown, *hidden.values(), red_named]
    assert world.node.post(everything)["failure_count"] == 0
    query = {"match[id]": ",".join(o["id"] for o in [*shown, *hidden.values(), red_named])}
    response = world.node.session("au").get(world.node.collection_url() + "objects/", params=query)
    served = response.json()["objects"]
    assert _ids(served) == _ids(shown)
    egress = _last_egress(world, "au")
    assert unpack_served(egress["served"]) == [(o["id"], parse_timestamp(o["modified"])) for o in served]
    assert egress["hidden"] == {**{reason: 1 for reason in hidden}, "recipients": 1}
    assert egress["redacted"] == {"granular": 1}
    # A token bound to an agreement is capped by it: AMBER+STRICT is refused as above its agreement.
    strict = sdo("indicator", world.uk, [AMBER_STRICT])
    world.node.post([strict])
    assert world.objects("jp_sync", **{"match[id]": strict["id"]}) == []
    assert _last_egress(world, "jp_sync")["hidden"] == {"agreement-cap": 1}
    assert world.core.audit.verify().ok


# -- export and federation push go through the same check ------------------------------------------


def test_export_and_federation_push_go_through_the_view_check(world: World) -> None:
    amber, strict = sdo("indicator", world.uk, [AMBER]), sdo("indicator", world.uk, [AMBER_STRICT])
    rel_to_aus = build_rel_to_marking(["AUS"])
    australian = sdo("indicator", world.uk, [GREEN, rel_to_aus["id"]])
    world.node.post([rel_to_aus, amber, strict, australian])
    mine = {amber["id"], strict["id"], australian["id"]}

    out = world.node.data_dir.parent / "operator-export.json"
    run_cli(world.node.data_dir, "export", "--collection", "shared", "-o", str(out))
    assert mine <= _ids(json.loads(out.read_text())["objects"])  # the operator holds the store

    shared = world.core.find_collection("shared")
    principal = world.core.authenticate(world.node.tokens["jp_sync"])
    assert principal is not None
    exported = _ids([json.loads(body) for body in world.core.export_objects(shared, principal)])
    assert amber["id"] in exported and not {strict["id"], australian["id"]} & exported

    # Push to a collection of a real TAXII server, as the partner JPCERT/CC under agreement uk-jp.
    target = world.core.create_collection("Pushed to JP", alias="pushed-jp")
    _, secret = world.core.create_token("NCSC UK", read=[target.id], write=[target.id])
    FederationState(world.core.store).add_partner(PartnerConfig(
        name="jp-node", api_root_url=world.node.api_root, token=secret,
        mappings=(CollectionMapping("shared", target.id, Direction.PUSH),),
        organisation=world.jp, agreement="uk-jp",
    ))
    report = Syncer(world.core).sync_partner("jp-node")
    assert report.error is None and report.pushed > 0
    world.node.tokens["pushed"] = secret
    pushed = _ids(_read_all(world, "pushed", target.id))
    assert amber["id"] in pushed and not {strict["id"], australian["id"]} & pushed
    assert pushed <= _ids(world.objects("jp_sync"))
    assert world.core.policy.agreement("uk-jp").max_tlp is TlpLevel.AMBER  # type: ignore[union-attr]


def _read_all(world: World, token: str, collection: str) -> list[dict[str, Any]]:
    session = world.node.session(token)
    found: list[dict[str, Any]] = []
    query: dict[str, str] = {"match[version]": "all"}
    while True:
        body = session.get(world.node.collection_url(collection) + "objects/", params=query).json()
        found += body.get("objects", [])
        if not body.get("more"):
            return found
        query = {**query, "next": body["next"]}
