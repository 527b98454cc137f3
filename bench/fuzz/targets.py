"""Fuzz targets for every parser that reads input from outside the node.

Each target takes arbitrary bytes and feeds them to one parser the way the node does. The parser
may refuse the input only with the error it documents (a STIX problem string, BundleSyntaxError,
FormatError, PatternError, a counted bad log line); any other exception escaping a target is a
crash: atheris saves the input, and tests/hostile/test_fuzz.py replays it forever after.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache
from typing import Any

# Each target imports its parser itself: an atheris process then instruments and loads only the
# modules its target reaches (the MISP converter alone takes seconds to import).

_NOW = "2026-01-01T00:00:00.000Z"  # fixed, so that a replayed crash takes the same path


def stix_bundle(data: bytes) -> None:
    """A bundle file as `kizuna import` streams it, and the same bytes as a TAXII POST body."""
    from kizuna.core.errors import KizunaError
    from kizuna.core.ingest import parse_envelope, prepare
    from kizuna.stix.bundle_stream import BundleSyntaxError, iter_bundle_objects

    try:
        for _, obj in iter_bundle_objects(io.BytesIO(data), "fuzz", chunk_size=64):
            prepare(obj)
    except BundleSyntaxError:
        pass
    try:
        for obj in parse_envelope(data):
            prepare(obj)
    except KizunaError:
        pass


def stix_pattern(data: bytes) -> None:
    """A pattern as an indicator carries it: validated, and compiled for matching when valid."""
    from kizuna.detect.compiler import compile_pattern
    from kizuna.detect.errors import PatternError
    from kizuna.stix.patterns import stix_pattern_problem

    text = data.decode("utf-8", "replace")
    if stix_pattern_problem(text) is None:
        try:
            compile_pattern(text)
        except PatternError:
            pass


@cache
def _mappings() -> list[Any]:
    from kizuna.detect.mappings import shipped_mappings

    return list(shipped_mappings().values())


def log_lines(data: bytes) -> None:
    """Zeek (JSON or TSV with its header), Suricata EVE and ECS lines, each mapping picked by its fields."""
    from kizuna.detect.mappings import LogReader

    reader = LogReader(_mappings())
    for _ in reader.events(data.splitlines()):
        pass


def misp_event(data: bytes) -> None:
    """A MISP event document as `kizuna import` and a MISP feed partner read it."""
    from kizuna.formats.base import FormatError
    from kizuna.formats.misp_in import read_misp

    try:
        read_misp(data, "fuzz.json")
    except FormatError:
        pass


def csv_iocs(data: bytes) -> None:
    """A CSV or text IOC list; bad lines are rejected one by one, an unreadable file is a FormatError."""
    from kizuna.formats.base import FormatError
    from kizuna.formats.ioc_lists import read_ioc_list

    try:
        read_ioc_list(io.BytesIO(data), "fuzz.csv", warninglists=None, now=_NOW)
    except FormatError:
        pass


def sigma_rule(data: bytes) -> None:
    """A Sigma rule as an indicator's pattern: pySigma reads it at ingest; any failure must come back as a
    reason (a string), never as an exception out of validation."""
    from kizuna.stix.patterns import foreign_pattern_problem

    text = data.decode("utf-8", "replace")
    problem = foreign_pattern_problem.__wrapped__("sigma", text)  # past the cache: every input parsed
    assert problem is None or (isinstance(problem, str) and problem), problem


def yara_rule(data: bytes) -> None:
    """A YARA rule as an indicator's pattern: checked at ingest, then compiled by `kizuna match --yara`
    together with the other indicators' rules (a bad one is left out, the rest still compile)."""
    from kizuna.detect.yara_scan import YaraScan
    from kizuna.stix.patterns import foreign_pattern_problem

    text = data.decode("utf-8", "replace")
    problem = foreign_pattern_problem.__wrapped__("yara", text)
    assert problem is None or (isinstance(problem, str) and problem), problem
    scan = YaraScan("identity--8f7e3a4c-5b6d-4e2f-9a1b-0c3d5e7f9a2b")
    good = "rule kizuna_fuzz_neighbour { strings: $a = \"kizuna\" condition: $a }"
    scan.load([_yara_indicator(1, text), _yara_indicator(2, good)])
    rules = scan.compile()
    assert rules is not None, "a bad rule took its neighbour down with it"
    # Ingest and the scanner agree on what compiles (a rule-less source compiles, but is refused at ingest).
    refused_at_ingest = problem is not None and problem.startswith("YARA rule does not compile")
    assert refused_at_ingest == (_yara_id(1) in scan.invalid), (problem, scan.invalid)


