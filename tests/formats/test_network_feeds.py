"""RPZ zones, Zeek Intel files and Suricata rules, each checked by the tool's own parser or linter."""

from __future__ import annotations

import logging
import re
from typing import Any

import dns.name
import dns.rdatatype
import dns.zone
import pytest
from suricataparser import parse_rule

from kizuna.detect.intel import zeek_intel_indicators
from kizuna.formats.base import ConversionReport
from kizuna.formats.feeds import FeedOptions
from kizuna.formats.ioc_lists import read_ioc_list
from kizuna.formats.iocs import pattern_for, pattern_terms
from kizuna.formats.rpz import rpz_ip_name, write_rpz
from kizuna.formats.suricata import content, write_suricata
from kizuna.formats.zeek_intel import write_zeek_intel
from tests.formats.helpers import MIXED_CSV, NOW

OPTIONS = FeedOptions(now=NOW)


def mixed() -> list[dict[str, Any]]:
    return read_ioc_list(MIXED_CSV, now=NOW).objects


def test_rpz_zone_parses_with_dnspython_and_names_exactly_the_domains_and_blocks() -> None:
    report = ConversionReport("rpz")
    text = "".join(write_rpz(mixed(), "rpz.kizuna.example", options=OPTIONS, report=report))
    zone = dns.zone.from_text(text, origin="rpz.kizuna.example.", relativize=True, check_origin=True)
    owners = {name.to_text() for name, node in zone.nodes.items()
              if node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME) is not None}
    assert owners == {
        "update-checker.xyz", "*.update-checker.xyz", "cdn.update-checker.top", "*.cdn.update-checker.top",
        "32.9.12.33.45.rpz-ip", "128.1a2b.zz.d0.3.b0c0.2a03.rpz-ip", "24.0.101.220.185.rpz-ip",
    }
    for name in owners:
        (rdata,) = zone.nodes[dns.name.from_text(name, origin=None)].get_rdataset(
            dns.rdataclass.IN, dns.rdatatype.CNAME)
        assert rdata.target == dns.name.root  # CNAME . = NXDOMAIN
    assert "1 url value(s) have no place in this feed" not in report.warnings
    assert "2 url value(s) have no place in this feed" in report.warnings


def test_rpz_ip_names() -> None:
    assert rpz_ip_name("192.0.2.1") == "32.1.2.0.192.rpz-ip"
    assert rpz_ip_name("2001:db8::1") == "128.1.zz.db8.2001.rpz-ip"
    assert rpz_ip_name("2001:db8::/32") == "32.zz.db8.2001.rpz-ip"
    assert rpz_ip_name("1:2:3:4:5:6:7:8") == "128.8.7.6.5.4.3.2.1.rpz-ip"


def test_rpz_idn_and_actions() -> None:
    objects = read_ioc_list(["bücher-update.example.com"], "x", now=NOW, warninglists=None).objects
    text = "".join(write_rpz(objects, "rpz.test", options=OPTIONS, action="drop", subdomains=False))
    zone = dns.zone.from_text(text, origin="rpz.test.", relativize=True)
    names = {n.to_text() for n in zone.nodes} - {"@"}
    assert names == {"xn--bcher-update-dlb.example.com"}
    assert "CNAME rpz-drop." in text


def test_zeek_intel_reads_back_as_the_same_patterns() -> None:
    objects = mixed()
    report = ConversionReport("zeek")
    lines = list(write_zeek_intel(objects, options=OPTIONS, report=report, url="https://node.example/objects/"))
    assert lines[0].startswith("#fields\tindicator\tindicator_type\tmeta.source")
    rows = [line.rstrip("\n").split("\t") for line in lines[1:]]
    assert all(len(row) == 5 for row in rows)
    types = {row[1] for row in rows}
    assert types == {"Intel::ADDR", "Intel::SUBNET", "Intel::DOMAIN", "Intel::URL", "Intel::EMAIL",
                     "Intel::FILE_HASH"}
    assert ["Intel::URL" for row in rows if row[0] == "update-checker.xyz/gate.php?id=7"] == ["Intel::URL"]
    # Kizuna's own Zeek Intel reader turns the file back into the same IOCs, a SUBNET row as the range (ISSUBSET)
    back = {p["pattern"] for p in zeek_intel_indicators(lines)}
    expected = {o["pattern"] for o in objects if "x_kizuna_warninglists" not in o and "x-ja3" not in o["pattern"]}
    expected = {p.replace("http://", "http://").replace("'https://", "'http://") for p in expected}
    assert back == expected
    assert "1 ja3 value(s) have no Zeek Intel type and were left out" in report.warnings


