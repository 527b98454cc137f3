"""The dashboard's received counts are kept in the store (schema step 20, store/received_groups.py): a node
opened again — a restarted server, or a second process on the same store — goes on from the stored counts
and adds only what arrived since, and its first board gives exactly what a fresh count gives, for the
node's own organisation and for a partner that sees part of the collection, on both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kizuna.core.dashboard import DayCount, build_dashboard
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from tests.core.test_dashboard import AMBER, CLEAR, GREEN, World, _indicator, _readable, world

__all__ = ["world"]  # the fixture, from the dashboard's own tests


def _principals(world: World) -> dict[str, Principal]:
    """A token of the node's own organisation and the AU partner's (up to GREEN)."""
    own = world.node.authenticate(world.node.create_token("UK NCSC", read=["shared"])[1])
    assert own is not None
    return {"own": own, "partner": world.principals["au"]}


def _boards(node: Node, principals: dict[str, Principal]) -> dict[str, list[DayCount]]:
    return {name: build_dashboard(node, principal).received for name, principal in principals.items()}


def _stored(node: Node) -> tuple[int, int]:
    """(generation of the stored counts, their total versions)."""
    with node.store._read() as cur:
        cur.execute("SELECT generation FROM received_marks")
        marks = cur.fetchall()
        cur.execute("SELECT SUM(versions) FROM received_counts")
        total = cur.fetchone()[0]
    assert len(marks) == 1, marks  # the one collection
    return int(marks[0][0]), int(total)


def _fresh(data_dir: Path, principals: dict[str, Principal]) -> dict[str, list[DayCount]]:
    """The boards of a node that counts everything again: the stored counts removed, a new store object."""
    node = Node.open(data_dir)
    try:
        with node.store._write() as cur:
            cur.execute("DELETE FROM received_counts")
            cur.execute("DELETE FROM received_marks")
        return _boards(node, principals)
    finally:
        node.close()


def _import(data_dir: Path, world: World, objects: list[dict[str, Any]]) -> None:
    """Another process adds versions to the collection (a node of its own on the same store)."""
    other = Node.open(data_dir)
    try:
        assert not other.import_objects(world.shared, objects).failures
    finally:
        other.close()


def test_a_restarted_node_goes_on_from_the_stored_counts(world: World) -> None:
    principals = _principals(world)
    data_dir = world.node.config.data_dir
    before = _boards(world.node, principals)
    generation, total = _stored(world.node)
    world.node.close()  # the server stops
    home = world.node.home_organisation_id or ""
    _import(data_dir, world, [_indicator(home, CLEAR) for _ in range(3)] + [_indicator(home, AMBER)])

    restarted = Node.open(data_dir)
    try:
        first = _boards(restarted, principals)
        # It added the 4 new versions to the stored counts (one update of them), not a count of everything.
        assert _stored(restarted) == (generation + 1, total + 4)
        for name, principal in principals.items():
            assert sum(c.objects for c in first[name]) == _readable(restarted, principal, world.shared), name
    finally:
        restarted.close()
    assert sum(c.objects for c in first["own"]) == sum(c.objects for c in before["own"]) + 4
    assert sum(c.objects for c in first["partner"]) == sum(c.objects for c in before["partner"]) + 3  # not AMBER
    assert first == _fresh(data_dir, principals)


def test_two_processes_on_one_store_do_not_add_the_same_versions_twice(world: World) -> None:
    principals = _principals(world)
    data_dir = world.node.config.data_dir
    home = world.node.home_organisation_id or ""
    _boards(world.node, principals)  # the first server keeps the counts, in memory and in the store
    second = Node.open(data_dir)
    try:
        _import(data_dir, world, [_indicator(home, GREEN) for _ in range(2)])
        _boards(second, principals)  # the second server brings the stored counts up to date first
        generation, total = _stored(second)
        # The first server's own counts are now behind the store's: it adds the two versions to its own
        # answer, but its write is refused (the stored generation moved), so the store holds them once.
        behind = _boards(world.node, principals)
        assert _stored(world.node) == (generation, total)
        _import(data_dir, world, [_indicator(home, CLEAR)])
        again = _boards(world.node, principals)  # it reads the stored counts again and goes on from them
        assert _stored(world.node) == (generation + 1, total + 1)
        assert _boards(second, principals) == again
    finally:
        second.close()
    for name, principal in principals.items():
        assert sum(c.objects for c in behind[name]) + 1 == sum(c.objects for c in again[name]), name  # CLEAR
        assert sum(c.objects for c in again[name]) == _readable(world.node, principal, world.shared), name
    assert again == _fresh(data_dir, principals)
