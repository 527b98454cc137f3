"""`kizuna export --tlp-max` on every export format: the ceiling goes through the one visibility check.

Objects marked above the ceiling are left out, for the node's own export as for a partner's; a granular marking
above it removes only the part it marks; a relationship to an object left out goes too (it would point at
nothing); unmarked content passes unless the node's unmarked level is above the ceiling.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymisp import MISPEvent

from tests.conftest import kizuna, kizuna_json

CLEAR = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"
GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
AMBER_STRICT = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"
STAMP = "2026-02-01T00:00:00.000Z"


def _indicator(name: str, marking: str | None, **extra: Any) -> dict[str, Any]:
    obj = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid5(uuid.NAMESPACE_DNS, name)}",
           "created": STAMP, "modified": STAMP, "name": name, "pattern": f"[domain-name:value = '{name}']",
           "pattern_type": "stix", "valid_from": STAMP, **extra}
    if marking is not None:
        obj["object_marking_refs"] = [marking]
    return obj


CLEAR_IND = _indicator("clear.example.net", CLEAR)
GREEN_IND = _indicator("green.example.net", GREEN)
STRICT_IND = _indicator("strict.example.net", AMBER_STRICT)
UNMARKED_IND = _indicator("unmarked.example.net", None)
PART_STRICT = _indicator("part-strict.example.net", GREEN, description="Seen on a partner's own network",
                         granular_markings=[{"selectors": ["description"], "marking_ref": AMBER_STRICT}])
MALWARE = {"type": "malware", "spec_version": "2.1", "id": "malware--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061",
           "created": STAMP, "modified": STAMP, "name": "Lurker", "is_family": True, "object_marking_refs": [AMBER]}
INDICATES = {"type": "relationship", "spec_version": "2.1", "id": "relationship--44298a74-ba52-4f0c-87a3-1824e67d7fad",
             "created": STAMP, "modified": STAMP, "relationship_type": "indicates", "source_ref": GREEN_IND["id"],
             "target_ref": MALWARE["id"], "object_marking_refs": [GREEN]}
ALL = [CLEAR_IND, GREEN_IND, STRICT_IND, UNMARKED_IND, PART_STRICT, MALWARE, INDICATES]


@pytest.fixture
def node(tmp_path: Path, store_url: str) -> Path:
    data_dir = tmp_path / "node"
    kizuna_json(data_dir, "init", "--org-name", "NCSC UK", "--country", "GBR", "--store", store_url)
    kizuna_json(data_dir, "collections", "create", "--title", "Out", "--alias", "out")
    kizuna_json(data_dir, "orgs", "create", "Partner", "--country", "JPN")
    kizuna_json(data_dir, "agreements", "set", "jp", "--partner", "Partner", "--max-tlp", "amber")
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": ALL}))
    assert kizuna_json(data_dir, "import", str(bundle), "--collection", "out")["stored"] == len(ALL)
    return data_dir


def _stix(node: Path, tmp_path: Path, *args: str) -> dict[str, dict[str, Any]]:
    out = tmp_path / f"export-{uuid.uuid4()}.json"
    kizuna_json(node, "export", "--collection", "out", "-o", str(out), *args)
    # (the TLP definitions and their extension, which the node places beside what uses them, are not counted)
    return {o["id"]: o for o in json.loads(out.read_text())["objects"]
            if o["type"] not in ("marking-definition", "extension-definition")}


def test_the_ceiling_leaves_out_what_is_marked_above_it(node: Path, tmp_path: Path) -> None:
    everything = _stix(node, tmp_path)
    assert {o["id"] for o in ALL} <= set(everything)  # without a ceiling the node exports all it holds

    green = _stix(node, tmp_path, "--tlp-max", "green")
    assert set(green) == {CLEAR_IND["id"], GREEN_IND["id"], UNMARKED_IND["id"], PART_STRICT["id"]}
    # Only the AMBER+STRICT part of the GREEN indicator goes, with its granular marking.
    part = green[PART_STRICT["id"]]
    assert "description" not in part and "granular_markings" not in part
    assert part["pattern"] == PART_STRICT["pattern"]
    # The relationship is GREEN, but the AMBER malware it names is left out, so it goes too.
    assert INDICATES["id"] not in green

    amber = _stix(node, tmp_path, "--tlp-ceiling", "AMBER")
    assert MALWARE["id"] in amber and INDICATES["id"] in amber and STRICT_IND["id"] not in amber
    assert "description" not in amber[PART_STRICT["id"]]  # AMBER+STRICT is above AMBER
    strict = _stix(node, tmp_path, "--tlp-max", "amber+strict")
    assert strict[PART_STRICT["id"]]["description"] == PART_STRICT["description"]
    assert STRICT_IND["id"] in strict


def test_the_ceiling_narrows_a_partners_view_and_a_misp_export(node: Path, tmp_path: Path) -> None:
    partner = _stix(node, tmp_path, "--as-org", "Partner")
    assert MALWARE["id"] in partner and STRICT_IND["id"] not in partner
    assert set(_stix(node, tmp_path, "--as-org", "Partner", "--tlp-max", "clear")) == {
        CLEAR_IND["id"], UNMARKED_IND["id"]}

    out = tmp_path / "event.json"
    kizuna_json(node, "export", "--collection", "out", "--format", "misp", "--tlp-max", "green", "-o", str(out))
    event = MISPEvent()
    event.load_file(str(out))
    values = {a.value for a in event.attributes} | {a.value for o in event.objects for a in o.attributes}
    assert {"green.example.net", "part-strict.example.net"} <= values
    assert not {"strict.example.net", "Lurker"} & values
    assert "Seen on a partner's own network" not in out.read_text()
    assert {t.name for t in event.tags} == {"tlp:green"}
    assert event.info == "Kizuna export"  # no STIX report names these objects

    kizuna_json(node, "collections", "create", "--title", "Strict only", "--alias", "strict")
    bundle = tmp_path / "strict.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [STRICT_IND]}))
    kizuna_json(node, "import", str(bundle), "--collection", "strict")
    empty = kizuna(node, "export", "--collection", "strict", "--format", "misp", "--tlp-max", "amber", check=False)
    assert empty.returncode != 0 and empty.stdout == ""
    assert empty.stderr == ("kizuna export: nothing to export: the collection holds nothing this principal may see "
                            "at or below TLP:AMBER\n")


PATTERN_STRICT = _indicator("pattern-strict.example.net", GREEN, description="Named by a partner's sensor",
                            granular_markings=[{"selectors": ["pattern", "description"], "marking_ref": AMBER_STRICT}])


@pytest.mark.parametrize("fmt", ["csv", "zeek", "txt", "rpz", "suricata"])
def test_list_exports_remove_the_parts_a_granular_marking_above_the_ceiling_covers(
        node: Path, tmp_path: Path, fmt: str) -> None:
    """The list formats tested only an indicator's object markings against the ceiling: a TLP:GREEN indicator's
    AMBER+STRICT description went out in CSV and Zeek exports (and feeds) under a GREEN ceiling, and one whose
    pattern itself is AMBER+STRICT went out in every list format."""
    kizuna_json(node, "collections", "create", "--title", "Lists", "--alias", "lists")
    bundle = tmp_path / "lists.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                                  "objects": [GREEN_IND, PART_STRICT, PATTERN_STRICT]}))
    kizuna_json(node, "import", str(bundle), "--collection", "lists")
    kind = ["--type", "domain"] if fmt == "txt" else []

    def export(ceiling: str) -> str:
        out = tmp_path / f"{fmt}-{ceiling}.out"
        kizuna_json(node, "export", "--collection", "lists", "--format", fmt, *kind, "--tlp-max", ceiling,
                    "-o", str(out))
        return out.read_text()

    green, strict = export("green"), export("amber+strict")
    for text in (green, strict):
        assert "green.example.net" in text and "part-strict.example.net" in text
    assert "pattern-strict.example.net" not in green and "pattern-strict.example.net" in strict
    assert PART_STRICT["description"] not in green and PATTERN_STRICT["description"] not in green
    if fmt == "csv":  # the one list format that carries descriptions
        assert PART_STRICT["description"] in strict and PATTERN_STRICT["description"] in strict


def test_unmarked_content_is_judged_at_the_nodes_unmarked_level(node: Path, tmp_path: Path) -> None:
    kizuna_json(node, "policy", "options", "--unmarked-tlp", "amber")
    assert UNMARKED_IND["id"] not in _stix(node, tmp_path, "--tlp-max", "green")
    assert UNMARKED_IND["id"] in _stix(node, tmp_path, "--tlp-max", "amber")


def test_a_bad_ceiling_is_one_line(node: Path) -> None:
    result = kizuna(node, "export", "--collection", "out", "--tlp-max", "purple", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--tlp-max" in result.stderr and "purple" in result.stderr


def test_an_empty_event_title_is_refused(node: Path, tmp_path: Path) -> None:
    """`--info ""` wrote an event with an empty title, which MISP refuses."""
    result = kizuna(node, "export", "--collection", "out", "--format", "misp", "--info", " ",
                    "-o", str(tmp_path / "e.json"), check=False)
    assert result.returncode == 2 and not (tmp_path / "e.json").exists()
    assert result.stderr == "kizuna export: --info is empty: give the event a title, or leave the option out\n"
