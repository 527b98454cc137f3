"""Two writers storing the same unique value: the second is refused with a Conflict that names what was taken,
on both backends, and nothing of its transaction is written; the command line turns it into one line.

The node checks names and aliases before it writes, but two processes (two operators, a script run twice) can
both pass the check before either writes; the store's unique constraint then decides, and the loser must hear
"already exists", not an internal error.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kizuna.store.base import ApiRoot, Conflict
from kizuna.store.sql import SqlStore
from tests.conftest import kizuna, kizuna_json


def test_a_second_writer_of_the_same_name_meets_a_conflict_and_writes_nothing(store: SqlStore) -> None:
    store.create_api_root(ApiRoot("games", "Games", None, 10_000_000))
    with pytest.raises(Conflict, match=r"^api_roots\.name is already taken"):
        with store.atomic():
            store.set_setting("written-before-the-conflict", "1")
            store.create_api_root(ApiRoot("games", "Games again", None, 10_000_000))
    assert store.get_setting("written-before-the-conflict") is None  # the whole transaction was rolled back
    assert store.get_api_root("games") == ApiRoot("games", "Games", None, 10_000_000)


def test_parallel_creates_of_one_api_root_leave_one_winner_and_one_line_refusals(tmp_path: Path) -> None:
    node = tmp_path / "node"
    kizuna_json(node, "init", "--org-name", "NCSC UK", "--country", "GBR")

    def create(_: int) -> subprocess.CompletedProcess[str]:
        return kizuna(node, "api-roots", "create", "games", "--title", "Games", "--json", check=False)

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(create, range(6)))
    assert sorted(r.returncode for r in results)[0] == 0 and [r.returncode for r in results].count(0) == 1
    for refused in (r for r in results if r.returncode != 0):
        assert "API root 'games' already exists" in refused.stdout, refused.stdout
        assert "internal" not in refused.stdout and not refused.stderr