def test_zeek_intel_cells_cannot_break_the_table() -> None:
    obj = read_ioc_list(["value,comment", "update-checker.xyz,x"], "x", now=NOW, warninglists=None).objects[0]
    obj["name"] = "evil\tname\nwith breaks"
    (row,) = list(write_zeek_intel([obj], options=OPTIONS, source="-"))[1:]
    cells = row.rstrip("\n").split("\t")
    assert cells[2] == "-" and cells[3].startswith("evil name with breaks (indicator--")


def _suricata_check_issues(rule: str) -> list[Any]:
    import suricata_check
    from suricata_check.utils.rule import parse as parse_for_check

    # suricata-check 0.9's header grammar has no ':' so it cannot read IPv6 addresses; the rest of an
    # IPv6 rule is still checked with a documentation IPv4 address in its place (suricataparser reads it whole).
    checkable = re.sub(r"\[[0-9a-f:]+(?:/\d+)?\]", "[192.0.2.1]", rule)
    return list(suricata_check.analyze_rule(parse_for_check(checkable)).issues)


def test_suricata_rules_parse_and_pass_suricata_check() -> None:
    report = ConversionReport("suricata")
    rules = list(write_suricata(mixed(), options=OPTIONS, report=report))
    # 3 addresses/blocks x 2 directions, 2 domains x (dns, tls, http), 2 URLs, 1 JA3
    assert len(rules) == 6 + 6 + 2 + 1
    sids = set()
    for rule in rules:
        parsed = parse_rule(rule)
        assert parsed is not None, rule
        sids.add(parsed.sid)
        issues = _suricata_check_issues(rule)
        errors = [i for i in issues if (i.severity or 0) >= logging.WARNING]
        assert errors == [], (rule, errors)
    assert len(sids) == len(rules)
    assert "3 md5/sha1/sha256 value(s)" not in " ".join(report.warnings)
    assert "1 email value(s) have no Suricata rule and were left out" in report.warnings
    keywords = " ".join(rules)
    for keyword in ("dns.query;", "tls.sni;", "http.host;", "http.uri.raw;", "ja3.hash;"):
        assert keyword in keywords


def test_suricata_sids_are_stable_and_rev_follows_modified() -> None:
    first = read_ioc_list(["update-checker.xyz"], "x", now="2025-01-01T00:00:00Z", warninglists=None).objects
    later = read_ioc_list(["update-checker.xyz"], "x", now="2025-03-01T00:00:00Z", warninglists=None).objects
    a = [parse_rule(r) for r in write_suricata(first, options=OPTIONS)]
    b = [parse_rule(r) for r in write_suricata(later, options=OPTIONS)]
    assert [r.sid for r in a] == [r.sid for r in b]
    assert all(rb.rev > ra.rev for ra, rb in zip(a, b, strict=True))


def test_suricata_writes_an_ioc_two_indicators_share_once_as_the_other_feeds_do() -> None:
    """Each hit would otherwise alert once per indicator (docs/formats.md: each value is written once)."""
    first = read_ioc_list(["tickets-verify.example.net", "198.51.100.7"], "a", now=NOW, warninglists=None).objects
    second = read_ioc_list(["tickets-verify.example.net"], "b", now=NOW, warninglists=None).objects
    rules = [parse_rule(r) for r in write_suricata(first + second, options=OPTIONS)]
    assert len(rules) == 3 + 2  # dns, sni and http.host for the domain; to and from the address
    assert len({r.sid for r in rules}) == len(rules)
    alone = [parse_rule(r) for r in write_suricata(first, options=OPTIONS)]
    assert [r.sid for r in rules] == [r.sid for r in alone]  # the first indicator's rules, as without the second


