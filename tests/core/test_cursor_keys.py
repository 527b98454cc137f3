"""Rotating the cursor HMAC key: cursors in flight keep working while their key is kept, a second
process learns of the rotation from the store, and a retired key's cursors are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from kizuna.core.errors import BadRequest
from kizuna.core.node import Node

SCOPE = "principal|collection|objects|filters"


def test_cursors_survive_a_rotation_until_their_key_is_retired(tmp_path: Path) -> None:
    first = Node.init(tmp_path / "node", org_name="Home", country="GBR")
    other = Node.open(tmp_path / "node")  # another server process of the same node
    try:
        legacy = first.cursors.encode(SCOPE, 1000)
        assert "~" not in legacy  # the node's first key: cursors look as they always did

        key_id, retired = first.rotate_cursor_key(keep=1)
        assert retired == []
        fresh = first.cursors.encode(SCOPE, 2000)
        assert fresh.startswith(f"{key_id}~")
        # The other process has never seen the new key id: it reloads the ring and accepts it.
        assert other.cursors.decode(SCOPE, fresh) == 2000
        assert other.cursors.decode(SCOPE, legacy) == 1000
        with pytest.raises(BadRequest, match="does not belong"):
            other.cursors.decode("another|scope", fresh)

        _, retired = first.rotate_cursor_key(keep=0)
        assert retired == ["0", key_id]
        for cursor in (legacy, fresh):
            with pytest.raises(BadRequest, match="retired"):
                first.cursors.decode(SCOPE, cursor)
        kinds = [r.kind for r in first.audit.records()]
        assert kinds.count("cursor-key-rotated") == 2 and first.audit.verify().ok
    finally:
        first.close()
        other.close()
