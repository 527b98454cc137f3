"""Zeek TSV rows on the fast path (kizuna/detect/fast_tsv.py) find exactly what reading them whole finds.

Three runs on the same lines, each with a fresh engine and reader: the full path (every row mapped,
`LogReader.events`), the route before compiled row readers (every row read whole, then probed:
`LineMatcher(tsv_rows=False)`) and the fast path. Alerts, sightings and reader statistics must be
identical, on the real Zeek logs of the zat project and on generated headers and rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kizuna.detect.engine import DetectionEngine
from kizuna.detect.fast import LineMatcher
from kizuna.detect.intel import zeek_intel_indicators
from kizuna.detect.mappings import LogReader, shipped_mappings

ZEEK = Path(__file__).parent / "fixtures" / "zeek"
TSV_LOGS = ["dns.log", "http.log", "files.log", "ssl.log"]
IDENTITY = "identity--00000000-0000-4000-8000-000000000000"
MAPPINGS = shipped_mappings()

PATTERNS = [
    "[ipv4-addr:value = '10.0.0.1']",
    "[domain-name:value = 'evil.example']",
    "[url:value = 'http://evil.example/x']",
    "[network-traffic:src_ref.value = '10.0.0.2']",
    "[ipv4-addr:value ISSUBSET '10.1.0.0/16']",
    "[domain-name:value LIKE '%.bad.com']",
    "[file:hashes.MD5 = '0cc175b9c0f1b6a831c399e269772661']",
]


# zeek-http has no `protocols`: with this indicator its rows always take the full path (see
# `DetectionEngine.needs_generic_facts`), so it is in the generated tests only.
GENERIC = "[network-traffic:protocols[*] = 'udp']"


def _indicators(patterns: list[str]) -> list[dict[str, Any]]:
    return [
        {"type": "indicator", "id": f"indicator--{n:04d}", "pattern": p, "pattern_type": "stix"}
        for n, p in enumerate(patterns)
    ]


def _engine(indicators: list[dict[str, Any]]) -> DetectionEngine:
    engine = DetectionEngine(IDENTITY)
    engine.load_indicators(indicators)
    return engine


def _state(engine: DetectionEngine, reader: LogReader, alerts: list[Any]) -> tuple[Any, ...]:
    sightings = [
        {k: v for k, v in s.items() if k not in {"id", "first_seen", "last_seen"}}
        for s in engine.aggregator.sightings(created=1_700_000_000.0)
    ]
    return ([a.as_json() for a in alerts], reader.stats, engine.hits, engine.events_seen, sightings)


def _three_ways(indicators: list[dict[str, Any]], lines: list[Any]) -> tuple[Any, Any, Any, LineMatcher]:
    full_engine, full_reader = _engine(indicators), LogReader(MAPPINGS.values())
    full = _state(full_engine, full_reader, list(full_engine.run(full_reader.events(lines), MAPPINGS)))
    runs = []
    for tsv_rows in (False, True):
        engine, reader = _engine(indicators), LogReader(MAPPINGS.values())
        matcher = LineMatcher(engine, reader, tsv_rows=tsv_rows)
        runs.append((_state(engine, reader, list(matcher.alerts(lines))), matcher))
    return full, runs[0][0], runs[1][0], runs[1][1]


def _zeek_intel() -> list[dict[str, Any]]:
    rows = (ZEEK / "intel_example.intel").read_text("utf-8").splitlines()
    rows += (ZEEK / "demo.intel").read_text("utf-8").splitlines()
    return list(zeek_intel_indicators(rows))


@pytest.mark.parametrize("as_bytes", [False, True], ids=["text", "bytes"])
@pytest.mark.parametrize("name", TSV_LOGS)
def test_real_zeek_tsv_rows_settle_without_being_read_whole(name: str, as_bytes: bool) -> None:
    text = (ZEEK / name).read_text("utf-8").splitlines()
    lines: list[Any] = [line.encode() for line in text] if as_bytes else text
    rows = sum(1 for line in text if line and not line.startswith("#"))
    full, old, new, matcher = _three_ways(_zeek_intel() + _indicators(PATTERNS), lines)
    assert new == old == full
    # A row that hits is read whole; the others are settled by the compiled reader unless the
    # probe cannot rule them out (say, a LIKE candidate that the evaluator then refuses).
    hit_rows = {a["line"] for a in new[0]}
    assert 0 < matcher.fast_rows <= rows - len(hit_rows)


def test_real_zeek_tsv_hits_are_found_on_the_fast_path() -> None:
    # demo.intel plants guyspy.com (http.log, dns.log) among the zat sample's values.
    lines = [line for name in TSV_LOGS for line in (ZEEK / name).read_text("utf-8").splitlines()]
    full, _old, new, matcher = _three_ways(_zeek_intel(), lines)
    assert new == full
    hit_lines = {(a["source"], a["line"]) for a in new[0]}
    assert ("zeek-dns", 9) in hit_lines
    assert any(source == "zeek-http" for source, _ in hit_lines)
    assert matcher.fast_rows > 0.9 * sum(1 for line in lines if line and not line.startswith("#"))


def test_header_changes_between_rows_rebuild_the_row_reader() -> None:
    header = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-", "#path\tdns"]
    first = [*header, "#fields\tts\tid.orig_h\tquery", "#types\ttime\taddr\tstring", "1.0\t10.9.9.9\tevil.example"]
    # The same columns in another order: a reader compiled for the first header would miss the hit.
    second = ["#fields\tquery\tts\tid.orig_h", "#types\tstring\ttime\taddr", "evil.example\t2.0\t10.9.9.9"]
    full, old, new, _matcher = _three_ways(_indicators(PATTERNS), first + second)
    assert new == old == full
    assert [a["line"] for a in new[0]] == [8, 11]


# --- generated headers and rows -------------------------------------------------------------------

COLUMNS = ["ts", "id.orig_h", "id.resp_h", "id.orig_p", "proto", "query", "host", "uri", "method",
           "fuid", "seen_bytes", "md5", "tx_hosts", "uid", "id", "id.orig_h"]
KINDS = ["time", "addr", "string", "count", "port", "enum", "set[addr]", "vector[string]", "bool", "double",
         "int", "interval", "table[string]"]
CELLS = ["-", "(empty)", "10.0.0.1", "10.0.0.2", "10.1.3.4", "evil.example", "x.bad.com", "udp", "/x",
         "1600000000.5", "1e400", "nan", "-12", "12", "T", "F", "10.0.0.1,10.0.0.2", "", "∂",
         "0cc175b9c0f1b6a831c399e269772661", "253402318800.0", "GET", "evil.example,udp"]


@st.composite
def tsv_logs(draw: st.DrawFn) -> list[Any]:
    path = draw(st.sampled_from(["conn", "dns", "http", "files", "ssl", "weird"]))
    fields = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=8))
    types = [draw(st.sampled_from(KINDS)) for _ in fields][: draw(st.integers(0, len(fields)))]
    lines: list[Any] = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-",
                        f"#path\t{path}", "#fields\t" + "\t".join(fields)]
    if types:
        lines.append("#types\t" + "\t".join(types))
    for _ in range(draw(st.integers(1, 8))):
        width = len(fields) + draw(st.sampled_from([0, 0, 0, 0, -1, 1]))
        row = "\t".join(draw(st.sampled_from(CELLS)) for _ in range(max(width, 1)))
        shape = draw(st.sampled_from(["plain", "crlf", "lead", "bad-utf8"]))
        lines.append(
            row if shape == "plain" else row + "\r\n" if shape == "crlf" else " " + row if shape == "lead"
            else row.encode() + b"\xe2\t\xff"
        )
    as_bytes = draw(st.booleans())
    return [line.encode() if as_bytes and isinstance(line, str) else line for line in lines]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=tsv_logs())
@example(lines=["#separator \\x09", "#path\tdns", "#fields\tquery\tquery", "#types\tstring\tstring",
                "evil.example\t-", "-\tevil.example"])
def test_generated_tsv_logs_agree_on_all_three_paths(lines: list[Any]) -> None:
    full, old, new, _matcher = _three_ways(_indicators([*PATTERNS, GENERIC]), lines)
    assert new == old == full
