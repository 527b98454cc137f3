"""The next page of a TAXII read-out, computed while the client takes in this one (core/read_ahead.py).

A page computed ahead is served only while it is exactly what would be read now: a narrower agreement, a
new object or another principal between two pages makes it stale and the page is read afresh. Only pages
served are audited. Each test waits for the page computed ahead (``ReadAhead.wait``), so it is known to have
been computed before the change it must not survive. Real SQLite and PostgreSQL stores.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from kizuna.core.audit import unpack_served
from kizuna.core.errors import BadRequest
from kizuna.core.filters import Endpoint, Filters
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.core.query import Page
from kizuna.core.read_ahead import ReadAhead
from kizuna.federation.config import CollectionMapping, Direction, PartnerConfig
from kizuna.federation.state import FederationState
from kizuna.policy import TlpLevel
from kizuna.store.base import Collection
from tests.conftest import BACKENDS, uk_node
from tests.core.test_read_fast_path import AMBER, AMBER_STRICT, GREEN, _obj

World = tuple[Node, Collection, Principal, str]
LIMIT = 4


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with uk_node(request.param, tmp_path / "node") as node:
        collection = node.create_collection("Ahead", alias="ahead")
        node.create_organisation("JPCERT/CC", "JPN")
        node.set_agreement("uk-jp", "JPCERT/CC", max_tlp=TlpLevel.AMBER)
        producer = f"identity--{uuid.uuid4()}"
        objects = [_obj("indicator", producer, [GREEN if n % 2 else AMBER]) for n in range(14)]
        assert not node.import_objects(collection, objects).failures
        principal = node.authenticate(node.create_token("JPCERT/CC", read=["ahead"])[1])
        assert principal is not None
        node.read_pages_ahead()
        yield node, collection, principal, producer


def _ahead(node: Node) -> ReadAhead:
    assert node.read_ahead is not None
    return node.read_ahead


def _page(node: Node, principal: Principal, collection: Collection, cursor: str | None) -> Page:
    """One TAXII request's page: a new viewer, as each request compiles its own; then the page computed ahead
    is waited for, so the next request finds it computed."""
    page = node.read(node.viewer_for(principal, collection), Endpoint.OBJECTS, Filters(limit=LIMIT, next=cursor),
                     ahead=True)
    _ahead(node).wait()
    return page


def _ids(page: Page) -> list[str]:
    return [row.stix_id for row, _ in page.items]


def _egress_pages(node: Node) -> list[list[str]]:
    """The ids of each page the audit log says was served."""
    return [[stix_id for stix_id, _ in unpack_served(orjson.loads(record.body)["served"])]
            for record in node.audit.records() if record.kind == "egress"]


def test_pages_computed_ahead_are_the_pages_read_afresh(world: World) -> None:
    node, collection, principal, _ = world
    ahead, pages, cursor = [], 0, None
    while True:
        page = _page(node, principal, collection, cursor)
        ahead.append(_ids(page))
        pages += 1
        if not page.more:
            break
        cursor = page.next
    # The first page and the one after it are read by their requests; every later one was computed ahead.
    assert pages >= 4 and _ahead(node).outcomes == {"served": pages - 2}
    afresh, cursor = [], None
    while True:
        page = node.read(node.viewer_for(principal, collection), Endpoint.OBJECTS, Filters(limit=LIMIT, next=cursor))
        afresh.append(_ids(page))
        if not page.more:
            break
        cursor = page.next
    assert ahead == afresh and sum(map(len, ahead)) >= 14  # the indicators and the TLP definitions they name
    # Each page is audited once, when it is served: a page computed ahead is not egress until then.
    assert _egress_pages(node) == ahead + afresh


def test_a_narrower_agreement_between_two_pages_is_not_outrun(world: World) -> None:
    node, collection, principal, _ = world
    first = _page(node, principal, collection, None)
    second = _page(node, principal, collection, first.next)  # the third page is now computed, with AMBER in it
    node.set_agreement("uk-jp", "JPCERT/CC", max_tlp=TlpLevel.GREEN)
    third = _page(node, principal, collection, second.next)
    assert _ahead(node).outcomes["stale"] == 1 and _ahead(node).outcomes["served"] == 0
    amber = {row.stix_id for row, _ in third.items if row.markings and AMBER in row.markings}
    assert third.items and amber == set()


def test_an_object_added_between_two_pages_is_in_the_next(world: World) -> None:
    node, collection, principal, producer = world
    first = _page(node, principal, collection, None)
    second = _page(node, principal, collection, first.next)  # the third page is computed ahead
    late = _obj("indicator", producer, [GREEN])
    assert not node.import_objects(collection, [late]).failures
    rest, cursor = [], second.next
    while cursor is not None:
        page = _page(node, principal, collection, cursor)
        rest += _ids(page)
        cursor = page.next if page.more else None
    assert late["id"] in rest and _ahead(node).outcomes["stale"] == 1


def test_a_write_to_another_collection_between_two_pages_is_not_outrun(world: World) -> None:
    # A reference is decided by the collection that holds its target (core/elsewhere.py): a page computed ahead
    # before that collection changed may show a relationship to what is now a hidden object.
    node, collection, principal, producer = world
    target = f"malware--{uuid.uuid4()}"
    pointing = _obj("relationship", producer, [GREEN], relationship_type="uses",
                    source_ref=f"indicator--{uuid.uuid4()}", target_ref=target)
    assert not node.import_objects(collection, [pointing, *(_obj("indicator", producer, [GREEN]) for _ in range(5))]
                                   ).failures
    pages, cursor = [], None
    while True:  # read afresh, to find the page the relationship is on
        page = node.read(node.viewer_for(principal, collection), Endpoint.OBJECTS, Filters(limit=LIMIT, next=cursor))
        pages.append(page)
        if not page.more:
            break
        cursor = page.next
    on = next(n for n, page in enumerate(pages) if pointing["id"] in _ids(page))
    assert on >= 2  # the requests before it follow a cursor, so it is computed ahead
    cursor = None
    for _ in range(on):
        cursor = _page(node, principal, collection, cursor).next
    internal = node.create_collection("Internal", alias="internal")
    assert not node.import_objects(internal, [_obj("malware", producer, [AMBER_STRICT], object_id=target)]).failures
    assert pointing["id"] not in _ids(_page(node, principal, collection, cursor))
    assert _ahead(node).outcomes["stale"] == 1


def test_a_page_computed_for_one_principal_is_not_served_to_another(world: World) -> None:
    node, collection, principal, _ = world
    first = _page(node, principal, collection, None)
    second = _page(node, principal, collection, first.next)  # the third page is computed for this principal
    other = node.authenticate(node.create_token("JPCERT/CC", read=["ahead"])[1])
    assert other is not None and other.key != principal.key
    with pytest.raises(BadRequest):  # its cursor is sealed to the principal: refused, page or no page
        node.read(node.viewer_for(other, collection), Endpoint.OBJECTS, Filters(limit=LIMIT, next=second.next),
                  ahead=True)
    assert _ahead(node).outcomes["served"] == 0
    third = _page(node, principal, collection, second.next)  # still kept for the principal it was computed for
    assert _ahead(node).outcomes["served"] == 1 and third.items


def test_a_process_whose_pages_are_not_taken_stops_reading_ahead(world: World) -> None:
    """Behind a balancer that sends each request to another process, this process answers cursors whose pages
    it did not compute (another process read the page before): it then mostly stops reading ahead."""
    node, collection, principal, _ = world
    for _ in range(16):
        first = node.read(node.viewer_for(principal, collection), Endpoint.OBJECTS, Filters(limit=LIMIT))
        # The second page as another process would answer it (no page kept here), then the third asked here.
        second = node.read(node.viewer_for(principal, collection), Endpoint.OBJECTS,
                           Filters(limit=LIMIT, next=first.next), ahead=True)
        _ahead(node).wait()
        assert second.more
    # The first 7 requests read ahead (too few known); from the 8th none of the last 8 or more found its page,
    # so the 8th to the 16th are held back, but for the 15th, the probe (every 8th held back).
    assert _ahead(node).outcomes == {"held back": 8}


def test_a_partner_entry_added_between_two_pages_is_not_outrun(world: World) -> None:
    """Partner entries decide what relayed content their organisation reads, so a new one makes a page computed
    ahead stale like any policy change."""
    node, collection, principal, _ = world
    first = _page(node, principal, collection, None)
    second = _page(node, principal, collection, first.next)
    FederationState(node.store).add_partner(PartnerConfig(
        "jp-node", "http://127.0.0.1:9/main/", (CollectionMapping("ahead", "remote", Direction.PULL),),
        token="kz_unused", organisation=principal.organisation_id))
    _page(node, principal, collection, second.next)
    assert _ahead(node).outcomes["stale"] == 1 and _ahead(node).outcomes["served"] == 0