def _yara_id(number: int) -> str:
    return f"indicator--00000000-0000-4000-8000-{number:012d}"


def _yara_indicator(number: int, pattern: str) -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "id": _yara_id(number), "created": _NOW, "modified": _NOW,
            "pattern_type": "yara", "pattern": pattern, "valid_from": _NOW}


#: The observable kinds a Suricata feed writes rules for, picked by the input's first byte.
_SURICATA_KINDS = ("domain-name", "url", "ipv4-addr", "ipv6-addr")
#: One option of a written rule: a keyword, optionally a quoted argument free of quotes and semicolons
#: (content bytes that could end it are |hex| escaped) or a bare one, then the semicolon.
_SURICATA_OPTION = r'([a-z][a-z0-9_.]*)(?::(?:"[^";\\]*"|[^";()]*))?;'
#: Every keyword the writer uses: any other one in a rule was smuggled in by a value.
_SURICATA_KEYWORDS = frozenset({
    "msg", "target", "dns.query", "dotprefix", "content", "nocase", "endswith", "startswith", "flow", "tls.sni",
    "http.host", "http.uri.raw", "fast_pattern", "ja3.hash", "classtype", "sid", "rev", "metadata",
})


def suricata_rule(data: bytes) -> None:
    """An indicator's observable value, as a partner sends it, through the Suricata rules feed: every
    rule written must stay one rule on one line whose options all close where they should, so no value
    can end an option or the rule early and smuggle in options of its own."""
    import re

    from kizuna.formats.suricata import write_suricata

    kind = _SURICATA_KINDS[data[0] % len(_SURICATA_KINDS)] if data else "domain-name"
    value = data[1:].decode("utf-8", "replace").replace("\\", "\\\\").replace("'", "\\'")
    indicator = {"type": "indicator", "spec_version": "2.1", "id": _yara_id(3), "created": _NOW, "modified": _NOW,
                 "pattern_type": "stix", "pattern": f"[{kind}:value = '{value}']", "valid_from": _NOW}
    option = re.compile(_SURICATA_OPTION)
    for rule in write_suricata([indicator]):
        assert rule.endswith(")\n") and rule.count("\n") == 1, rule
        header, paren, options = rule[:-2].partition(" (")
        assert paren and "(" not in header and ")" not in header, rule
        assert not option.sub("", options).strip(), rule
        keywords = {found.group(1) for found in option.finditer(options)}
        assert keywords <= _SURICATA_KEYWORDS, (rule, keywords - _SURICATA_KEYWORDS)
        assert sum(found.group(1) == "sid" for found in option.finditer(options)) == 1, rule


