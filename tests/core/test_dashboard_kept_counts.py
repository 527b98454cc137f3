"""The dashboard's received counts are kept between requests (store/received_groups.py); each change to
the collection — versions added by another process, a version replaced by a fuller form with other
markings, a deleted object — shows in the next board exactly as a fresh count would, for the operator
and for a partner whose policy hides part of the collection."""

from __future__ import annotations

import json
from pathlib import Path

from kizuna.core.dashboard import Dashboard, build_dashboard
from kizuna.core.filters import Filters
from kizuna.core.ingest import prepare
from kizuna.core.principal import NODE_ADMIN
from kizuna.store.base import NewVersion
from tests.conftest import kizuna
from tests.core.test_dashboard import AMBER, CLEAR, World, _indicator, _readable, _received, world

__all__ = ["world"]  # the fixture, from the dashboard's own tests


def _total(board: Dashboard) -> int:
    return sum(entry.objects for entry in board.received)


def _boards_match_reads(world: World) -> dict[str, Dashboard]:
    boards = {name: build_dashboard(world.node, principal) for name, principal in world.principals.items()}
    for name, principal in world.principals.items():
        assert _total(boards[name]) == _readable(world.node, principal, world.shared), name
    return boards


def test_versions_another_process_adds_are_counted_on_the_next_board(world: World, tmp_path: Path) -> None:
    before = _boards_match_reads(world)
    home = world.node.home_organisation_id or ""
    bundle = tmp_path / "more.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": "bundle--6f1f0a52-7d0c-4a3c-9d7e-3f1a2b3c4d5e",
                                  "objects": [_indicator(home, CLEAR) for _ in range(4)]
                                  + [_indicator(home, AMBER) for _ in range(2)]}))
    kizuna(world.node.config.data_dir, "import", str(bundle), "--collection", "shared", "--json")
    after = _boards_match_reads(world)
    assert _total(after["admin"]) == _total(before["admin"]) + 6
    assert _total(after["au"]) == _total(before["au"]) + 4  # the AMBER ones are above AU's agreement
    clear = ("UK NCSC", "TLP:CLEAR")
    assert _received(after["admin"])[clear] == _received(before["admin"])[clear] + 4


def test_a_fuller_form_with_other_markings_moves_the_version_to_its_new_group(world: World) -> None:
    before = _boards_match_reads(world)
    stored = dict(world.home_green)
    fuller = {**stored, "object_marking_refs": [AMBER], "description": "the full text"}
    new = prepare(fuller)
    assert isinstance(new, NewVersion)
    version = new.version
    assert version is not None
    assert world.node.store.replace_form(world.shared.pk, new, version) is not None
    after = _boards_match_reads(world)
    assert _total(after["admin"]) == _total(before["admin"])
    admin_before, admin_after = _received(before["admin"]), _received(after["admin"])
    assert admin_after[("UK NCSC", "TLP:GREEN")] == admin_before[("UK NCSC", "TLP:GREEN")] - 1
    assert admin_after[("UK NCSC", "TLP:AMBER")] == admin_before[("UK NCSC", "TLP:AMBER")] + 1
    assert _total(after["au"]) < _total(before["au"])  # AU no longer sees it


def test_a_deleted_object_leaves_the_counts(world: World) -> None:
    before = _boards_match_reads(world)
    deleted = world.node.delete_object(NODE_ADMIN, "main", world.shared.id, world.home_green["id"], Filters())
    assert deleted == 1
    after = _boards_match_reads(world)
    assert _total(after["admin"]) == _total(before["admin"]) - 1
    green = ("UK NCSC", "TLP:GREEN")
    assert _received(after["admin"])[green] == _received(before["admin"])[green] - 1
