"""The watchlist matcher on its own: which rule each kind of value meets, and what it must not match."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from kizuna.core.node import Node
from kizuna.ops.alerts import watchlist_of
from kizuna.ops.arrivals import alerts_of
from kizuna.ops.assets import add_assets
from kizuna.ops.lookalikes import lookalikes_of
from kizuna.ops.reading import stix_now
from kizuna.ops.watch import Watchlist
from kizuna.ops.workspace import create_operation

ASSETS = [
    {"type": "domain-name", "id": "domain-name--1", "value": "games2027.example"},
    {"type": "ipv4-addr", "id": "ipv4-addr--1", "value": "198.51.100.0/24"},
    {"type": "ipv4-addr", "id": "ipv4-addr--2", "value": "203.0.113.7/32"},
    {"type": "ipv6-addr", "id": "ipv6-addr--1", "value": "2001:db8::/32"},
    {"type": "url", "id": "url--1", "value": "https://tickets.partner.example/buy"},
    {"type": "identity", "id": "identity--1", "name": "Jane Minister"},
]
WATCH = Watchlist(ASSETS, {k: ("games2027.example", v) for k, v in lookalikes_of("games2027.example").items()})


#: type, value, rule, protected asset: one case a line.
MATCHES = """
domain-name  games2027.example                    exact        games2027.example
domain-name  Login.Games2027.example.             containment  games2027.example
domain-name  gamess2027.example                   lookalike    games2027.example
domain-name  pay.gamess2027.example               lookalike    games2027.example
ipv4-addr    198.51.100.200                       containment  198.51.100.0/24
ipv4-addr    198.51.100.0/25                      containment  198.51.100.0/24
ipv4-addr    203.0.113.7                          exact        203.0.113.7/32
ipv6-addr    2001:db8:1::5                        containment  2001:db8::/32
url          https://tickets.partner.example/buy  exact        https://tickets.partner.example/buy
url          http://www.games2027.example/login   containment  games2027.example
url          http://198.51.100.9/x                containment  198.51.100.0/24
url          https://games2027.example/phish      containment  games2027.example
url          http://203.0.113.7/pay               containment  203.0.113.7/32
email-addr   press@games2027.example              exact        games2027.example
"""


@pytest.mark.parametrize("stix_type,value,rule,asset", [line.split() for line in MATCHES.strip().splitlines()])
def test_values_meet_the_rule_they_should(stix_type: str, value: str, rule: str, asset: str) -> None:
    hit = WATCH.value(stix_type, value)
    assert hit is not None and (hit.rule, hit.asset) == (rule, asset)
    if stix_type == "url":
        assert hit.value == value  # the URL that matched, not only its host


@pytest.mark.parametrize("stix_type,value", [
    ("domain-name", "example"), ("domain-name", "games2027.example.net"), ("domain-name", "notgames2027.org"),
    ("ipv4-addr", "198.51.101.1"), ("ipv4-addr", "198.51.0.0/16"), ("ipv4-addr", "not an address"),
    ("ipv6-addr", "2001:db9::1"), ("url", "https://tickets.partner.example/other"), ("url", "no host"),
    # urlsplit raises on these authorities (a lone bracket reads as a broken IPv6 host): no host, no match
    ("url", "http://AAAA]@games2027.example/"), ("url", "http://[games2027.example/"),
])
def test_values_outside_the_watchlist_do_not_match(stix_type: str, value: str) -> None:
    assert WATCH.value(stix_type, value) is None


def test_objects_match_by_pattern_and_by_reference() -> None:
    pattern = ("[domain-name:value = 'evil.example'] OR [ipv4-addr:value ISSUBSET '198.51.100.16/28'] "
               "OR [url:value = 'http://gamess2027.example/it\\'s']")
    hits = {(h.rule, h.asset) for h in WATCH.hits({"type": "indicator", "id": "indicator--1", "pattern": pattern})}
    assert hits == {("containment", "198.51.100.0/24"), ("lookalike", "games2027.example")}
    report = {"type": "report", "id": "report--1", "object_refs": ["identity--1", "indicator--9"],
              "created_by_ref": "identity--1"}
    assert [(h.rule, h.asset) for h in WATCH.hits(report)] == [("relationship", "Jane Minister")]
    seen = WATCH.value("domain-name", "gamess2027.example")
    assert seen is not None
    sighting = {"type": "sighting", "id": "sighting--1", "sighting_of_ref": "indicator--9"}
    assert [h.rule for h in WATCH.hits(sighting, {"indicator--9": seen})] == ["relationship"]
    observed = {"type": "observed-data", "id": "observed-data--1", "object_refs": ["domain-name--x"]}
    assert [h.rule for h in WATCH.hits(observed, {"domain-name--x": seen})] == ["lookalike"]


def test_a_reused_watchlist_follows_new_assets_and_lookalikes(tmp_path: Path) -> None:
    """The administrator's watchlist is kept between calls in one process; adding an asset (and with it
    new lookalikes) must show in the very next judging."""
    node = Node.init(tmp_path / "node", org_name="Host CERT", country="GBR")
    try:
        node.create_organisation("Games SOC", "JPN")
        today = dt.datetime.now(dt.UTC).date()
        operation, _ = create_operation(node, "Cache Cup", str(today), str(today + dt.timedelta(days=3)), ["Games SOC"])
        add_assets(node, operation, [("domain", "first.example")])
        lookalike = sorted(d for d, f in lookalikes_of("second.example").items() if f == "homoglyph")[0]
        now = stix_now()
        seen = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": now,
                "modified": now, "valid_from": now, "pattern_type": "stix",
                "pattern": f"[domain-name:value = '{lookalike}']"}
        node.import_objects(node.find_collection(operation.collections["intel"]), [seen])
        assert alerts_of(node, operation) == []
        assert watchlist_of(node, operation) is watchlist_of(node, operation)  # reused while unchanged
        add_assets(node, operation, [("domain", "second.example")])
        assert [(a.rule, a.asset) for a in alerts_of(node, operation)] == [("lookalike", "second.example")]
    finally:
        node.close()


@pytest.mark.parametrize("quiet,hit", [
    ("x.elsewhere.example.", "games2027.example."),  # a final dot: the labels as written are not the name's
    (" elsewhere.example", " games2027.example"),  # a short name starting in a space
    ("mail.elsewhere.example", "WWW.GAMES2027.EXAMPLE"),  # case
    ("a.b.example", "gamess2027.example"),  # the same last label, another tail
])
def test_a_name_found_quiet_never_hides_a_later_hit(quiet: str, hit: str) -> None:
    watch = Watchlist(ASSETS, {k: ("games2027.example", v) for k, v in lookalikes_of("games2027.example").items()})
    assert watch.domain(quiet) is None
    assert watch.domain(hit) is not None
    assert watch.domain(quiet) is None and watch.domain(hit) is not None  # and again, with the cache filled
