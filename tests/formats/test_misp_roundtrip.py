"""Round trips on real data. A MISP instance's view is PyMISP's own MISPEvent loader reading the export.

MISP -> STIX -> MISP on the real CIRCL events: every attribute value, type, category, to_ids, tag and
object relation comes back, or the import or export loss report names it.
STIX -> MISP -> STIX on ATT&CK for ICS and the OASIS examples: every object comes back (same id, or same
type and name for what MISP holds as galaxy clusters; relationships by their ends), or the export loss
report names it.
"""

from __future__ import annotations

import gzip
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from pymisp import MISPEvent

from kizuna.formats.base import ConversionReport
from kizuna.formats.misp_in import read_misp
from kizuna.formats.misp_out import write_misp_event
from kizuna.stix.validation import check_object
from tests.formats.misp_roundtrip_check import differences, tag_set

FIXTURES = Path(__file__).parents[1] / "fixtures" / "misp"
ORG = {"name": "NCSC UK", "uuid": "b4a6e2a4-6a0c-4c1e-9f57-2f0e2f1c6d11"}


def _as_misp_sees_it(document: dict[str, Any]) -> MISPEvent:
    event = MISPEvent()
    event.load(json.dumps(document))
    return event


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.name)
def test_misp_to_stix_to_misp_keeps_every_field_or_reports_it(path: Path) -> None:
    source = json.loads(path.read_text(encoding="utf-8"))
    source = source.get("Event", source)
    imported = read_misp(path)
    exported = ConversionReport("misp")
    back = _as_misp_sees_it(write_misp_event(imported.objects, exported, org=ORG))
    assert str(back.uuid) == source["uuid"]
    # The event's date, threat level and analysis, which STIX has no property for, come back (docs/formats.md).
    again = back.to_dict()
    carried = [name for name in ("date", "threat_level_id", "analysis") if source.get(name) not in (None, "")]
    assert carried
    assert {name: str(again.get(name)) for name in carried} == {name: str(source[name]) for name in carried}
    losses = imported.losses + exported.losses
    reported = {(loss.ref.partition("--")[2] or loss.ref, loss.field) for loss in losses}
    whole = {ref for ref, field in reported if field == "attribute"}
    values = {loss.value for loss in losses if isinstance(loss.value, str)}
    unreported = [d for d in differences(source, back.to_dict(), values) if d not in reported and d[0] not in whole]
    assert unreported == []
    # The event's own tags and galaxy clusters come back (every cluster of a galaxy, even where an older MISP
    # wrote one uuid on all of them), and the converter adds none of its own but one: it writes the identity that
    # created the content back as a producer galaxy cluster.
    assert tag_set(source) - tag_set(again) - values == set()
    assert {tag for tag in tag_set(again) - tag_set(source) if not tag.startswith("misp-galaxy:producer=")} == set()
    # The comparison is not vacuous: most attributes come back whole.
    assert len(back.attributes) + sum(len(o.attributes) for o in back.objects) >= 0.8 * (
        len(source.get("Attribute", [])) + sum(len(o["Attribute"]) for o in source.get("Object", [])))


def _demo(name: str) -> list[dict[str, Any]]:
    data = resources.files("kizuna.demo").joinpath(name).read_bytes()
    objects: list[dict[str, Any]] = json.loads(gzip.decompress(data))["objects"]
    return objects


