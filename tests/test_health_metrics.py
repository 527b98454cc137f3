"""/healthz, /readyz and /metrics on real ``kizuna serve`` processes, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from kizuna.config import absolute_store_url
from kizuna.store import open_store
from kizuna.store.postgres.migrations import MIGRATIONS as POSTGRES_MIGRATIONS
from kizuna.store.sqlite.migrations import MIGRATIONS as SQLITE_MIGRATIONS
from tests.conftest import (
    BACKENDS,
    PG_ADMIN_URL,
    TAXII,
    Node,
    ServerProcess,
    create_pg_database,
    free_port,
    kizuna,
    kizuna_json,
    serve_kizuna,
    start_server,
)
from tests.federation.helpers import add_partner, grant_partner, indicator, make_fed_node, sync

OBJECTS_ROUTE = "/{api_root}/collections/{collection}/objects/"
DEADLINE_S = 60.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# -- helpers ------------------------------------------------------------------------------
def scrape(base: str, **kwargs: Any) -> Samples:
    response = requests.get(f"{base}/metrics", timeout=30, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def readyz(base: str) -> tuple[int, dict[str, Any]]:
    response = requests.get(f"{base}/readyz", timeout=30)
    assert response.headers["content-type"] == "application/json"
    return response.status_code, response.json()


def poll(condition: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S) -> Any:
    """Return the first truthy value of ``condition()``, or fail after the deadline."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)  # polling a condition, bounded by the deadline
    raise AssertionError(f"timed out waiting for {what}")


def child_pids(pid: int) -> list[str]:
    """Children of every thread of ``pid``: serve starts its sync worker from a supervising thread."""
    found: list[str] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += (task / "children").read_text().split()
        except OSError:
            continue  # the thread ended while we looked
    return found


def store_url_of(data_dir: Path) -> str:
    url: str = tomllib.loads((data_dir / "kizuna.toml").read_text())["store"]
    return absolute_store_url(url, data_dir)  # an SQLite path in kizuna.toml is relative to the node


def sql(data_dir: Path, statement: str, params: tuple[Any, ...] = ()) -> None:
    store = open_store(store_url_of(data_dir))
    try:
        with store._write() as cur:  # type: ignore[attr-defined]
            cur.execute(statement, params)
    finally:
        store.close()


def new_node(base: Path, backend: str, name: str = "node") -> tuple[Path, Callable[[], None]]:
    """An initialised node (not served) with a 'shared' collection; returns (data dir, cleanup)."""
    data_dir = base / f"{name}-{backend}"
    args = ["init", "--org-name", "NCSC UK", "--country", "GBR"]
    database = create_pg_database() if backend == "postgresql" else None
    if database:
        args += ["--store", database.url]
    kizuna_json(data_dir, *args)
    kizuna_json(data_dir, "collections", "create", "--title", "Shared", "--alias", "shared")
    return data_dir, (database.drop if database else lambda: None)


def serve(data_dir: Path, *extra: str, host: str = "127.0.0.1") -> ServerProcess:
    return serve_kizuna(data_dir, ["--host", host, *extra], stderr=subprocess.PIPE)


