"""MISP export: STIX -> a MISP event with tlp: tags, and a feed directory a MISP instance subscribes to.

What a MISP instance would see is simulated by PyMISP's own loader (MISPEvent.load / load_file), and the
feed's manifest.json and hashes.csv are checked against what PyMISP computes from the same event files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pymisp import MISPEvent

from kizuna.formats.base import ConversionReport, FormatError
from kizuna.formats.misp_feed import HASHES, MANIFEST, write_misp_feed
from kizuna.formats.misp_in import read_misp
from kizuna.formats.misp_out import write_misp_event, write_misp_events
from kizuna.policy.releasability import build_rel_to_marking
from kizuna.policy.tlp import TLP2_IDS, TlpLevel, tlp2_marking_definition

FIXTURES = Path(__file__).parents[1] / "fixtures" / "misp"
ORG = {"name": "NCSC UK", "uuid": "b4a6e2a4-6a0c-4c1e-9f57-2f0e2f1c6d11"}
IDENTITY = {"type": "identity", "spec_version": "2.1", "id": f"identity--{ORG['uuid']}",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "name": ORG["name"], "identity_class": "organization"}


def _indicator(number: int, value: str, level: TlpLevel, *extra_markings: str) -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--6f1c2b9e-4a7d-4c3e-9b2a-00000000000{number}",
            "created": "2026-01-02T00:00:00.000Z", "modified": "2026-01-02T00:00:00.000Z",
            "created_by_ref": IDENTITY["id"], "name": value, "pattern": f"[domain-name:value = '{value}']",
            "pattern_type": "stix", "valid_from": "2026-01-02T00:00:00Z",
            "object_marking_refs": [TLP2_IDS[level], *extra_markings]}


def _loaded(document: dict[str, Any]) -> MISPEvent:
    event = MISPEvent()
    event.load(json.dumps(document))
    return event


def test_tlp_markings_become_tlp_tags_and_the_event_takes_the_strictest() -> None:
    objects = [IDENTITY, tlp2_marking_definition(TlpLevel.CLEAR), tlp2_marking_definition(TlpLevel.AMBER),
               _indicator(1, "clear.example", TlpLevel.CLEAR), _indicator(2, "amber.example", TlpLevel.AMBER)]
    event = _loaded(write_misp_event(objects, info="Two indicators"))
    assert "tlp:amber" in {t.name for t in event.tags}
    assert event.info == "Two indicators" and event.Orgc.name == ORG["name"]
    tags = {a.value: {t.name for t in a.tags} for a in event.attributes}
    tags.update({a.value: {t.name for t in o.tags} for o in event.objects for a in o.attributes})
    assert "tlp:clear" in tags["clear.example"]
    assert int(event.distribution) == 0  # TLP:AMBER content: an export never widens sharing


@pytest.mark.parametrize(("levels", "distribution"), [
    ([TlpLevel.CLEAR], 3),  # TLP:CLEAR may go to the world: MISP's "all communities"
    ([TlpLevel.CLEAR, TlpLevel.GREEN], 1),  # TLP:GREEN within the recipient's community: "this community only"
    ([TlpLevel.GREEN, TlpLevel.AMBER_STRICT], 0),
    ([TlpLevel.RED], 0),
    ([TlpLevel.CLEAR, None], 0),  # unmarked content: what the node's policy makes of it, the file cannot say
])
def test_the_event_goes_as_far_as_the_tlp_of_all_its_content_allows(
        levels: list[TlpLevel | None], distribution: int) -> None:
    objects: list[dict[str, Any]] = [IDENTITY]
    for number, level in enumerate(levels, start=1):
        if level is None:
            unmarked = _indicator(number, f"n{number}.example", TlpLevel.CLEAR)
            del unmarked["object_marking_refs"]
            objects.append(unmarked)
        else:
            objects += [tlp2_marking_definition(level), _indicator(number, f"n{number}.example", level)]
    event = _loaded(write_misp_event(objects))
    assert int(event.distribution) == distribution
    records = list(event.attributes) + list(event.objects)
    assert records and all(int(r.distribution) == 5 for r in records)  # each inherits the event's


def test_rel_to_content_is_exported_for_the_organisation_only_and_reported() -> None:
    rel_to = build_rel_to_marking(countries=["GBR", "JPN"])
    indicator = _indicator(3, "rel-to.example", TlpLevel.GREEN, rel_to["id"])
    report = ConversionReport("misp")
    event = _loaded(write_misp_event([IDENTITY, tlp2_marking_definition(TlpLevel.GREEN), rel_to, indicator], report))
    records = list(event.attributes) + list(event.objects)
    restricted = [r for r in records if str(r.uuid) == indicator["id"].partition("--")[2]]
    assert restricted and all(int(r.distribution) == 0 for r in restricted)
    assert [(loss.ref, loss.field) for loss in report.losses] == [(indicator["id"], "object_marking_refs")]


def test_nothing_to_write_is_an_error() -> None:
    with pytest.raises(FormatError):
        write_misp_event([])


def test_a_feed_directory_matches_what_pymisp_computes(tmp_path: Path) -> None:
    names = ["existing_event.json", "to_delete2.json", "57c4445b-c548-4654-af0b-4be3950d210f.json"]
    events = [write_misp_event(read_misp(FIXTURES / name).objects, org=ORG) for name in names]
    written = write_misp_feed(events[:2], tmp_path)
    write_misp_feed(events[2:], tmp_path)  # a later run adds to the feed
    written += [events[2]["Event"]["uuid"]]
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert sorted(manifest) == sorted(written)
    lines = (tmp_path / HASHES).read_text().splitlines()
    for event_uuid in written:
        event = MISPEvent()
        event.load_file(str(tmp_path / f"{event_uuid}.json"))
        expected = event.manifest[event_uuid]
        ours = manifest[event_uuid]
        for key in ("info", "date", "analysis", "threat_level_id", "timestamp"):
            assert str(ours[key]) == str(expected[key]), key
        assert ours["Orgc"] == {"name": expected["Orgc"]["name"], "uuid": str(expected["Orgc"]["uuid"])}
        assert [t["name"] for t in ours["Tag"]] == [t["name"] for t in expected["Tag"]]
        assert sorted(line for line in lines if line.endswith(event_uuid)) == sorted(
            f"{h},{event_uuid}" for h in event.attributes_hashes("md5"))
    assert len(lines) >= 100


def test_a_partners_event_keeps_its_creator_and_the_exporting_node_owns_it() -> None:
    # MISP's Orgc is who made an event and Org who holds it. Once the exporting node was written as both, so a
    # CIRCL event passed through a node came back as the node's own: every object's producer changed, and with
    # it what producer-listed agreements and the onward-sharing rule decide.
    objects = read_misp(FIXTURES / "57c4445b-c548-4654-af0b-4be3950d210f.json").objects
    event = write_misp_event(objects, org=ORG)["Event"]
    assert event["Orgc"] == {"name": "CIRCL", "uuid": "55f6ea5e-2c60-40e5-964f-47a8950d210f"}
    assert event["Org"] == ORG
    producers = {o["id"]: o.get("created_by_ref") for o in objects if o["type"] != "identity"}
    back = {o["id"]: o.get("created_by_ref") for o in read_misp(json.dumps({"Event": event}).encode()).objects
            if o["id"] in producers}
    assert len(back) >= 20 and back == {ref: producers[ref] for ref in back}
    circl = "identity--55f6ea5e-2c60-40e5-964f-47a8950d210f"
    assert sum(producer == circl for producer in back.values()) >= 10
    assert f"identity--{ORG['uuid']}" not in back.values()


def test_content_that_names_no_creator_is_created_by_the_exporting_organisation() -> None:
    anonymous = {k: v for k, v in _indicator(6, "nameless.example", TlpLevel.GREEN).items() if k != "created_by_ref"}
    event = write_misp_event([tlp2_marking_definition(TlpLevel.GREEN), anonymous], org=ORG)["Event"]
    assert event["Orgc"] == event["Org"] == ORG


def test_a_feed_event_without_a_creator_needs_an_org(tmp_path: Path) -> None:
    event = {"Event": {"uuid": "0f3c9a1b-0d4e-4f60-8a1b-0d4e5f603f2c", "info": "no creator", "Attribute": []}}
    with pytest.raises(FormatError, match="Orgc"):
        write_misp_feed([event], tmp_path)
    assert write_misp_feed([event], tmp_path, org=ORG) == [event["Event"]["uuid"]]


def test_a_collection_of_several_events_becomes_one_misp_event_each(tmp_path: Path) -> None:
    names = ["existing_event.json", "57c4445b-c548-4654-af0b-4be3950d210f.json", "sighting_1.json"]
    objects = [o for name in names for o in read_misp(FIXTURES / name).objects]
    loose = _indicator(4, "loose.example", TlpLevel.GREEN)
    events = write_misp_events([*objects, IDENTITY, tlp2_marking_definition(TlpLevel.GREEN), loose], org=ORG)
    sources = [json.loads((FIXTURES / n).read_text()) for n in names]
    expected = {s.get("Event", s)["uuid"] for s in sources}
    assert {e["Event"]["uuid"] for e in events[:3]} == expected
    for event, source in zip(events[:3], sources, strict=True):
        source = source.get("Event", source)
        loaded = _loaded(event)
        assert len(loaded.attributes) + len(loaded.objects) == len(source.get("Attribute", [])) + len(
            source.get("Object", []))
    assert [a.value for a in _loaded(events[3]).attributes] + [
        a.value for o in _loaded(events[3]).objects for a in o.attributes] == ["loose.example"]
    assert sorted(write_misp_feed(events, tmp_path)) == sorted(e["Event"]["uuid"] for e in events)


def test_a_misp_event_beside_other_indicators_exports_them_all_with_their_labels_as_tags() -> None:
    # A collection where a MISP event was imported and then a CSV list (or a partner's STIX): misp-stix's
    # parser for its own STIX reads only MISP's shapes, so the other indicators once left the export and were
    # only named in the loss report. Now each is an attribute, its labels its tags.
    from_misp = read_misp(FIXTURES / "existing_event.json").objects
    others = [{**_indicator(n, f"csv-{n}.example", TlpLevel.GREEN), "labels": ["phishing", "wave-2"]} for n in (4, 5)]
    report = ConversionReport("misp")
    document = write_misp_event([*from_misp, IDENTITY, tlp2_marking_definition(TlpLevel.GREEN), *others], report)
    event = _loaded(document)
    misp_only = _loaded(write_misp_event(from_misp))
    records = {str(a.uuid): a for a in event.attributes}
    records.update({str(a.uuid): a for o in event.objects for a in [o, *o.attributes]})
    for indicator in others:
        attribute = records[indicator["id"].partition("--")[2]]
        assert attribute.value == indicator["name"]
        assert {"phishing", "wave-2", "tlp:green"} <= {t.name for t in attribute.tags}
    # what the MISP event itself gives is unchanged, and nothing is reported lost
    assert {a.value for a in misp_only.attributes} <= {a.value for a in event.attributes}
    assert len(event.objects) == len(misp_only.objects)
    assert not [loss for loss in report.losses if loss.ref in {o["id"] for o in others}]


def test_labels_of_stix_not_from_misp_become_tags() -> None:
    indicator = {**_indicator(6, "labelled.example", TlpLevel.GREEN), "labels": ["c2", "tlp:green"]}
    event = _loaded(write_misp_event([IDENTITY, tlp2_marking_definition(TlpLevel.GREEN), indicator]))
    records = [*event.attributes, *event.objects]
    attribute = next(r for r in records if str(r.uuid) == indicator["id"].partition("--")[2])
    names = [t.name for t in attribute.tags]
    assert "c2" in names and "tlp:green" in names and len(names) == len(set(names))  # the TLP label not twice
