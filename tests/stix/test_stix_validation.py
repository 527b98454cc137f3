"""check_object against stix2-validator (the OASIS reference) on real data and on broken copies of it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import stix2validator
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from stix2validator import ValidationError, ValidationOptions, validate_parsed_json

from kizuna.stix import vocab
from kizuna.stix.validation import check_object, is_stix_id, is_timestamp

FIXTURES = Path(__file__).parent / "fixtures"
ORACLE_OPTIONS = ValidationOptions(version="2.1")

# Ids where Kizuna and the reference disagree on purpose (see the validation module docstring):
# OpenCTI's TLP:CLEAR published under the TLP 1.0 WHITE id is stored and left to the policy layer.
TLP1_IDS = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
}
ACCEPTED_THOUGH_ORACLE_REJECTS = {"marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"}


def oracle_accepts(obj: dict[str, Any]) -> bool:
    try:
        return bool(validate_parsed_json(copy.deepcopy(obj), ORACLE_OPTIONS).is_valid)
    except ValidationError:  # raised instead of reported when type or id is missing
        return False
    except ValueError:  # its SCO UUID-version check calls uuid.UUID on malformed ids and raises
        return False


def fixture_objects(*patterns: str) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for pattern in patterns:
        for path in sorted(FIXTURES.glob(pattern)):
            document = json.loads(path.read_text(encoding="utf-8"))
            objects = document.get("objects", []) if isinstance(document, dict) else document
            found.extend((path.name, obj) for obj in objects)
    return found


REAL_FILES = ("oasis/*.json", "misp-stix/*.json", "tlp/*.json", "attack/*.json", "atlas/*.json")
REAL_OBJECTS = fixture_objects(*REAL_FILES)
FREETAXII = fixture_objects("freetaxii/*.json")


def test_fixtures_cover_the_spec_types() -> None:
    seen = {obj["type"] for _, obj in REAL_OBJECTS}
    assert len(REAL_OBJECTS) > 250
    assert {"indicator", "relationship", "attack-pattern", "sighting", "marking-definition"} <= seen
    assert len(seen & vocab.SCO_TYPES) >= 5


def test_verdicts_match_the_reference_on_real_data() -> None:
    disagreements = set()
    for source, obj in REAL_OBJECTS + FREETAXII:
        ours = check_object(obj) is None
        if ours != oracle_accepts(obj):
            disagreements.add((source, obj["id"], ours))
    assert {object_id for _, object_id, _ in disagreements} == ACCEPTED_THOUGH_ORACLE_REJECTS
    assert all(ours for _, _, ours in disagreements)


def test_attack_ics_sample_is_accepted() -> None:
    objects = fixture_objects("attack/*.json")
    assert len(objects) >= 40
    assert [obj["id"] for _, obj in objects if check_object(obj) is not None] == []
    assert any(obj.get("x_mitre_data_source_ref") == "" for _, obj in objects)


def test_known_invalid_upstream_objects_are_rejected_with_the_reason() -> None:
    atlas = [obj for _, obj in fixture_objects("atlas/stix-atlas-sample.json") if obj["modified"] < obj["created"]]
    assert len(atlas) == 2
    for obj in atlas:
        assert check_object(obj) == f"modified ({obj['modified']}) is earlier than created ({obj['created']})"

    reasons = {check_object(obj) for _, obj in FREETAXII}
    assert reasons == {"indicator: required property 'pattern_type' is missing"}

    green = fixture_objects("tlp/using-tlp2.0-green.json")
    bad = [check_object(obj) for _, obj in green if obj.get("created", "").startswith("2022-101")]
    assert bad == ["created '2022-101-27T13:49:54.326Z' is not an RFC 3339 UTC timestamp (YYYY-MM-DDTHH:MM:SS[.s+]Z)"]

    equal_times = [
        check_object(obj)
        for _, obj in fixture_objects("atlas/opencti-bundle-equal-start-stop.json")
        if obj.get("stop_time") is not None and obj["stop_time"] == obj.get("start_time")
    ]
    assert equal_times and all(reason and "is not later than start_time" in reason for reason in equal_times)


def reference_required() -> dict[str, set[str]]:
    """Required properties per type as the reference's JSON schemas state them."""
    schemas = Path(stix2validator.__file__ or "").parent / "schemas-2.1" / "schemas"
    found: dict[str, set[str]] = {}
    layout = [("sdos", "core"), ("sros", "core"), ("observables", "cyber-observable-core")]
    paths = [(path, common) for folder, common in layout for path in sorted((schemas / folder).glob("*.json"))]
    paths += [(schemas / "common" / f"{name}.json", "core") for name in ("extension-definition", "language-content")]
    for path, common in paths:
        schema = json.loads(path.read_text())
        required = set(json.loads((schemas / "common" / f"{common}.json").read_text())["required"])
        required.update(*(part.get("required", []) for part in schema.get("allOf", [])))
        required.update(schema.get("required", []))
        found[path.stem] = required
    return found


