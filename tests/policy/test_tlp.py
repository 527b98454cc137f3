"""TLP marking definitions shipped by every node, and alias normalisation at ingest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import stix2
from policy_world import CREATED, validation_errors

from kizuna.policy import (
    TLP2_IDS,
    PolicyContext,
    TlpAliasTable,
    TlpLevel,
    Viewer,
    compile_viewer,
    normalise_objects,
    shipped_objects,
)
from kizuna.policy.tlp import (
    LEVEL_BY_OASIS_ID,
    OPENCTI_AMBER_STRICT_ID,
    TLP1_IDS,
    TLP2_EXTENSION_ID,
    level_of_marking_definition,
    misp_tag_level,
    tlp1_marking_definitions,
    tlp2_marking_definitions,
)

FIXTURES = Path(__file__).parent / "fixtures"
# ../shared beside the repository (present for developers and CI; the suite must not need it).
SHARED_TLP = Path(__file__).resolve().parents[3] / "shared/data/stix/tlp/upstream-cti-stix-common-objects"
WHITE_ID = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"

# The TLP 2.0 table published with the OASIS extension (cti-stix-common-objects, tlp-2.0).
EXPECTED_TLP2 = {
    "TLP:CLEAR": ("marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487", "clear"),
    "TLP:GREEN": ("marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb", "green"),
    "TLP:AMBER": ("marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421", "amber"),
    "TLP:AMBER+STRICT": ("marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003", "amber+strict"),
    "TLP:RED": ("marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1", "red"),
}


def test_levels_are_ordered_clear_to_red() -> None:
    assert sorted(TlpLevel) == [
        TlpLevel.CLEAR, TlpLevel.GREEN, TlpLevel.AMBER, TlpLevel.AMBER_STRICT, TlpLevel.RED
    ]
    assert [level.label for level in TlpLevel] == list(EXPECTED_TLP2)


def test_shipped_tlp2_objects_match_the_oasis_table_and_validate() -> None:
    objects = shipped_objects()
    extension, *markings = objects
    assert extension["id"] == TLP2_EXTENSION_ID
    assert extension["extension_types"] == ["property-extension"]
    assert len(markings) == 5
    for marking in markings:
        expected_id, token = EXPECTED_TLP2[marking["name"]]
        assert marking["id"] == expected_id
        assert marking["created"] == "2022-10-01T00:00:00.000Z"
        assert marking["extensions"] == {
            TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": token}
        }
        assert "definition_type" not in marking and "definition" not in marking
    for obj in objects:
        assert validation_errors(obj) == []


@pytest.mark.skipif(not SHARED_TLP.exists(), reason="upstream copies not present")
def test_shipped_tlp2_objects_equal_the_upstream_copies() -> None:
    upstream: dict[str, dict[str, object]] = {}
    for path in SHARED_TLP.glob("*.json"):
        if path.name.startswith("using-"):
            continue
        loaded = json.loads(path.read_text())
        for obj in loaded.get("objects", [loaded]):
            upstream[obj["id"]] = obj
    for obj in shipped_objects():
        assert upstream[obj["id"]] == obj


def test_tlp1_definitions_equal_python_stix2() -> None:
    ours = {o["id"]: o for o in tlp1_marking_definitions()}
    for reference in (stix2.TLP_WHITE, stix2.TLP_GREEN, stix2.TLP_AMBER, stix2.TLP_RED):
        assert ours[reference.id] == json.loads(reference.serialize())
    assert set(ours) == set(TLP1_IDS)


def test_fresh_copies_are_independent() -> None:
    first = tlp2_marking_definitions()
    first[0]["name"] = "changed"
    assert tlp2_marking_definitions()[0]["name"] == "TLP:CLEAR"


def test_level_of_the_marking_shapes_found_in_the_wild() -> None:
    for marking in tlp2_marking_definitions():
        assert level_of_marking_definition(marking) is LEVEL_BY_OASIS_ID[marking["id"]]
    opencti_clear = {"type": "marking-definition", "id": WHITE_ID, "definition_type": "tlp",
                     "definition": {"tlp": "clear"}, "name": "TLP:CLEAR"}
    assert level_of_marking_definition(opencti_clear) is TlpLevel.CLEAR
    opencti_strict = {"type": "marking-definition", "id": OPENCTI_AMBER_STRICT_ID,
                      "definition_type": "statement", "definition": {"statement": "custom"},
                      "x_opencti_definition_type": "TLP", "x_opencti_definition": "TLP:AMBER+STRICT"}
    assert level_of_marking_definition(opencti_strict) is TlpLevel.AMBER_STRICT
    statement = {"type": "marking-definition", "definition_type": "statement",
                 "definition": {"statement": "Copyright"}}
    assert level_of_marking_definition(statement) is None


@pytest.mark.parametrize(
    ("tag", "level"),
    [
        ("tlp:white", TlpLevel.CLEAR),
        ("tlp:clear", TlpLevel.CLEAR),
        ("TLP:GREEN", TlpLevel.GREEN),
        ("tlp:amber", TlpLevel.AMBER),
        ("tlp:amber+strict", TlpLevel.AMBER_STRICT),
        ("tlp:red", TlpLevel.RED),
        ("tlp:ex:chr", None),
        ("tlp:unclear", None),
        ("PAP:RED", None),
    ],
)
def test_misp_tags(tag: str, level: TlpLevel | None) -> None:
    assert misp_tag_level(tag) is level


def test_real_opencti_bundle_is_normalised_to_oasis_ids() -> None:
    bundle = json.loads((FIXTURES / "opencti-bundle-AMLCS0011.json").read_text())
    objects = bundle["objects"]
    assert any(o["id"] == WHITE_ID and o["name"] == "TLP:CLEAR" for o in objects)
    normalised, records = normalise_objects(objects)

    clear = TLP2_IDS[TlpLevel.CLEAR]
    all_refs = {ref for o in normalised for ref in o.get("object_marking_refs", [])}
    assert WHITE_ID not in all_refs and clear in all_refs
    assert not any(o["id"] == WHITE_ID for o in normalised)
    markings = [o for o in normalised if o["type"] == "marking-definition"]
    assert sum(o["id"] == clear for o in markings) == 1
    # One record for the replaced definition, one per object reference rewritten.
    rewritten_refs = sum(WHITE_ID in o.get("object_marking_refs", []) for o in objects)
    assert len(records) == rewritten_refs + 1
    assert all(r.old == WHITE_ID and r.new == clear for r in records)
    assert len(normalised) == len(objects)
    # The input bundle is rejected by the reference validator; the normalised objects are accepted.
    assert any(validation_errors(o) for o in objects if o["id"] == WHITE_ID)
    for obj in normalised:
        assert validation_errors(obj) == [], obj["id"]
    # And the policy reads the result as TLP:CLEAR (the copyright statement is carried).
    ctx = PolicyContext(marking_definitions=[o for o in normalised if o["type"] == "marking-definition"])
    policy = compile_viewer(Viewer("anonymous"), ctx)
    assert all(policy.decide(o).visible for o in normalised)


def test_opencti_amber_strict_and_misp_aliases_are_rewritten() -> None:
    misp_strict_id = "marking-definition--3c2b1a09-8f7e-4d6c-9b5a-4e3d2c1b0a98"
    objects = [
        {"type": "marking-definition", "spec_version": "2.1", "id": misp_strict_id, "created": CREATED,
         "definition_type": "tlp", "name": "tlp:amber+strict", "definition": {"tlp": "amber+strict"}},
        {"type": "indicator", "id": "indicator--1", "object_marking_refs": [OPENCTI_AMBER_STRICT_ID]},
        {"type": "indicator", "id": "indicator--2", "object_marking_refs": [misp_strict_id],
         "granular_markings": [{"selectors": ["name"], "marking_ref": tlp1_red_id()}]},
        {"type": "indicator", "id": "indicator--3", "labels": ["tlp:amber", "phishing"]},
    ]
    table = TlpAliasTable()
    normalised, records = normalise_objects(objects, table)
    strict = TLP2_IDS[TlpLevel.AMBER_STRICT]
    assert normalised[0] == tlp2_marking_definitions()[TlpLevel.AMBER_STRICT]
    assert normalised[1]["object_marking_refs"] == [strict]
    assert normalised[2]["object_marking_refs"] == [strict]
    assert normalised[2]["granular_markings"][0]["marking_ref"] == TLP2_IDS[TlpLevel.RED]
    assert normalised[3]["object_marking_refs"] == [TLP2_IDS[TlpLevel.AMBER]]
    assert normalised[3]["labels"] == ["tlp:amber", "phishing"]
    assert {r.object_id for r in records} == {misp_strict_id, "indicator--1", "indicator--2", "indicator--3"}
    # The table keeps what it learnt for later batches.
    later, _ = table.normalise_object({"id": "indicator--4", "object_marking_refs": [misp_strict_id]})
    assert later["object_marking_refs"] == [strict]


def tlp1_red_id() -> str:
    return next(mid for mid, level in TLP1_IDS.items() if level is TlpLevel.RED)


def test_kizuna_never_emits_a_non_oasis_tlp_id() -> None:
    white = {"type": "marking-definition", "spec_version": "2.1", "id": WHITE_ID,
             "created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp", "name": "TLP:WHITE",
             "definition": {"tlp": "white"}}
    objs = [white, {"type": "note", "id": "note--1", "object_marking_refs": [WHITE_ID, TLP2_IDS[TlpLevel.CLEAR]]}]
    normalised, _ = normalise_objects(objs)
    emitted = {o["id"] for o in normalised} | {r for o in normalised for r in o.get("object_marking_refs", [])}
    tlp_ids = {i for i in emitted if i.startswith("marking-definition--")}
    assert tlp_ids == {TLP2_IDS[TlpLevel.CLEAR]}
    # Duplicate references collapse onto one.
    assert normalised[1]["object_marking_refs"] == [TLP2_IDS[TlpLevel.CLEAR]]


def test_tampered_copy_of_an_oasis_marking_is_replaced_by_the_canonical_object() -> None:
    tampered = {**tlp2_marking_definitions()[TlpLevel.RED], "name": "TLP:CLEAR"}
    normalised, records = normalise_objects([tampered])
    assert normalised == [tlp2_marking_definitions()[TlpLevel.RED]]
    assert len(records) == 1


def test_an_alias_is_never_loosened_by_a_later_definition() -> None:
    table = TlpAliasTable()
    alias = "marking-definition--5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"
    assert table.learn({"type": "marking-definition", "id": alias, "definition_type": "tlp",
                        "definition": {"tlp": "red"}}) is TlpLevel.RED
    assert table.learn({"type": "marking-definition", "id": alias, "definition_type": "tlp",
                        "definition": {"tlp": "clear"}}) is TlpLevel.RED
    assert table.level_of_alias(WHITE_ID) is TlpLevel.CLEAR
