"""An operation's lookalike watch inside the detection fast path (`kizuna match --operation`,
`ops scan-logs`).

The fast path settles a line without building it when neither an indicator nor the watch's pre-test
(the name's last two labels, with the endings found quiet remembered) can fire; so the pre-test must
never refuse a name the watchlist would judge a hit, and the watch run inside the fast path must count
exactly the hits of judging every domain name of every line in full.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from kizuna.detect.engine import DetectionEngine
from kizuna.detect.mappings import LogReader, shipped_mappings
from kizuna.ops.logwatch import LogWatch
from kizuna.ops.watch import Watchlist

FIXTURES = Path(__file__).parents[1] / "detect" / "fixtures"
LOGS = [FIXTURES / "zeek" / n for n in ("dns.log", "http.log", "ssl.log", "files.log")] + [
    FIXTURES / "zeek" / "json" / f"{n}.log" for n in ("conn", "dns", "http", "files", "ssl")
] + [FIXTURES / "suricata" / "eve.json", FIXTURES / "suricata" / "rrdata-eve.json"]
IDENTITY = "identity--00000000-0000-4000-8000-000000000000"

#: Protected values and lookalikes drawn from the real sample logs. In logs only lookalikes alert: a
#: protected name (guyspy.com, also offered as a lookalike here) is the operation's own traffic.
SAMPLE_ASSETS = [{"type": "domain-name", "id": "domain-name--1", "value": "guyspy.com"}]
SAMPLE_LOOKALIKES = {"googletagservices.com": ("googletagservice.com", "addition"),
                     "doubleclick.net": ("doubleclick.com", "tld-swap"),
                     "cloudfront.net": ("cloudfront.com", "tld-swap"),
                     "guyspy.com": ("guyspy.org", "tld-swap")}


def _lines() -> list[bytes]:
    lines: list[bytes] = []
    for path in LOGS:
        lines.extend(path.read_bytes().splitlines())
    # Spellings the pre-test must not refuse, and hosts with user info, ports, addresses.
    for query in ("WWW.GuySpy.COM.", "mail.guyspy.com", "ads.googletagservices.com", "elsewhere.example"):
        lines.append(orjson.dumps({"ts": 1.5, "uid": "Cq", "id.orig_h": "172.16.0.9", "id.orig_p": 5353,
                                   "id.resp_h": "2001:db8::53", "id.resp_p": 53, "proto": "udp", "query": query}))
    for host, uri in (("user@guyspy.com", "/a"), ("guyspy.com:8080", "/b"), ("192.168.1.77", "/c"),
                      ("[2001:db8::1]", "/d"), ("plain.example", "/e")):
        lines.append(orjson.dumps({"ts": 2.5, "uid": "Ch", "id.orig_h": "172.16.0.9", "id.orig_p": 40000,
                                   "id.resp_h": "203.0.113.5", "id.resp_p": 80, "method": "GET", "host": host,
                                   "uri": uri, "user_agent": "x"}))
    return lines


def _judged_in_full(watch: Watchlist, lines: list[bytes]) -> Counter[tuple[str, str, str]]:
    """What judging every domain name of every line finds: (type, value, rule) -> count."""
    found: Counter[tuple[str, str, str]] = Counter()
    for event in LogReader(shipped_mappings().values()).events(lines):
        for stix_type, path, value in event.facts:
            if path == "value" and stix_type == "domain-name" and isinstance(value, str):
                hit = watch.lookalike(value.lower())
                if hit is not None:
                    found[(stix_type, value.lower(), hit.rule)] += 1
    return found


def _judged_in_the_fast_path(watch: Watchlist, lines: list[bytes], patterns: list[str]) -> tuple[
        Counter[tuple[str, str, str]], int, list[dict[str, object]]]:
    engine = DetectionEngine(IDENTITY)
    engine.load_indicators({"type": "indicator", "id": f"indicator--{n}", "pattern": p, "pattern_type": "stix"}
                           for n, p in enumerate(patterns))
    log = LogWatch(watch)
    matcher = engine.line_matcher(LogReader(shipped_mappings().values()), log)
    alerts = [a.as_json() for a in matcher.alerts(lines)]
    return Counter({(h.stix_type, h.value, h.hit.rule): h.count for h in log.found()}), matcher.fast_events, alerts


@pytest.mark.parametrize("patterns", [[], ["[domain-name:value = 'google.com']", "[ipv4-addr:value = '10.0.0.1']",
                                           "[domain-name:value LIKE '%.cloudfront.net']"]])
def test_the_watch_in_the_fast_path_finds_what_judging_every_value_finds(patterns: list[str]) -> None:
    watch = Watchlist(SAMPLE_ASSETS, SAMPLE_LOOKALIKES)
    lines = _lines()
    expected = _judged_in_full(watch, lines)
    found, settled, alerts = _judged_in_the_fast_path(watch, lines, patterns)
    assert found == expected
    assert len(found) >= 3 and {rule for _, _, rule in found} == {"lookalike"}
    assert settled > 0  # lines that cannot hit are still settled without being built
    # The watch changes nothing about the indicators' own alerts.
    engine = DetectionEngine(IDENTITY)
    engine.load_indicators({"type": "indicator", "id": f"indicator--{n}", "pattern": p, "pattern_type": "stix"}
                           for n, p in enumerate(patterns))
    assert alerts == [a.as_json() for a in engine.line_matcher(LogReader(shipped_mappings().values())).alerts(lines)]


#: Lookalikes for the spelling and cache cases below, beside the sample ones.
ODD_LOOKALIKES = {"abcdefghijklmnop.qr": ("abcdefghijklmno.qr", "addition"),
                  "xabcdefghij.klmno": ("abcdefghij.klmno", "addition"),
                  "gamess2027.example": ("games2027.example", "addition")}


def _dns(query: str) -> bytes:
    return orjson.dumps({"ts": 3.5, "uid": "Cd", "id.orig_h": "172.16.0.9", "id.orig_p": 5353,
                         "id.resp_h": "172.16.0.1", "id.resp_p": 53, "proto": "udp", "query": query})


@pytest.mark.parametrize("queries", [
    # Spellings the pre-test must not refuse: case, final dots, surrounding space, a subdomain.
    ["GAMESS2027.EXAMPLE", "gamess2027.example.", " gamess2027.example", "pay.gamess2027.example\t",
     "Pay.GamesS2027.Example..", "\u3000gamess2027.example"],
    # A quiet name that shares its last 16 characters with a hit but not its last two labels.
    ["a.bcdefghijklmnop.qr", "x.abcdefghijklmnop.qr", "bcdefghijklmnop.qr", "abcdefghijklmnop.qr"],
    # A 16-character quiet name and a longer hit ending in it.
    ["abcdefghij.klmno", "xabcdefghij.klmno", "abcdefghij.klmno", "www.xabcdefghij.klmno"],
    # Quiet names first, so the remembered endings are in place when the hits come.
    [f"host{n}.gamess2027.exampl" for n in range(40)] + [f"h{n}.gamess2027.example" for n in range(5)],
])
def test_the_pretest_and_its_remembered_endings_refuse_no_hit(queries: list[str]) -> None:
    watch = Watchlist([], ODD_LOOKALIKES)
    lines = [_dns(q) for q in queries]
    expected = _judged_in_full(watch, lines)
    assert expected  # every group holds hits
    assert _judged_in_the_fast_path(watch, lines, [])[0] == expected


def test_a_watch_without_lookalikes_reads_no_names() -> None:
    assert LogWatch(Watchlist(SAMPLE_ASSETS, {})).domain_tails() == frozenset()
    found, settled, _ = _judged_in_the_fast_path(Watchlist(SAMPLE_ASSETS, {}), _lines(), [])
    assert not found and settled > 0