REFERENCE_REQUIRED = reference_required()


def test_required_properties_agree_with_the_reference_schemas() -> None:
    assert len(REFERENCE_REQUIRED) == 41
    stricter = {}
    for type_name, required in REFERENCE_REQUIRED.items():
        assert set(vocab.REQUIRED_PROPERTIES[type_name]) >= required, type_name
        extra = set(vocab.REQUIRED_PROPERTIES[type_name]) - required
        if extra:
            stricter[type_name] = extra
    # Both are "Required" in the STIX 2.1 property tables (§6.5, §7.3).
    assert stricter == {"email-message": {"is_multipart"}, "extension-definition": {"created_by_ref"}}


INDICATOR: dict[str, Any] = {
    "type": "indicator",
    "spec_version": "2.1",
    "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
    "created": "2016-04-06T20:03:48.000Z",
    "modified": "2016-04-06T20:03:48.000Z",
    "pattern": "[file:name = 'x']",
    "pattern_type": "stix",
    "valid_from": "2016-01-01T00:00:00Z",
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"pattern": None}, "indicator: required property 'pattern' is missing"),
        ({"id": "indicator--xyz"}, "id 'indicator--xyz' is not indicator--<UUID>"),
        (
            {"id": "malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"},
            "id 'malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f' is not indicator--<UUID>",
        ),
        (
            {"created": "2016-05-01T00:00:00Z", "modified": "2015-01-01T00:00:00.5Z"},
            "modified (2015-01-01T00:00:00.5Z) is earlier than created (2016-05-01T00:00:00Z)",
        ),
        ({"spec_version": "2.0"}, "spec_version must be '2.1' (got '2.0')"),
        (
            {"created_by_ref": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"},
            "created_by_ref must be an identity id",
        ),
        ({"object_marking_refs": []}, "object_marking_refs must be a non-empty list of STIX ids"),
        ({"revoked": "no"}, "revoked must be a boolean"),
        ({"labels": []}, "labels must be a non-empty list of strings"),
        ({"pattern": 7}, "indicator: pattern must be a string"),
        ({"Custom": 1}, "property name 'Custom' must be 3-250 characters of a-z, 0-9 and _"),
        ({"extensions": {"x-acme-ext": 1}}, "extensions['x-acme-ext'] must be an object"),
        ({"confidence": 101}, "confidence must be an integer from 0 to 100"),
        (
            {"valid_until": "2016-01-01T00:00:00.000Z"},
            "valid_until (2016-01-01T00:00:00.000Z) is not later than valid_from (2016-01-01T00:00:00Z)",
        ),
    ],
)
def test_reasons_name_the_property(change: dict[str, Any], reason: str) -> None:
    obj = {**INDICATOR, **change}
    for name, value in change.items():
        if value is None:
            del obj[name]
    assert check_object(obj) == reason