def non_loopback_address() -> str:
    """An address of this machine that is not loopback (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    return address


def worker_pid(server: ServerProcess) -> int:
    """The pid of the ``kizuna sync --loop`` process this serve started."""
    def find() -> int | None:
        children = child_pids(server.process.pid)
        for pid in children:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"sync" in cmdline and b"--loop" in cmdline:
                return int(pid)
        return None
    found: int = poll(find, "the sync worker process")
    return found


# -- /healthz and /readyz ------------------------------------------------------------------
def test_healthz_and_readyz_answer_without_a_token(node: Node) -> None:
    response = requests.get(f"{node.base}/healthz", timeout=30)
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}
    status, body = readyz(node.base)
    assert status == 200, body
    assert body == {"status": "ready", "checks": {
        "database": "ok", "migrations": "ok", "sync_worker": "skipped: no partners",
    }}


@pytest.mark.parametrize("backend", BACKENDS)
def test_readyz_names_a_pending_or_unknown_migration(backend: str, tmp_path: Path) -> None:
    # A node of its own, served without the sync worker: every process that opens a node migrates it, so a
    # worker starting late would apply the deleted step again in the middle of the test.
    data_dir, cleanup = new_node(tmp_path, backend)
    server = serve(data_dir, "--no-sync")
    try:
        _pending_or_unknown_migration(data_dir, server.base)
    finally:
        server.stop()
        cleanup()


def _pending_or_unknown_migration(data_dir: Path, base: str) -> None:
    store = open_store(store_url_of(data_dir))
    try:
        applied, known = store.schema_versions()
    finally:
        store.close()
    assert applied == known
    row = sql_row(data_dir, "SELECT applied_at FROM schema_migrations WHERE version = ?", (known,))
    try:
        # What an older Kizuna's database looks like to this one: the newest step not applied yet.
        sql(data_dir, "DELETE FROM schema_migrations WHERE version = ?", (known,))
        status, body = readyz(base)
        assert status == 503
        assert body["status"] == "not ready"
        assert body["checks"]["database"] == "ok"
        # Steps are numbered by the branches that wrote them, so the one before need not be known - 1.
        # Each backend has its own list (SQLite's step 17 has no PostgreSQL twin).
        steps = POSTGRES_MIGRATIONS if store_url_of(data_dir).startswith("postgresql") else SQLITE_MIGRATIONS
        previous = max(version for version, _ in steps if version < known)
        assert body["checks"]["migrations"].startswith(f"pending: the database is at schema {previous}")
        # And a database a newer Kizuna has migrated.
        sql(data_dir, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (known, row[0]))
        sql(data_dir, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (known + 1, row[0]))
        status, body = readyz(base)
        assert status == 503
        assert "newer than this Kizuna" in body["checks"]["migrations"]
    finally:
        sql(data_dir, "DELETE FROM schema_migrations WHERE version > ?", (known,))
        sql(data_dir, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?) "
            "ON CONFLICT (version) DO NOTHING", (known, row[0]))
    status, body = readyz(base)
    assert status == 200, body


def sql_row(data_dir: Path, statement: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
    store = open_store(store_url_of(data_dir))
    try:
        with store._read() as cur:  # type: ignore[attr-defined]
            cur.execute(statement, params)
            return tuple(cur.fetchone())
    finally:
        store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_readyz_fails_while_the_database_is_gone(backend: str, tmp_path: Path) -> None:
    data_dir, cleanup = new_node(tmp_path, backend)
    server = serve(data_dir, "--no-sync")
    try:
        assert readyz(server.base)[0] == 200
        if backend == "sqlite":
            db = Path("/" + store_url_of(data_dir)[len("sqlite:///"):].lstrip("/"))
            moved = tmp_path / "elsewhere"
            moved.mkdir()
            for path in [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]:
                if path.exists():
                    path.rename(moved / path.name)
            status, body = readyz(server.base)
            assert (status, body["status"]) == (503, "not ready"), body
            assert body["checks"]["database"] == "unreachable"
            assert str(tmp_path) not in json.dumps(body)  # an open endpoint does not name paths
            for path in moved.iterdir():
                path.rename(db.parent / path.name)
            assert readyz(server.base)[0] == 200
        else:
            name = store_url_of(data_dir).rsplit("/", 1)[1]
            import psycopg

            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            status, body = readyz(server.base)
            assert (status, body["status"]) == (503, "not ready"), body
            assert body["checks"]["database"] == "unreachable"
            assert name not in json.dumps(body)
        # Liveness is not readiness: the process still answers.
        assert requests.get(f"{server.base}/healthz", timeout=30).status_code == 200
    finally:
        server.stop()
        cleanup()


@pytest.mark.parametrize("backend", BACKENDS)
def test_readyz_requires_a_live_sync_worker_once_there_are_partners(backend: str, tmp_path: Path) -> None:
    data_dir, cleanup = new_node(tmp_path, backend)
    # A partner that is down: the worker keeps failing, which readiness does not hide or mind.
    kizuna_json(data_dir, "partners", "add", "down", "--url", f"http://127.0.0.1:{free_port()}/main/",
                "--token", "kz_0123456789abcdef_secret", "--map", f"shared={uuid.uuid4()}:pull")
    server = serve(data_dir, "--no-sync")
    try:
        status, body = readyz(server.base)
        assert status == 200
        assert body["checks"]["sync_worker"] == "skipped: this server runs no sync worker"
    finally:
        server.stop()
    server = serve(data_dir)
    try:
        poll(lambda: readyz(server.base) == (200, {"status": "ready", "checks": {
            "database": "ok", "migrations": "ok", "sync_worker": "ok"}}), "the worker to take its lease")
        # Sync errors per partner: counted by the worker and read from the store.
        def failed_run_counted() -> Samples | None:
            samples = scrape(server.base)
            return samples if value(samples, "kizuna_sync_runs_total", partner="down", outcome="error") else None

        samples = poll(failed_run_counted, "a failed sync run to be counted")
        assert value(samples, "kizuna_sync_consecutive_failures", partner="down") >= 1
        assert value(samples, "kizuna_sync_partner_up", partner="down") == 0
        assert value(samples, "kizuna_sync_worker_up") == 1
        assert ("kizuna_sync_lag_seconds", frozenset({("partner", "down")})) not in samples  # never succeeded

        worker = worker_pid(server)
        _freeze_and_expire_lease(data_dir, worker)
        try:
            status, body = readyz(server.base)
            assert (status, body["status"]) == (503, "not ready")
            assert body["checks"]["sync_worker"].startswith("not running")
            assert value(scrape(server.base), "kizuna_sync_worker_up") == 0
        finally:
            os.kill(worker, signal.SIGCONT)
        poll(lambda: readyz(server.base)[0] == 200, "the worker to take its lease again")
    finally:
        server.stop()
        cleanup()


def _freeze_and_expire_lease(data_dir: Path, worker: int) -> None:
    """Stop the worker between two store transactions and mark its lease as expired."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        os.kill(worker, signal.SIGSTOP)
        try:
            _expire_lease_quickly(data_dir)
            return
        except Exception:
            # Stopped while holding the store's write lock: let it finish and try again.
            os.kill(worker, signal.SIGCONT)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # give the worker time to leave its transaction; the loop is bounded


