"""Plain-English scenarios for the marking rules of docs/policy.md."""

from __future__ import annotations

from typing import Any

import pytest
from policy_world import (
    AMBER,
    AMBER_STRICT,
    AU_AGENCY_ORG,
    CLEAR,
    COMMUNITY,
    CREATED,
    GREEN,
    JP_ANALYST,
    JP_CERT,
    JP_CERT_ORG,
    RED,
    UK_PRODUCER,
    UK_PRODUCER_ORG,
    UK_RECIPIENT,
    UK_RECIPIENT_ORG,
    UK_TO_RECIPIENT,
    indicator,
    make_context,
    validation_errors,
    viewer_of,
)

from kizuna.policy import (
    HIDDEN,
    VISIBLE,
    Agreement,
    Organisation,
    Outcome,
    PolicyOptions,
    TlpLevel,
    Viewer,
    build_recipients_marking,
    build_rel_to_marking,
    compile_viewer,
    decide,
    filter_batch,
    hide_dangling,
)


def report(markings: list[str], **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "report",
        "spec_version": "2.1",
        "id": "report--5b7a1c2e-3d4f-4a5b-8c6d-7e8f9a0b1c2d",
        "created_by_ref": UK_PRODUCER,
        "created": CREATED,
        "modified": CREATED,
        "name": "Intrusion against a UK ministry",
        "published": CREATED,
        "object_refs": ["indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"],
        "object_marking_refs": markings,
    }
    obj.update(extra)
    return obj


def test_uk_amber_strict_report_never_reaches_a_japanese_viewer() -> None:
    ctx = make_context()
    strict = report([AMBER_STRICT])
    amber = report([AMBER])
    # JP CERT is a client of the UK recipient and the agreement extends AMBER to clients ...
    assert decide(viewer_of(JP_CERT_ORG), amber, ctx) is VISIBLE
    # ... but AMBER+STRICT stays inside the recipient organisation.
    assert decide(viewer_of(JP_CERT_ORG), strict, ctx) is HIDDEN
    assert decide(viewer_of(UK_RECIPIENT_ORG), strict, ctx) is VISIBLE
    assert decide(viewer_of(UK_PRODUCER_ORG), strict, ctx) is VISIBLE
    # Even a JP principal vouched to satisfy REL TO GBR does not get the recipient's AMBER+STRICT.
    jp_partner = Viewer(
        principal_id="sync@jp-node",
        organisation=JP_CERT_ORG,
        agreement=Agreement("agr-jp", 1, JP_CERT, max_tlp=TlpLevel.AMBER, releasability=frozenset({"GBR"})),
    )
    assert decide(jp_partner, strict, ctx) is HIDDEN


def test_rel_to_gbr_jpn_indicator_reaches_japan_but_not_australia() -> None:
    rel_to = build_rel_to_marking(["GBR", "JPN"])
    ctx = make_context(marking_definitions=[rel_to])
    obj = indicator(object_marking_refs=[GREEN, rel_to["id"]])
    assert decide(viewer_of(JP_CERT_ORG), obj, ctx) is VISIBLE
    assert decide(viewer_of(UK_RECIPIENT_ORG), obj, ctx) is VISIBLE
    # Australia is in the same community, so GREEN alone would admit it: REL TO does not.
    assert decide(viewer_of(AU_AGENCY_ORG), indicator(object_marking_refs=[GREEN]), ctx) is VISIBLE
    assert decide(viewer_of(AU_AGENCY_ORG), obj, ctx) is HIDDEN


def test_rel_to_an_identity_admits_that_organisation_in_any_country() -> None:
    rel_to = build_rel_to_marking(identities=[JP_CERT])
    ctx = make_context(marking_definitions=[rel_to])
    obj = indicator(object_marking_refs=[CLEAR, rel_to["id"]])
    assert decide(viewer_of(JP_CERT_ORG), obj, ctx) is VISIBLE
    assert decide(viewer_of(UK_RECIPIENT_ORG), obj, ctx) is HIDDEN