@pytest.mark.parametrize("name", ["oasis-examples.json.gz", "ics-attack-18.1.json.gz"])
def test_stix_to_misp_to_stix_keeps_every_object_or_reports_it(name: str) -> None:
    objects = _demo(name)
    exported = ConversionReport("misp")
    event = _as_misp_sees_it(write_misp_event(objects, exported, org=ORG))
    again = read_misp(event.to_json().encode(), name).objects
    ids = {o["id"] for o in again}
    uuids = {o["id"].partition("--")[2] for o in again}
    named = {(o["type"], o.get("name")) for o in again if o.get("name")}
    named_again = {o["id"]: (o["type"], o.get("name")) for o in again}
    names = {o["id"]: (o["type"], o.get("name")) for o in objects}
    def uuid_of(stix_id: str) -> str:
        return stix_id.partition("--")[2]

    # A relationship is the same when its ends are the same records (the indicator of a MISP object may
    # come back as its observed-data: same uuid), or the same named objects (galaxy clusters get new ids).
    ends = {(o["source_ref"], o["relationship_type"], o["target_ref"]) for o in again if o["type"] == "relationship"}
    ends_by_uuid = {(uuid_of(s), t, uuid_of(d)) for s, t, d in ends}
    ends_by_name = {(named_again.get(s), t, named_again.get(d)) for s, t, d in ends}
    lost = {loss.ref for loss in exported.losses}
    unaccounted = []
    for obj in objects:
        if obj["id"] in lost or obj["id"] in ids or obj["id"].partition("--")[2] in uuids:
            continue
        if obj["type"] == "relationship":
            key = (obj["source_ref"], obj["relationship_type"], obj["target_ref"])
            if ((uuid_of(key[0]), key[1], uuid_of(key[2])) in ends_by_uuid
                    or (names.get(key[0]), key[1], names.get(key[2])) in ends_by_name):
                continue
        elif (obj["type"], obj.get("name")) in named:
            continue
        unaccounted.append(obj["id"])
    assert unaccounted == []
    kept = len(objects) - len(lost)
    assert kept > 0.05 * len(objects)


@pytest.mark.parametrize("name", ["image_event.json", "long_event.json"])
def test_a_rule_attribute_becomes_its_rule_and_comes_back_as_it_was(name: str) -> None:
    """misp-stix writes a yara, sigma, snort or suricata attribute as the pattern ``[<rule>]``; a STIX pattern of
    ``pattern_type`` yara is the YARA rule itself (STIX 2.1, 4.7 Indicator: "pattern … the detection pattern
    for this Indicator … in the pattern_type language"), so the brackets are taken off. The real CIRCL events'
    YARA rules were once refused at ingest ("does not compile"), and came back to MISP bracketed."""
    source = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    source = source.get("Event", source)
    rules = {f"indicator--{a['uuid']}": a for a in source["Attribute"] if a["type"] in ("yara", "snort")}
    assert rules
    imported = read_misp(FIXTURES / name)
    indicators = {o["id"]: o for o in imported.objects if o["id"] in rules}
    assert {ref: o["pattern"] for ref, o in indicators.items()} == {ref: a["value"] for ref, a in rules.items()}
    # Ingest takes every rule that compiles (long_event's YARA rule names a meta field "SHA‐256", with a Unicode
    # hyphen: no YARA compiler reads it, and it is refused with that reason, not for the brackets).
    judged = {ref: check_object(o) for ref, o in indicators.items() if o["pattern_type"] == "yara"}
    assert judged == {ref: None if _compiles(rules[ref]["value"]) else judged[ref] for ref in judged}
    assert any(problem is None for problem in judged.values()) or name == "long_event.json"
    assert not {loss.ref for loss in imported.losses if loss.field == "value"} & {r.partition("--")[2] for r in rules}
    back = write_misp_event(imported.objects, org=ORG)["Event"]
    values = {a["uuid"]: a["value"] for a in back["Attribute"]}
    assert {ref: values.get(a["uuid"]) for ref, a in rules.items()} == {ref: a["value"] for ref, a in rules.items()}


def test_a_sigma_rule_ending_in_a_newline_becomes_its_rule() -> None:
    """A Sigma rule pasted into MISP ends with a newline, which misp-stix strips inside the brackets it adds:
    the rule, newline and all, is the indicator's pattern, which ingest parses, and goes back to MISP as MISP keeps
    it (PyMISP trims an attribute's value on the way out, as MISP does on saving)."""
    rule = ("title: Kizuna test rule for a renamed archiver\nid: 6f0c2b1e-3d4a-4b5c-8e9f-0a1b2c3d4e5f\n"
            "status: test\nlogsource:\n    category: process_creation\n    product: windows\ndetection:\n"
            "    selection:\n        OriginalFileName: 'kz-archiver.exe'\n    condition: selection\nlevel: low\n")
    attribute = {"uuid": "2d7e9c41-5b3a-4f6e-9d8c-7b6a5f4e3d21", "type": "sigma", "category": "Payload installation",
                 "to_ids": True, "value": rule, "timestamp": "1764547200", "comment": "test rule"}
    event = {"Event": {"uuid": "8a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "info": "Sigma in MISP", "date": "2026-12-01",
                       "timestamp": "1764547200", "Orgc": ORG, "Attribute": [attribute]}}
    imported = read_misp(json.dumps(event).encode(), "sigma.json")
    [indicator] = [o for o in imported.objects if o["type"] == "indicator"]
    assert (indicator["pattern_type"], indicator["pattern"]) == ("sigma", rule)
    assert check_object(indicator) is None
    back = write_misp_event(imported.objects, org=ORG)["Event"]
    assert [a["value"] for a in back["Attribute"] if a["type"] == "sigma"] == [rule.strip()]


