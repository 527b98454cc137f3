"""Feed writers: round trips from CSV, the feed limits (TLP, confidence, expiry, warninglists), hostile input."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import orjson
import pytest

from kizuna.formats.base import ConversionReport, FormatError
from kizuna.formats.blocklists import write_blocklist
from kizuna.formats.csv_out import write_csv
from kizuna.formats.feeds import FeedOptions
from kizuna.formats.ioc_lists import read_ioc_list
from kizuna.formats.iocs import indicator_id
from kizuna.formats.warninglists import Warninglists
from kizuna.policy.tlp import TLP2_IDS, TlpLevel
from tests.formats.helpers import MIXED_CSV, NOW

ACCEPTED = {
    "ip": {"45.33.12.9", "2a03:b0c0:3:d0::1a2b", "185.220.101.0/24"},
    "domain": {"update-checker.xyz", "cdn.update-checker.top"},
    "url": {"http://update-checker.xyz/gate.php?id=7", "https://files.update-checker.top/a/b%20c.bin"},
    "email": {"billing@invoices-update.com"},
    "hash": {"6a1b6fd6e8a3c5b1a8e2f1d4c3b2a190", "3f786850e387550fdab836ed7e6dc881de23001b",
             "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
    "ja3": {"e7eca2baf4458d095b7f45da28c16c34"},
}
OPTIONS = FeedOptions(now=NOW)


def _lines(pieces: Iterable[str]) -> list[str]:
    """A writer's lines: it hands its text on in pieces of whole lines."""
    return "".join(pieces).splitlines(keepends=True)


def indicator(value_pattern: str, **extra: Any) -> dict[str, Any]:
    base = {"type": "indicator", "spec_version": "2.1", "id": indicator_id("x", value_pattern),
            "created": "2025-01-01T00:00:00Z", "modified": "2025-01-01T00:00:00Z", "pattern": value_pattern,
            "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z"}
    return {**base, **extra}


@pytest.mark.parametrize("kind", sorted(ACCEPTED))
def test_csv_to_stix_to_blocklist_returns_exactly_the_accepted_values(kind: str) -> None:
    report = read_ioc_list(MIXED_CSV, now=NOW)
    lines = _lines(write_blocklist(report.objects, kind, options=OPTIONS))
    assert all(line.endswith("\n") for line in lines)
    assert sorted(line[:-1] for line in lines) == sorted(ACCEPTED[kind])  # flagged 8.8.8.8, empty SHA-512 left out


def test_stored_json_bytes_are_accepted_and_flagged_values_need_force() -> None:
    report = read_ioc_list(MIXED_CSV, now=NOW)
    as_bytes = [orjson.dumps(o) for o in report.objects]
    forced_options = FeedOptions(now=NOW, include_flagged=True)
    forced = {line.strip() for line in _lines(write_blocklist(as_bytes, "ip", options=forced_options))}
    assert forced == ACCEPTED["ip"] | {"8.8.8.8"}
    feed_report = ConversionReport("blocklist")
    assert "8.8.8.8\n" not in _lines(write_blocklist(as_bytes, "ip", options=OPTIONS, report=feed_report))
    assert "1 indicator(s) left out: on a warninglist" in feed_report.warnings  # 8.8.8.8; the SHA-512 is unread


def test_operator_chosen_warninglists() -> None:
    only_dns = Warninglists(["public-dns-v4"])
    report = read_ioc_list(["8.8.8.8", "10.1.2.3", "1.1.1.1"], "x", warninglists=only_dns, now=NOW)
    flags = {o["name"]: o.get("x_kizuna_warninglists") for o in report.objects}
    assert flags == {"8.8.8.8": ["public-dns-v4"], "10.1.2.3": None, "1.1.1.1": ["public-dns-v4"]}
    rfc = Warninglists(["rfc1918"])
    assert rfc.check("ipv4", "10.1.2.3") == ["rfc1918"]
    assert rfc.check("ipv4", "10.0.0.0/7") == ["rfc1918"]  # a block overlapping a listed network
    assert rfc.check("url", "http://192.168.1.1/admin") == ["rfc1918"]
    with pytest.raises(ValueError):
        Warninglists(["no-such-list"])


def test_tlp_ceiling_confidence_floor_and_expiry() -> None:
    objects = [
        indicator("[ipv4-addr:value = '45.33.1.1']", object_marking_refs=[TLP2_IDS[TlpLevel.GREEN]], confidence=90),
        indicator("[ipv4-addr:value = '45.33.1.2']", object_marking_refs=[TLP2_IDS[TlpLevel.AMBER]], confidence=90),
        indicator("[ipv4-addr:value = '45.33.1.3']", confidence=40),
        indicator("[ipv4-addr:value = '45.33.1.4']", confidence=90, revoked=True),
        indicator("[ipv4-addr:value = '45.33.1.5']", confidence=90, valid_until="2025-05-01T00:00:00Z"),
        indicator("[ipv4-addr:value = '45.33.1.6']", confidence=90, valid_from="2025-07-01T00:00:00Z"),
        indicator("[ipv4-addr:value = '45.33.1.7']"),
        # a TLP 1.0 id counts at its level too
        indicator("[ipv4-addr:value = '45.33.1.8']", confidence=95,
                  object_marking_refs=["marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"]),
    ]

    def feed(**kw: Any) -> list[str]:
        lines = _lines(write_blocklist(objects, "ip", options=FeedOptions(**{"now": NOW, **kw})))
        return [line.strip() for line in lines]

    assert feed() == ["45.33.1.1", "45.33.1.2", "45.33.1.3", "45.33.1.7", "45.33.1.8"]
    assert feed(tlp_ceiling=TlpLevel.GREEN) == ["45.33.1.1", "45.33.1.3", "45.33.1.7"]
    assert feed(tlp_ceiling=TlpLevel.GREEN, unmarked_tlp=TlpLevel.AMBER) == ["45.33.1.1"]
    assert feed(min_confidence=50) == ["45.33.1.1", "45.33.1.2", "45.33.1.8"]
    assert feed(now="2025-08-01T00:00:00Z") == ["45.33.1.1", "45.33.1.2", "45.33.1.3", "45.33.1.6", "45.33.1.7",
                                               "45.33.1.8"]