def test_tlp_red_note_reaches_only_its_named_recipients() -> None:
    recipients = build_recipients_marking([UK_RECIPIENT, JP_ANALYST], created_by_ref=UK_PRODUCER)
    ctx = make_context(marking_definitions=[recipients])
    note = {
        "type": "note",
        "spec_version": "2.1",
        "id": "note--0f9e8d7c-6b5a-4948-8372-615049382716",
        "created_by_ref": UK_PRODUCER,
        "created": CREATED,
        "modified": CREATED,
        "content": "The actor re-uses the same VPS provider; do not act on this yet.",
        "object_refs": ["indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"],
        "object_marking_refs": [RED, recipients["id"]],
    }
    analyst = Viewer("analyst", organisation=JP_CERT_ORG, identity_id=JP_ANALYST)
    colleague = Viewer("colleague", organisation=JP_CERT_ORG)
    assert decide(viewer_of(UK_RECIPIENT_ORG), note, ctx) is VISIBLE
    assert decide(analyst, note, ctx) is VISIBLE  # named individually
    assert decide(colleague, note, ctx) is HIDDEN  # same organisation, not named
    assert decide(viewer_of(AU_AGENCY_ORG), note, ctx) is HIDDEN
    assert decide(viewer_of(UK_PRODUCER_ORG), note, ctx) is VISIBLE
    # The recipients list is itself shown only to those it names and to its producer.
    assert decide(viewer_of(UK_RECIPIENT_ORG), recipients, ctx) is VISIBLE
    assert decide(viewer_of(UK_PRODUCER_ORG), recipients, ctx) is VISIBLE
    assert decide(viewer_of(AU_AGENCY_ORG), recipients, ctx) is HIDDEN
    # RED without any recipients marking reaches nobody but the producer.
    bare = {**note, "object_marking_refs": [RED]}
    assert decide(viewer_of(UK_RECIPIENT_ORG), bare, ctx) is HIDDEN
    assert decide(viewer_of(UK_PRODUCER_ORG), bare, ctx) is VISIBLE


def test_granular_amber_description_is_stripped_for_green_readers() -> None:
    ctx = make_context()
    obj = indicator(
        object_marking_refs=[GREEN],
        granular_markings=[
            {"selectors": ["description"], "marking_ref": AMBER},
            {"selectors": ["name", "indicator_types.[0]"], "marking_ref": GREEN},
        ],
    )
    assert validation_errors(obj) == []
    green_reader = compile_viewer(viewer_of(AU_AGENCY_ORG), ctx)
    decision = green_reader.decide(obj)
    assert decision.outcome is Outcome.REDACTED
    assert decision.redacted is not None
    assert "description" not in decision.redacted
    assert decision.redacted["granular_markings"] == [
        {"selectors": ["name", "indicator_types.[0]"], "marking_ref": GREEN}
    ]
    assert validation_errors(decision.redacted) == []
    # The AMBER recipient sees everything, markings untouched.
    assert decide(viewer_of(UK_RECIPIENT_ORG), obj, ctx) is VISIBLE
    # The input object was not modified.
    assert "description" in obj


def test_list_indices_shift_when_a_marked_list_item_is_removed() -> None:
    ctx = make_context()
    obj = indicator(
        object_marking_refs=[GREEN],
        labels=["apt", "internal-source-alpha", "c2", "phishing"],
        granular_markings=[
            {"selectors": ["labels.[1]"], "marking_ref": AMBER},
            {"selectors": ["labels.[2]", "labels.[3]"], "marking_ref": GREEN},
        ],
    )
    decision = decide(viewer_of(AU_AGENCY_ORG), obj, ctx)
    assert decision.redacted is not None
    assert decision.redacted["labels"] == ["apt", "c2", "phishing"]
    assert decision.redacted["granular_markings"] == [
        {"selectors": ["labels.[1]", "labels.[2]"], "marking_ref": GREEN},
    ]
    assert validation_errors(decision.redacted) == []