def _expire_lease_quickly(data_dir: Path) -> None:
    url = store_url_of(data_dir)
    if url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect("/" + url[len("sqlite:///"):].lstrip("/"), timeout=1, isolation_level=None)
        try:
            conn.execute("UPDATE fed_lease SET expires_at = 0 WHERE name = 'sync-worker'")
        finally:
            conn.close()
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '1s'")
            conn.execute("UPDATE fed_lease SET expires_at = 0 WHERE name = 'sync-worker'")


# -- /metrics --------------------------------------------------------------------------------
def test_metrics_move_with_taxii_requests_ingest_and_matching(node: Node) -> None:
    before = scrape(node.base)
    session = node.session("writer")
    for _ in range(3):
        assert session.get(node.collection_url() + "objects/", timeout=30).status_code == 200
    evil = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "pattern_type": "stix", "pattern": "[domain-name:value = 'evil.example']",
            "valid_from": "2026-01-01T00:00:00Z"}
    status = node.post([evil, {"type": "indicator", "id": "not-an-id"}])
    assert (status["success_count"], status["failure_count"]) == (1, 1)
    stamp = "2026-02-01T00:00:00Z"
    observed = [
        {"type": "domain-name", "spec_version": "2.1", "id": f"domain-name--{uuid.uuid4()}", "value": "evil.example"},
    ]
    observed.append({"type": "observed-data", "spec_version": "2.1", "id": f"observed-data--{uuid.uuid4()}",
                     "created": stamp, "modified": stamp, "first_observed": stamp, "last_observed": stamp,
                     "number_observed": 1, "object_refs": [observed[0]["id"]]})
    matched = requests.post(f"{node.base}/main/detect/observations/", data=json.dumps(observed), timeout=30,
                            headers={"Authorization": f"Bearer {node.tokens['writer']}", "Accept": TAXII})
    assert matched.status_code == 200, matched.text
    assert matched.json()["hit_count"] == 1

    after = scrape(node.base)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("kizuna_http_requests_total", endpoint=OBJECTS_ROUTE, method="GET", status="200") == 3
    assert moved("kizuna_http_requests_total", endpoint=OBJECTS_ROUTE, method="POST", status="202") == 1
    assert moved("kizuna_http_request_duration_seconds_count", endpoint=OBJECTS_ROUTE, method="GET") == 3
    assert moved("kizuna_http_request_duration_seconds_bucket", endpoint=OBJECTS_ROUTE, method="GET",
                 le="+Inf") == 3
    assert moved("kizuna_objects_ingested_total", outcome="accepted") >= 1  # plus any TLP definitions placed
    assert moved("kizuna_objects_ingested_total", outcome="refused") == 1
    assert moved("kizuna_matcher_events_total") >= 1
    assert moved("kizuna_matcher_hits_total") == 1
    assert moved("kizuna_collection_objects", api_root="main", collection=node.collection) >= 1
    # The id keys the series; the collection's name is on the info series beside it.
    [info] = [labels for (name, labels) in after if name == "kizuna_collection_info"
              and dict(labels)["collection"] == node.collection]
    assert dict(info)["alias"] == "shared" and after[("kizuna_collection_info", info)] == 1
    # Endpoints are route templates, never raw paths with ids in them.
    endpoints = {dict(labels).get("endpoint") for (_, labels) in after} - {None}
    assert not any(node.collection in endpoint for endpoint in endpoints if endpoint)
    # A console page is labelled with its place under /console, not as a route of the root.
    requests.get(f"{node.base}/console/sign-in", timeout=30)
    requests.get(f"{node.base}/", timeout=30, allow_redirects=False)
    labelled = scrape(node.base)
    assert value(labelled, "kizuna_http_requests_total", endpoint="/console/sign-in", method="GET", status="200") == 1
    assert value(labelled, "kizuna_http_requests_total", endpoint="/sign-in", method="GET", status="200") == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_sync_state_per_partner_follows_a_real_kizuna_sync(backend: str, tmp_path: Path) -> None:
    databases = [create_pg_database() for _ in range(2)] if backend == "postgresql" else [None, None]
    uk = make_fed_node(tmp_path, "UK", "GBR", databases[0].url if databases[0] else None)
    jp = make_fed_node(tmp_path, "JP", "JPN", databases[1].url if databases[1] else None)
    try:
        jp.start()
        uk.start()
        grant_partner(jp, uk, "GBR")
        add_partner(uk, jp, "pull")
        objects = [obj for _ in range(5) for obj in indicator(jp.identity)]
        jp.post(objects)
        before = scrape(uk.server.base)  # type: ignore[union-attr]
        assert value(before, "kizuna_sync_pulled_objects_total", partner="JP") == 0
        assert value(before, "kizuna_collection_objects", api_root="main", collection=uk.collection) == 0
        report = sync(uk, "JP")
        assert report["runs"][0]["error"] is None and report["runs"][0]["pulled"] == 5

        after = scrape(uk.server.base)  # type: ignore[union-attr]
        assert value(after, "kizuna_sync_pulled_objects_total", partner="JP") == 5
        assert value(after, "kizuna_sync_partner_up", partner="JP") == 1
        assert value(after, "kizuna_sync_consecutive_failures", partner="JP") == 0
        assert 0 <= value(after, "kizuna_sync_lag_seconds", partner="JP") < 3600
        assert value(after, "kizuna_sync_last_success_timestamp_seconds", partner="JP") > 0
        assert value(after, "kizuna_collection_objects", api_root="main", collection=uk.collection) >= 5
    finally:
        uk.stop()
        jp.stop()
        for database in databases:
            if database:
                database.drop()


