"""Every admin action of the ``kizuna`` command is a record in the audit chain, by the admin.

One node, the admin commands one after the other as an operator runs them; after each, the records it
appended are read back through ``kizuna audit export`` and must include the expected kind (an action
may write more: closing an operation also revokes its partner tokens). Backup and restore are checked
with their bodies in tests/recovery/test_backup_restore.py; here they take their place in the list.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import kizuna, kizuna_json

FINGERPRINT = "ab" * 32


def _records(data_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in kizuna(data_dir, "audit", "export").stdout.splitlines() if line]


def test_every_admin_command_appends_its_record(tmp_path: Path) -> None:
    node = tmp_path / "node"
    kizuna_json(node, "init", "--org-name", "Home", "--country", "GBR")
    kizuna_json(node, "orgs", "create", "JP", "--country", "JPN")
    kizuna_json(node, "collections", "create", "--title", "C", "--alias", "c")
    token = kizuna_json(node, "tokens", "create", "--org", "Home", "--read", "c")["id"]
    seen = len(_records(node))

    actions: list[tuple[tuple[str, ...], str]] = [
        (("tokens", "rotate", token, "--grace", "1h"), "token-rotated"),
        (("tokens", "bind-cert", token, "--cert-fingerprint", FINGERPRINT), "token-certificate-bound"),
        (("tokens", "bind-cert", token, "--unbind"), "token-certificate-bound"),
        (("tokens", "operator", token), "operator-right"),
        (("metrics", "grant", token), "metrics-right"),
        (("metrics", "revoke", token), "metrics-right"),
        (("cursor-keys", "rotate"), "cursor-key-rotated"),
        (("partners", "add", "JP", "--url", "https://jp.example/taxii2/main/", "--map", "c=remote",
          "--token", "issued-by-jp", "--org", "JP"), "partner-added"),
        (("partners", "remove", "JP"), "partner-removed"),
        (("feeds", "create", "blocklist", "--format", "txt", "--collection", "c", "--type", "ip"), "feed-created"),
        (("feeds", "remove", "blocklist"), "feed-removed"),
        (("ops", "create", "Tsunami", "--from", "2027-09-20", "--to", "2027-09-25", "--partner", "JP"),
         "operation-created"),
        (("ops", "close", "tsunami"), "operation-closed"),
        (("tokens", "revoke", token), "token-revoked"),
        (("backup", str(tmp_path / "copy")), "node-backed-up"),
    ]
    for command, kind in actions:
        kizuna_json(node, *command)
        records = _records(node)
        appended = records[seen:]
        assert kind in [r["kind"] for r in appended], (command, appended)
        assert all(r["principal"] == "admin" for r in appended if r["kind"] == kind)
        seen = len(records)
    assert kizuna_json(node, "audit", "verify")["ok"] is True

    restored = tmp_path / "restored"
    kizuna_json(restored, "restore", str(tmp_path / "copy"))
    assert _records(restored)[-1]["kind"] == "node-restored"
    assert kizuna_json(restored, "audit", "verify")["ok"] is True
