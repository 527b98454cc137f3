"""``kizuna search`` as a real process: what a chosen principal finds, in a table or as JSON, page by page."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from kizuna.policy import TLP2_IDS, TlpLevel
from tests.conftest import kizuna, kizuna_json


def _obj(stix_type: str, marking: TlpLevel, **fields: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": stix_type, "spec_version": "2.1", "id": f"{stix_type}--{uuid.uuid4()}",
        "created": "2026-03-01T00:00:00.000Z", "modified": "2026-03-01T00:00:00.000Z",
        "object_marking_refs": [TLP2_IDS[marking]], **fields,
    }
    if stix_type == "indicator":
        obj.update(pattern_type="stix", valid_from="2026-03-01T00:00:00Z")
    return obj


def test_search_as_the_node_and_as_an_organisation_not_entitled(tmp_path: Path) -> None:
    data = tmp_path / "node"
    kizuna_json(data, "init", "--org-name", "NCSC UK", "--country", "GBR")
    kizuna_json(data, "collections", "create", "--title", "Shared", "--alias", "shared")
    kizuna_json(data, "orgs", "create", "JPCERT/CC", "--country", "JPN")
    home = kizuna_json(data, "status")["identity"]
    clear = _obj("indicator", TlpLevel.CLEAR, name="Scanner", created_by_ref=home,
                 pattern="[ipv4-addr:value = '203.0.113.9']")
    translation = _obj("language-content", TlpLevel.CLEAR, created_by_ref=home, object_ref=clear["id"],
                       object_modified=clear["modified"], contents={"ja": {"name": "攻撃元のスキャナ"}})
    strict = _obj("indicator", TlpLevel.AMBER_STRICT, name="Scanner of the venue", created_by_ref=home,
                  pattern="[ipv4-addr:value = '203.0.113.10']")
    long_text = _obj("note", TlpLevel.CLEAR, created_by_ref=home, object_refs=[clear["id"]],
                     content="A long account of the week, with many words before it names the Bluefinch loader.")
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                                  "objects": [clear, translation, strict, long_text]}))
    kizuna(data, "import", str(bundle), "--collection", "shared")

    own = kizuna_json(data, "search", "Scanner")
    assert (own["count"], own["count_exact"]) == (2, True)
    assert {hit["id"] for hit in own["results"]} == {clear["id"], strict["id"]}
    jp = kizuna_json(data, "search", "Scanner", "--as-org", "JPCERT/CC")
    assert (jp["count"], [hit["id"] for hit in jp["results"]]) == (1, [clear["id"]])
    assert kizuna_json(data, "search", "203.0.113.10", "--as-org", "JPCERT/CC")["count"] == 0
    found = kizuna_json(data, "search", "攻撃", "--type", "indicator", "--as-org", "JPCERT/CC")
    assert [(hit["id"], hit["via"]) for hit in found["results"]] == [(clear["id"], translation["id"])]

    table = kizuna(data, "search", "Scanner", "--limit", "1").stdout.splitlines()
    assert table[0].split()[:5] == ["TYPE", "TLP", "COLLECTION", "NAME", "MATCH"]
    assert "shared" in table[1] and table[2] == "2 results as organisation NCSC UK."
    cursor = table[3].rsplit(" ", 1)[1]
    second = kizuna_json(data, "search", "Scanner", "--limit", "1", "--next", cursor)
    first = kizuna_json(data, "search", "Scanner", "--limit", "1")
    assert {first["results"][0]["id"], second["results"][0]["id"]} == {clear["id"], strict["id"]}
    assert second["next"] is None
    # A date alone is midnight UTC at its start; everything here was added today, after 2000-01-01.
    assert kizuna_json(data, "search", "Scanner", "--added-from", "2000-01-01")["count"] == 2
    assert kizuna_json(data, "search", "Scanner", "--added-before", "2000-01-01")["count"] == 0
    bad = kizuna(data, "search", "Scanner", "--added-from", "2000-13-01", check=False)
    assert bad.returncode == 2 and "is not a date or timestamp" in bad.stderr
    # The MATCH column is cut around the matched word, so a word far into the text still shows.
    match = kizuna(data, "search", "bluefinch").stdout.splitlines()[1]
    assert "Bluefinch" in match and "…" in match
    nothing = kizuna(data, "search", "nowhere-word", "--as-org", "JPCERT/CC").stdout.strip()
    assert nothing == "Nothing found for 'nowhere-word' as organisation JPCERT/CC."