@pytest.fixture
def sqlite_node(tmp_path: Path) -> Iterator[Path]:
    data_dir, cleanup = new_node(tmp_path, "sqlite")
    yield data_dir
    cleanup()


def test_metrics_are_refused_to_clients_that_are_not_loopback(sqlite_node: Path) -> None:
    address = non_loopback_address()
    server = serve(sqlite_node, "--no-sync", host="0.0.0.0")
    try:
        remote = requests.get(f"http://{address}:{server.port}/metrics", timeout=30)
        assert remote.status_code == 403
        assert remote.json()["http_status"] == "403"
        assert "loopback" in remote.json()["description"]
        assert requests.get(f"http://{address}:{server.port}/healthz", timeout=30).status_code == 200
        assert requests.get(f"http://{address}:{server.port}/readyz", timeout=30).status_code == 200
        scrape(server.base)  # loopback: served
    finally:
        server.stop()


def test_a_proxy_on_the_same_host_that_names_the_client_keeps_it_remote(sqlite_node: Path) -> None:
    """As the README says: from 127.0.0.1, the address in X-Forwarded-For is the client's (uvicorn's default)."""
    server = serve(sqlite_node, "--no-sync")
    try:
        forwarded = requests.get(f"{server.base}/metrics", headers={"X-Forwarded-For": "198.51.100.7"}, timeout=30)
        assert forwarded.status_code == 403 and "loopback" in forwarded.json()["description"]
        scrape(server.base)  # the same connection without the header: a local client, served
    finally:
        server.stop()


