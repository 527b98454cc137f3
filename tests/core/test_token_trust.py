"""Tokens bound to a client certificate and rotated secrets, checked on a real SQLite node."""

from __future__ import annotations

from pathlib import Path

import pytest

from kizuna.core.errors import AdminError, NotFound
from kizuna.core.node import Node
from kizuna.core.tokens import parse_fingerprint

CERT_A = "ab" * 32
CERT_B = "cd" * 32


def test_a_bound_token_needs_its_certificate_and_can_be_unbound(tmp_path: Path) -> None:
    node = Node.init(tmp_path / "node", org_name="Home", country="GBR")
    try:
        node.create_collection("C", "main", None, "c")
        token_id, secret = node.create_token("Home", read=["c"], cert_fingerprint=CERT_A.upper())
        assert node.authenticate(secret, CERT_A) is not None
        assert node.authenticate(secret, CERT_B) is None
        assert node.authenticate(secret, None) is None
        assert node.bind_token_certificate(token_id, None) is None
        assert node.authenticate(secret, None) is not None
        bound = node.bind_token_certificate(token_id, ":".join(CERT_B[i:i + 2] for i in range(0, 64, 2)))
        assert bound == CERT_B and node.authenticate(secret, CERT_B) is not None
        with pytest.raises(NotFound):
            node.bind_token_certificate("0000000000000000", CERT_A)
        with pytest.raises(AdminError, match="SHA-256"):
            parse_fingerprint("abc")
    finally:
        node.close()


def test_rotation_keeps_one_previous_secret_for_its_grace_period(tmp_path: Path) -> None:
    node = Node.init(tmp_path / "node", org_name="Home", country="GBR")
    try:
        node.create_collection("C", "main", None, "c")
        token_id, old = node.create_token("Home", read=["c"])
        new, until = node.rotate_token(token_id, "1h")
        assert node.authenticate(old) is not None and node.authenticate(new) is not None
        newest, _ = node.rotate_token(token_id, "0")
        assert [node.authenticate(s) is not None for s in (old, new, newest)] == [False, False, True]
        node.revoke_token(token_id)
        with pytest.raises(AdminError, match="revoked"):
            node.rotate_token(token_id, "1h")
        with pytest.raises(NotFound, match="no token"):  # not-found on the CLI, like bind and revoke
            node.rotate_token("0000000000000000", "1h")
        kinds = [r.kind for r in node.audit.records()]
        assert kinds.count("token-rotated") == 2 and node.audit.verify().ok
    finally:
        node.close()
