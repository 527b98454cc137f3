"""What the backup and crash tests read back: a collection's rows straight from a store, in date_added order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

from kizuna.core.audit import AuditLog
from kizuna.store import open_store
from kizuna.store.base import VersionQuery, VersionSelector
from tests.conftest import kizuna
from tests.federation.helpers import FedNode


def rows(store_url: str, collection: str) -> list[tuple[str, int, bytes]]:
    """Every stored version of a collection as (id, version µs, exact bytes), oldest date_added first."""
    store = open_store(store_url)
    try:
        found = store.get_collection("main", collection)
        assert found is not None
        out: list[tuple[str, int, bytes]] = []
        after = None
        while True:
            page = store.query_versions(VersionQuery(
                collection_pk=found.pk, versions=VersionSelector(all=True), added_after=after, limit=5000,
            ))
            out += [(row.stix_id, row.version, bytes(row.body)) for row in page]
            if len(page) < 5000:
                return out
            after = page[-1].date_added
    finally:
        store.close()


def ids(store_url: str, collection: str) -> list[str]:
    return [stix_id for stix_id, _, _ in rows(store_url, collection) if not stix_id.startswith("marking-definition--")]


def audit_ok(data_dir: Path) -> dict[str, Any]:
    """``kizuna audit verify`` as the operator runs it; the chain must be whole."""
    verdict: dict[str, Any] = json.loads(kizuna(data_dir, "audit", "verify", "--json").stdout)
    assert verdict["ok"] is True, verdict
    return verdict


def audit_records(data_dir: Path, kind: str) -> list[dict[str, Any]]:
    """``kizuna audit export --kind KIND``: the records of one kind, oldest first."""
    out = kizuna(data_dir, "audit", "export", "--kind", kind).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def chain_ok(store_url: str) -> int:
    """The same verification through the core API, without starting a process; returns the record count."""
    store = open_store(store_url)
    try:
        result = AuditLog(store).verify()
    finally:
        store.close()
    assert result.ok, result.problem
    return result.records


def serve(node: FedNode, port: int | None = None) -> None:
    """``kizuna serve --no-sync`` in its own process group, so kill -9 takes down all it started."""
    from tests.conftest import serve_kizuna

    node.server = serve_kizuna(node.data_dir, ["--no-sync"], port=port, stderr=subprocess.DEVNULL,
                               start_new_session=True)


def kill_9(process: subprocess.Popen[Any]) -> None:
    """Power off a process and everything in its group, as a crash would."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it had already finished
    process.wait()


def indicators(producer: str, count: int, tag: str) -> list[dict[str, Any]]:
    """``count`` distinct indicators; ``tag`` names the envelope or file they belong to."""
    made = []
    for index in range(count):
        made.append({
            "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "name": f"{tag} #{index}", "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z",
            "pattern": f"[ipv4-addr:value = '203.0.113.{index % 250}']", "created_by_ref": producer,
        })
    return made