def test_metrics_with_token_access_need_the_metrics_right(sqlite_node: Path) -> None:
    config = sqlite_node / "kizuna.toml"
    config.write_text(config.read_text() + '\n[metrics]\naccess = "token"\n')
    kizuna_json(sqlite_node, "orgs", "create", "Monitoring", "--country", "GBR")
    granted = kizuna_json(sqlite_node, "metrics", "token", "--org", "Monitoring")
    other = kizuna_json(sqlite_node, "tokens", "create", "--org", "Monitoring", "--read", "shared")
    assert kizuna_json(sqlite_node, "metrics", "show") == {
        "access": "token", "tokens": [granted["id"]],
        "holders": [{"id": granted["id"], "organisation": "Monitoring", "label": "metrics", "state": "active"}]}
    assert kizuna_json(sqlite_node, "metrics", "grant", granted["id"])["changed"] is False
    # A token that cannot sign in, or a partner's (bound to an agreement), is not given the right.
    revoked = kizuna_json(sqlite_node, "tokens", "create", "--org", "Monitoring", "--read", "shared")["id"]
    kizuna_json(sqlite_node, "tokens", "revoke", revoked)
    refused = kizuna(sqlite_node, "metrics", "grant", revoked, check=False)
    assert refused.stderr == f"kizuna metrics grant: token {revoked} is revoked: it cannot sign in to read /metrics\n"
    kizuna_json(sqlite_node, "agreements", "set", "mon-view", "--partner", "Monitoring", "--collections", "shared",
                "--max-tlp", "green")
    bound = kizuna_json(sqlite_node, "tokens", "create", "--org", "Monitoring", "--read", "shared",
                        "--agreement", "mon-view")["id"]
    refused = kizuna(sqlite_node, "metrics", "grant", bound, check=False)
    assert refused.returncode == 1 and "reads under agreement 'mon-view'" in refused.stderr
    for verb in ("grant", "revoke"):  # revoke too: "does not hold the right (unchanged)" hid the typo
        refused = kizuna(sqlite_node, "metrics", verb, "0000000000000000", check=False)
        assert refused.returncode != 0 and refused.stderr.count("\n") == 1 and "no token" in refused.stderr

    address = non_loopback_address()
    server = serve(sqlite_node, "--no-sync", host="0.0.0.0")
    try:
        url = f"http://{address}:{server.port}/metrics"

        def bearer(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        assert requests.get(url, timeout=30).status_code == 401
        assert requests.get(url, headers=bearer("kz_0123456789abcdef_wrong"), timeout=30).status_code == 401
        assert requests.get(url, headers=bearer(other["token"]), timeout=30).status_code == 403
        assert requests.get(f"{server.base}/metrics", timeout=30).status_code == 401  # loopback is not enough
        samples = scrape(f"http://{address}:{server.port}", headers=bearer(granted["token"]))
        assert value(samples, "kizuna_http_requests_total", endpoint="/metrics", method="GET", status="401") == 3
        # The metrics right is not a collection right, and a collection right is not the metrics right.
        objects_url = f"http://{address}:{server.port}/main/collections/shared/objects/"
        assert requests.get(objects_url, headers={**bearer(granted["token"]), "Accept": TAXII},
                            timeout=30).status_code == 404
        assert requests.get(objects_url, headers={**bearer(other["token"]), "Accept": TAXII},
                            timeout=30).status_code == 200
        assert kizuna_json(sqlite_node, "metrics", "grant", other["id"])["changed"] is True
        scrape(f"http://{address}:{server.port}", headers=bearer(other["token"]))
        # What the operator reads says what happened, the first time and the second.
        assert kizuna(sqlite_node, "metrics", "revoke", granted["id"]).stdout == (
            f"Token {granted['id']} no longer holds the metrics right: withdrawn\n")
        assert kizuna(sqlite_node, "metrics", "revoke", granted["id"]).stdout == (
            f"Token {granted['id']} did not hold the metrics right: nothing withdrawn\n")
        assert requests.get(url, headers=bearer(granted["token"]), timeout=30).status_code == 403
    finally:
        server.stop()

    config.write_text(config.read_text().replace('access = "token"', 'access = "everyone"'))
    bad = kizuna(sqlite_node, "metrics", "show", check=False)
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "[metrics] access" in bad.stderr
    # serve says so before its banner: one line, not a banner and then the error.
    refused_serve = kizuna(sqlite_node, "serve", "--no-sync", "--port", str(free_port()), check=False)
    assert refused_serve.returncode != 0 and refused_serve.stderr.count("\n") == 1, refused_serve.stderr
    assert refused_serve.stderr.startswith("kizuna serve: ") and "[metrics] access" in refused_serve.stderr


def test_two_workers_report_the_same_totals_whichever_answers(sqlite_node: Path) -> None:
    token = kizuna_json(sqlite_node, "tokens", "create", "--org", "NCSC UK", "--read", "shared")["token"]
    server = start_server(sqlite_node, workers=2, sync=False)
    try:
        shared = _multiproc_dir(server.process.pid)
        requests_made = 24
        for _ in range(requests_made):  # a new connection each time, so both workers take some
            response = requests.get(f"{server.base}/taxii2/", timeout=30,
                                    headers={"Authorization": f"Bearer {token}", "Accept": TAXII})
            assert response.status_code == 200
        totals = {value(scrape(server.base), "kizuna_http_requests_total", endpoint="/taxii2/", method="GET",
                        status="200") for _ in range(8)}
        assert totals == {requests_made}
        assert Path(shared).is_dir()
    finally:
        server.stop()
    assert not Path(shared).exists()  # each serve's counts live and die with it


def _multiproc_dir(serve_pid: int) -> str:
    """The counts directory, as serve's child processes got it (serve set it after its own start)."""
    def find() -> str | None:
        for child in child_pids(serve_pid):
            try:
                environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue  # a child that just ended
            for item in environ:
                name, _, found = item.decode().partition("=")
                if name == "PROMETHEUS_MULTIPROC_DIR":
                    return found
        return None
    found: str = poll(find, "a serve child process with PROMETHEUS_MULTIPROC_DIR")
    return found


def test_a_serve_that_ended_leaves_no_counts_directory_behind(sqlite_node: Path) -> None:
    first = start_server(sqlite_node)  # one web process and the sync worker, which inherits the directory
    try:
        abandoned = _multiproc_dir(first.process.pid)
        assert Path(abandoned).is_dir()
    finally:
        first.stop()
    second = start_server(sqlite_node)
    try:
        scrape(second.base)
        assert Path(_multiproc_dir(second.process.pid)).is_dir()
        assert not Path(abandoned).exists()
    finally:
        second.stop()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_serve_stopped_with_sigterm_removes_its_counts_directory(sqlite_node: Path, workers: int) -> None:
    # `kill PID` (README's `kill %1`, a service manager's stop) is the usual stop, not only Ctrl-C: uvicorn
    # re-raised the SIGTERM after its shutdown, which killed serve before its exit handlers ran.
    server = start_server(sqlite_node, workers=workers)
    try:
        counts = Path(_multiproc_dir(server.process.pid))
        assert counts.is_dir() and counts.name.startswith(f"kizuna-metrics-{server.process.pid}-")
    finally:
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=60)
    assert code == 0, server.process.stderr.read().decode() if server.process.stderr else code
    assert not counts.exists()


