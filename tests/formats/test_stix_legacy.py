"""STIX 2.0 and STIX 1.x in: real public samples upgraded, then imported into a real node (SQLite and
PostgreSQL) with zero failures; every change reported; broken input refused whole with its line."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from kizuna.core.node import Node
from kizuna.formats.base import FormatError
from kizuna.formats.stix_legacy import read_stix1x, read_stix20, sniff

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"
STIX20_FILES = sorted((FIXTURES / "stix20").rglob("*.json"))
STIX1_FILES = sorted((FIXTURES / "stix1").glob("*.xml"))
OASIS_21 = Path(__file__).resolve().parents[1] / "fixtures" / "sighting-of-an-indicator.json"
TLP_AMBER_1 = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"


@pytest.fixture
def node(home_node: Node) -> Node:
    return home_node


def _import(node: Node, objects: list[dict[str, Any]]) -> dict[str, Any]:
    collection = node.create_collection(f"legacy {uuid.uuid4()}")
    return node.import_objects(collection, objects).to_taxii()


def _ids(path: Path) -> set[str]:
    data = json.loads(path.read_text())
    objects = data.get("objects", [data]) if data.get("type") == "bundle" else [data]
    return {o["id"] for o in objects}


def test_sniff_tells_stix20_and_stix1_from_stix21() -> None:
    assert STIX20_FILES and STIX1_FILES
    assert {sniff(p.read_bytes()[:4096]) for p in STIX20_FILES} == {"stix20"}
    assert {sniff(p.read_bytes()[:4096]) for p in STIX1_FILES} == {"stix1"}
    assert sniff(OASIS_21.read_bytes()[:4096]) is None
    assert sniff(b'\xef\xbb\xbf  {"type": "bundle", "spec_version": "2.0", "objects": []}') == "stix20"
    assert sniff(b'{"type": "ipv4-addr", "value": "10.0.0.1"}') is None  # no SDO: nothing says 2.0
    assert sniff(b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>') is None
    assert sniff(b"not json at all") is None


def test_the_python_stix2_v20_test_data_upgrades_and_imports_with_zero_failures(node: Node) -> None:
    objects: list[dict[str, Any]] = []
    warnings: list[str] = []
    for path in STIX20_FILES:
        report = read_stix20(path)
        assert report.rejected == [] and report.format == "stix20", path
        assert {o["id"] for o in report.objects} == _ids(path), path  # every id kept
        objects += report.objects
        warnings += report.warnings
    assert all(o["spec_version"] == "2.1" for o in objects)
    malware = [o for o in objects if o["type"] == "malware"]
    tools = [o for o in objects if o["type"] == "tool"]
    assert malware and all("labels" not in o and o["malware_types"] and o["is_family"] is True for o in malware)
    assert tools and all("labels" not in o and o["tool_types"] for o in tools)
    assert any("malware: labels moved to malware_types" in w for w in warnings)
    assert any("malware: is_family true added" in w for w in warnings)

    status = _import(node, objects)
    assert status["failure_count"] == 0, status.get("failures")
    assert status["success_count"] == len(objects) == len(STIX20_FILES)


def test_every_stix20_change_is_reported_and_the_result_imports(node: Node, tmp_path: Path) -> None:
    bad_uuid = "indicator--d81f86b9-975b-bc0b-775e-810c5ad45a4f"  # UUID version 'b': not RFC 4122 1-5
    stamp = "2017-01-01T00:00:00.000Z"
    bundle = {
        "type": "bundle", "id": "bundle--44af6c39-c09b-49c5-9de2-394224b04982", "spec_version": "2.0",
        "objects": [
            {"type": "marking-definition", "id": TLP_AMBER_1, "created": "2017-01-20T00:00:00.000Z",
             "definition_type": "tlp", "definition": {"tlp": "amber"}},
            {"type": "indicator", "id": bad_uuid, "created": stamp, "modified": stamp, "valid_from": stamp,
             "labels": ["malicious-activity"], "pattern": "[url:value = 'http://x4z9arb.cn/4712']",
             "object_marking_refs": [TLP_AMBER_1]},
            {"type": "malware", "id": "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b", "created": stamp,
             "modified": stamp, "name": "Poison Ivy", "labels": ["remote-access-trojan"]},
            {"type": "relationship", "id": "relationship--44298a74-ba52-4f0c-87a3-1824e67d7fad", "created": stamp,
             "modified": stamp, "relationship_type": "indicates", "source_ref": bad_uuid,
             "target_ref": "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b"},
            {"type": "course-of-action", "id": "course-of-action--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
             "created": stamp, "modified": stamp, "name": "Block the URL", "action": {"x": 1}},
        ],
    }
    path = tmp_path / "stix20.json"
    path.write_text(json.dumps(bundle, indent=2))
    report = read_stix20(path)
    by_type = {o["type"]: o for o in report.objects}
    indicator = by_type["indicator"]
    assert indicator["pattern_type"] == "stix" and indicator["indicator_types"] == ["malicious-activity"]
    assert "labels" not in indicator and indicator["object_marking_refs"] == [TLP_AMBER_1]  # TLP left to the node
    new_id = indicator["id"]
    assert new_id != bad_uuid and new_id == read_stix20(path).objects[1]["id"]  # replaced, the same every time
    assert by_type["relationship"]["source_ref"] == new_id  # the reference follows
    assert any(bad_uuid in w and new_id in w for w in report.warnings)
    assert any("indicator: pattern_type 'stix' added" in w for w in report.warnings)
    assert [(loss.ref, loss.field) for loss in report.losses] == [
        ("course-of-action--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f", "action")]
    assert "action" not in by_type["course-of-action"]

    status = _import(node, report.objects)
    assert status["failure_count"] == 0, status.get("failures")
    assert status["success_count"] == len(bundle["objects"])


def test_a_stix20_object_the_node_would_refuse_is_rejected_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"type": "bundle", "id": "bundle--44af6c39-c09b-49c5-9de2-394224b04982",
                                "spec_version": "2.0", "objects": [
                                    {"type": "indicator", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
                                     "created": "2017-01-01T00:00:00Z", "modified": "2017-01-01T00:00:00Z",
                                     "valid_from": "2017-01-01T00:00:00Z", "labels": ["x"],
                                     "pattern": "[ipv4-adr:value = '1.2.3.4']"}]}, indent=2))
    report = read_stix20(path)
    assert report.objects == []
    [rejected] = report.rejected
    line = 1 + next(n for n, text in enumerate(path.read_text().splitlines()) if "indicator--8e2e2d2b" in text)
    assert rejected.where == f"{path}:{line}" and line > 1 and "unknown object type 'ipv4-adr'" in rejected.reason


def test_broken_stix20_json_is_a_format_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_text('{"type": "bundle",\n "spec_version": "2.0",\n "objects": [\n  {"type": "malware",')
    with pytest.raises(FormatError) as caught:
        read_stix20(path)
    assert caught.value.where == f"{path}:4"


def test_stix1_samples_elevate_with_their_warnings_and_import_with_zero_failures(
    node: Node, capfd: pytest.CaptureFixture[str]
) -> None:
    objects: list[dict[str, Any]] = []
    for path in STIX1_FILES:
        report = read_stix1x(path)
        assert report.format == "stix1" and report.objects, path
        assert any(w.startswith("stix2-elevator [") for w in report.warnings), path  # the elevator's own words
        # One collection per sample: two OASIS idioms publish different content under one indicator id.
        status = _import(node, report.objects)
        assert status["failure_count"] == 0, (path, status.get("failures"))
        assert status["success_count"] == len(report.objects)
        objects += report.objects
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # the elevator's banner and console log go to the report, not the terminal
    types = {o["type"] for o in objects}
    assert {"indicator", "campaign", "threat-actor", "malware", "relationship"} <= types
    assert {o["pattern_type"] for o in objects if o["type"] == "indicator"} >= {"stix", "yara"}


def test_stix1_dangling_reference_and_bad_ids_are_reported_not_imported() -> None:
    dangling = read_stix1x(FIXTURES / "stix1" / "indicator-for-c2-ip-address.xml")
    assert [r.reason for r in dangling.rejected] == ["relationship: required property 'target_ref' is missing"]
    assert any("Dangling target reference" in w for w in dangling.warnings)
    renamed = read_stix1x(FIXTURES / "stix1" / "malware-indicator-for-file-hash.xml")
    indicator = next(o for o in renamed.objects if o["type"] == "indicator")
    relationship = next(o for o in renamed.objects if o["type"] == "relationship")
    assert relationship["source_ref"] == indicator["id"] != "indicator--a932fcc6-e032-176c-126f-cb970a5a1ade"
    assert any("indicator--a932fcc6-e032-176c-126f-cb970a5a1ade is not a valid STIX 2.1 id" in w
               for w in renamed.warnings)


def test_malformed_xml_is_a_format_error_with_file_and_line(tmp_path: Path) -> None:
    text = (FIXTURES / "stix1" / "yara-test-mechanism.xml").read_text().splitlines()
    text[30] = text[30] + "<broken"
    path = tmp_path / "broken.xml"
    path.write_text("\n".join(text))
    with pytest.raises(FormatError) as caught:
        read_stix1x(path)
    assert caught.value.where == f"{path}:32" and caught.value.message.startswith("not well-formed XML")


def test_xml_that_is_not_stix1_or_holds_nothing_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "feed.xml"
    other.write_text('<?xml version="1.0"?>\n<rss version="2.0"><channel/></rss>\n')
    with pytest.raises(FormatError, match="not a STIX 1.x package"):
        read_stix1x(other)
    header_only = tmp_path / "empty.xml"
    header_only.write_text('<stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1" id="example:p-1" '
                           'version="1.2"><stix:STIX_Header><stix:Title>t</stix:Title></stix:STIX_Header>'
                           "</stix:STIX_Package>\n")
    with pytest.raises(FormatError, match="holds nothing STIX 2.1 can express|stix2-elevator cannot convert"):
        read_stix1x(header_only)


def test_xml_entities_are_never_expanded(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    entity = tmp_path / "entity.xml"
    entity.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY s SYSTEM "file://{secret}">]>\n'
        '<stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1" xmlns:campaign="http://stix.mitre.org/Campaign-1"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:example="http://example.com"'
        ' id="example:Package-7b1a6f7e-3b8e-4d5e-9c61-0c2b0d8e4a11" version="1.2" timestamp="2014-05-08T09:00:00Z">'
        '<stix:Campaigns><stix:Campaign id="example:campaign-5b1a6f7e-3b8e-4d5e-9c61-0c2b0d8e4a12"'
        ' timestamp="2014-05-08T09:00:00Z" xsi:type="campaign:CampaignType">'
        "<campaign:Title>Title &s;</campaign:Title></stix:Campaign></stix:Campaigns></stix:STIX_Package>\n")
    report = read_stix1x(entity)
    assert [o["type"] for o in report.objects] == ["campaign"]
    assert "TOP-SECRET-VALUE" not in json.dumps(report.summary()) + json.dumps(report.objects)
