"""Kizuna's Suricata and ECS mappings read real samples and match indicators planted from their values.

The samples (tests/detect/fixtures/README.md says where each comes from, and its licence) were
written by Suricata and by Elastic's Packetbeat and Filebeat, not by Kizuna's authors, so a field
the mappings name wrongly shows up here as a missed hit. Every run goes through both the full path
(`LogReader.events`) and the fast path (`DetectionEngine.line_matcher`), which must agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from kizuna.detect.engine import DetectionEngine
from kizuna.detect.mappings import LogReader, shipped_mappings
from tests.conftest import kizuna

FIXTURES = Path(__file__).parent / "fixtures"
IDENTITY = "identity--00000000-0000-4000-8000-000000000000"
MAPPINGS = shipped_mappings()
URL = (
    "http://cr-tools.clients.google.com/service/check2?appid=%7B430FD4D0-B729-4F61-AA34-91526481799D%7D"
    "&appversion=1.3.21.65&applang=&machine=0&version=1.3.21.65&osversion=5.1&servicepack=Service%20Pack%202"
)


def _indicators(patterns: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"type": "indicator", "id": f"indicator--{name}", "pattern": pattern, "pattern_type": "stix"}
        for name, pattern in patterns.items()
    ]


def _match(patterns: dict[str, str], lines: list[bytes], forced: str | None = None) -> tuple[list[Any], Any]:
    """Alerts and reader statistics, after checking the fast path agrees with the full path."""
    outcomes = []
    for fast in (False, True):
        engine = DetectionEngine(IDENTITY)
        assert engine.load_indicators(_indicators(patterns)) == {"indexed": len(patterns)}
        reader = LogReader(MAPPINGS.values(), forced=forced)
        alerts = engine.line_matcher(reader).alerts(lines) if fast else engine.run(reader.events(lines), MAPPINGS)
        outcomes.append(([a.as_json() for a in alerts], reader.stats))
    assert outcomes[0] == outcomes[1]
    return outcomes[1]


def _hits(alerts: list[dict[str, Any]]) -> set[tuple[int, str, str]]:
    return {(a["line"], a["source"], a["indicator"].removeprefix("indicator--")) for a in alerts}


def _documents(name: str) -> list[bytes]:
    """An Elastic test file (a JSON array) as the JSON lines a shipper sends, one document a line."""
    return [orjson.dumps(document) for document in json.loads((FIXTURES / "ecs" / name).read_text("utf-8"))]


SURICATA_PATTERNS = {
    "irc-server": "[ipv4-addr:value = '78.40.125.4']",
    "irc-domain": "[domain-name:value = 'irc.freenode.net']",
    "nmap-page": "[file:hashes.MD5 = '70041821acf87389e40ddcb092004184']",
    "update-url": f"[url:value = '{URL}']",
    "update-agent": "[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent'"
    " = 'Google Update/1.3.21.65;winhttp']",
    "netbios-broadcast": "[network-traffic:dst_ref.value = '147.32.84.255' AND network-traffic:dst_port = 138]",
    "mx-lookup": "[domain-name:value = 'google.com']",
    "absent": "[domain-name:value = 'not-in-the-sample.example']",
}


def test_suricata_eve_sample_matches_planted_indicators() -> None:
    lines = (FIXTURES / "suricata" / "eve.json").read_bytes().splitlines()
    lines += (FIXTURES / "suricata" / "rrdata-eve.json").read_bytes().splitlines()
    alerts, stats = _match(SURICATA_PATTERNS, lines)
    assert _hits(alerts) == {
        (1, "suricata-alert", "irc-server"),
        (2, "suricata-dns", "irc-domain"),
        (3, "suricata-fileinfo", "nmap-page"),
        (4, "suricata-flow", "netbios-broadcast"),
        (5, "suricata-http", "update-url"),
        (5, "suricata-http", "update-agent"),
        (7, "suricata-dns", "mx-lookup"),
        (8, "suricata-dns", "mx-lookup"),
    }
    # Line 6 is a `netflow` record, which no shipped mapping reads; it is counted, not an error.
    assert (stats.lines, stats.skipped, stats.problem_count) == (8, 1, 0)
    # Suricata writes `+0200`: the DNS query happened at 12:55:22 UTC.
    dns = next(a for a in alerts if a["line"] == 2)
    assert dns["time"] == "2011-08-12T12:55:22.154Z"


def test_suricata_eve_sample_through_the_match_command(tmp_path: Path) -> None:
    bundle = tmp_path / "indicators.json"
    bundle.write_bytes(orjson.dumps(_indicators(SURICATA_PATTERNS)))
    result = kizuna(tmp_path / "node", "match", "--indicators", str(bundle), "--json",
                    "--alerts", str(tmp_path / "alerts.jsonl"), str(FIXTURES / "suricata" / "eve.json"))
    summary = json.loads(result.stdout)
    assert summary["hits"] == 6
    assert summary["sightings"] == 6  # one per indicator that hit (the sample spans 2011-08-12 to -14)
    written = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text("utf-8").splitlines()]
    assert {a["indicator"] for a in written} == {
        f"indicator--{name}" for name in SURICATA_PATTERNS if name not in {"mx-lookup", "absent"}
    }


def test_filebeat_ecs_sample_is_recognised_and_matched() -> None:
    patterns = {
        "berlin-client": "[ipv4-addr:value = '85.181.35.98']",
        # The log writes 2a03:0000:10ff:f00f:0000:0000:0:8000; the mapping gives the compressed form.
        "v6-client": "[ipv6-addr:value = '2a03:0:10ff:f00f::8000']",
        "ocelot": "[url:value = '/ocelot']",
        "cloudfront": "[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent'"
        " = 'Amazon CloudFront']",
        "absent": "[ipv4-addr:value = '192.0.2.99']",
    }
    alerts, stats = _match(patterns, _documents("filebeat-nginx-access-test.log-expected.json"))
    assert _hits(alerts) == {
        (1, "ecs", "ocelot"),
        (3, "ecs", "berlin-client"), (3, "ecs", "ocelot"),
        (4, "ecs", "berlin-client"), (4, "ecs", "ocelot"),
        (5, "ecs", "cloudfront"),
        (6, "ecs", "v6-client"),
    }
    assert (stats.lines, stats.skipped, stats.problem_count) == (7, 0, 0)
    assert next(a for a in alerts if a["line"] == 6)["time"] == "2016-12-30T06:47:09.000Z"


PACKETBEAT_PATTERNS = {
    "query": "[domain-name:value = 'www.example.com']",
    "page": "[url:value = 'http://www.example.com/']",
    "resolver": "[network-traffic:dst_ref.value = '8.8.8.8' AND network-traffic:dst_port = 53]",
    "curl": "[network-traffic:extensions.'http-request-ext'.request_method = 'GET']",
    "sni": "[domain-name:value = 'example.net']",
    "tcp": "[network-traffic:protocols[*] = 'tcp']",
}


def test_packetbeat_ecs_sample_matches_with_the_ecs_mapping_forced() -> None:
    lines = _documents("packetbeat-http_basic_auth-expected.json") + _documents(
        "packetbeat-established_tls-expected.json"
    )
    alerts, stats = _match(PACKETBEAT_PATTERNS, lines, forced="ecs")
    assert _hits(alerts) == {
        (1, "ecs", "query"), (1, "ecs", "resolver"),
        (2, "ecs", "query"), (2, "ecs", "page"), (2, "ecs", "curl"), (2, "ecs", "tcp"),
        (3, "ecs", "sni"), (3, "ecs", "tcp"),
    }
    assert (stats.lines, stats.skipped, stats.problem_count) == (3, 0, 0)
    # Packetbeat's test output has no `@timestamp`: the alerts carry no time (their sightings are
    # dated when they are matched), rather than a made-up one.
    assert all(a["time"] is None for a in alerts)


def test_packetbeat_documents_without_ecs_version_are_not_guessed() -> None:
    # The ECS mapping is chosen by `@timestamp` and `ecs.version`, which these test documents lack:
    # under automatic detection they are counted as unmapped, never matched by a wrong mapping.
    lines = _documents("packetbeat-http_basic_auth-expected.json")
    alerts, stats = _match(PACKETBEAT_PATTERNS, lines)
    assert alerts == []
    assert (stats.lines, stats.skipped, stats.problem_count) == (2, 2, 0)