def shared_suricata_rule(data: bytes) -> None:
    """A partner's Snort/Suricata rules as an indicator's pattern, through the Suricata rules feed: every
    rule written is one alert on one line that reads back as it was written, keeps the partner's options
    (but sid, rev, gid) in order, has exactly one sid and none of the keywords that act on the sensor; a
    line that is no rule becomes a loss, never an exception."""
    from suricataparser import parse_rule

    from kizuna.formats.base import ConversionReport
    from kizuna.formats.suricata import _REPLACED, _SENSOR_ACTIONS, _read_rule, write_suricata

    text = data.decode("utf-8", "replace")
    indicator = {"type": "indicator", "spec_version": "2.1", "id": _yara_id(4), "created": _NOW, "modified": _NOW,
                 "pattern_type": "suricata", "pattern": text, "valid_from": _NOW}
    report = ConversionReport("suricata")
    for rule in write_suricata([indicator], report=report):
        assert rule.endswith(")\n") and rule.count("\n") == 1, rule
        written = parse_rule(rule)
        assert written is not None and written.action == "alert", rule
        names = [option.name for option in written.options]
        assert names.count("sid") == 1 and not set(names) & _SENSOR_ACTIONS, rule
        assert str(written) + "\n" == rule, rule
        sources = [_read_rule(line.strip()) for line in text.splitlines()]
        partner = [(o.name, str(o.value or "")) for o in written.options
                   if o.name not in _REPLACED and o.name not in ("metadata", "classtype")]
        assert any(source is not None and partner == [
            (o.name, str(o.value or "")) for o in source.options
            if o.name not in _REPLACED and o.name not in ("metadata", "classtype")] for source in sources), rule
    assert all(isinstance(loss.reason, str) and loss.reason for loss in report.losses)


def hash_list(data: bytes) -> None:
    """A hash list (text, CSV, ThreatExchange/HMA export, vPDQ frames) as `kizuna hashes import|match` read
    it: every line an entry or a rejection with its reason, never an exception."""
    from kizuna.hashes.hashlists import Entry, Rejected, looks_like_hash_list, read_hash_list

    looks_like_hash_list(data[:4096], "fuzz.txt")
    for kind in ("auto", "pdq"):
        for item in read_hash_list(data.decode("utf-8", "replace"), kind):
            assert isinstance(item, Entry | Rejected), item
            assert not isinstance(item, Rejected) or (isinstance(item.reason, str) and item.reason), item


def zeek_intel(data: bytes) -> None:
    """A Zeek Intel file as `kizuna match --zeek-intel` reads it: each indicator it yields must be one that
    ingest would store (a bad line is skipped, never turned into an indicator that is not STIX)."""
    from kizuna.detect.intel import zeek_intel_indicators
    from kizuna.stix.validation import check_object

    for indicator in zeek_intel_indicators(data.decode("utf-8", "replace").splitlines()):
        problem = check_object(indicator)
        assert problem is None, (problem, indicator)


def mapping_file(data: bytes) -> None:
    """A `--mapping-file` as `kizuna match` loads it (a bad one is refused with ValueError, KeyError or
    TypeError, as the command reports it), then a log line read through it: counted, never an exception."""
    import json

    from kizuna.detect.mappings import LogReader, load_mapping

    try:
        spec = json.loads(data.decode("utf-8", "replace"))
        mappings = load_mapping(spec if isinstance(spec, dict | list) else {})
    except (ValueError, KeyError, TypeError):
        return
    reader = LogReader(mappings)
    for _ in reader.events([b'{"ts": 1575413122.5, "query": "guyspy.com", "host": "a.example", "uri": "/x"}']):
        pass


TARGETS: dict[str, Callable[[bytes], None]] = {
    "stix_bundle": stix_bundle,
    "stix_pattern": stix_pattern,
    "log_lines": log_lines,
    "misp_event": misp_event,
    "csv_iocs": csv_iocs,
    "sigma_rule": sigma_rule,
    "yara_rule": yara_rule,
    "suricata_rule": suricata_rule,
    "shared_suricata_rule": shared_suricata_rule,
    "hash_list": hash_list,
    "zeek_intel": zeek_intel,
    "mapping_file": mapping_file,
}

#: Packages instrumented for coverage besides Kizuna's own: pySigma's parser is Python, so atheris can
#: steer by its branches (yara-python is C, and takes its input as is).
INSTRUMENTED: dict[str, list[str]] = {"sigma_rule": ["kizuna", "sigma"],
                                      "shared_suricata_rule": ["kizuna", "suricataparser"]}

