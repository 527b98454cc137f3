"""A pattern's constants are compared in the form log values reach the matcher in: a DNS name in lower case
without the final dot, an IPv6 address compressed (docs/detection.md, "Names and addresses are compared in
one form"). An indicator imported from another tool, written `'EVIL.Example.COM'` or with an IPv6 address in
full, matches the logs that name that domain or address, on the full path, the fast path and observed data
alike, and its pattern is kept as written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kizuna.detect.compiler import compile_pattern
from kizuna.detect.engine import DetectionEngine
from kizuna.detect.evaluate import matches
from kizuna.detect.mappings import LogReader, shipped_mappings
from kizuna.detect.observations import observations_from_stix

IDENTITY = "identity--00000000-0000-4000-8000-000000000000"
MAPPINGS = shipped_mappings()


def _dns(query: str, orig: str) -> str:
    return json.dumps({"ts": 1_700_000_000.0, "uid": "C1", "id.orig_h": orig, "id.orig_p": 5353,
                       "id.resp_h": "192.0.2.53", "id.resp_p": 53, "proto": "udp", "query": query})


LINES = [
    _dns("evil.example.com", "192.0.2.1"),  # 1
    _dns("EVIL.EXAMPLE.COM.", "192.0.2.1"),  # 2: the log's own case and final dot
    _dns("good.example.com", "2001:DB8:0:0:0:0:0:1"),  # 3: an IPv6 address in full
    _dns("good.example.com", "192.0.2.7"),  # 4
]

#: pattern -> the lines it hits
CASES = {
    "[domain-name:value = 'EVIL.Example.COM']": {1, 2},
    "[domain-name:value = 'evil.example.com.']": {1, 2},
    "[ipv6-addr:value = '2001:0DB8:0000:0000:0000:0000:0000:0001']": {3},
    "[domain-name:value = 'EVIL.Example.COM' OR ipv6-addr:value = '2001:DB8::1']": {1, 2, 3},
    "[domain-name:value IN ('EVIL.Example.COM', 'nothing.example')]": {1, 2},
    "[ipv6-addr:value IN ('2001:DB8::1', '2001:db8::99')]": {3},
    "[domain-name:value != 'EVIL.Example.COM']": {3, 4},
    "[domain-name:value NOT = 'Evil.Example.Com.']": {3, 4},
    "[domain-name:value = 'EVIL.Example.COM' AND domain-name:value LIKE '%.com']": {1, 2},
    "[domain-name:value LIKE 'EVIL.%']": {1, 2},
    "[domain-name:value NOT LIKE 'EVIL.%']": {3, 4},
    "[domain-name:value MATCHES '^EVIL\\\\.Example']": {1, 2},
    "[ipv6-addr:value ISSUBSET '2001:0DB8:0000::/32']": {3},
    "[ipv6-addr:value ISSUPERSET '2001:0DB8:0000:0000:0000:0000:0000:0001']": {3},
    "[domain-name:value = 'EVIL.Example.COM'] AND [ipv6-addr:value = '2001:0DB8::0001']": {3},
}


def _engine(pattern: str) -> DetectionEngine:
    engine = DetectionEngine(IDENTITY)
    indicator = {"type": "indicator", "id": "indicator--00000000-0000-4000-8000-000000000001",
                 "pattern": pattern, "pattern_type": "stix"}
    assert engine.load_indicators([indicator]) == {"indexed": 1}
    return engine


@pytest.mark.parametrize("pattern", CASES)
def test_constants_are_compared_in_the_form_of_log_values(pattern: str) -> None:
    engine = _engine(pattern)
    full = {a.line for a in engine.run(LogReader(MAPPINGS.values()).events(LINES), MAPPINGS)}
    assert full == CASES[pattern]
    fast_engine = _engine(pattern)
    fast = {a.line for a in fast_engine.line_matcher(LogReader(MAPPINGS.values())).alerts(LINES)}
    assert fast == CASES[pattern]


def _observed(value_type: str, value: str) -> list[dict[str, Any]]:
    sco = {"type": value_type, "spec_version": "2.1", "id": f"{value_type}--00000000-0000-4000-8000-0000000000aa",
           "value": value}
    return [sco, {"type": "observed-data", "spec_version": "2.1",
                  "id": "observed-data--00000000-0000-4000-8000-0000000000bb",
                  "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
                  "first_observed": "2024-01-01T00:00:00Z", "last_observed": "2024-01-01T00:00:00Z",
                  "number_observed": 1, "object_refs": [sco["id"]]}]


@pytest.mark.parametrize(("value_type", "value"), [
    ("domain-name", "Evil.EXAMPLE.com."), ("domain-name", "evil.example.com"), ("domain-name", "EVIL.Example.COM"),
    ("ipv6-addr", "2001:DB8::1"), ("ipv6-addr", "2001:0db8:0000:0000:0000:0000:0000:0001"),
])
def test_observed_data_is_compared_in_the_same_form(value_type: str, value: str) -> None:
    """Observed data submitted over HTTP or with --observed-data is not a log mapping's output: its names and
    addresses are put in the same form before they are compared, by the reference evaluator as by the index."""
    patterns = {"domain-name": ["[domain-name:value = 'evil.example.com']", "[domain-name:value = 'EVIL.Example.COM']",
                                "[domain-name:value LIKE 'EVIL.%']"],
                "ipv6-addr": ["[ipv6-addr:value = '2001:db8::1']",
                              "[ipv6-addr:value = '2001:0DB8:0000:0000:0000:0000:0000:0001']"]}[value_type]
    for pattern in patterns:
        assert matches(compile_pattern(pattern), observations_from_stix(_observed(value_type, value))), pattern
        assert [a.line for a in _engine(pattern).submit_observed_data(_observed(value_type, value))] == [None]
    different = "[domain-name:value = 'evil.example.org']" if value_type == "domain-name" else \
        "[ipv6-addr:value = '2001:db8::2']"
    assert not matches(compile_pattern(different), observations_from_stix(_observed(value_type, value)))
    assert _engine(different).submit_observed_data(_observed(value_type, value)) == []


def test_the_pattern_is_kept_as_written() -> None:
    """Only the compiled matcher holds the canonical constants; the indicator's pattern is not rewritten."""
    pattern = "[domain-name:value = 'EVIL.Example.COM']"
    assert compile_pattern(pattern).text == pattern
    assert compile_pattern(pattern, allow_fast_path=False).text == pattern
    engine = _engine(pattern)
    list(engine.run(LogReader(MAPPINGS.values()).events(LINES[:1]), MAPPINGS))
    sightings = engine.aggregator.sightings(created=1_700_000_000.0)
    assert [s["sighting_of_ref"] for s in sightings] == ["indicator--00000000-0000-4000-8000-000000000001"]


