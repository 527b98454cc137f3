"""A TAXII POST's objects, status resource and ``write`` audit record are one transaction.

The random-point loop in ``test_crash.py`` rarely lands between the objects' commit and the status
or audit write; these tests stop the server exactly there.

- PostgreSQL, kill -9: the test holds a lock the POST needs for its status row (a SHARE lock on
  ``statuses``) or its audit record (the ``audit_head`` row), waits until the server's backend is
  seen waiting for it in ``pg_stat_activity``, kills ``kizuna serve`` and only then lets go.  The
  backend never receives COMMIT, so nothing of the envelope may be visible after the restart.
- Both backends, a failure at the same two points: a trigger the test adds refuses the status insert
  or the audit insert.  The POST fails, and again none of its objects may be stored.

Each test then sends the same envelope again and checks that it is stored whole, with a status a
client can read and a ``write`` record in a chain that verifies.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from tests.conftest import BACKENDS, TAXII, PgDatabase, create_pg_database
from tests.federation.helpers import FedNode, make_fed_node
from tests.recovery.helpers import chain_ok, indicators, kill_9, rows, serve

ENVELOPE = 300
HEADERS = {"Accept": TAXII, "Content-Type": TAXII}

#: (what the server is stopped before, how the test holds it, the statement the server waits in)
LOCK_POINTS = {
    "status": ("LOCK TABLE statuses IN SHARE MODE", "INSERT INTO statuses%"),
    "audit": ("SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE", "UPDATE audit_head%"),
}

#: A trigger that refuses an insert at each point, per backend.
REFUSE = {
    ("sqlite", "status"): "CREATE TRIGGER test_refuse BEFORE INSERT ON statuses "
                          "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    ("sqlite", "audit"): "CREATE TRIGGER test_refuse BEFORE INSERT ON audit_log "
                         "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    ("postgresql", "status"): "CREATE TRIGGER test_refuse BEFORE INSERT ON statuses "
                              "FOR EACH ROW EXECUTE FUNCTION test_refuse()",
    ("postgresql", "audit"): "CREATE TRIGGER test_refuse BEFORE INSERT ON audit_log "
                             "FOR EACH ROW EXECUTE FUNCTION test_refuse()",
}
_PG_REFUSE_FUNCTION = (
    "CREATE OR REPLACE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
)


@dataclass
class Served:
    backend: str
    node: FedNode
    database: PgDatabase | None


@pytest.fixture(params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    database = create_pg_database() if request.param == "postgresql" else None
    node = make_fed_node(tmp_path, "UK", "GBR", database.url if database else None)
    serve(node)
    try:
        yield Served(request.param, node, database)
    finally:
        node.stop()
        if database is not None:
            database.drop()


def _post(node: FedNode, objects: list[dict[str, Any]]) -> requests.Response:
    return requests.post(
        f"{node.api_root_url}collections/{node.collection}/objects/", data=json.dumps({"objects": objects}),
        headers={**HEADERS, "Authorization": f"Bearer {node.admin_token}"}, timeout=120,
    )


def _write_records(store_url: str) -> list[dict[str, Any]]:
    from kizuna.core.audit import AuditLog
    from kizuna.store import open_store

    store = open_store(store_url)
    try:
        return [json.loads(r.body) for r in AuditLog(store).records() if r.kind == "write"]
    finally:
        store.close()


def _status_count(served: Served) -> int:
    if served.database is not None:
        with psycopg.connect(served.database.url, autocommit=True) as conn:
            row = conn.execute("SELECT COUNT(*) FROM statuses").fetchone()
    else:
        with sqlite3.connect(served.node.data_dir / "kizuna.db") as conn:
            row = conn.execute("SELECT COUNT(*) FROM statuses").fetchone()
    assert row is not None
    return int(row[0])


def _nothing_of(served: Served, objects: list[dict[str, Any]], writes_before: int, where: str) -> None:
    stored = {stix_id for stix_id, _, _ in rows(served.node.store_url, served.node.collection)}
    present = sum(obj["id"] in stored for obj in objects)
    assert present == 0, f"{present} of {len(objects)} objects stored without their status and audit ({where})"
    assert _status_count(served) == 0, f"a status for an envelope that was not stored ({where})"
    chain_ok(served.node.store_url)
    assert len(_write_records(served.node.store_url)) == writes_before, where


def _stored_whole_on_retry(served: Served, objects: list[dict[str, Any]]) -> None:
    node = served.node
    answer = _post(node, objects)
    assert answer.status_code == 202, answer.text
    status = answer.json()
    assert status["success_count"] == len(objects) and status["failure_count"] == 0
    again = requests.get(f"{node.api_root_url}status/{status['id']}/", timeout=30,
                         headers={"Accept": TAXII, "Authorization": f"Bearer {node.admin_token}"})
    assert again.status_code == 200 and again.json() == status
    stored = {stix_id for stix_id, _, _ in rows(node.store_url, node.collection)}
    assert all(obj["id"] in stored for obj in objects)
    chain_ok(node.store_url)
    assert [w["status"] for w in _write_records(node.store_url)][-1] == status["id"]


def _waiting_backend(url: str, statement: str, deadline_s: float = 60) -> int:
    """The pid of the backend that waits for the test's lock in ``statement``; polled with a deadline."""
    until = time.monotonic() + deadline_s
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < until:
            row = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
                "AND query LIKE %s", (statement,),
            ).fetchone()
            if row is not None:
                return int(row[0])
            time.sleep(0.05)
    raise AssertionError(f"no backend waited in {statement!r} within {deadline_s} s")