def test_language_granular_markings_are_re_addressed_too() -> None:
    # stix2-validator 3.3 rejects ``lang`` granular markings (its schema wants marking_ref), so this
    # case is checked by value only.
    obj = indicator(
        object_marking_refs=[GREEN],
        labels=["apt", "internal-source-alpha", "c2"],
        granular_markings=[
            {"selectors": ["labels.[1]"], "marking_ref": AMBER},
            {"selectors": ["labels.[1]", "labels.[2]"], "lang": "en"},
        ],
    )
    decision = decide(viewer_of(AU_AGENCY_ORG), obj, make_context())
    assert decision.redacted is not None
    assert decision.redacted["granular_markings"] == [{"selectors": ["labels.[1]"], "lang": "en"}]


def test_removing_the_only_list_item_removes_the_list_and_its_selectors() -> None:
    ctx = make_context()
    obj = indicator(
        object_marking_refs=[GREEN],
        external_references=[{"source_name": "partner-feed", "url": "https://example.org/a"}],
        granular_markings=[
            {"selectors": ["external_references.[0].url"], "marking_ref": AMBER},
            {"selectors": ["external_references"], "marking_ref": GREEN},
        ],
    )
    decision = decide(viewer_of(AU_AGENCY_ORG), obj, ctx)
    # Without its url the reference has no description/url/external_id: the item, then the empty
    # list, go, and with them every selector that pointed there.
    assert decision.redacted is not None
    assert "external_references" not in decision.redacted
    assert "granular_markings" not in decision.redacted
    assert validation_errors(decision.redacted) == []


def test_object_whose_required_property_would_be_removed_is_hidden() -> None:
    ctx = make_context()
    obj = indicator(
        object_marking_refs=[GREEN], granular_markings=[{"selectors": ["pattern"], "marking_ref": AMBER}]
    )
    assert decide(viewer_of(AU_AGENCY_ORG), obj, ctx) is HIDDEN
    assert decide(viewer_of(UK_RECIPIENT_ORG), obj, ctx) is VISIBLE


def test_unknown_marking_is_denied_unless_the_operator_carries_it() -> None:
    unknown = "marking-definition--6c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
    obj = indicator(object_marking_refs=[CLEAR, unknown])
    assert decide(viewer_of(JP_CERT_ORG), obj, make_context()) is HIDDEN
    relaxed = make_context(options=PolicyOptions(unknown_markings="carry"))
    assert decide(viewer_of(JP_CERT_ORG), obj, relaxed) is VISIBLE


def test_statement_markings_are_carried_not_enforced() -> None:
    statement = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--7d2e3f4a-5b6c-4d7e-8f9a-0b1c2d3e4f5a",
        "created": CREATED,
        "definition_type": "statement",
        "definition": {"statement": "Copyright 2026, UK producer"},
    }
    ctx = make_context(marking_definitions=[statement])
    obj = indicator(object_marking_refs=[CLEAR, statement["id"]])
    assert decide(viewer_of(AU_AGENCY_ORG), obj, ctx) is VISIBLE
    assert decide(Viewer("anonymous"), obj, ctx) is VISIBLE


def test_green_needs_a_shared_community_or_an_agreement() -> None:
    outsider = Organisation("identity--5b3f4b5d-0f8e-4b6d-8c5f-6e1a7d8b9c06", "Outsider", "FRA")
    games_only = Organisation(
        "identity--6c4a5c6e-1a9f-4c7e-9d6a-7f2b8e9c0d17", "Games", "JPN", frozenset({"Games 2020 security"})
    )
    ctx = make_context()
    obj = indicator(object_marking_refs=[GREEN])
    assert decide(viewer_of(outsider), obj, ctx) is HIDDEN
    assert decide(viewer_of(games_only), obj, ctx) is HIDDEN  # the node does not share with that community
    assert decide(viewer_of(AU_AGENCY_ORG), obj, ctx) is VISIBLE
    assert decide(Viewer("anonymous"), indicator(object_marking_refs=[CLEAR]), ctx) is VISIBLE
    assert decide(Viewer("anonymous"), obj, ctx) is HIDDEN


def test_only_the_latest_agreement_version_counts() -> None:
    ctx = make_context()
    ctx.add_agreement(Agreement("agr-uk-recipient", 2, UK_RECIPIENT, frozenset({UK_PRODUCER})))
    ctx.add_agreement(UK_TO_RECIPIENT)  # version 1 arriving late is ignored
    # Version 2 caps the partner at GREEN (the default): AMBER no longer reaches it.
    assert decide(viewer_of(UK_RECIPIENT_ORG), report([AMBER]), ctx) is HIDDEN
    assert decide(viewer_of(JP_CERT_ORG), report([AMBER]), ctx) is HIDDEN


