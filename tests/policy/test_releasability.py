"""The Kizuna releasability extension: building, parsing and validating its marking definitions."""

from __future__ import annotations

import pytest
from policy_world import JP_CERT, UK_PRODUCER, validation_errors

from kizuna.policy import RELEASABILITY_EXTENSION_ID, MarkingKind, build_recipients_marking, build_rel_to_marking
from kizuna.policy.model import classify_marking_definition
from kizuna.policy.releasability import (
    Recipients,
    ReleasabilityError,
    RelTo,
    kizuna_identity,
    parse_releasability,
    releasability_extension_definition,
)


def test_shipped_extension_definition_and_identity_validate() -> None:
    extension = releasability_extension_definition()
    assert extension["id"] == RELEASABILITY_EXTENSION_ID
    assert extension["created_by_ref"] == kizuna_identity()["id"]
    assert validation_errors(extension) == []
    assert validation_errors(kizuna_identity()) == []


def test_rel_to_marking_is_canonical_and_content_addressed() -> None:
    a = build_rel_to_marking(["jpn", "GBR", "GBR"])
    b = build_rel_to_marking(["GBR", "JPN"])
    assert a == b
    assert a["name"] == "REL TO GBR, JPN"
    assert a["extensions"][RELEASABILITY_EXTENSION_ID] == {
        "extension_type": "property-extension", "rel_to_countries": ["GBR", "JPN"]
    }
    assert build_rel_to_marking(["GBR"])["id"] != a["id"]
    assert validation_errors(a) == []
    assert parse_releasability(a) == RelTo(frozenset({"GBR", "JPN"}), frozenset())


def test_rel_to_identities_and_recipients() -> None:
    mixed = build_rel_to_marking(["AUS"], [JP_CERT])
    assert parse_releasability(mixed) == RelTo(frozenset({"AUS"}), frozenset({JP_CERT}))
    recipients = build_recipients_marking([JP_CERT], created_by_ref=UK_PRODUCER)
    assert recipients["created_by_ref"] == UK_PRODUCER
    assert recipients["id"] != build_recipients_marking([JP_CERT])["id"]
    assert parse_releasability(recipients) == Recipients(frozenset({JP_CERT}))
    assert validation_errors(mixed) == [] and validation_errors(recipients) == []
    assert classify_marking_definition(recipients).kind is MarkingKind.RECIPIENTS


@pytest.mark.parametrize(
    ("countries", "identities"),
    [((), ()), (["GB"], ()), (["XYZ"], ()), ((), ["indicator--1"])],
)
def test_invalid_rel_to_is_refused(countries: list[str], identities: list[str]) -> None:
    with pytest.raises(ReleasabilityError):
        build_rel_to_marking(countries, identities)


def test_malformed_instance_is_an_unenforced_marking() -> None:
    good = build_rel_to_marking(["GBR"])
    body = good["extensions"][RELEASABILITY_EXTENSION_ID]
    broken = {**good, "extensions": {RELEASABILITY_EXTENSION_ID: {**body, "recipients": [JP_CERT]}}}
    with pytest.raises(ReleasabilityError):
        parse_releasability(broken)
    assert classify_marking_definition(broken).kind is MarkingKind.UNENFORCED
    assert classify_marking_definition(good).kind is MarkingKind.REL_TO
