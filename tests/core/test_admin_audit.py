"""Every administrative action is a record in the audit chain (issue 12, "every admin action in the
audit chain"): creating the node's organisation and API root at init, more API roots, collections and
organisations, beside the token, agreement and policy records checked elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kizuna.core.node import Node


def _kizuna(data: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "kizuna", "--data", str(data), *args], capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "200"}, check=True)
    return done.stdout


def test_init_and_every_creation_through_the_cli_are_audited(tmp_path: Path) -> None:
    data = tmp_path / "node"
    _kizuna(data, "init", "--org-name", "NCSC UK", "--country", "GBR")
    _kizuna(data, "api-roots", "create", "games", "--title", "Games security")
    _kizuna(data, "collections", "create", "--title", "Shared", "--alias", "shared", "--api-root", "games")
    _kizuna(data, "orgs", "create", "JPCERT/CC", "--country", "JPN")
    _kizuna(data, "agreements", "set", "uk-jp", "--partner", "JPCERT/CC", "--max-tlp", "amber")
    token = json.loads(_kizuna(data, "tokens", "create", "--org", "JPCERT/CC", "--read", "shared", "--json"))
    _kizuna(data, "tokens", "revoke", token["id"])

    records = [json.loads(line) for line in _kizuna(data, "audit", "export").splitlines()]
    kinds = [r["kind"] for r in records]
    assert kinds == ["organisation-created", "api-root-created", "api-root-created", "collection-created",
                     "organisation-created", "agreement-changed", "token-created", "token-revoked"]
    bodies = {(r["kind"], r["body"].get("name") or r["body"].get("api_root")): r for r in records}
    assert bodies[("organisation-created", "JPCERT/CC")]["body"]["country"] == "JPN"
    assert bodies[("api-root-created", "games")]["body"]["title"] == "Games security"
    created = next(r for r in records if r["kind"] == "collection-created")
    assert created["body"]["alias"] == "shared" and created["body"]["api_root"] == "games"
    assert all(r["principal"] == "admin" for r in records)
    assert json.loads(_kizuna(data, "audit", "verify", "--json"))["ok"]


def test_a_refused_creation_writes_no_record(tmp_path: Path) -> None:
    node = Node.init(tmp_path / "node", org_name="Home", country="GBR")
    try:
        before = [r.kind for r in node.audit.records()]
        for attempt in (lambda: node.create_organisation("Home"), lambda: node.create_api_root("main", "again"),
                        lambda: node.create_collection("X", api_root="nowhere")):
            try:
                attempt()
            except Exception:  # noqa: BLE001 - each is an AdminError; what matters is that nothing was recorded
                pass
            else:
                raise AssertionError("the creation should have been refused")
        assert [r.kind for r in node.audit.records()] == before
    finally:
        node.close()