def _backend_gone(url: str, pid: int, deadline_s: float = 60) -> None:
    until = time.monotonic() + deadline_s
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < until:
            if conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is None:
                return
            time.sleep(0.05)
    raise AssertionError(f"backend {pid} of the killed server is still there after {deadline_s} s")


@pytest.mark.parametrize("point", sorted(LOCK_POINTS))
def test_kill_9_between_objects_and_their_status_or_audit(tmp_path: Path, point: str) -> None:
    database = create_pg_database()
    node = make_fed_node(tmp_path, "UK", "GBR", database.url)
    served = Served("postgresql", node, database)
    try:
        serve(node)
        writes_before = len(_write_records(node.store_url))
        objects = indicators(node.identity, ENVELOPE, f"held at {point}")
        hold, statement = LOCK_POINTS[point]
        with psycopg.connect(database.url) as holder:
            holder.execute(hold)  # the transaction stays open: the server's POST will wait for it
            answered: list[requests.Response | None] = []

            def send() -> None:
                try:
                    answered.append(_post(node, objects))
                except requests.RequestException:
                    answered.append(None)

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            backend = _waiting_backend(database.url, statement)
            assert node.server is not None
            port = node.server.port
            kill_9(node.server.process)
            sender.join(timeout=60)
            assert answered == [None], "the POST was answered although its transaction could not commit"
            holder.rollback()
        _backend_gone(database.url, backend)
        serve(node, port)
        _nothing_of(served, objects, writes_before, f"kill -9 waiting before the {point} write")
        _stored_whole_on_retry(served, objects)
    finally:
        node.stop()
        database.drop()


def _add_refusal(served: Served, point: str) -> None:
    if served.database is not None:
        with psycopg.connect(served.database.url, autocommit=True) as conn:
            conn.execute(_PG_REFUSE_FUNCTION)
            conn.execute(REFUSE["postgresql", point])
    else:
        with sqlite3.connect(served.node.data_dir / "kizuna.db") as conn:
            conn.execute(REFUSE["sqlite", point])


def _drop_refusal(served: Served) -> None:
    if served.database is not None:
        for table in ("statuses", "audit_log"):
            with psycopg.connect(served.database.url, autocommit=True) as conn:
                conn.execute(f"DROP TRIGGER IF EXISTS test_refuse ON {table}")
    else:
        with sqlite3.connect(served.node.data_dir / "kizuna.db") as conn:
            conn.execute("DROP TRIGGER IF EXISTS test_refuse")


@pytest.mark.parametrize("point", sorted(LOCK_POINTS))
def test_a_failed_status_or_audit_write_stores_nothing(served: Served, point: str) -> None:
    node = served.node
    writes_before = len(_write_records(node.store_url))
    objects = indicators(node.identity, ENVELOPE, f"refused at {point}")
    _add_refusal(served, point)
    answer = _post(node, objects)
    assert answer.status_code == 500, answer.text
    assert answer.headers["content-type"].startswith("application/taxii+json")
    _drop_refusal(served)
    _nothing_of(served, objects, writes_before, f"{served.backend}: the {point} write refused")
    _stored_whole_on_retry(served, objects)