def test_patterns_no_list_can_express_and_hostile_values_are_reported_not_written() -> None:
    objects = [
        indicator("[ipv4-addr:value = '45.33.2.1' AND network-traffic:dst_port = 443]"),
        indicator("[domain-name:value = 'evil.example.org\nattacker.example. NS x']"),
        indicator("[domain-name:value = 'ok.example.org' OR domain-name:value = 'also.example.org']"),
        indicator("[ipv4-addr:value ISSUBSET '45.33.3.0/24']"),
        indicator("[file:hashes.'SHA-256' = 'ABCDEF']"),
        {"type": "malware", "id": "malware--0f7ae0f4-a9f5-4cc8-9a2a-4d2f63d6a5a3", "name": "x"},
        indicator("[ipv4-addr:value = '45.33.2.2']", pattern_type="sigma"),
    ]
    report = ConversionReport("blocklist")
    assert [line.strip() for line in _lines(write_blocklist(objects, "domain", options=OPTIONS, report=report))] == [
        "ok.example.org", "also.example.org"]
    assert [line.strip() for line in _lines(write_blocklist(objects, "ip", options=OPTIONS))] == ["45.33.3.0/24"]
    reasons = [(loss.ref, loss.reason) for loss in report.losses]
    assert reasons[0] == (objects[0]["id"], "not a list of IOCs (AND, qualifiers or properties a blocklist cannot "
                                            "express)")
    assert reasons[1] == (objects[1]["id"], "not a valid domain value")
    assert len(reasons) == 2  # the hash is not looked at for a domain list...
    hash_report = ConversionReport("blocklist")
    assert list(write_blocklist(objects, "hash", options=OPTIONS, report=hash_report)) == []
    assert (objects[4]["id"], "not a valid sha256 value") in [(x.ref, x.reason) for x in hash_report.losses]
    assert "1 indicator(s) left out: pattern type is not stix" in report.warnings


def test_unknown_blocklist_kind() -> None:
    with pytest.raises(FormatError):
        list(write_blocklist([], "registry-key"))


def test_csv_export_reads_back_and_defuses_formulas() -> None:
    report = read_ioc_list(MIXED_CSV, now=NOW, tlp="green", confidence=70)
    text = "".join(write_csv(report.objects, options=FeedOptions(now=NOW, include_flagged=True)))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(report.objects)
    assert {r["tlp"] for r in rows} == {"TLP:GREEN"}
    back = read_ioc_list(io.StringIO(text), "export.csv", now=NOW)
    assert back.rejected == []
    assert {o["pattern"] for o in back.objects} == {o["pattern"] for o in report.objects}
    # Lossless where the format allows: each row's own TLP, confidence, validity, labels, name and description
    # come back (they had all been lost, so a TLP:GREEN export came back unmarked).
    kept = ("name", "description", "object_marking_refs", "confidence", "valid_from", "valid_until", "labels")
    assert {o["id"]: {k: o.get(k) for k in kept} for o in back.objects} == {
        o["id"]: {k: o.get(k) for k in kept} for o in report.objects}
    assert {loss.field for loss in back.losses} == {"indicator_id", "warninglists", "modified", "wire_value"}
    # A row's TLP stricter than the command's wins, and one that is no level rejects its line.
    strict = read_ioc_list(io.StringIO("value,tlp\n198.51.100.9,amber\n198.51.100.10,purple\n"), "x.csv",
                           now=NOW, tlp="green")
    assert [o["object_marking_refs"] for o in strict.objects] == [[TLP2_IDS[TlpLevel.AMBER]]]
    assert [r.where for r in strict.rejected] == ["x.csv:3"]
    hostile = indicator("[ipv4-addr:value = '45.33.4.4']", description="=HYPERLINK(\"http://x\",\"y\")")
    (row,) = list(csv.DictReader(io.StringIO("".join(write_csv([hostile], options=OPTIONS)))))
    assert row["description"].startswith("'=")


def test_stored_bytes_of_other_kinds_are_skipped_unparsed_but_escaped_json_is_read() -> None:
    domain = orjson.dumps(indicator("[domain-name:value = 'update-checker.xyz']"))
    escaped = orjson.dumps(indicator("[ipv4-addr:value = '45.33.5.5']")).replace(b"ipv4-addr", b"ipv4\\u002daddr")
    assert orjson.loads(escaped)["pattern"] == "[ipv4-addr:value = '45.33.5.5']"
    report = ConversionReport("blocklist")
    assert _lines(write_blocklist([domain, escaped], "ip", options=OPTIONS, report=report)) == ["45.33.5.5\n"]
    assert "1 object(s) without an IOC of this feed's kinds skipped unparsed" in report.warnings