def test_other_properties_keep_their_case() -> None:
    """Only names and addresses have one form: a URL or a file name is compared exactly as written."""
    line = json.dumps({"ts": 1_700_000_000.0, "uid": "C2", "id.orig_h": "192.0.2.1", "id.orig_p": 50000,
                       "id.resp_h": "192.0.2.9", "id.resp_p": 80, "trans_depth": 1, "method": "GET",
                       "host": "evil.example.com", "uri": "/Payload.exe"})
    for pattern, hits in (("[url:value = 'http://evil.example.com/Payload.exe']", 1),
                          ("[url:value = 'http://evil.example.com/payload.exe']", 0),
                          ("[url:value = 'HTTP://EVIL.EXAMPLE.COM/Payload.exe']", 0)):
        engine = _engine(pattern)
        assert len(list(engine.run(LogReader(MAPPINGS.values()).events([line]), MAPPINGS))) == hits, pattern


IDN_LINES = [
    _dns("xn--bcher-evil-9db.de", "192.0.2.1"),  # 1: as a DNS log writes an international name
    _dns("BÜCHER-EVIL.de", "192.0.2.1"),  # 2: as a proxy or an analyst's log may write it
    _dns("buecher-evil.de", "192.0.2.1"),  # 3: another name
]


@pytest.mark.parametrize("pattern", ["[domain-name:value = 'bücher-evil.de']",
                                     "[domain-name:value = 'xn--bcher-evil-9db.de']",
                                     "[domain-name:value IN ('Bücher-Evil.DE', 'other.example')]"])
def test_an_international_name_matches_in_either_spelling(pattern: str) -> None:
    """`kizuna import` keeps an IDN as it was written, Unicode or punycode, and a DNS log writes its A-label: an
    indicator written in Unicode matched no DNS log naming the domain. Both sides are compared as A-labels."""
    full = {a.line for a in _engine(pattern).run(LogReader(MAPPINGS.values()).events(IDN_LINES), MAPPINGS)}
    fast = {a.line for a in _engine(pattern).line_matcher(LogReader(MAPPINGS.values())).alerts(IDN_LINES)}
    assert full == fast == {1, 2}
    observed = observations_from_stix(_observed("domain-name", "xn--bcher-evil-9db.de"))
    assert matches(compile_pattern(pattern), observed)
