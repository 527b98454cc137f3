"""Indicators flagged at import as on a MISP warninglist are left out of detection unless forced; those shared as not
for detection (MISP to_ids off) always."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kizuna.detect.index import IndicatorIndex
from kizuna.detect.yara_scan import YaraScan
from kizuna.stix.vocab import NOT_FOR_DETECTION_PROPERTY, WARNINGLIST_PROPERTY
from tests.conftest import kizuna

ROOT = Path(__file__).resolve().parents[2]
ZEEK = ROOT / "examples" / "zeek"
HTTP_LOG = str(ZEEK / "json" / "http.log")


def _indicators() -> list[dict[str, Any]]:
    bundle = json.loads((ZEEK / "demo-indicators.json").read_text("utf-8"))
    return [o for o in bundle["objects"] if o["type"] == "indicator"]


def _match(tmp_path: Path, objects: list[dict[str, Any]], *extra: str) -> tuple[dict[str, Any], set[str]]:
    intel = tmp_path / "intel.json"
    intel.write_text(json.dumps({"type": "bundle", "id": "bundle--0e7d2c1a-5b3f-4e6d-9a8c-7b6a5d4c3b2a",
                                 "objects": objects}))
    alerts = tmp_path / "alerts.jsonl"
    result = kizuna(tmp_path / "no-node", "match", "--indicators", str(intel), "--alerts", str(alerts), "--json",
                    *extra, HTTP_LOG)
    hit = {json.loads(line)["indicator"] for line in alerts.read_text().splitlines()}
    return json.loads(result.stdout), hit


def test_the_index_skips_a_flagged_indicator_unless_told_to_include_it() -> None:
    flagged = {**_indicators()[0], WARNINGLIST_PROPERTY: ["public-dns-v4"]}
    assert IndicatorIndex().add(flagged).status == "warninglisted"
    assert IndicatorIndex(include_warninglisted=True).add(flagged).status == "indexed"
    unflagged = {k: v for k, v in flagged.items() if k != WARNINGLIST_PROPERTY}
    assert IndicatorIndex().add(unflagged).status == "indexed"


def test_match_skips_warninglisted_indicators_and_says_how_many(tmp_path: Path) -> None:
    indicators = _indicators()
    _, hit_before = _match(tmp_path, indicators)
    assert hit_before, "the demo indicators must hit the demo log for this test to mean anything"
    victim = sorted(hit_before)[0]
    flagged = [{**o, WARNINGLIST_PROPERTY: ["public-dns-v4"]} if o["id"] == victim else o for o in indicators]

    summary, hit = _match(tmp_path, flagged)
    assert summary["warninglisted_skipped"] == 1
    assert summary["indicator_load"]["warninglisted"] == 1
    assert hit == hit_before - {victim}

    forced, hit_forced = _match(tmp_path, flagged, "--include-warninglisted")
    assert forced["warninglisted_skipped"] == 0
    assert hit_forced == hit_before


def test_the_text_summary_names_the_skipped_indicators(tmp_path: Path) -> None:
    indicators = _indicators()
    intel = tmp_path / "intel.json"
    intel.write_text(json.dumps([{**indicators[0], WARNINGLIST_PROPERTY: ["rfc1918"]}, *indicators[1:]]))
    result = kizuna(tmp_path / "no-node", "match", "--indicators", str(intel), "--alerts", str(tmp_path / "a.jsonl"),
                    "-o", str(tmp_path / "sightings.json"), HTTP_LOG)
    assert "1 indicators on warninglists skipped (--include-warninglisted matches them too)" in result.stderr


def test_an_indicator_shared_not_for_detection_is_never_matched() -> None:
    # A MISP attribute with to_ids off that misp-stix still wrote as an indicator: context, not detection,
    # and --include-warninglisted does not change that (its producer said so, no list did).
    context = {**_indicators()[0], NOT_FOR_DETECTION_PROPERTY: True}
    assert IndicatorIndex().add(context).status == "not-for-detection"
    assert IndicatorIndex(include_warninglisted=True).add(context).status == "not-for-detection"
    rule = {"type": "indicator", "spec_version": "2.1", "id": "indicator--4f1e8a52-0c3b-4d6e-9f7a-2b8c1d3e5f60",
            "created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z", "pattern_type": "yara",
            "pattern": "rule context_only { strings: $a = \"kizuna\" condition: $a }",
            "valid_from": "2026-01-01T00:00:00Z"}
    scan = YaraScan("identity--8f7e3a4c-5b6d-4e2f-9a1b-0c3d5e7f9a2b")
    context_rule = {**rule, "id": "indicator--4f1e8a52-0c3b-4d6e-9f7a-2b8c1d3e5f61", NOT_FOR_DETECTION_PROPERTY: True}
    scan.load([rule, context_rule])
    assert scan.load_counts == {"yara": 1, "not-for-detection": 1}
