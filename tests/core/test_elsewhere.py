"""A reference to an object kept only in another collection of the node is decided there (core/elsewhere.py).

A TLP:GREEN relationship in the collection a partner reads must not name a TLP:AMBER+STRICT object that the node
keeps in another collection, nor may a report list it: to that reader the object is hidden, and what points at it
is hidden (or loses the entry) as within one collection (docs/policy.md, "References to hidden objects"). The
read-outs here take the stored-shapes shortcut (the collection read holds only shapes the partner sees whole) and
keep endpoint verdicts across pages, the two ways a read avoids asking the store. Real SQLite and PostgreSQL stores.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from kizuna.store.base import VersionSelector
from tests.core.test_read_fast_path import AMBER_STRICT, GREEN, _obj, _read
from tests.core.test_stored_shapes import World, _ids, _shortcut, world

__all__ = ["world"]  # the fixture, shared with the stored-shapes tests


def _bodies(read: list[tuple[str, int, bytes]]) -> dict[str, dict[str, Any]]:
    return {object_id: orjson.loads(body) for object_id, _, body in read}


def test_what_another_collection_hides_is_hidden_from_what_points_at_it(world: World) -> None:
    node, collection, principal, targets = world
    internal = node.create_collection("Internal", alias="internal")
    hidden, shown = _obj("malware", None, [AMBER_STRICT]), _obj("malware", None, [GREEN])
    assert not node.import_objects(internal, [hidden, shown]).failures
    nowhere = f"malware--{uuid.uuid4()}"
    to_hidden, to_shown, to_nowhere = (
        _obj("relationship", None, [GREEN], relationship_type="indicates", source_ref=targets[0]["id"], target_ref=ref)
        for ref in (hidden["id"], shown["id"], nowhere))
    report = _obj("report", None, [GREEN], name="Across", published="2026-03-01T00:00:00.000Z",
                  object_refs=[targets[0]["id"], hidden["id"], shown["id"]])
    assert not node.import_objects(collection, [to_hidden, to_shown, to_nowhere, report]).failures
    assert _shortcut(node, principal, collection)  # its own shapes are all whole to the partner
    for _ in range(2):  # the second read-out also meets the endpoint verdicts the first one kept
        read = _read(node, principal, collection, "all")
        assert to_hidden["id"] not in _ids(read)
        assert {to_shown["id"], to_nowhere["id"], report["id"]} <= _ids(read)
        assert _bodies(read)[report["id"]]["object_refs"] == [targets[0]["id"], shown["id"]]
    # Deleted from the other collection, the object stays hidden from this reader (decided by its kept copy).
    node.store.delete_versions(internal.pk, hidden["id"], VersionSelector(), None)
    read = _read(node, principal, collection, "all")
    assert to_hidden["id"] not in _ids(read)
    assert _bodies(read)[report["id"]]["object_refs"] == [targets[0]["id"], shown["id"]]
    # The node's own organisation reads it all.
    home = node.authenticate(node.create_token("NCSC UK", read=["shapes"])[1])
    assert home is not None
    assert to_hidden["id"] in _ids(_read(node, home, collection, "all"))


def test_an_absent_id_kept_visible_is_asked_again_once_another_collection_holds_it(world: World) -> None:
    node, collection, principal, targets = world
    later = f"indicator--{uuid.uuid4()}"
    pointing = _obj("relationship", None, [GREEN], relationship_type="indicates", source_ref=later,
                    target_ref=targets[0]["id"])
    assert not node.import_objects(collection, [pointing]).failures
    for _ in range(2):  # stored nowhere: not hidden, and the verdict is kept across pages
        assert pointing["id"] in _ids(_read(node, principal, collection, "all"))
    internal = node.create_collection("Internal", alias="internal")
    assert not node.import_objects(internal, [_obj("indicator", None, [AMBER_STRICT], object_id=later)]).failures
    assert pointing["id"] not in _ids(_read(node, principal, collection, "all"))


def test_an_object_held_in_both_collections_is_decided_by_the_one_read(world: World) -> None:
    node, collection, principal, targets = world
    internal = node.create_collection("Internal", alias="internal")
    # Another collection holds only a later version of it, hidden from the partner: this collection's decides.
    hidden_version = _obj(targets[0]["type"], targets[0]["created_by_ref"], [AMBER_STRICT], 1, targets[0]["id"])
    assert not node.import_objects(internal, [hidden_version]).failures
    read = _read(node, principal, collection, "all")
    pointing = {o["id"] for o in _bodies(read).values()
                if o["type"] == "relationship" and targets[0]["id"] in (o["source_ref"], o["target_ref"])}
    assert pointing and pointing <= _ids(read)


def test_verdicts_kept_across_pages_follow_writes_to_the_other_collections(world: World) -> None:
    node, collection, principal, targets = world
    internal = node.create_collection("Internal", alias="internal")
    assert not node.import_objects(internal, [_obj("malware", None, [AMBER_STRICT])]).failures
    later = f"indicator--{uuid.uuid4()}"
    pointing = _obj("relationship", None, [GREEN], relationship_type="indicates", source_ref=later,
                    target_ref=targets[0]["id"])
    assert not node.import_objects(collection, [pointing]).failures
    for _ in range(2):  # held nowhere: not hidden, and kept across pages and read-outs
        assert pointing["id"] in _ids(_read(node, principal, collection, "all"))
    # Only the other collection changes; what was kept for this one must not serve the relationship.
    assert not node.import_objects(internal, [_obj("indicator", None, [AMBER_STRICT], object_id=later)]).failures
    assert pointing["id"] not in _ids(_read(node, principal, collection, "all"))
