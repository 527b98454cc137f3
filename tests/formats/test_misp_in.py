"""MISP import: real CIRCL events through misp-stix into STIX that a real node stores, markings, losses."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kizuna.core.node import Node
from kizuna.formats.base import FormatError
from kizuna.formats.misp_in import read_misp
from kizuna.formats.misp_out import write_misp_event
from kizuna.policy.releasability import RELEASABILITY_EXTENSION_ID
from kizuna.policy.tlp import TLP2_IDS, TlpLevel, tlp1_marking_definitions
from kizuna.stix.vocab import NOT_FOR_DETECTION_PROPERTY

FIXTURES = Path(__file__).parents[1] / "fixtures" / "misp"
EVENTS = sorted(FIXTURES.glob("*.json"))
SHARING_GROUP = json.loads((FIXTURES / "sharing-groups" / "sharing_groups.json").read_text())[0]


def _event(name: str = "existing_event.json") -> dict[str, Any]:
    document = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return dict(document.get("Event", document))


def _bytes(event: dict[str, Any]) -> bytes:
    return json.dumps({"Event": event}, indent=2).encode()


def _attribute_objects(objects: list[dict[str, Any]], attribute_uuid: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["id"].endswith(attribute_uuid)]


# One YARA attribute of the real CIRCL events does not compile (long_event.json: a meta field named "SHA‐256",
# with a Unicode hyphen); ingest validates YARA with yara-python, so it is refused with the reason. The other
# (image_event.json) compiles since the import takes off the brackets misp-stix writes around a rule.
BROKEN_YARA = {"indicator--57162852-bbe8-4aa9-a420-4f3a950d210f"}


def _only_broken_yara_refused(failures: list[dict[str, Any]], expected: set[str]) -> None:
    assert {f["id"] for f in failures} == expected
    assert all("YARA rule does not compile" in f["message"] for f in failures)


def _rel_to(objects: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    definitions = {o["id"]: o for o in objects if o["type"] == "marking-definition"}
    for marking in ref and [ref] or ():
        return definitions[marking]["extensions"][RELEASABILITY_EXTENSION_ID]
    raise AssertionError("no REL TO marking")


def test_real_events_become_stix_that_a_node_stores(store_url: str, tmp_path: Path) -> None:
    report = read_misp(FIXTURES)
    assert report.rejected == []
    containers = {o["id"].partition("--")[2] for o in report.objects if o["type"] in ("report", "grouping")}
    assert {str(_event(p.name)["uuid"]) for p in EVENTS} <= containers
    node = Node.init(tmp_path / "node", store_url=store_url, org_name="CIRCL", country="LUX")
    try:
        collection = node.create_collection("MISP events", alias="misp")
        stored = node.import_objects(collection, report.objects)
        _only_broken_yara_refused(stored.failures, BROKEN_YARA)
        assert stored.success_count == stored.total - len(BROKEN_YARA) == len(report.objects) - len(BROKEN_YARA)
    finally:
        node.close()


def test_tlp_tags_become_the_oasis_tlp_2_markings() -> None:
    report = read_misp(FIXTURES / "existing_event.json")
    tlp1_ids = {m["id"] for m in tlp1_marking_definitions()}
    clear = TLP2_IDS[TlpLevel.CLEAR]
    assert not tlp1_ids & {r for o in report.objects for r in o.get("object_marking_refs", [])}
    assert clear in {o["id"] for o in report.objects if o["type"] == "marking-definition"}
    for obj in report.objects:
        # The MISP event extension's definition is the same public object for every event (docs/formats.md).
        if obj["type"] not in ("identity", "marking-definition", "extension-definition"):
            assert clear in obj["object_marking_refs"], obj["id"]

    event = _event()
    event["Tag"] = [t for t in event["Tag"] if not t["name"].startswith("tlp:")] + [{"name": "tlp:amber+strict"}]
    attribute = event["Attribute"][0]
    attribute["Tag"] = [*attribute.get("Tag", []), {"name": "tlp:red"}]
    strict = read_misp(_bytes(event), "amber-strict.json")
    indicator_or_data = _attribute_objects(strict.objects, attribute["uuid"])
    assert indicator_or_data
    for obj in indicator_or_data:
        assert {TLP2_IDS[TlpLevel.AMBER_STRICT], TLP2_IDS[TlpLevel.RED]} <= set(obj["object_marking_refs"])
    other = _attribute_objects(strict.objects, event["Attribute"][1]["uuid"])[0]
    assert TLP2_IDS[TlpLevel.RED] not in other["object_marking_refs"]


@pytest.mark.parametrize("tag", ["tlp:ex:chr", "tlp:unclear", "TLP:purple"])
def test_a_tlp_tag_of_no_tlp_2_level_fails_closed_as_red_and_is_reported(tag: str) -> None:
    """A restriction Kizuna cannot read must not become none: unmarked objects are shared as the node's
    unmarked level (TLP:CLEAR by default), so tlp:ex:chr had let the whole event out."""
    event = _event()
    event["Tag"] = [t for t in event["Tag"] if not t["name"].lower().startswith("tlp:")] + [{"name": tag}]
    report = read_misp(_bytes(event), "chr.json")
    marked = [o for o in report.objects if o["type"] not in ("identity", "marking-definition", "extension-definition")]
    assert marked and all(TLP2_IDS[TlpLevel.RED] in o["object_marking_refs"] for o in marked)
    assert [(loss.field, loss.value) for loss in report.losses if loss.field == "Tag"] == [("Tag", tag)]
    assert "TLP:RED" in next(loss.reason for loss in report.losses if loss.field == "Tag")


def test_distribution_levels_become_rel_to_markings_or_reported_losses() -> None:
    event = _event()
    owner = event["Org"]["uuid"]
    event["distribution"] = "0"
    only_us = read_misp(_bytes(event), "org-only.json")
    report_object = next(o for o in only_us.objects if o["type"] in ("report", "grouping"))
    rel_to = [r for r in report_object["object_marking_refs"] if r not in TLP2_IDS.values()]
    assert _rel_to(only_us.objects, rel_to[0])["rel_to_identities"] == [f"identity--{owner}"]

    event["distribution"] = "4"
    event["SharingGroup"] = {**SHARING_GROUP["SharingGroup"], "Organisation": SHARING_GROUP["Organisation"],
                             "SharingGroupOrg": SHARING_GROUP["SharingGroupOrg"]}
    grouped = read_misp(_bytes(event), "group.json")
    report_object = next(o for o in grouped.objects if o["type"] in ("report", "grouping"))
    rel_to = [r for r in report_object["object_marking_refs"] if r not in TLP2_IDS.values()]
    members = {f"identity--{e['Organisation']['uuid']}" for e in SHARING_GROUP["SharingGroupOrg"]}
    assert set(_rel_to(grouped.objects, rel_to[0])["rel_to_identities"]) == members

    del event["SharingGroup"]
    unknown_group = read_misp(_bytes(event), "group-missing.json")
    assert any(loss.field == "sharing_group_id" and loss.ref == event["uuid"] for loss in unknown_group.losses)

    event["distribution"] = "3"
    attribute = event["Attribute"][0]
    attribute["distribution"] = "1"
    community = read_misp(_bytes(event), "community.json")
    assert any(loss.ref == attribute["uuid"] and loss.field == "distribution" for loss in community.losses)


def test_a_partner_outside_the_sharing_group_sees_nothing_of_the_event(tmp_path: Path) -> None:
    node = Node.init(tmp_path / "node", org_name="CIRCL", country="LUX")
    try:
        collection = node.create_collection("MISP events")
        node.create_organisation("JPCERT/CC", "JPN")
        _, secret = node.create_token("JPCERT/CC", read=[collection.id])
        partner = node.authenticate(secret)
        assert partner is not None
        open_event, closed_event = _event("long_event.json"), _event()
        closed_event["distribution"] = "4"
        closed_event["SharingGroup"] = {**SHARING_GROUP["SharingGroup"], "Organisation": SHARING_GROUP["Organisation"],
                                        "SharingGroupOrg": SHARING_GROUP["SharingGroupOrg"]}
        for event in (open_event, closed_event):
            objects = read_misp(_bytes(event), "e.json").objects
            stored = node.import_objects(collection, objects)
            _only_broken_yara_refused(stored.failures, BROKEN_YARA & {o["id"] for o in objects})
        seen = {json.loads(body)["id"] for body in node.export_objects(collection, partner)}
        assert f"indicator--{open_event['Attribute'][1]['uuid']}" in seen
        closed_uuids = {a["uuid"] for a in closed_event["Attribute"]} | {o["uuid"] for o in closed_event["Object"]}
        assert not {i for i in seen if i.partition("--")[2] in closed_uuids | {closed_event["uuid"]}}
    finally:
        node.close()


@pytest.mark.parametrize("shape", ["rest", "response", "bare", "list"])
def test_every_document_shape_is_read(shape: str) -> None:
    event = _event("57c4445b-c548-4654-af0b-4be3950d210f.json")
    document: Any = {"rest": {"Event": event}, "response": {"response": [{"Event": event}]},
                     "bare": event, "list": [{"Event": event}]}[shape]
    report = read_misp(json.dumps(document).encode(), f"{shape}.json")
    assert f"report--{event['uuid']}" in {o["id"] for o in report.objects}


def test_a_misp_search_result_from_misp_stix_tests_is_read() -> None:
    report = read_misp(FIXTURES / "misp-stix" / "test_events_collection_1.json")
    assert sum(o["type"] == "grouping" for o in report.objects) == 2


def test_a_directory_rejects_the_bad_file_and_converts_the_rest(tmp_path: Path) -> None:
    for name in ("57c4445b-c548-4654-af0b-4be3950d210f.json", "sighting_1.json"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    (tmp_path / "broken.json").write_text('{"Event": {\n  "uuid": "x",\n  "info": ', encoding="utf-8")
    (tmp_path / "manifest.json").write_text("{}", encoding="utf-8")
    report = read_misp(tmp_path)
    assert [r.where for r in report.rejected] == [f"{tmp_path / 'broken.json'}:3"]
    assert {o["id"] for o in report.objects if o["type"] == "report"} == {
        f"report--{_event(n)['uuid']}" for n in ("57c4445b-c548-4654-af0b-4be3950d210f.json", "sighting_1.json")}


@pytest.mark.parametrize("where, key, value", [
    ("event", "date", "2026-13-45"), ("event", "timestamp", "99999999999999"),
    ("event", "publish_timestamp", "soon"), ("attribute", "timestamp", "-99999999999999"),
    ("event", "threat_level_id", "7"), ("event", "analysis", "3"), ("event", "threat_level_id", "high"),
])
def test_a_date_or_timestamp_misp_stix_cannot_read_is_refused_not_lost(where: str, key: str, value: str) -> None:
    """misp-stix drops an event whose date it cannot read, with no error of its own: every attribute was
    "lost" and the import succeeded with nothing stored. So it did for a threat level outside MISP's 1-4 or an
    analysis outside 0-2, keeping only the marking definitions."""
    event = _event()
    record = event if where == "event" else event["Attribute"][0]
    record[key] = value
    with pytest.raises(FormatError) as caught:
        read_misp(_bytes(event), "dated.json")
    assert f"{key} {value!r}" in caught.value.message and str(record["uuid"]) in caught.value.message
    assert caught.value.where is not None and caught.value.where.startswith("dated.json:")


def _line_of(text: bytes, record_uuid: str) -> int:
    return text[: text.index(record_uuid.encode())].count(b"\n") + 1


def test_an_unknown_type_rejects_its_attribute_and_a_malformed_one_the_document() -> None:
    event = _event()
    # A type MISP does not define is no malformed document: that attribute alone is rejected, by file and line.
    bad = event["Attribute"][3]
    bad["type"] = "no-such-type"
    in_object = event["Object"][0]["Attribute"][0]
    in_object["type"] = "no-such-type-either"
    text = _bytes(event)
    report = read_misp(text, "sednit.json")
    lines = {f"sednit.json:{_line_of(text, a['uuid'])}": a for a in (bad, in_object)}
    assert {r.where for r in report.rejected} == set(lines)
    for rejected in report.rejected:
        assert lines[rejected.where]["uuid"] in rejected.reason and "unknown MISP type" in rejected.reason
    made = {o["id"].partition("--")[2] for o in report.objects}
    assert bad["uuid"] not in made and in_object["uuid"] not in made
    assert {a["uuid"] for a in event["Attribute"] if a is not bad} <= made | {loss.ref for loss in report.losses}

    del event["Attribute"][3]
    event["uuid"] = "not-a-uuid"
    with pytest.raises(FormatError, match="no valid uuid"):
        read_misp(_bytes(event), "bad-uuid.json")
    with pytest.raises(FormatError) as caught:
        read_misp(b'{"Event": {"uuid": "5a3c2fcd-8328-42bb-a95e-4f4402de0b81",\n "Attribute": [}}', "cut.json")
    assert caught.value.where == "cut.json:2"


def yara_uuid(event: dict[str, Any]) -> str:
    return str(next(a for a in event["Attribute"] if a["type"] == "yara")["uuid"])


def test_the_loss_report_names_each_lost_field_by_attribute_uuid() -> None:
    event = _event("long_event.json")
    report = read_misp(FIXTURES / "long_event.json")
    lost = {(loss.ref, loss.field) for loss in report.losses}
    # misp-stix writes a rule attribute as an indicator whatever its to_ids says; with to_ids off (both rules
    # here) the indicator is flagged as not for detection, so to_ids is carried, not lost, and comes back.
    for kind in ("yara", "snort"):
        rule = next(a for a in event["Attribute"] if a["type"] == kind)
        assert rule["to_ids"] is False
        assert (rule["uuid"], "to_ids") not in lost and (rule["uuid"], "value") not in lost
        (indicator,) = [o for o in report.objects if o["id"] == f"indicator--{rule['uuid']}"]
        assert indicator[NOT_FOR_DETECTION_PROPERTY] is True
    exported = write_misp_event([o for o in report.objects if o["id"] != f"indicator--{yara_uuid(event)}"])["Event"]
    assert [a["to_ids"] for a in exported["Attribute"] if a["type"] == "snort"] == [False]
    assert any(a["to_ids"] for a in exported["Attribute"])  # only the flagged indicator's attribute is turned off

    objects = _event("to_delete2.json")
    ip_port = next(o for o in objects["Object"] if o["name"] == "ip-port")
    ip = next(a for a in ip_port["Attribute"] if a["object_relation"] == "ip")
    report = read_misp(FIXTURES / "to_delete2.json")
    assert (ip["uuid"], "object_relation") in {(loss.ref, loss.field) for loss in report.losses}

    event = _event()
    kept = event["Attribute"][1]
    assert not [loss for loss in read_misp(FIXTURES / "existing_event.json").losses if loss.ref == kept["uuid"]]
    event["Attribute"].append({**kept, "uuid": str(uuid.uuid4()), "type": "btc", "value": "1GCaWA685Nj2PqqG7P2Z",
                               "to_ids": False})
    custom = read_misp(_bytes(event), "btc.json")
    assert (event["Attribute"][-1]["uuid"], "to_ids") in {(loss.ref, loss.field) for loss in custom.losses}


@pytest.mark.parametrize("name", ["existing_event.json", "very_long_event.json", "image_event.json"])
def test_galaxies_object_references_and_attachments_are_kept(name: str) -> None:
    event = _event(name)
    report = read_misp(FIXTURES / name)
    objects = report.objects
    ends = {(o["source_ref"].partition("--")[2], o["relationship_type"], o["target_ref"].partition("--")[2])
            for o in objects if o["type"] == "relationship"}
    references = [(o["uuid"], r["relationship_type"], r["referenced_uuid"])
                  for o in event.get("Object", []) for r in o.get("ObjectReference", [])]
    assert [r for r in references if r not in ends] == []
    payloads = {o.get("payload_bin") for o in objects if o["type"] == "artifact"}
    attachments = [a["data"] for a in event["Attribute"] if a.get("data")]
    assert all(data in payloads for data in attachments)
    labels = {label for o in objects for label in o.get("labels", [])}
    ids = {o["id"].partition("--")[2] for o in objects if o["type"] not in ("relationship", "marking-definition")}
    clusters = [(f'misp-galaxy:{g["type"]}="{c["value"]}"', c["uuid"]) for g in event.get("Galaxy", [])
                for c in g["GalaxyCluster"]]
    assert [c for c in clusters if c[0] not in labels and c[1] not in ids] == []  # a cluster is an SDO or a label
    assert not [loss for loss in report.losses if loss.field in ("galaxy", "data", "object_reference")]


def test_object_references_misp_stix_drops_are_reported() -> None:
    event = _event("mainly_objects_1.json")
    report = read_misp(FIXTURES / "mainly_objects_1.json")
    pe = next(o for o in event["Object"] if o["name"] == "pe" and o.get("ObjectReference"))
    reported = {(loss.ref, loss.value) for loss in report.losses if loss.field == "object_reference"}
    for reference in pe["ObjectReference"]:
        assert (pe["uuid"], f'{reference["relationship_type"]} {reference["referenced_uuid"]}') in reported


def test_indicators_built_during_conversion_are_checked_by_the_nodes_pattern_check() -> None:
    """misp-stix's stix2 indicators ask the node's pattern check (one parse, not two), which still refuses."""
    import stix2
    from stix2.exceptions import InvalidValueError

    import kizuna.formats.misp_in  # noqa: F401  (installs the check)

    kept = stix2.Indicator(pattern="[ipv4-addr:value = '198.51.100.7']", pattern_type="stix",
                           valid_from="2025-01-01T00:00:00Z")
    assert kept.pattern == "[ipv4-addr:value = '198.51.100.7']"
    with pytest.raises(InvalidValueError):
        stix2.Indicator(pattern="[ipv4-addr:value = ]", pattern_type="stix", valid_from="2025-01-01T00:00:00Z")


def test_a_byte_order_mark_is_read_past_and_bytes_that_are_not_utf8_are_named_by_line() -> None:
    text = _bytes(_event())
    with_bom = read_misp(b"\xef\xbb\xbf" + text, "bom.json")
    assert {o["id"] for o in with_bom.objects} == {o["id"] for o in read_misp(text, "plain.json").objects}
    lines = text.split(b"\n")
    at = next(n for n, line in enumerate(lines) if b'"info"' in line)
    lines[at] = lines[at].replace(b'": "', b'": "\xe9', 1)  # a Latin-1 e-acute in the event's title
    with pytest.raises(FormatError) as caught:
        read_misp(b"\n".join(lines), "latin1.json")
    assert (caught.value.message, caught.value.where) == ("not UTF-8 text", f"latin1.json:{at + 1}")


def test_an_undated_event_is_dated_by_its_file_or_the_time_given(tmp_path: Path) -> None:
    """misp-stix dates an event without a timestamp now; the node dates it by its file (or by ``undated``),
    so reading the same file again gives the same objects, not new versions of each."""
    event = _event()
    del event["timestamp"]
    for attribute in event["Attribute"]:
        attribute.pop("timestamp", None)
    path = tmp_path / "undated.json"
    path.write_bytes(_bytes(event))
    os.utime(path, (1_700_000_000, 1_700_000_000))
    dates = {o["modified"] for o in read_misp(path).objects if o["type"] in ("report", "grouping")}
    assert dates == {"2023-11-14T22:13:20.000Z"}
    given = read_misp(_bytes(event), "undated.json", undated=1_600_000_000_123_456).objects
    assert {o["modified"] for o in given if o["type"] in ("report", "grouping")} == {"2020-09-13T12:26:40.000Z"}


def _children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


def test_the_events_of_one_document_converted_by_workers_are_what_one_process_makes() -> None:
    """A MISP search result holds many events; forked workers convert them and the report is the same, in the
    same order (what misp-stix makes of an event does not depend on the process that converts it)."""
    names = ("galaxy_1.json", "mainly_objects_1.json", "mainly_objects_2.json", "existing_event.json",
             "image_event.json", "sighting_1.json")
    document = json.dumps({"response": [{"Event": _event(name)} for name in names]}).encode()
    before = _children_cpu()
    alone = read_misp(document, "search.json", undated=1_700_000_000_000_000)
    assert _children_cpu() == before  # no process was forked
    forked = read_misp(document, "search.json", undated=1_700_000_000_000_000, workers=2)
    assert _children_cpu() > before  # the workers converted, and were reaped
    assert forked.objects == alone.objects and len(forked.objects) > 300
    assert forked.losses == alone.losses and forked.warnings == alone.warnings
    assert forked.rejected == alone.rejected


def test_a_format_error_keeps_where_it_was_found_across_processes() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(FormatError("misp-stix cannot convert event", "search.json:12")))
    assert (error.message, error.where) == ("misp-stix cannot convert event", "search.json:12")


def test_organisations_that_reported_sightings_are_dated_by_the_event_not_the_clock() -> None:
    """misp-stix's identity for a sighting's organisation had no date, so stix2 gave it the time of conversion:
    each import of the same event stored a new version of it."""
    event = _event("sighting_1.json")
    reporters = {f"identity--{s['Organisation']['uuid']}" for a in event["Attribute"] for s in a.get("Sighting", [])}
    identities = [o for o in read_misp(_bytes(event), "s.json").objects if o["id"] in reporters]
    assert identities and all(o["created"] == o["modified"] for o in identities)
    stamp = datetime.fromtimestamp(int(event["timestamp"]), UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert {o["modified"] for o in identities} == {stamp}


def test_a_value_misp_stix_refuses_is_rejected_input_named_by_line() -> None:
    """An attribute misp-stix refuses (and makes nothing of) is input a converter rejected (docs/formats.md: the
    import then exits 1), named by file and line with misp-stix's reason once: not a loss, not also a warning."""
    event = {"Event": {"uuid": "5d0092c5-5f74-4287-9642-33f4c354e56d", "info": "bad address", "date": "2026-01-01",
                       "timestamp": "1767225600", "threat_level_id": "1", "analysis": "0", "distribution": "0",
                       "Orgc": {"name": "X", "uuid": "5d0092c5-5f74-4287-9642-33f4c354e56e"}, "Attribute": [
                           {"uuid": "5d0092c5-5f74-4287-9642-33f4c354e56f", "type": "ip-dst",
                            "category": "Network activity", "value": "not-an-ip", "to_ids": True,
                            "timestamp": "1767225600"}]}}
    text = json.dumps(event, indent=1).encode()
    report = read_misp(text, "bad.json")
    line = text[: text.index(b"5d0092c5-5f74-4287-9642-33f4c354e56f")].count(b"\n") + 1
    [rejected] = report.rejected
    assert rejected.where == f"bad.json:{line}" and rejected.text == "not-an-ip"
    assert "ip-dst" in rejected.reason and "not-an-ip" in rejected.reason
    assert not [w for w in report.warnings if "not-an-ip" in w], report.warnings
    assert not [loss for loss in report.losses if loss.field == "attribute"], report.losses


