"""The indexed matcher must find exactly what the exact evaluator finds, on real Zeek logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from kizuna.cli.match import match_command
from kizuna.detect.compiler import compile_pattern
from kizuna.detect.engine import DetectionEngine
from kizuna.detect.evaluate import observation_passes
from kizuna.detect.index import IndicatorIndex
from kizuna.detect.intel import zeek_intel_indicators
from kizuna.detect.mappings import LogReader, shipped_mappings
from kizuna.stix.patterns import stix_pattern_problem

ZEEK = Path(__file__).parent / "fixtures" / "zeek"
LOGS = ["dns.log", "http.log", "files.log", "ssl.log"]
LOGS += [f"json/{n}.log" for n in ("conn", "dns", "http", "files", "ssl")]

EXTRA_PATTERNS = [
    "[domain-name:value LIKE '%.icemaiden.com']",
    "[domain-name:value MATCHES '^mail\\\\.[a-z]+\\\\.com$']",
    "[ipv4-addr:value ISSUBSET '69.147.64.0/24']",
    "[network-traffic:dst_ref.value ISSUBSET '10.18.20.0/24' AND network-traffic:dst_port = 88]",
    "[network-traffic:dst_port > 1000]",
    "[network-traffic:protocols[0] = 'udp']",
    "[ipv4-addr:value IN ('10.18.20.8', '4.2.2.3')]",
    "[file:hashes.MD5 = 'b20996efc49d181769db184aeea375a2' OR file:name LIKE '%.exe']",
    "[url:value LIKE 'http://crt.usertrust.com/%']",
    "[domain-name:value NOT LIKE '%.com']",
]


def _indicators() -> list[dict[str, Any]]:
    # The feed's header plus a spread of its rows keeps the brute-force reference check fast.
    feed = (ZEEK / "intel_example.intel").read_text("utf-8").splitlines()
    rows = feed[:1] + feed[1::4]
    rows += (ZEEK / "demo.intel").read_text("utf-8").splitlines()
    indicators = list(zeek_intel_indicators(rows))
    for n, pattern in enumerate(EXTRA_PATTERNS):
        indicators.append(
            {"type": "indicator", "id": f"indicator--extra-{n}", "pattern": pattern, "pattern_type": "stix"}
        )
    return indicators


def _events() -> list[Any]:
    mappings = shipped_mappings()
    events: list[Any] = []
    for name in LOGS:
        reader = LogReader(mappings.values())
        events.extend(reader.events((ZEEK / name).read_text("utf-8").splitlines()))
    return events


def test_index_equals_exact_evaluation_on_real_logs() -> None:
    indicators = _indicators()
    engine = DetectionEngine("identity--00000000-0000-4000-8000-000000000000")
    assert engine.load_indicators(indicators) == {"indexed": len(indicators)}
    compiled = [(i["id"], compile_pattern(i["pattern"]).single_observation) for i in indicators]
    mappings = shipped_mappings()
    total = 0
    for event in _events():
        got = {a.indicator_id for a in engine.submit_event(event, mappings[event.mapping])}
        observation = event.build()
        expected = {iid for iid, expr in compiled if expr is not None and observation_passes(expr, observation)}
        assert got == expected, (event.mapping, event.line)
        total += len(got)
    assert total > 50  # the extra patterns and demo IOCs do hit; the real intel feed does not


def test_add_remove_expire() -> None:
    engine = DetectionEngine("identity--00000000-0000-4000-8000-000000000000")
    index = engine.index
    base = {"type": "indicator", "pattern_type": "stix", "pattern": "[domain-name:value = 'guyspy.com']"}
    index.add({**base, "id": "indicator--a", "valid_until": "2000-01-01T00:00:00Z"})
    index.add({**base, "id": "indicator--b"})
    assert index.add({**base, "id": "indicator--c", "revoked": True}).status == "revoked"
    assert index.add({**base, "id": "indicator--d", "pattern_type": "sigma"}).status == "not-stix"
    facts = [("domain-name", "value", "guyspy.com")]
    assert index.candidates(facts)[0] == {0, 1}
    assert index.expire(now=1e9) == ["indicator--a"]
    assert index.remove("indicator--b")
    assert index.candidates(facts) == (set(), set())
    index.add({**base, "id": "indicator--e", "pattern": "[domain-name:value LIKE 'guy%']"})
    assert len(index.candidates(facts)[1]) == 1
    index.remove("indicator--e")
    assert index.candidates(facts) == (set(), set())
    assert index.stats()["not_stix"] == 1


def test_alerts_carry_the_name_of_the_version_indexed() -> None:
    """An alert names its indicator by id and, for a person, by the name of the version that is indexed."""
    engine = DetectionEngine("identity--00000000-0000-4000-8000-000000000000")
    index = engine.index
    base = {"type": "indicator", "pattern_type": "stix", "pattern": "[domain-name:value = 'guyspy.com']"}
    index.add({**base, "id": "indicator--a", "name": "First version"})
    index.add({**base, "id": "indicator--a", "name": "Guyspy phishing domain"})
    index.add({**base, "id": "indicator--b", "name": ""})  # an empty name is no name
    index.add({**base, "id": "indicator--c", "name": "revoked", "revoked": True})
    mappings = shipped_mappings()

    def named() -> set[tuple[str, str | None]]:
        alerts = [a for e in _events() for a in engine.submit_event(e, mappings[e.mapping])]
        return {(a.indicator_id, a.indicator_name) for a in alerts}

    assert named() == {("indicator--a", "Guyspy phishing domain"), ("indicator--b", None)}
    index.add({**base, "id": "indicator--a"})  # a newer version without a name
    assert named() == {("indicator--a", None), ("indicator--b", None)}
    index.add({**base, "id": "indicator--b", "name": "Named at last"})
    assert index.remove("indicator--a")
    assert index.name_of("indicator--a") is None and index.name_of("indicator--b") == "Named at last"
    assert named() == {("indicator--b", "Named at last")}


def test_indicator_outside_validity_does_not_match() -> None:
    engine = DetectionEngine("identity--00000000-0000-4000-8000-000000000000")
    engine.load_indicators(
        [
            {
                "type": "indicator",
                "id": "indicator--late",
                "pattern": "[domain-name:value = 'guyspy.com']",
                "pattern_type": "stix",
                "valid_from": "2030-01-01T00:00:00Z",
            }
        ]
    )
    mappings = shipped_mappings()
    hits = [a for e in _events() for a in engine.submit_event(e, mappings[e.mapping])]
    assert hits == []


def test_bad_lines_are_counted_with_line_numbers() -> None:
    reader = LogReader(shipped_mappings().values())
    lines = ['{"ts": 1, "id.orig_h": "1.2.3.4", "id.resp_h": "5.6.7.8", "conn_state": "S0"}', "{not json", "[1]"]
    events = list(reader.events(lines))
    assert len(events) == 1
    problems = [(p.line, p.reason.split(":")[0]) for p in reader.stats.problems]
    assert problems == [(2, "not JSON"), (3, "not a JSON object")]


def test_match_command_on_shipped_sample(tmp_path: Path) -> None:
    out = tmp_path / "sightings.json"
    alerts = tmp_path / "alerts.jsonl"
    args = ["--zeek-intel", str(ZEEK / "intel_example.intel"), "--zeek-intel", str(ZEEK / "demo.intel")]
    args += [str(ZEEK / n) for n in LOGS] + ["-o", str(out), "--alerts", str(alerts), "--json"]
    result = CliRunner().invoke(match_command, args, obj={})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    bundle = json.loads(out.read_text())
    assert summary["hits"] == len(alerts.read_text().splitlines()) > 0
    sightings = [o for o in bundle["objects"] if o["type"] == "sighting"]
    assert summary["sightings"] == len(sightings) == 3
    assert sum(s["count"] for s in sightings) == summary["hits"]
    assert all(s["sighting_of_ref"].startswith("indicator--") for s in sightings)


def test_an_indicator_naming_an_object_type_no_observation_has_is_invalid_as_at_import() -> None:
    """`kizuna import` refuses `[ipv4-adr:value = ...]` (stix/patterns.py); the matcher counted it indexed,
    to match nothing. Both now say why, in the same words; a custom x- type stays matchable."""
    index = IndicatorIndex()
    for pattern in ("[ipv4-adr:value = '1.2.3.4']", "[ipv4-adr:value = '1.2.3.4' AND ipv4-adr:value != '5.6.7.8']"):
        added = index.add_pattern("indicator--00000000-0000-4000-8000-000000000001", pattern)
        assert added.status == "invalid" and added.detail
        assert added.detail in (stix_pattern_problem(pattern) or "")
    assert index.add_pattern("indicator--00000000-0000-4000-8000-000000000002",
                             "[x-acme-badge:serial = 'A1']").status == "indexed"