def test_every_attribute_comment_comes_back() -> None:
    """misp-stix keeps an attribute's comment only as a to_ids indicator's description: the comments of attributes
    without to_ids (observed-data) and of the attributes of MISP objects were lost, 98 on these events. Each is
    carried in the Kizuna MISP comments extension, and the export writes it back on its attribute."""
    commented = carried = 0
    for path in sorted(FIXTURES.glob("*.json")):
        source = json.loads(path.read_text(encoding="utf-8"))
        source = source.get("Event", source)
        imported = read_misp(path)
        assert not [loss for loss in imported.losses if loss.field == "comment"]
        back = _as_misp_sees_it(write_misp_event(imported.objects, org=ORG))
        comments = {str(a.uuid): getattr(a, "comment", None) for a in back.attributes}
        comments.update({str(a.uuid): getattr(a, "comment", None) for o in back.objects for a in o.attributes})
        records = list(source.get("Attribute", [])) + [a for o in source.get("Object", []) for a in o["Attribute"]]
        for record in records:
            if record.get("comment") and record["uuid"] in comments:
                commented += 1
                carried += comments[record["uuid"]] == record["comment"]
    assert commented >= 98 and carried == commented


def _compiles(rule: str) -> bool:
    import yara

    try:
        yara.compile(source=rule)
    except yara.Error:
        return False
    return True


def test_an_attributes_comment_comes_back() -> None:
    """A MISP attribute's comment is the indicator's description on the way in; misp-stix's parsers do not write
    it back, so every attribute lost its context on a round trip (and no loss said so)."""
    example = Path(__file__).parents[2] / "examples" / "formats" / "misp-event.json"
    source = json.loads(example.read_text(encoding="utf-8"))["Event"]
    commented = {a["uuid"]: a["comment"] for a in source["Attribute"] if a.get("comment")}
    assert commented
    back = write_misp_event(read_misp(example).objects)["Event"]
    records = {a["uuid"]: a for a in back.get("Attribute") or ()}
    records.update({o["uuid"]: o for o in back.get("Object") or ()})
    assert {ref: records[ref].get("comment") for ref in commented if ref in records} == {
        ref: text for ref, text in commented.items() if ref in records}
    assert all(ref in records for ref in commented)


def test_the_events_title_comes_back_as_it_was() -> None:
    """misp-stix put the export's title before the report's name: "Kizuna export Phishing wave …"."""
    example = Path(__file__).parents[2] / "examples" / "formats" / "misp-event.json"
    source = json.loads(example.read_text(encoding="utf-8"))["Event"]
    objects = read_misp(example).objects
    assert write_misp_event(objects)["Event"]["info"] == source["info"]
    assert write_misp_event(objects, info="Shared onward")["Event"]["info"] == "Shared onward"
    loose = [o for o in objects if o["type"] not in ("report", "grouping")]
    assert write_misp_event(loose)["Event"]["info"] == "Kizuna export"  # not misp-stix's bundle id sentence


def test_a_tag_the_converter_also_writes_stays_when_the_event_had_it() -> None:
    """misp-stix labels every report it makes of an event "Threat-Report"; the export leaves that label out of the
    event's tags, unless the event carried the tag itself."""
    source = json.loads((Path(__file__).parents[2] / "examples" / "formats" / "misp-event.json").read_text())
    event = source.get("Event", source)
    event["Tag"] = [*event.get("Tag", []), {"name": "Threat-Report"}]
    imported = read_misp(json.dumps({"Event": event}).encode())
    names = [tag["name"] for tag in write_misp_event(imported.objects, org=ORG)["Event"]["Tag"]]
    assert names.count("Threat-Report") == 1
    assert 'misp:tool="MISP-STIX-Converter"' not in names
