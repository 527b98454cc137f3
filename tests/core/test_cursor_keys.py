"""Rotating the cursor HMAC key: cursors in flight keep working while their key is kept, a second
process learns of the rotation from the store, and a retired key's cursors are refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from kizuna.core.cursor import load_key_ring
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


def test_a_cursor_seals_its_position_and_one_issued_in_clear_is_still_accepted(tmp_path: Path) -> None:
    node = Node.init(tmp_path / "node", org_name="Home", country="GBR")
    try:
        position = 1_733_900_000_123_456
        sealed = node.cursors.encode(SCOPE, position)
        # A page may stop on a row its reader may not see: nothing of that row's date_added is in the cursor.
        assert str(position) not in sealed and str(position).encode() not in base64.urlsafe_b64decode(
            sealed.partition(".")[2] + "==")
        assert sealed != node.cursors.encode(SCOPE, position)  # a fresh nonce each time
        assert node.cursors.decode(SCOPE, sealed) == position
        tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
        for bad in (tampered, "s.", "s.AAAA"):
            with pytest.raises(BadRequest):
                node.cursors.decode(SCOPE, bad)
        for garbage in ("garbage", "", "k1~garbage", "abc."):  # no cursor this server writes looks like these
            with pytest.raises(BadRequest, match="not a cursor this server issued"):
                node.cursors.decode(SCOPE, garbage)
        with pytest.raises(BadRequest, match="does not belong"):
            node.cursors.decode("another|scope", sealed)
        # A cursor issued before positions were sealed: the position in clear with its HMAC.
        key = load_key_ring(node.store).keys["0"]
        raw = b"1000"
        mac = hmac.new(key, b"1\0" + SCOPE.encode() + b"\0" + raw, hashlib.sha256).digest()[:18]
        clear = base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "." + base64.urlsafe_b64encode(mac).rstrip(
            b"=").decode()
        assert node.cursors.decode(SCOPE, clear) == 1000
        moved = base64.urlsafe_b64encode(b"0").rstrip(b"=").decode() + "." + clear.partition(".")[2]
        with pytest.raises(BadRequest, match="does not belong"):
            node.cursors.decode(SCOPE, moved)  # a clear position moved back, keeping its HMAC
        with pytest.raises(BadRequest, match="does not belong"):
            node.cursors.decode("another|scope", clear)
    finally:
        node.close()
