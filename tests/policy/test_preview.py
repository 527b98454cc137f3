"""The share preview: reason codes from the policy engine, and agreement with what partners really read.

The last test is the one that matters: for a set of drafts, each stored for real, every partner token
reads each object through a real ``kizuna serve`` on both backends, and the preview made before storing
said "sees" exactly for the tokens that got the object back.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from kizuna.core.errors import Forbidden
from kizuna.core.node import Node
from kizuna.policy import (
    Agreement,
    Organisation,
    PolicyContext,
    TlpLevel,
    build_recipients_marking,
    build_rel_to_marking,
)
from kizuna.policy.preview import Partner, Route, preview, summarise
from kizuna.policy.tlp import TLP2_IDS
from tests.conftest import TAXII, start_server

CREATED = "2026-11-30T09:00:00.000Z"
HOME = "identity--0d6a1f04-5c39-4b43-9a59-8c4f0b6f3c11"
JP = Organisation("identity--6f1f9a55-2b0b-4d63-a2a5-4f3bd5a0d0a1", "JP NISC", "JPN")
AU = Organisation("identity--3c1e7d0e-8e0f-4a9a-9a3b-5e8f7f6d2b22", "AU ACSC", "AUS")


def _indicator(markings: list[str] | None = None, producer: str = HOME, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": CREATED,
        "modified": CREATED, "name": "C2 of the campaign", "description": "seen at two sites",
        "pattern_type": "stix", "pattern": "[ipv4-addr:value = '203.0.113.7']", "valid_from": CREATED,
        "created_by_ref": producer, **extra,
    }
    if markings is not None:
        obj["object_marking_refs"] = markings
    return obj


def _world() -> tuple[PolicyContext, list[Partner]]:
    ctx = PolicyContext(
        organisations=[JP, AU],
        agreements=[Agreement("jp", 1, JP.identity_id, max_tlp=TlpLevel.AMBER),
                    Agreement("au", 1, AU.identity_id, max_tlp=TlpLevel.GREEN)],
    )
    partners = [Partner(JP.identity_id, JP.name, JP, (Route(frozenset({"c1"})),)),
                Partner(AU.identity_id, AU.name, AU, (Route(frozenset({"c1"})),))]
    return ctx, partners


def test_amber_reaches_the_amber_agreement_and_names_the_green_ceiling_of_the_other() -> None:
    ctx, partners = _world()
    jp, au = preview(_indicator([TLP2_IDS[TlpLevel.AMBER]]), partners, ctx, ["c1"], frozenset({HOME}))
    assert jp.sees and jp.reason is None
    assert not au.sees and au.reason == "agreement_tlp_ceiling" and au.params["ceiling"] == "TLP:GREEN"
    assert summarise([jp, au]) == (
        "JP NISC will see this; AU ACSC will not, because its agreement stops at TLP:GREEN"
    )


def test_rel_to_names_the_country_that_is_not_listed() -> None:
    ctx, partners = _world()
    rel_to = build_rel_to_marking(["GBR", "JPN"])
    jp, au = preview(_indicator([TLP2_IDS[TlpLevel.GREEN], rel_to["id"]]), partners,
                     ctx.with_definitions([rel_to]), ["c1"])
    assert jp.sees
    assert (au.sees, au.reason, au.params) == (False, "not_in_rel_to", {"rel_to": "GBR, JPN", "country": "AUS"})
    assert au.describe() == (
        "AU ACSC will not see this, because it is releasable only to GBR, JPN and the partner is AUS"
    )
    # The context the node shares between requests did not learn the draft's marking.
    assert ctx.marking(rel_to["id"]) is None


def test_red_needs_a_recipients_list_naming_the_partner() -> None:
    ctx, partners = _world()
    recipients = build_recipients_marking([JP.identity_id], created_by_ref=HOME)
    named = ctx.with_definitions([recipients])
    jp, au = preview(_indicator([TLP2_IDS[TlpLevel.RED], recipients["id"]]), partners, named, ["c1"])
    assert jp.sees and (au.sees, au.reason) == (False, "not_a_recipient")
    jp, au = preview(_indicator([TLP2_IDS[TlpLevel.RED]]), partners, ctx, ["c1"])
    assert (jp.sees, jp.reason, au.reason) == (False, "tlp_red_not_named", "tlp_red_not_named")


def test_routes_collections_and_pushes() -> None:
    ctx, _ = _world()
    green = _indicator([TLP2_IDS[TlpLevel.GREEN]])
    elsewhere = Partner(AU.identity_id, AU.name, AU, (Route(frozenset({"c2"})),))
    node = Partner("node:jp-node", "jp-node", JP, (Route(frozenset({"c2"}), push=True),))
    nothing = Partner("identity--9e2b3c4d-1111-4a2b-8c3d-2e4f5a6b7c8d", "NZ NCSC", None)
    verdicts = preview(green, [elsewhere, node, nothing], ctx, ["c1"])
    assert [(v.sees, v.reason) for v in verdicts] == [(False, "no_access"), (False, "not_pushed"), (False, "no_access")]
    assert verdicts[1].describe() == "jp-node will not see this, because none of c1 is pushed to it"
    bound = Agreement("jp-c2", 1, JP.identity_id, collections=frozenset({"c2"}), max_tlp=TlpLevel.RED)
    pushed = Partner("node:jp-node", "jp-node", JP, (Route(frozenset({"c1"}), agreement=bound, push=True),))
    [verdict] = preview(green, [pushed], ctx, ["c1"])
    assert (verdict.reason, verdict.params["collection"]) == ("collection_not_in_agreement", "c1")
    # Named as the operator names them when the caller gives their aliases (the CLI and the console do).
    [named] = preview(green, [pushed], ctx, ["c1"], collection_names={"c1": "games-intel"})
    assert named.params["collection"] == "games-intel"
    assert preview(green, [node], ctx, ["c1"], collection_names={"c1": "games-intel"})[0].describe() == (
        "jp-node will not see this, because none of games-intel is pushed to it")
    # AMBER+STRICT of another producer stops at this node even where the agreement would release it.
    strict = Agreement("jp-all", 1, JP.identity_id, max_tlp=TlpLevel.AMBER_STRICT)
    pushed = Partner("node:jp-node", "jp-node", JP, (Route(frozenset({"c1"}), agreement=strict, push=True),))
    foreign = _indicator([TLP2_IDS[TlpLevel.AMBER_STRICT]], producer=AU.identity_id)
    [verdict] = preview(foreign, [pushed], ctx, ["c1"], frozenset({HOME}))
    assert (verdict.sees, verdict.reason) == (False, "stops_at_recipient")
    [verdict] = preview({**foreign, "created_by_ref": HOME}, [pushed], ctx, ["c1"], frozenset({HOME}))
    assert verdict.sees


def test_granular_markings_are_seen_with_parts_withheld() -> None:
    ctx, partners = _world()
    draft = _indicator([TLP2_IDS[TlpLevel.GREEN]], granular_markings=[
        {"marking_ref": TLP2_IDS[TlpLevel.AMBER], "selectors": ["description"]}])
    jp, au = preview(draft, partners, ctx, ["c1"])
    assert jp.sees and not jp.redacted
    assert au.sees and au.redacted and au.describe() == "AU ACSC will see this with parts withheld"


# -- the preview agrees with what partners' tokens really read -------------------------------------------


def _drafts(home: str, kr: str, jp: str) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    """(marking definitions it brings, the draft) for every marking rule the preview has to get right."""
    tlp = TLP2_IDS
    rel_jp = build_rel_to_marking(["JPN"])
    rel_au_nz = build_rel_to_marking(["AUS", "NZL"])
    to_jp = build_recipients_marking([jp], created_by_ref=home)
    return [
        ([], _indicator([tlp[TlpLevel.CLEAR]], home)),
        ([], _indicator([tlp[TlpLevel.GREEN]], home)),
        ([], _indicator([tlp[TlpLevel.AMBER]], home)),
        ([], _indicator([tlp[TlpLevel.AMBER_STRICT]], home)),
        ([], _indicator([tlp[TlpLevel.RED]], home)),
        ([to_jp], _indicator([tlp[TlpLevel.RED], to_jp["id"]], home)),
        ([rel_jp], _indicator([tlp[TlpLevel.AMBER], rel_jp["id"]], home)),
        ([rel_au_nz], _indicator([tlp[TlpLevel.GREEN], rel_au_nz["id"]], home)),
        ([], _indicator(None, home)),
        ([], _indicator([tlp[TlpLevel.AMBER]], kr)),
        ([], _indicator([tlp[TlpLevel.GREEN]], home, granular_markings=[
            {"marking_ref": tlp[TlpLevel.RED], "selectors": ["description"]}])),
        # With the TLP 1.0 id for AMBER: the preview judges the OASIS id ingest rewrites it to.
        ([], _indicator(["marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"], home)),
    ]


def test_the_preview_says_sees_exactly_when_the_partner_token_reads_the_stored_object(
    store_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "uk-node"
    node = Node.init(data_dir, store_url, org_name="UK NCSC", country="GBR")
    shared = node.create_collection("Shared", alias="shared")
    node.create_collection("Other", alias="other")
    orgs = {name: node.create_organisation(name, country)["id"] for name, country in
            [("JP NISC", "JPN"), ("AU ACSC", "AUS"), ("KR KISA", "KOR"), ("US CISA", "USA"), ("NZ NCSC", "NZL")]}
    node.set_agreement("jp", "JP NISC", max_tlp=TlpLevel.AMBER)
    node.set_agreement("au", "AU ACSC", max_tlp=TlpLevel.GREEN)
    node.set_agreement("us-other", "US CISA", max_tlp=TlpLevel.AMBER_STRICT, collections=["other"])
    node.set_organisation_groups("JP NISC", communities=["pact"])
    node.set_shared_communities(["pact"])
    tokens = {name: node.create_token(name, read=["shared"])[1] for name in ("JP NISC", "AU ACSC", "KR KISA")}
    tokens["US CISA"] = node.create_token("US CISA", read=["shared", "other"], agreement="us-other")[1]
    writer = node.authenticate(node.create_token("UK NCSC", read=["shared"], write=["shared"])[1])
    assert writer is not None
    verdicts = []
    drafts = _drafts(node.home_organisation_id or "", orgs["KR KISA"], orgs["JP NISC"])
    for definitions, draft in drafts:
        verdicts.append({v.name: v for v in node.share_preview(writer, draft, ["shared"], definitions)})
        report = node.import_objects(shared, [*definitions, draft])
        assert not report.failures, report.failures
    outsider = node.authenticate(tokens["JP NISC"])
    assert outsider is not None
    with pytest.raises(Forbidden):
        node.share_preview(outsider, drafts[0][1], ["shared"])
    node.close()

    server = start_server(data_dir, sync=False)
    try:
        seen_by: dict[str, int] = {}
        for (_, draft), verdict in zip(drafts, verdicts, strict=True):
            assert verdict["NZ NCSC"].reason == "no_access" and not verdict["NZ NCSC"].sees
            for name, secret in tokens.items():
                response = requests.get(
                    f"{server.base}/main/collections/{shared.id}/objects/{draft['id']}/",
                    headers={"Accept": TAXII, "Authorization": f"Bearer {secret}"}, timeout=30,
                )
                assert response.status_code in (200, 404), response.text
                read = response.status_code == 200 and bool(response.json().get("objects"))
                assert verdict[name].sees == read, (name, draft.get("object_marking_refs"), verdict[name])
                seen_by[name] = seen_by.get(name, 0) + read
    finally:
        server.stop()
    # Every partner's answer is exercised both ways, so agreement is not trivially "never".
    assert seen_by["JP NISC"] > seen_by["AU ACSC"] > seen_by["KR KISA"] >= 1
    assert verdicts[2]["AU ACSC"].reason == "agreement_tlp_ceiling"
    assert verdicts[2]["US CISA"].reason == "collection_not_in_agreement"
    assert verdicts[6]["AU ACSC"].reason in ("agreement_tlp_ceiling", "not_in_rel_to")
    assert verdicts[7]["JP NISC"].reason == "not_in_rel_to"
    assert verdicts[10]["AU ACSC"].redacted
    assert verdicts[11]["AU ACSC"].reason == "agreement_tlp_ceiling"