def test_compiled_policy_follows_context_changes() -> None:
    ctx = make_context()
    rel_to = build_rel_to_marking(["JPN"])
    policy = compile_viewer(viewer_of(JP_CERT_ORG), ctx)
    obj = indicator(object_marking_refs=[CLEAR, rel_to["id"]])
    assert policy.decide(obj) is HIDDEN  # unknown marking id so far
    assert ctx.add_marking_definition(rel_to)
    assert policy.decide(obj) is VISIBLE


def test_a_marking_definition_cannot_be_redefined() -> None:
    rel_to = build_rel_to_marking(["JPN"])
    ctx = make_context(marking_definitions=[rel_to])
    widened = {**rel_to, "extensions": build_rel_to_marking(["JPN", "AUS"])["extensions"]}
    assert ctx.add_marking_definition(widened) is False
    obj = indicator(object_marking_refs=[CLEAR, rel_to["id"]])
    assert decide(viewer_of(AU_AGENCY_ORG), obj, ctx) is HIDDEN
    # Nor can an alias id or an OASIS id be re-read as a weaker level.
    fake_clear = {
        "type": "marking-definition", "spec_version": "2.1", "id": RED, "created": CREATED,
        "definition_type": "tlp", "definition": {"tlp": "clear"},
    }
    assert ctx.add_marking_definition(fake_clear) is False
    assert decide(viewer_of(AU_AGENCY_ORG), indicator(object_marking_refs=[RED]), ctx) is HIDDEN


def test_tlp_1_ids_are_enforced_at_their_level_even_before_normalisation() -> None:
    ctx = make_context()
    tlp1_amber = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
    opencti_strict = "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37"
    assert decide(viewer_of(AU_AGENCY_ORG), report([tlp1_amber]), ctx) is HIDDEN
    assert decide(viewer_of(JP_CERT_ORG), report([tlp1_amber]), ctx) is VISIBLE
    assert decide(viewer_of(JP_CERT_ORG), report([opencti_strict]), ctx) is HIDDEN


def test_partner_reading_under_an_agreement_is_capped_and_limited_to_its_collections() -> None:
    agreement = Agreement(
        "agr-jp-node", 3, "node:jp-1", collections=frozenset({"c-shared"}), max_tlp=TlpLevel.GREEN
    )
    partner = Viewer("sync@jp-1", organisation=JP_CERT_ORG, agreement=agreement)
    ctx = make_context()
    green = indicator(object_marking_refs=[GREEN])
    assert compile_viewer(partner, ctx, "c-shared").decide(green) is VISIBLE
    assert compile_viewer(partner, ctx, "c-other").decide(green) is HIDDEN
    # JP CERT is named AMBER recipient as a client, but this token reads under a GREEN-capped agreement.
    assert compile_viewer(partner, ctx, "c-shared").decide(report([AMBER])) is HIDDEN


def test_anonymised_producer_is_replaced_on_the_way_out() -> None:
    anonymous = "identity--7d5b6d7f-2b0a-4d8f-8e7b-8a3c9f0d1e28"
    agreement = Agreement("agr-anon", 1, JP_CERT, max_tlp=TlpLevel.GREEN, anonymise_producer=True)
    partner = Viewer("sync@jp-1", organisation=JP_CERT_ORG, agreement=agreement)
    ctx = make_context(anonymous_identity_id=anonymous)
    obj = indicator(object_marking_refs=[GREEN])
    decision = decide(partner, obj, ctx)
    assert decision.redacted is not None and decision.redacted["created_by_ref"] == anonymous
    assert obj["created_by_ref"] == UK_PRODUCER
    assert validation_errors(decision.redacted) == []