@pytest.mark.parametrize("url", [
    'http://evil.example.com/x";sid:1;)alert ip any any -> any any (msg:"pwn',
    "http://evil.example.com/a|41|b\\c",
    "http://evil.example.com/ü?q=(1)",
    "http://evil.example.com/it's\\here",
])
def test_suricata_hostile_urls_stay_inside_their_content(url: str) -> None:
    obj = {"type": "indicator", "spec_version": "2.1", "id": "indicator--0f7ae0f4-a9f5-4cc8-9a2a-4d2f63d6a5a3",
           "created": "2025-01-01T00:00:00Z", "modified": "2025-01-01T00:00:00Z", "pattern": pattern_for("url", url),
           "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z"}
    assert pattern_terms(obj["pattern"]) == [("url", url)]
    rules = list(write_suricata([obj], options=OPTIONS))
    if " " in url:  # not a valid URL: refused, not written
        assert rules == []
        return
    (rule,) = rules
    parsed = parse_rule(rule)
    assert parsed is not None and parsed.sid and rule.count("sid:") == 1
    uri = url.split("evil.example.com", 1)[1].replace("ü", "%C3%BC")  # as a client sends it
    assert content(uri) in rule
    decoded = re.sub(r"\|([0-9a-f ]+)\|", lambda m: bytes.fromhex(m.group(1)).decode("latin-1"),
                     content(uri)[1:-1]).encode("latin-1").decode("utf-8")
    assert decoded == uri


def test_suricata_url_of_an_idn_host_with_trailing_dots_is_written_for_its_a_labels() -> None:
    """Found by fuzzing: the URL check reads 'tōkyō.example..' as tōkyō.example, but the writer handed the
    dotted name to IDNA, which refuses an empty label, and the whole feed stopped."""
    url = "http://tōkyō.example../login"
    obj = {"type": "indicator", "spec_version": "2.1", "id": "indicator--0f7ae0f4-a9f5-4cc8-9a2a-4d2f63d6a5a4",
           "created": "2025-01-01T00:00:00Z", "modified": "2025-01-01T00:00:00Z", "pattern": pattern_for("url", url),
           "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z"}
    (rule,) = write_suricata([obj], options=OPTIONS)
    parsed = parse_rule(rule)
    assert parsed is not None and content("xn--tky-qxac.example") in rule and content("/login") in rule


def test_a_pattern_gives_its_iocs_only_when_the_grammar_would_read_it_as_an_or_of_them() -> None:
    """The writers read patterns with the validator's and the matcher's scanner (stix/pattern_scan.py): OR-joined
    equalities and address blocks are IOCs; an AND is not a list a blocklist can hold; a keyword run into the
    next name (``ORdomain-name``) is one identifier to the grammar, so no IOC list either."""
    assert pattern_terms("[ipv4-addr:value ISSUBSET '10.0.0.0/8' OR domain-name:value = 'a.example'\n]") == [
        ("ipv4", "10.0.0.0/8"), ("domain", "a.example")]
    assert pattern_terms("[file:hashes.'SHA-256' = '" + "ab" * 32 + "' OR url:value = 'http://x.example/it\\'s']") == [
        ("sha256", "ab" * 32), ("url", "http://x.example/it's")]
    assert pattern_terms("[domain-name:value = 'a.example' AND domain-name:value = 'b.example']") is None
    assert pattern_terms("[domain-name:value = 'a.example' ORdomain-name:value = 'b.example']") is None
    assert pattern_terms("[ipv6-addr:value ISSUBSET '2001:db8::1']") is None  # a block needs its prefix


@pytest.mark.parametrize(("url", "host", "raw_uri"), [
    ("http://例え.jp/パス", "xn--r8jz45g.jp", "/%E3%83%91%E3%82%B9"),
    ("http://bücher.de/a%20b/ü?q=ä", "xn--bcher-kva.de", "/a%20b/%C3%BC?q=%C3%A4"),  # its own escape kept
])
def test_suricata_url_rules_match_the_request_as_it_goes_on_the_wire(url: str, host: str, raw_uri: str) -> None:
    """A client sends a non-ASCII path percent-encoded: a rule on its UTF-8 bytes in http.uri.raw never fires."""
    objects = read_ioc_list(["type,value", f"url,{url}"], "x", now=NOW, warninglists=None).objects
    (rule,) = write_suricata(objects, options=OPTIONS)
    parsed = parse_rule(rule)
    assert parsed is not None
    assert (f"http.host; content:{content(host)}; startswith; endswith; "
            f"http.uri.raw; content:{content(raw_uri)};") in rule
    assert [i for i in _suricata_check_issues(rule) if (i.severity or 0) >= logging.WARNING] == []


def test_suricata_writes_an_idn_given_in_both_spellings_once() -> None:
    objects = read_ioc_list(["type,value", "domain,bücher-evil.de", "domain,xn--bcher-evil-9db.de"], "x", now=NOW,
                            warninglists=None).objects
    rules = list(write_suricata(objects, options=OPTIONS))
    assert len(rules) == 3 and all(content(".xn--bcher-evil-9db.de") in rule for rule in rules)
