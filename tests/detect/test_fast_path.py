"""The fast path (compiled probes, see kizuna/detect/fast.py) must find exactly what the full path finds.

The full path maps every record to facts and objects (`LogReader.events` + `DetectionEngine.run`);
the fast path settles records that hit nothing without mapping them. Both run on the same lines
with fresh engines, and alerts, sightings and reader statistics must be identical.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kizuna.detect.engine import DetectionEngine
from kizuna.detect.intel import zeek_intel_indicators
from kizuna.detect.mappings import LogReader, shipped_mappings

ZEEK = Path(__file__).parent / "fixtures" / "zeek"
LOGS = ["dns.log", "http.log", "files.log", "ssl.log"] + [
    f"json/{n}.log" for n in ("conn", "dns", "http", "files", "ssl")
]
IDENTITY = "identity--00000000-0000-4000-8000-000000000000"
MD5 = hashlib.md5(b"kizuna").hexdigest()
MAPPINGS = shipped_mappings()  # mappings hold no state; readers and engines do

IOC_PATTERNS = [
    "[ipv4-addr:value = '10.0.0.1']",
    "[ipv6-addr:value = '2001:db8::1']",
    "[domain-name:value = 'evil.example']",
    "[url:value = 'http://evil.example/x']",
    f"[file:hashes.MD5 = '{MD5}']",
    "[network-traffic:src_ref.value = '10.0.0.2']",
    "[network-traffic:protocols[*] = 'udp']",
    "[x509-certificate:hashes.'SHA-1' = 'abc']",
    "[network-traffic:extensions.'http-request-ext'.request_method = 'POST']",
]
COMPLEX_PATTERNS = [
    "[ipv4-addr:value ISSUBSET '10.1.0.0/16']",
    "[domain-name:value LIKE '%.bad.com']",
    "[url:value MATCHES '^http://evil']",
    "[ipv4-addr:value = '10.0.0.1'] FOLLOWEDBY [domain-name:value = 'evil.example']",
    "[file:name = 'a.exe' AND file:size > 10]",
]
GENERIC_PATTERNS = [
    "[network-traffic:dst_port > 1000]",  # a scan list: no structure can anchor it
    "[network-traffic:protocols[0] = 'tcp']",  # a path no mapping produces directly
]


def _indicators(patterns: list[str]) -> list[dict[str, Any]]:
    return [
        {"type": "indicator", "id": f"indicator--{n:04d}", "pattern": p, "pattern_type": "stix"}
        for n, p in enumerate(patterns)
    ]


def _engine(indicators: list[dict[str, Any]]) -> DetectionEngine:
    engine = DetectionEngine(IDENTITY)
    counts = engine.load_indicators(indicators)
    assert counts == {"indexed": len(indicators)}
    return engine


def _sightings(engine: DetectionEngine) -> list[dict[str, Any]]:
    # Events without a timestamp are counted at the time they are matched, which differs between
    # the two runs; everything else about the sightings must agree.
    varying = {"id", "first_seen", "last_seen"}
    return [
        {k: v for k, v in s.items() if k not in varying}
        for s in engine.aggregator.sightings(created=1_700_000_000.0)
    ]


def _both_paths(indicators: list[dict[str, Any]], lines: list[Any]) -> tuple[Any, Any, int]:
    mappings = MAPPINGS
    full_engine, fast_engine = _engine(indicators), _engine(indicators)
    full_reader, fast_reader = LogReader(mappings.values()), LogReader(mappings.values())
    full = [a.as_json() for a in full_engine.run(full_reader.events(lines), mappings)]
    matcher = fast_engine.line_matcher(fast_reader)
    fast = [a.as_json() for a in matcher.alerts(lines)]
    full_state = (full, full_reader.stats, full_engine.hits, full_engine.events_seen, _sightings(full_engine))
    fast_state = (fast, fast_reader.stats, fast_engine.hits, fast_engine.events_seen, _sightings(fast_engine))
    return full_state, fast_state, matcher.fast_events


def _zeek_lines() -> list[str]:
    lines: list[str] = []
    for name in LOGS:
        # One reader per file in the full path too: concatenating keeps TSV headers in force
        # across files, which both paths must handle the same way.
        lines.extend((ZEEK / name).read_text("utf-8").splitlines())
    return lines


def _zeek_intel() -> list[dict[str, Any]]:
    rows = (ZEEK / "intel_example.intel").read_text("utf-8").splitlines()
    rows += (ZEEK / "demo.intel").read_text("utf-8").splitlines()
    return list(zeek_intel_indicators(rows))


@pytest.mark.parametrize("extra", [[], COMPLEX_PATTERNS, COMPLEX_PATTERNS + GENERIC_PATTERNS])
def test_fast_path_equals_full_path_on_real_zeek_logs(extra: list[str]) -> None:
    indicators = _zeek_intel() + _indicators(extra)
    full, fast, settled = _both_paths(indicators, _zeek_lines())
    assert fast == full
    assert full[2] > 0  # the demo intel values do occur in the sample
    if not extra:
        assert settled > 0.9 * full[3]  # with IOCs only, almost every event is settled by its probe


def test_fast_path_as_bytes_and_text_agree() -> None:
    lines = _zeek_lines()
    indicators = _zeek_intel() + _indicators(IOC_PATTERNS)
    text = _both_paths(indicators, lines)
    raw = _both_paths(indicators, [line.encode() for line in lines])
    assert text[0] == text[1] == raw[0] == raw[1]


def test_probes_follow_index_changes_between_lines() -> None:
    mappings = MAPPINGS
    engine = _engine(_indicators(["[domain-name:value = 'evil.example']"]))
    matcher = engine.line_matcher(LogReader(mappings.values()))
    line = orjson.dumps({"ts": 1.0, "id.orig_h": "10.9.9.9", "query": "evil.example", "id.resp_h": "1.1.1.1"})
    other = orjson.dumps({"ts": 2.0, "id.orig_h": "10.9.9.9", "query": "late.example", "id.resp_h": "1.1.1.1"})
    found = []
    for alert in matcher.alerts([line, other, other]):
        found.append(alert.line)
        # Added while the matcher is suspended on an alert: the next lines must see it.
        engine.index.add(
            {"type": "indicator", "id": "indicator--late", "pattern": "[domain-name:value = 'late.example']"}
        )
    assert found == [1, 2, 3]


# --- generated records ----------------------------------------------------------------------------

POOL = [
    "10.0.0.1", "10.0.0.2", "10.1.200.3", "2001:db8::1", "192.0.2.7", "evil.example", "mail.bad.com",
    "benign.example", "http://evil.example/x", "/x", "evil.example/x", MD5, "abc", "udp", "tcp", "POST",
    "GET", "a.exe", "", "∂.example",
]
FIELDS = sorted(
    {
        source if isinstance(source, str) else source.get("field", "")
        for mapping in MAPPINGS.values()
        for spec in mapping.objects
        for source in spec.sources
        if isinstance(source, str) or "field" in source
    }
    | {"host", "uri", "http.hostname", "http.url", "event_type", "ts", "timestamp", "@timestamp"}
)
SIGNATURES = [(m.signature, m.where) for m in MAPPINGS.values()]

scalars = st.one_of(
    st.sampled_from(POOL),
    st.none(),
    st.integers(-5, 70000),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.sampled_from(POOL), scalars, max_size=2))
# Times a STIX timestamp cannot hold (beyond the years 1-9999, NaN) must be bad lines on both paths.
# They used to reach the sighting writer and crash it; the generator met them only now and then (a
# 32-bit float in a "ts" field), which made this test fail intermittently. They are drawn on purpose now.
OUT_OF_RANGE_TIMES = [253402318800.0, 1e300, -1e20, "NaN", "1e400", "9999-12-31T23:00:00-05:00",
                      "0001-01-01T00:00:00+01:00"]
times = st.one_of(
    st.floats(1e9, 2e9),
    st.integers(0, 2_000_000_000),
    st.sampled_from(["1600000000.5", "not a time", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00.000000+0000", ""]),
    st.sampled_from(OUT_OF_RANGE_TIMES),
    st.none(),
)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    signature, where = draw(st.sampled_from(SIGNATURES))
    record: dict[str, Any] = {name: draw(st.one_of(st.sampled_from(POOL), values)) for name in signature}
    if draw(st.booleans()):
        record.update(where)
    record.update(draw(st.dictionaries(st.sampled_from(FIELDS), values, max_size=8)))
    for stamp in ("ts", "timestamp", "@timestamp"):
        if draw(st.booleans()):
            record[stamp] = draw(times)
    if draw(st.booleans()) and "." in (name := draw(st.sampled_from(FIELDS))):
        # The same field written as a nested object, as ECS and Suricata do.
        head, _, rest = name.partition(".")
        record[head] = {rest: draw(values)}
    return record


@st.composite
def lines(draw: st.DrawFn) -> list[Any]:
    out: list[Any] = []
    for record in draw(st.lists(records(), min_size=1, max_size=12)):
        line = orjson.dumps(record)
        kind = draw(st.sampled_from(["bytes", "text", "spaced", "newline"]))
        out.append(
            line if kind == "bytes"
            else line.decode() if kind == "text"
            else b"  " + line if kind == "spaced"
            else line + b"\n"
        )
    junk_lines = [b"", b"   ", b"{bad", b"[1]", b"#comment", '{"ts": 1', b"{\xff}"]
    junk = draw(st.lists(st.sampled_from(junk_lines), max_size=3))
    for item in junk:
        out.insert(draw(st.integers(0, len(out))), item)
    return out


@pytest.mark.parametrize(
    "patterns",
    [IOC_PATTERNS, IOC_PATTERNS + COMPLEX_PATTERNS, IOC_PATTERNS + COMPLEX_PATTERNS + GENERIC_PATTERNS],
    ids=["ioc", "complex", "generic"],
)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=lines())
@example(data=[b'{"id.orig_h":"10.0.0.1","query":"10.0.0.1","ts":253402316800.0}'])  # found by the generator
@example(data=[b'{"id.orig_h":"10.0.0.1","query":"evil.example","ts":6.77680384007209e+16}'])
def test_fast_path_equals_full_path_on_generated_records(patterns: list[str], data: list[Any]) -> None:
    full, fast, _settled = _both_paths(_indicators(patterns), data)
    assert fast == full


@pytest.mark.parametrize("stamp", OUT_OF_RANGE_TIMES)
def test_out_of_range_times_are_bad_lines_on_both_paths(stamp: Any) -> None:
    zeek = {"ts": stamp, "id.orig_h": "10.0.0.1", "id.resp_h": "10.0.0.2", "query": "evil.example"}
    suricata = {"timestamp": stamp, "event_type": "dns", "src_ip": "10.0.0.1", "dns": {"rrname": "evil.example"}}
    data = [orjson.dumps({"ts": 1.0, **{k: v for k, v in zeek.items() if k != "ts"}}), orjson.dumps(zeek),
            orjson.dumps(suricata)]
    full, fast, _settled = _both_paths(_indicators(IOC_PATTERNS), data)
    assert fast == full
    alerts, stats = full[0], full[1]
    assert {a["line"] for a in alerts} == {1}
    assert [p.line for p in stats.problems] == [2, 3]
