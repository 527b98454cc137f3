"""A node that imports its own MISP export finds what it stored: the same versions, nothing refused.

Real CIRCL events (tests/fixtures/misp/ATTRIBUTION) go MISP -> node -> `kizuna export --format misp` -> the
same node. Before, every object came back with a REL TO marking (the export's "your organisation only"), a producer
tag, misp-stix's "Indicator ID" comments, attributes without the tags their event also carries and, where
PyMISP left out an edited attribute's timestamp, a new timestamp: each was refused as a changed immutable
version or stored as a new one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import kizuna, kizuna_json

FIXTURES = Path(__file__).parents[1] / "fixtures" / "misp"
#: Events whose every object misp-stix writes back as it read it (docs/formats.md says what differs on the others).
CLEAN = ["57c4445b-c548-4654-af0b-4be3950d210f.json", "HTML_event.json", "existing_event.json",
         "existing_event_edited.json", "galaxy_1.json", "image_event.json", "mainly_objects_1.json",
         "mainly_objects_2.json", "sighting_1.json", "to_delete1.json", "to_delete2.json", "to_delete3.json",
         "very_long_event.json"]
#: TLP:CLEAR on every event, and TLP:GREEN on those with an attribute tagged at another level than the event.
CASES = [(name, "clear") for name in CLEAN] + [(name, "green") for name in ("to_delete1.json", "to_delete2.json")]


def _with_tlp(path: Path, level: str, into: Path) -> Path:
    document = json.loads(path.read_text(encoding="utf-8"))
    event = document.get("Event", document)
    tags = [t for t in event.get("Tag") or () if not str(t.get("name", "")).startswith("tlp:")]
    event["Tag"] = [*tags, {"name": f"tlp:{level}"}]
    into.write_text(json.dumps(document), encoding="utf-8")
    return into


def _stored(data_dir: Path) -> dict[str, Any]:
    bundle = json.loads(kizuna(data_dir, "export", "--collection", "events").stdout)
    return {f"{o['id']} {o.get('modified')}": o for o in bundle["objects"]}


@pytest.mark.parametrize(("name", "level"), CASES)
def test_a_node_reimporting_its_own_misp_export_finds_every_version_it_stored(
        tmp_path: Path, name: str, level: str) -> None:
    data_dir = tmp_path / "node"
    kizuna_json(data_dir, "init", "--org-name", "NCSC UK", "--country", "GBR")
    kizuna_json(data_dir, "collections", "create", "--title", "Events", "--alias", "events")
    source = _with_tlp(FIXTURES / name, level, tmp_path / name)
    first = kizuna_json(data_dir, "import", str(source), "--collection", "events")
    assert first["stored"] > 0 and first["failed"] == 0
    before = _stored(data_dir)
    exported = tmp_path / "export.json"
    kizuna_json(data_dir, "export", "--collection", "events", "--format", "misp", "-o", str(exported))
    event = json.loads(exported.read_text(encoding="utf-8"))["Event"]
    assert event["distribution"] == {"clear": "3", "green": "1"}[level]
    assert not [t for t in event.get("Tag") or () if t["name"].startswith("misp-galaxy:producer=")]
    comments = [a.get("comment", "") for o in event.get("Object") or () for a in o.get("Attribute") or ()]
    assert not [c for c in comments if c.startswith("Indicator ID: ")]
    again = kizuna_json(data_dir, "import", str(exported), "--collection", "events")
    assert (again["stored"], again["failed"], again["duplicates"]) == (0, 0, first["stored"] + first["duplicates"])
    assert _stored(data_dir) == before


#: An event whose export misp-stix reads back into the same objects but for one: its report names the YARA
#: indicator ingest refused, which the export cannot hold (docs/formats.md).
NEARLY = ["long_event.json"]


@pytest.mark.parametrize("name", NEARLY)
def test_a_reimported_export_names_no_object_the_node_did_not_hold(tmp_path: Path, name: str) -> None:
    """The references between MISP objects come back as the relationships they were (misp-stix's parsers from
    STIX gave each a new uuid), a published event as its report, not a grouping, and a galaxy cluster with its
    tag: nothing is stored under a new id, and what is refused is refused as a changed version of an object the
    node holds."""
    data_dir = tmp_path / "node"
    kizuna_json(data_dir, "init", "--org-name", "NCSC UK", "--country", "GBR")
    kizuna_json(data_dir, "collections", "create", "--title", "Events", "--alias", "events")
    kizuna(data_dir, "import", str(FIXTURES / name), "--collection", "events", check=False)  # long_event: 1 refused
    before = {key.split()[0] for key in _stored(data_dir)}
    exported = tmp_path / "export.json"
    kizuna_json(data_dir, "export", "--collection", "events", "--format", "misp", "-o", str(exported))
    refused = kizuna(data_dir, "import", str(exported), "--collection", "events", "--json", check=False)
    assert refused.returncode == 1  # the changed versions are refused, one line each in the report
    again = json.loads(refused.stdout)
    assert again["stored"] == 0 and again["failed"] == 1
    assert {failure["id"] for failure in again["failures"]} <= before
    assert {key.split()[0] for key in _stored(data_dir)} == before