def test_deliberate_differences_from_the_reference() -> None:
    # Stricter than the reference: each of these is a MUST in STIX 2.1 that it does not enforce.
    stricter = [
        {**INDICATOR, "spec_version": "2.0"},
        {**INDICATOR, "created_by_ref": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"},
        {**INDICATOR, "x_acme_owner_ref": "not-an-id"},
        {
            "type": "domain-name",
            "id": "domain-name--726f90e2-2ad6-44a2-b345-c05e55e850e5",
            "value": "circl.lu",
            "resolves_to_refs": ["ipv4-addr"],
        },
        {
            "type": "marking-definition",
            "spec_version": "2.1",
            "id": "marking-definition--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "created": "2016-04-06T20:03:48.000Z",
            "modified": "2016-04-06T20:03:48.000Z",
            "definition_type": "statement",
            "definition": {"statement": "Copyright ACME"},
        },
    ]
    for obj in stricter:
        assert oracle_accepts(obj)
        assert check_object(obj) is not None
    # More lenient: a custom property whose name starts with a digit is allowed by the 2.1 rule,
    # and created/modified may have fewer than three fractional digits.
    lenient = [
        {**INDICATOR, "3rd_party_score": 5},
        {**INDICATOR, "created": "2016-04-06T20:03:48Z", "modified": "2016-04-06T20:03:48.5Z"},
    ]
    for obj in lenient:
        assert not oracle_accepts(obj)
        assert check_object(obj) is None


def test_custom_objects_and_scos() -> None:
    custom_sco = {"type": "x-acme-widget", "id": "x-acme-widget--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f", "size": 3}
    assert check_object(custom_sco) is None
    half_sdo = {
        "type": "x-acme-thing",
        "id": "x-acme-thing--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "created": "2016-04-06T20:03:48.000Z",
    }
    assert check_object(half_sdo) == "x-acme-thing: required property 'spec_version' is missing"
    assert not oracle_accepts(half_sdo)
    custom_sdo = {**INDICATOR, "type": "x-acme-report", "id": "x-acme-report--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"}
    assert check_object(custom_sdo) is None
    bad_type = {**custom_sco, "type": "x--acme", "id": "x--acme--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"}
    assert "must be 3-250 characters" in (check_object(bad_type) or "")
    ipv4 = {"type": "ipv4-addr", "id": "ipv4-addr--8e2e2d2b-17d4-5cbf-938f-98ee46b3cd3f", "value": "10.0.0.1"}
    assert check_object(ipv4) is None
    assert check_object({**ipv4, "spec_version": "2.0"}) == "spec_version must be '2.1' (got '2.0')"
    assert check_object({**ipv4, "created": "yesterday"}) is None  # not an SCO property: custom
    file_without_name = {"type": "file", "id": "file--8e2e2d2b-17d4-5cbf-938f-98ee46b3cd3f", "size": 1}
    assert check_object(file_without_name) == "file: needs hashes or name"
    assert check_object([INDICATOR]) == "a STIX object must be a JSON object, got list"


def test_timestamp_rules() -> None:
    assert is_timestamp("2016-02-29T23:59:59.123456789Z")
    assert is_timestamp("2000-02-29T00:00:00Z")
    for bad in (
        "2015-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2016-04-31T00:00:00Z",
        "2016-12-31T23:59:60Z",
        "2016-01-01T00:00:00z",
        "2016-01-01t00:00:00Z",
        "2016-01-01T00:00:00+00:00",
        "2016-01-01T00:00:00.Z",
        "0000-01-01T00:00:00Z",
        "2016-1-01T00:00:00Z",
        "２016-01-01T00:00:00Z",
    ):
        assert not is_timestamp(bad), bad
        assert not oracle_accepts({**INDICATOR, "valid_from": bad}), bad
    assert is_stix_id("x-mitre-tactic--8E2E2D2B-17d4-4cbf-938f-98ee46b3cd3f")
    assert not is_stix_id("indicator--8e2e2d2b-17d4-0cbf-938f-98ee46b3cd3f")  # version 0
    assert not is_stix_id("indicator--8e2e2d2b-17d4-4cbf-738f-98ee46b3cd3f")  # not RFC 4122 variant


# ------------------------------------------------------------------ generated mutations

VALID_SPEC_OBJECTS = [
    obj
    for _, obj in REAL_OBJECTS
    if obj["type"] in vocab.SPEC_TYPES and obj["id"] not in ACCEPTED_THOUGH_ORACLE_REJECTS and check_object(obj) is None
]
TIMESTAMP_NAMES = {"created", "modified", *(n for names in vocab.TIMESTAMP_PROPERTIES.values() for n in names)}


def _drop_required(obj: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    # Only what both sides require (see test_required_properties_agree_with_the_reference_schemas).
    both = REFERENCE_REQUIRED.get(obj["type"], {"spec_version", "created"})
    required = [name for name in vocab.REQUIRED_PROPERTIES[obj["type"]] if name != "type" and name in both]
    del obj[data.draw(st.sampled_from(required))]
    return obj


def _corrupt_id(obj: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    uuid_part = obj["id"].split("--", 1)[1]
    obj["id"] = data.draw(
        st.sampled_from(
            [
                obj["id"].upper(),
                obj["id"][:-1],
                obj["id"].replace("--", "-", 1),
                f"{obj['type']}--{uuid_part[:14]}0{uuid_part[15:]}",
                f"{obj['type']}--{uuid_part.replace('-', '')}",
            ]
        )
    )
    return obj


def _bad_timestamp(obj: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    names = sorted(TIMESTAMP_NAMES & obj.keys() & set(_timestamp_names(obj["type"])))
    if not names:  # an SCO without timestamp properties: give its id the wrong type instead
        obj["id"] = "x" + obj["id"]
        return obj
    name = data.draw(st.sampled_from(names))
    value: str = obj[name]
    obj[name] = data.draw(
        st.sampled_from(
            [
                value.replace("T", " ", 1),
                value[:-1],
                value[:-1] + "+01:00",
                "2016-02-30" + value[10:],
                value[:11] + "24" + value[13:],
                value[:-1] + ".Z" if "." not in value else value.replace(".", ",", 1),
            ]
        )
    )
    return obj


def _timestamp_names(type_name: str) -> tuple[str, ...]:
    own = vocab.TIMESTAMP_PROPERTIES.get(type_name, ())
    return own if type_name in vocab.SCO_TYPES else ("created", "modified", *own)


def _empty_list(obj: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    lists = sorted(name for name, value in obj.items() if isinstance(value, list))
    if not lists:
        obj["external_references"] = []
        return obj
    obj[data.draw(st.sampled_from(lists))] = []
    return obj


def _wrong_ref_shape(obj: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    # The reference does not check the shape of SCO-specific references (Kizuna does, see
    # test_deliberate_differences_from_the_reference), so SCOs get a broken marking reference.
    sco = obj["type"] in vocab.SCO_TYPES
    refs = [] if sco else sorted(name for name in obj if name in vocab.REFERENCE_PROPERTIES)
    bad_value = data.draw(st.sampled_from(["identity", "identity--1234", 17, ["identity--1234"], "--"]))
    if not refs:
        obj["object_marking_refs"] = [bad_value]
        return obj
    name = data.draw(st.sampled_from(refs))
    if name.endswith("_refs"):
        obj[name] = [*obj[name], bad_value] if not isinstance(bad_value, list) else bad_value
    else:
        obj[name] = bad_value
    return obj


MUTATIONS = [_drop_required, _corrupt_id, _bad_timestamp, _empty_list, _wrong_ref_shape]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID_SPEC_OBJECTS), st.sampled_from(MUTATIONS), st.data())
def test_mutations_are_rejected_by_both(original: dict[str, Any], mutation: Any, data: st.DataObject) -> None:
    mutated = mutation(copy.deepcopy(original), data)
    reason = check_object(mutated)
    assert reason is not None, (mutation.__name__, mutated)
    assert not oracle_accepts(mutated), (mutation.__name__, mutated)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(VALID_SPEC_OBJECTS), st.integers(min_value=3, max_value=9))
def test_fractional_precision_does_not_change_the_verdict(original: dict[str, Any], digits: int) -> None:
    # The reference compares the four predefined TLP 1.0 markings with their canonical text, which
    # Kizuna leaves to the policy layer; re-spelling their timestamps would only test that.
    assume(original["id"] not in TLP1_IDS)
    obj = copy.deepcopy(original)
    for name in set(_timestamp_names(obj["type"])) & obj.keys():
        stem = obj[name][:19]
        obj[name] = stem + ("." + "0" * digits if digits else "") + "Z"
    assert (check_object(obj) is None) == oracle_accepts(obj)
