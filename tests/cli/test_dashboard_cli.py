"""``kizuna dashboard`` and ``kizuna preview`` as real processes on a real node."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from kizuna.policy import TLP2_IDS, TlpLevel, build_rel_to_marking
from tests.conftest import kizuna, kizuna_json

CREATED = "2026-11-30T09:00:00.000Z"


def _indicator(level: TlpLevel, *extra_markings: str) -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": CREATED,
            "modified": CREATED, "name": f"{level.label} C2", "pattern_type": "stix", "valid_from": CREATED,
            "pattern": "[domain-name:value = 'c2.example.net']",
            "object_marking_refs": [TLP2_IDS[level], *extra_markings]}


def _node(tmp_path: Path) -> Path:
    data = tmp_path / "uk"
    kizuna_json(data, "init", "--org-name", "UK NCSC", "--country", "GBR")
    kizuna_json(data, "collections", "create", "--title", "Shared", "--alias", "shared")
    for name, country, tlp in (("JP NISC", "JPN", "amber"), ("AU ACSC", "AUS", "green")):
        kizuna_json(data, "orgs", "create", name, "--country", country)
        kizuna_json(data, "agreements", "set", name.split()[0].lower(), "--partner", name, "--max-tlp", tlp)
        kizuna_json(data, "tokens", "create", "--org", name, "--read", "shared")
    bundle = tmp_path / "bundle.json"
    objects = [_indicator(level) for level in (TlpLevel.CLEAR, TlpLevel.GREEN, TlpLevel.AMBER, TlpLevel.RED)]
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}))
    kizuna_json(data, "import", str(bundle), "--collection", "shared")
    return data


def test_dashboard_counts_as_the_chosen_principal(tmp_path: Path) -> None:
    data = _node(tmp_path)
    own = kizuna_json(data, "dashboard")
    au = kizuna_json(data, "dashboard", "--as-org", "AU ACSC", "--newest", "1")
    assert sum(entry["objects"] for entry in own["received"]) == 4
    assert {(e["tlp"], e["objects"]) for e in au["received"]} == {("TLP:CLEAR", 1), ("TLP:GREEN", 1)}
    assert len(au["indicators"]) == 1 and au["sync"] == [] and not au["partial"]
    text = kizuna(data, "dashboard", "--as-org", "JP NISC").stdout
    assert "TLP:AMBER" in text and "TLP:RED" not in text and text.startswith("Dashboard of organisation JP NISC")


def test_a_nameless_indicator_is_listed_by_its_pattern(tmp_path: Path) -> None:
    """A MISP attribute becomes an indicator without a name: the listing shows its pattern, not its id."""
    data = _node(tmp_path)
    nameless = _indicator(TlpLevel.CLEAR)
    del nameless["name"]
    nameless["pattern"] = "[ipv4-addr:value = '203.0.113.77']"
    bundle = tmp_path / "nameless.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [nameless]}))
    kizuna_json(data, "import", str(bundle), "--collection", "shared")
    lines = kizuna(data, "dashboard").stdout.splitlines()
    listed = lines[lines.index("Newest indicators:") + 1:lines.index("Partners' sightings of our indicators:")]
    assert any(line.endswith("[ipv4-addr:value = '203.0.113.77']") for line in listed), listed
    assert not any(nameless["id"] in line for line in listed)


def test_a_long_producer_name_widens_its_column(tmp_path: Path) -> None:
    data = tmp_path / "long"
    long_name = "National Cyber Security Centre of the United Kingdom"
    kizuna_json(data, "init", "--org-name", long_name, "--country", "GBR")
    kizuna_json(data, "collections", "create", "--title", "Shared", "--alias", "shared")
    home = kizuna_json(data, "status")["identity"]
    short = kizuna_json(data, "orgs", "create", "JP", "--country", "JPN")["id"]
    objects = [{**_indicator(TlpLevel.CLEAR), "created_by_ref": home},
               {**_indicator(TlpLevel.GREEN), "created_by_ref": short}]
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}))
    kizuna_json(data, "import", str(bundle), "--collection", "shared")
    lines = kizuna(data, "dashboard").stdout.splitlines()
    rows = lines[lines.index("Received (versions, by producer and TLP):") + 1:][:2]
    assert sorted(row.split(" TLP:")[0].strip() for row in rows) == ["JP", long_name], rows
    assert len({row.index("TLP:") for row in rows}) == 1, rows  # one column, whatever the names


def test_preview_names_who_sees_a_draft_and_why_not(tmp_path: Path) -> None:
    data = _node(tmp_path)
    draft = tmp_path / "draft.json"
    draft.write_text(json.dumps(_indicator(TlpLevel.AMBER)))
    result = kizuna_json(data, "preview", str(draft), "--collection", "shared")
    assert result["summary"] == "JP NISC will see this; AU ACSC will not, because its agreement stops at TLP:GREEN"
    by_name = {p["name"]: p for p in result["partners"]}
    assert by_name["AU ACSC"]["params"] == {"ceiling": "TLP:GREEN", "tlp": "TLP:AMBER"}
    # A bundle brings the REL TO marking the draft uses.
    rel_to = build_rel_to_marking(["AUS"])
    bundle = tmp_path / "draft-bundle.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                                  "objects": [rel_to, _indicator(TlpLevel.GREEN, rel_to["id"])]}))
    text = kizuna(data, "preview", str(bundle), "-c", "shared").stdout
    assert text.splitlines()[0] == (
        "AU ACSC will see this; JP NISC will not, because it is releasable only to AUS and the partner is JPN."
    )


def test_preview_refuses_a_bundle_of_several_objects_in_one_line(tmp_path: Path) -> None:
    data = _node(tmp_path)
    bundle = tmp_path / "two.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                                  "objects": [_indicator(TlpLevel.GREEN), _indicator(TlpLevel.GREEN)]}))
    result = kizuna(data, "preview", str(bundle), "-c", "shared", check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (
        f"kizuna preview: a bundle must hold exactly one object besides marking definitions, not 2: {bundle}"
    )


def test_preview_words_a_file_that_is_not_utf8_as_import_does(tmp_path: Path) -> None:
    data = _node(tmp_path)
    draft = tmp_path / "latin1.json"
    draft.write_bytes(b'{"type": "indicator",\n "name": "caf\xe9"}\n')
    previewed = kizuna(data, "preview", str(draft), "-c", "shared", check=False)
    imported = kizuna(data, "import", str(draft), "-c", "shared", check=False)
    assert previewed.returncode == imported.returncode == 1
    assert previewed.stderr == f"kizuna preview: not UTF-8 text (invalid continuation byte): {draft}:2\n"
    # The import adds that it stored nothing of the file; the reason and the place are the same.
    assert imported.stderr == (f"kizuna import: not UTF-8 text (invalid continuation byte) "
                               f"(nothing of the file was stored): {draft}:2\n")