def test_node_admin_does_not_bypass_markings_by_default() -> None:
    admin = Viewer("root", organisation=AU_AGENCY_ORG, is_node_admin=True)
    obj = report([RED])
    assert decide(admin, obj, make_context()) is HIDDEN
    lenient = make_context(options=PolicyOptions(admins_see_everything=True))
    assert decide(admin, obj, lenient) is VISIBLE


def test_operator_can_treat_unmarked_objects_as_green() -> None:
    strict = make_context(options=PolicyOptions(unmarked_tlp=TlpLevel.GREEN))
    obj = indicator()
    assert decide(Viewer("anonymous"), obj, make_context()) is VISIBLE
    assert decide(Viewer("anonymous"), obj, strict) is HIDDEN
    assert decide(viewer_of(AU_AGENCY_ORG), obj, strict) is VISIBLE


def relationship(source: str, target: str) -> dict[str, Any]:
    return {
        "type": "relationship",
        "spec_version": "2.1",
        "id": "relationship--8f6c7e8a-3c1b-4e9a-9f8c-9b4d0a1e2f39",
        "created": CREATED,
        "modified": CREATED,
        "relationship_type": "indicates",
        "source_ref": source,
        "target_ref": target,
    }


def test_relationships_and_sightings_to_hidden_objects_are_not_disclosed() -> None:
    ctx = make_context()
    hidden_report = report([RED])
    visible_indicator = indicator(object_marking_refs=[GREEN])
    rel = relationship(visible_indicator["id"], hidden_report["id"])
    sighting = {
        "type": "sighting",
        "spec_version": "2.1",
        "id": "sighting--9a7d8f9b-4d2c-4fab-8a9d-0c5e1b2f3a40",
        "created": CREATED,
        "modified": CREATED,
        "sighting_of_ref": visible_indicator["id"],
        "where_sighted_refs": [UK_RECIPIENT, JP_CERT],
        "granular_markings": [{"selectors": ["where_sighted_refs.[1]"], "marking_ref": GREEN}],
    }
    policy = compile_viewer(viewer_of(AU_AGENCY_ORG), ctx)
    served = filter_batch(policy, [visible_indicator, hidden_report, rel, sighting],
                          is_visible_elsewhere=lambda ref: ref == JP_CERT)
    ids = [o["id"] for o in served]
    assert ids == [visible_indicator["id"], sighting["id"]]
    served_sighting = served[1]
    assert served_sighting["where_sighted_refs"] == [JP_CERT]
    assert served_sighting["granular_markings"] == [
        {"selectors": ["where_sighted_refs.[0]"], "marking_ref": GREEN}
    ]
    assert validation_errors(served_sighting) == []
    # A sighting of something hidden is hidden.
    assert hide_dangling(sighting, VISIBLE, lambda ref: False) is HIDDEN


def test_report_loses_hidden_object_refs_and_is_hidden_when_none_remain() -> None:
    obj = report([CLEAR], object_refs=["indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
                                      "note--0f9e8d7c-6b5a-4948-8372-615049382716"])
    trimmed = hide_dangling(obj, VISIBLE, lambda ref: ref.startswith("indicator--"))
    assert trimmed.redacted is not None
    assert trimmed.redacted["object_refs"] == ["indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"]
    assert hide_dangling(obj, VISIBLE, lambda ref: False) is HIDDEN


@pytest.mark.parametrize("level", list(TlpLevel))
def test_producer_always_sees_its_own_objects(level: TlpLevel) -> None:
    from kizuna.policy import TLP2_IDS

    unknown = "marking-definition--0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
    obj = indicator(object_marking_refs=[TLP2_IDS[level], unknown],
                    granular_markings=[{"selectors": ["pattern"], "marking_ref": unknown}])
    assert decide(viewer_of(UK_PRODUCER_ORG), obj, make_context()) is VISIBLE


def test_green_stays_within_the_community_named_by_the_node() -> None:
    ctx = make_context(shared_communities=[COMMUNITY, "Games 2020 security"])
    games_only = Organisation(
        "identity--6c4a5c6e-1a9f-4c7e-9d6a-7f2b8e9c0d17", "Games", "JPN", frozenset({"Games 2020 security"})
    )
    assert decide(viewer_of(games_only), indicator(object_marking_refs=[GREEN]), ctx) is VISIBLE
