"""Alerts judged as objects arrive (ops/arrivals.py): raised in the ingest's own transaction, inherited
across batches, caught up when a node ingested without the listener or the watchlist changed, hidden
with the objects they are on, and equal to judging every stored object again."""

from __future__ import annotations

from kizuna.core.node import Node
from kizuna.ops.alerts import judge_stored
from kizuna.ops.arrivals import STATE_KEY, alerts_of, watch_arrivals
from kizuna.ops.assets import add_assets
from kizuna.ops.reading import stix_now
from kizuna.ops.records import Operation
from tests.ops.conftest import RED, indicator, sighting


def stored(node: Node, operation: Operation) -> set[tuple[str, str, bool]]:
    """What the alerts table holds, read without catching up: (object, rule, raised)."""
    return {(row.stix_id, row.rule, row.raised) for row in node.store.ops_alert_matches(
        operation.slug, [row.stix_id for row in node.store.ops_alerts(operation.slug)])}


def test_an_alert_is_stored_by_the_ingest_that_brings_the_object(room: tuple[Node, Operation, str]) -> None:
    node, operation, _ = room
    intel = node.find_collection(operation.collections["intel"])
    bad, calm = indicator("login.games2027.example"), indicator("nothing.example")
    node.import_objects(intel, [bad, calm])
    assert stored(node, operation) == {(bad["id"], "containment", True)}  # no read has run yet
    assert node.store.get_setting(STATE_KEY + operation.slug) is not None
    # A later batch's sighting inherits the stored match of the indicator it names.
    seen = sighting(bad["id"])
    node.import_objects(intel, [seen, sighting(calm["id"])])
    assert stored(node, operation) == {(bad["id"], "containment", True), (seen["id"], "relationship", True)}
    assert alerts_of(node, operation) == judge_stored(node, operation)
    assert [a.object_id for a in alerts_of(node, operation)] == [bad["id"], seen["id"]]


def test_objects_ingested_without_the_listener_are_judged_on_the_next_read(
        room: tuple[Node, Operation, str]) -> None:
    node, operation, _ = room
    intel = node.find_collection(operation.collections["intel"])
    node.import_objects(intel, [indicator("www.games2027.example")])
    node.ingest_listeners.clear()  # as a process that never registered it
    missed = indicator("pay.games2027.example")
    node.import_objects(intel, [missed])
    watch_arrivals(node)
    follower = indicator("mail.games2027.example")
    node.import_objects(intel, [follower])  # after a gap: left to the read, not judged out of order
    assert missed["id"] not in {sid for sid, _, _ in stored(node, operation)}
    assert follower["id"] not in {sid for sid, _, _ in stored(node, operation)}
    found = alerts_of(node, operation)
    assert {missed["id"], follower["id"]} <= {a.object_id for a in found}
    assert found == judge_stored(node, operation)


def test_a_changed_watchlist_judges_every_object_again(room: tuple[Node, Operation, str]) -> None:
    node, operation, _ = room
    intel = node.find_collection(operation.collections["intel"])
    early = indicator("tickets.olympics.example")
    node.import_objects(intel, [early])
    assert alerts_of(node, operation) == []
    add_assets(node, operation, [("domain", "olympics.example")])
    assert [(a.object_id, a.asset) for a in alerts_of(node, operation)] == [(early["id"], "olympics.example")]


def test_alerts_on_hidden_objects_are_absent_for_a_partner(room: tuple[Node, Operation, str]) -> None:
    node, operation, token = room
    intel = node.find_collection(operation.collections["intel"])
    shared, secret = indicator("a.games2027.example"), indicator("b.games2027.example", marking=RED)
    node.import_objects(intel, [shared, secret])
    partner = node.authenticate(token)
    assert partner is not None
    assert {a.object_id for a in alerts_of(node, operation)} == {shared["id"], secret["id"]}
    assert [a.object_id for a in alerts_of(node, operation, principal=partner)] == [shared["id"]]
    assert alerts_of(node, operation, principal=partner) == judge_stored(node, operation, principal=partner)


def test_a_new_version_replaces_the_alerts_of_the_old_one(room: tuple[Node, Operation, str]) -> None:
    node, operation, _ = room
    intel = node.find_collection(operation.collections["intel"])
    first = indicator("c.games2027.example")
    node.import_objects(intel, [first])
    later = {**first, "modified": stix_now(), "pattern": "[domain-name:value = 'harmless.example']"}
    if later["modified"] == first["modified"]:
        later["modified"] = later["modified"][:-4] + "999Z"
    node.import_objects(intel, [later])
    assert stored(node, operation) == set()
    assert alerts_of(node, operation) == judge_stored(node, operation) == []
