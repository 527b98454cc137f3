"""Blocklists and RPZ zones read stored feed facts (schema step 14) instead of bodies, with the same result.

Each test builds the same feed two ways on one real store: from the facts (`Node.export_feed`, what the
endpoints and `kizuna export` use) and from the bodies the TAXII read path serves (`Node.export_objects`,
the way every feed was built before). The lines must be the same bytes, for the node's operator and for a
partner whose marking policy hides some indicators; and what the policy hides must not be in the partner's
list at all, whatever version of an object carries it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from kizuna.core import browse
from kizuna.core.audit import unpack_served
from kizuna.core.feed_read import feed_items
from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN, Principal
from kizuna.formats.base import ConversionReport
from kizuna.formats.feed_build import feed_lines
from kizuna.formats.feeds import FeedOptions, select, select_terms
from kizuna.formats.iocs import indicator_id, pattern_for
from kizuna.policy.tlp import TlpLevel
from kizuna.store import feed_facts
from kizuna.store.base import Collection

GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
NOW = "2026-06-01T00:00:00.000Z"


def _indicator(kind: str, value: str, marking: str | None = GREEN, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "indicator", "spec_version": "2.1", "id": indicator_id(kind, value),
        "created": "2025-03-01T10:00:00.000Z", "modified": "2025-03-01T10:00:00.000Z", "name": value,
        "pattern": pattern_for(kind, value), "pattern_type": "stix", "valid_from": "2025-03-01T10:00:00.000Z",
        "confidence": 80,
    }
    if marking is not None:
        obj["object_marking_refs"] = [marking]
    return {**obj, **extra}


def _corpus() -> list[dict[str, Any]]:
    objects = [_indicator("ipv4", f"203.0.113.{i}") for i in range(1, 40)]
    objects += [_indicator("domain", f"host{i}.bad.example") for i in range(30)]
    objects += [
        _indicator("ipv4", "198.51.100.1", RED),  # hidden from the partner in every version
        _indicator("ipv4", "198.51.100.2", AMBER),  # hidden from the partner (GREEN is all it shares)
        _indicator("ipv4", "198.51.100.3", None),  # unmarked
        _indicator("ipv4", "198.51.100.4", revoked=True),
        _indicator("ipv4", "198.51.100.5", valid_until="2026-01-01T00:00:00Z"),  # expired at NOW
        _indicator("ipv4", "198.51.100.6", valid_from="2027-01-01T00:00:00Z"),  # not valid yet
        _indicator("ipv4", "198.51.100.7", valid_until="2027-01-01T00:00:00Z"),  # valid until later
        _indicator("ipv4", "198.51.100.8", confidence=20),
        _indicator("ipv4", "198.51.100.9", x_kizuna_warninglists=["public DNS resolvers"]),
        _indicator("ipv4", "192.0.2.0/24"),
        _indicator("ipv6", "2001:db8::1"),
        _indicator("domain", "MiXeD.Example.ORG"),  # not canonical as written
        _indicator("ipv4", "198.51.100.10", pattern="[ipv4-addr:value = '198.51.100.10' OR "
                                                    "domain-name:value = 'or.bad.example']"),  # no facts: body
        _indicator("url", "http://bad.example/x"),  # no place in these feeds
        {**_indicator("ipv4", "198.51.100.11"), "created_by_ref": "identity--b3b2b1b0-0000-4000-8000-000000000001"},
    ]
    first = _indicator("ipv4", "198.51.100.20")  # GREEN, then re-marked RED with another value
    objects.append(first)
    objects.append({**first, "modified": "2025-04-01T10:00:00.000Z", "pattern": pattern_for("ipv4", "198.51.100.21"),
                    "object_marking_refs": [RED]})
    second = _indicator("ipv4", "198.51.100.22")  # GREEN, then revoked in a new GREEN version
    objects += [second, {**second, "modified": "2025-04-01T10:00:00.000Z", "revoked": True}]
    third = _indicator("ipv4", "198.51.100.23", RED)  # RED, then released as GREEN with another value
    objects += [third, {**third, "modified": "2025-04-01T10:00:00.000Z",
                        "pattern": pattern_for("ipv4", "198.51.100.24"), "object_marking_refs": [GREEN]}]
    objects.append({"type": "malware", "spec_version": "2.1", "id": "malware--0c7b5b88-8ff7-4a4d-aa9c-feb398cd0061",
                    "created": "2025-03-01T10:00:00.000Z", "modified": "2025-03-01T10:00:00.000Z",
                    "name": "Not a feed value", "is_family": True, "object_marking_refs": [GREEN]})
    return objects


@pytest.fixture()
def loaded(store_url: str, tmp_path: Path) -> Iterator[tuple[Node, Collection, Principal]]:
    node = Node.init(tmp_path / "node", store_url=store_url, org_name="NCSC UK", country="GBR")
    try:
        collection = node.create_collection("Blocklist", alias="block")
        node.create_organisation("JPCERT/CC", country="JPN")
        node.set_shared_communities(["uk-jp"])
        node.set_organisation_groups("JPCERT/CC", ["uk-jp"])
        report = node.import_objects(collection, _corpus())
        assert not report.failures, report.failures
        yield node, collection, browse.acting_as(node, organisation="JPCERT/CC").principal
    finally:
        node.close()


def _lines(fmt: str, items: Iterator[bytes] | Iterator[bytes | str], **limits: Any) -> tuple[str, list[str]]:
    report = ConversionReport(fmt)
    text = "".join(feed_lines(fmt, items, FeedOptions(now=NOW, **limits), report, kind="ip"))
    # Objects other than indicators are not read from the facts at all: the count of objects skipped unparsed
    # differs by them, every other warning is the same.
    warnings = sorted(w for w in report.warnings if not w.endswith("skipped unparsed"))
    return text, warnings + sorted(str(loss) for loss in report.losses) + [str(report.next_change)]


def _both(node: Node, collection: Collection, principal: Principal, fmt: str, **limits: Any) -> str:
    from_facts = _lines(fmt, node.export_feed(collection, principal), **limits)
    from_bodies = _lines(fmt, node.export_objects(collection, principal, latest_only=True), **limits)
    assert from_facts[0] == from_bodies[0]  # byte for byte
    assert from_facts[1] == from_bodies[1]  # the same losses, warnings and next change
    return from_facts[0]


@pytest.mark.parametrize("fmt", ["txt", "rpz"])
def test_a_feed_from_stored_facts_is_byte_identical_to_one_from_the_bodies(
    loaded: tuple[Node, Collection, Principal], fmt: str,
) -> None:
    node, collection, partner = loaded
    for principal in (NODE_ADMIN, partner):
        for limits in ({}, {"min_confidence": 50}, {"tlp_ceiling": TlpLevel.GREEN}, {"include_flagged": True}):
            _both(node, collection, principal, fmt, **limits)
    assert _both(node, collection, NODE_ADMIN, fmt).count("\n") > 45


def _served(node: Node, after: int) -> list[tuple[str, int]]:
    """The (id, version) pairs the egress records after audit record ``after`` say were served."""
    return [pair for record in node.audit.records() if record.seq > after and record.kind == "egress"
            for pair in unpack_served(orjson.loads(record.body)["served"])]


@pytest.mark.parametrize("fmt", ["txt", "rpz"])
def test_batches_taken_whole_from_the_facts_or_row_by_row_give_the_same_feed_and_audit(
    loaded: tuple[Node, Collection, Principal], fmt: str,
) -> None:
    """`feed_items` takes a batch whose every row is served from its facts column by column, and any other batch
    row by row. Batches of 1 and 7 rows mix the two ways; one batch of 5000 takes the corpus row by row (it
    holds rows the facts cannot serve). The lines and the egress audit (what left, which versions) must agree
    with each other and with the feed built from the bodies."""
    node, collection, partner = loaded
    for principal in (NODE_ADMIN, partner):
        from_bodies = _lines(fmt, node.export_objects(collection, principal, latest_only=True))
        audits = []
        for batch in (1, 7, 5000):
            mark = max(record.seq for record in node.audit.records())
            assert _lines(fmt, feed_items(node, node.viewer_for(principal, collection), batch)) == from_bodies
            audits.append(sorted(_served(node, mark)))
        assert audits[0] == audits[1] == audits[2] and len(audits[0]) > 40


def test_select_terms_yields_the_terms_of_select_with_the_same_report(
    loaded: tuple[Node, Collection, Principal],
) -> None:
    """The writers' shortcut (`select_terms`) against `select`, on stored facts, JSON bodies, dicts, patterns of
    several IOCs and values that are no IOC, under each kind of limit."""
    node, collection, _partner = loaded
    items = [*node.export_feed(collection), *node.export_objects(collection, latest_only=True), *_corpus(),
             _indicator("ipv4", "10.0.0.1", pattern="[ipv4-addr:value = '300.1.1.1']"),
             _indicator("domain", "x.example", pattern="[domain-name:value = 'a.example' OR url:value = 'http://b/']")]
    assert any(type(item) is str for item in items) and any(type(item) is bytes for item in items)
    for kinds in (None, ("ipv4",), ("domain", "ipv4", "ipv6")):
        for limits in ({}, {"min_confidence": 50}, {"tlp_ceiling": TlpLevel.GREEN}, {"include_flagged": True}):
            options = FeedOptions(now=NOW, **limits)
            whole, bare = ConversionReport("txt"), ConversionReport("txt")
            expected = [term for selected in select(items, options, whole, kinds) for term in selected.terms]
            assert list(select_terms(items, options, bare, kinds)) == expected
            assert (bare.summary(), bare.next_change) == (whole.summary(), whole.next_change)
    assert len(expected) > 100 and whole.losses


def test_what_the_policy_hides_never_reaches_the_partners_list(loaded: tuple[Node, Collection, Principal]) -> None:
    node, collection, partner = loaded
    admin, seen = (set(_both(node, collection, p, "txt").split()) for p in (NODE_ADMIN, partner))
    assert {"198.51.100.1", "198.51.100.2", "198.51.100.21", "198.51.100.24"} <= admin
    # RED and AMBER objects, and the RED value of a re-marked indicator, are not the partner's to receive
    assert not {"198.51.100.1", "198.51.100.2", "198.51.100.21", "198.51.100.23"} & seen
    # its own history keeps the GREEN version it could read (docs/policy.md), and the RED-then-GREEN object's
    # GREEN version is its last
    assert {"198.51.100.20", "198.51.100.24", "198.51.100.3", "198.51.100.7", "203.0.113.1"} <= seen
    # revoked (also in a later version), expired, not yet valid, warninglisted: left out for everyone
    for value in ("198.51.100.4", "198.51.100.22", "198.51.100.5", "198.51.100.6", "198.51.100.9"):
        assert value not in admin and value not in seen
    # after the GREEN object is re-marked RED in a newer version for everyone, the partner's value stays the
    # GREEN one it already had, and the RED value still does not appear
    later = _indicator("ipv4", "203.0.113.5")
    node.import_objects(collection, [{**later, "modified": "2025-05-01T10:00:00.000Z", "object_marking_refs": [RED],
                                      "pattern": pattern_for("ipv4", "198.51.100.99")}])
    seen = set(_both(node, collection, partner, "txt").split())
    assert "198.51.100.99" not in seen and "203.0.113.5" in seen
    assert "198.51.100.99" in set(_both(node, collection, NODE_ADMIN, "txt").split())


def test_the_facts_noted_at_ingest_equal_those_read_back_from_the_bodies(
    loaded: tuple[Node, Collection, Principal],
) -> None:
    """Ingest notes the facts from the object it parsed (``NewVersion.feed``); the backfill reads them from
    the stored bodies: both must write the same text for every version."""
    node, collection, partner = loaded
    store: Any = node.store
    with store._read() as cur:
        cur.execute("SELECT seq, feed FROM objects ORDER BY seq")
        written = cur.fetchall()
    assert sum(facts is not None for _, facts in written) > 70  # the usual indicators have facts
    assert sum(facts is None for _, facts in written) >= 2  # the OR pattern and the malware have none
    expected = _both(node, collection, partner, "rpz")
    with store._write() as cur:
        cur.execute("UPDATE objects SET feed = NULL")
    assert _both(node, collection, partner, "rpz") == expected  # every version read from its body
    with store._write() as cur:
        feed_facts.backfill(cur)
    with store._read() as cur:
        cur.execute("SELECT seq, feed FROM objects ORDER BY seq")
        assert cur.fetchall() == written


def test_unusual_indicators_get_no_facts() -> None:
    def facts(**changes: Any) -> str | None:
        import orjson

        return feed_facts.facts_of("indicator", orjson.dumps({**_indicator("ipv4", "198.51.100.1"), **changes}))

    assert facts() is not None
    assert facts(valid_from="2025-99-01T10:00:00.000Z") is None  # unreadable: the body decides
    assert facts(valid_until=17) is None
    assert facts(confidence=True) is None
    assert facts(object_marking_refs="not a list") is None
    assert facts(pattern_type="sigma") is None
    assert facts(pattern="[ipv4-addr:value = '198.51.100.1'] AND [domain-name:value = 'x.example']") is None
    assert feed_facts.facts_of("malware", b"{}") is None
    assert feed_facts.facts_of("indicator", b"not json") is None