def test_the_demo_server_counts_like_serve(tmp_path: Path) -> None:
    """`kizuna demo` loads its content (counted, in this process, before any server existed) and then serves in
    the same process: its /metrics must still list the matcher's families from the start and count what its
    server ingests, as `kizuna serve` does."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "kizuna", "--data", str(tmp_path / "demo"), "demo",
                                "--port", str(port), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 180)
        assert ready, "the demo printed nothing within 180 s"
        details = json.loads(process.stdout.readline())  # printed once the port listens
        base = f"http://127.0.0.1:{port}"
        before = scrape(base)
        assert ("kizuna_matcher_events_total", frozenset()) in before  # the README's 0.0 from the start
        assert value(before, "kizuna_matcher_events_total") == 0.0
        headers = {"Authorization": f"Bearer {details['token']}", "Accept": TAXII}
        collection = details["collections"][0]["id"]
        stamp = "2026-01-01T00:00:00.000Z"
        evil = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": stamp,
                "modified": stamp, "pattern_type": "stix", "pattern": "[domain-name:value = 'evil.example']",
                "valid_from": stamp}
        posted = requests.post(f"{base}/main/collections/{collection}/objects/", data=json.dumps({"objects": [evil]}),
                               headers={**headers, "Content-Type": TAXII}, timeout=30)
        assert posted.status_code == 202 and posted.json()["success_count"] == 1, posted.text
        observed: list[dict[str, Any]] = [{"type": "domain-name", "spec_version": "2.1",
                                           "id": f"domain-name--{uuid.uuid4()}", "value": "evil.example"}]
        observed.append({"type": "observed-data", "spec_version": "2.1", "id": f"observed-data--{uuid.uuid4()}",
                         "created": stamp, "modified": stamp, "first_observed": stamp, "last_observed": stamp,
                         "number_observed": 1, "object_refs": [observed[0]["id"]]})
        matched = requests.post(f"{base}/main/detect/observations/", data=json.dumps(observed), headers=headers,
                                timeout=30)
        assert matched.status_code == 200, matched.text
        after = scrape(base)
        assert value(after, "kizuna_objects_ingested_total", outcome="accepted") >= 1
        assert value(after, "kizuna_matcher_events_total") >= 1
        assert value(after, "kizuna_matcher_hits_total") == matched.json()["hit_count"] == 1
    finally:
        process.terminate()
        process.communicate(timeout=60)
