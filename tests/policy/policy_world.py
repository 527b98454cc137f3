"""A small, readable world for policy tests: organisations, agreements and STIX objects."""

from __future__ import annotations

from typing import Any

from stix2validator import ValidationOptions, validate_instance

from kizuna.policy import (
    TLP2_IDS,
    Agreement,
    Organisation,
    PolicyContext,
    TlpLevel,
    Viewer,
)

CLEAR = TLP2_IDS[TlpLevel.CLEAR]
GREEN = TLP2_IDS[TlpLevel.GREEN]
AMBER = TLP2_IDS[TlpLevel.AMBER]
AMBER_STRICT = TLP2_IDS[TlpLevel.AMBER_STRICT]
RED = TLP2_IDS[TlpLevel.RED]

UK_PRODUCER = "identity--0c8a9c0e-5a3f-4c1e-9d0a-1f6b2e3c4d51"
UK_RECIPIENT = "identity--1d9b0d1f-6b4a-4d2f-8e1b-2a7c3f4d5e62"
JP_CERT = "identity--2e0c1e2a-7c5b-4e3a-9f2c-3b8d4a5e6f73"
AU_AGENCY = "identity--3f1d2f3b-8d6c-4f4b-8a3d-4c9e5b6f7a84"
JP_ANALYST = "identity--4a2e3a4c-9e7d-4a5c-9b4e-5d0f6c7a8b95"

COMMUNITY = "UK-JP cyber"
GAMES = "Games 2020 security"

UK_PRODUCER_ORG = Organisation(UK_PRODUCER, "UK producer", "GBR", frozenset({COMMUNITY}))
UK_RECIPIENT_ORG = Organisation(UK_RECIPIENT, "UK recipient", "GBR", frozenset({COMMUNITY}))
JP_CERT_ORG = Organisation(
    JP_CERT, "JP CERT", "JPN", frozenset({COMMUNITY, GAMES}), client_of=frozenset({UK_RECIPIENT})
)
AU_AGENCY_ORG = Organisation(AU_AGENCY, "AU agency", "AUS", frozenset({COMMUNITY}))

#: The UK producer releases up to AMBER+STRICT to the UK recipient, whose clients also get AMBER.
UK_TO_RECIPIENT = Agreement(
    agreement_id="agr-uk-recipient",
    version=1,
    partner=UK_RECIPIENT,
    producers=frozenset({UK_PRODUCER}),
    max_tlp=TlpLevel.AMBER_STRICT,
    amber_extends_to_clients=True,
)

CREATED = "2026-01-10T09:00:00.000Z"


def make_context(**kwargs: Any) -> PolicyContext:
    defaults: dict[str, Any] = {
        "organisations": [UK_PRODUCER_ORG, UK_RECIPIENT_ORG, JP_CERT_ORG, AU_AGENCY_ORG],
        "agreements": [UK_TO_RECIPIENT],
        "shared_communities": [COMMUNITY],
    }
    defaults.update(kwargs)
    return PolicyContext(**defaults)


def viewer_of(org: Organisation, **kwargs: Any) -> Viewer:
    return Viewer(principal_id=f"user@{org.name}", organisation=org, **kwargs)


def indicator(
    id_suffix: str = "8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f", *, producer: str = UK_PRODUCER, **extra: Any
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{id_suffix}",
        "created_by_ref": producer,
        "created": CREATED,
        "modified": CREATED,
        "name": "C2 address",
        "description": "Command and control address used in the campaign",
        "pattern": "[ipv4-addr:value = '198.51.100.7']",
        "pattern_type": "stix",
        "valid_from": CREATED,
        "indicator_types": ["malicious-activity"],
    }
    obj.update(extra)
    return obj


def validation_errors(obj: dict[str, Any]) -> list[str]:
    result = validate_instance(obj, ValidationOptions(strict=False))
    return [str(e) for e in result.errors]