def test_a_bad_attribute_distribution_and_a_bad_item_of_a_search_result_are_named() -> None:
    """formats.md: an error's place is the attribute's line and uuid, or the item of the list that is no event."""
    event = _event()
    bad = event["Attribute"][2]
    bad["distribution"] = -1
    text = _bytes(event)
    with pytest.raises(FormatError) as caught:
        read_misp(text, "dist.json")
    line = text[: text.index(bad["uuid"].encode())].count(b"\n") + 1
    assert caught.value.where == f"dist.json:{line}"
    assert bad["uuid"] in caught.value.message and "distribution -1" in caught.value.message
    with pytest.raises(FormatError) as caught:
        read_misp(json.dumps({"response": [{"Event": _event()}, {"Event": "x"}]}).encode(), "search.json")
    assert caught.value.message.startswith("response[1] is not a MISP event document")


def test_a_sighting_organisation_without_uuid_gets_a_stable_one_and_one_without_name_is_reported() -> None:
    """misp-stix names a sighting's organisation by its uuid and name: a sighting whose organisation had no uuid
    (``{"name": "Sighter"}``) made it raise a bare KeyError, and the whole event was lost. The organisation is
    known by its name, so it gets a uuid derived from it; one with no name cannot become an identity, and is left
    off the sighting, reported as lost."""
    event = _event("sighting_1.json")
    sightings = [s for a in event["Attribute"] for s in a.get("Sighting", [])]
    seen = next(s for s in sightings if s["type"] == "0")
    false_positive, *_, nameless = [s for s in sightings if s["type"] == "1"]
    seen["Organisation"] = {"name": "Sighter"}
    false_positive["Organisation"] = {"name": "Sighter"}
    nameless["Organisation"] = {"id": "7"}
    first, again = (read_misp(_bytes(event), "s.json") for _ in range(2))
    by_id = {o["id"]: o for o in first.objects}
    [sighter] = [o for o in first.objects if o["type"] == "identity" and o["name"] == "Sighter"]
    assert by_id[f"sighting--{seen['uuid']}"]["where_sighted_refs"] == [sighter["id"]]
    assert by_id[f"opinion--{false_positive['uuid']}"]["x_misp_author_ref"] == sighter["id"]
    assert f"opinion--{nameless['uuid']}" in by_id and "authors" not in by_id[f"opinion--{nameless['uuid']}"]
    assert sighter["id"] in {o["id"] for o in again.objects}  # the same organisation on every import
    [lost] = [loss for loss in first.losses if loss.field == "sighting organisation"]
    assert lost.value == nameless["uuid"] and "no name" in lost.reason
