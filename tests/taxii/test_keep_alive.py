"""Idle keep-alive connections: a real ``kizuna serve`` keeps them open longer than clients idle.

A client reuses a keep-alive connection for its next request. When the server closes that connection
just as the request is sent, the request is lost: the client reads end of stream instead of an
answer (``RemoteDisconnected``, the failures of the 200-client load run on PostgreSQL). uvicorn closes
idle connections after 5 s, which a busy client exceeds between two requests; ``serve`` keeps them
``--keep-alive`` seconds (default ``KEEP_ALIVE_S``, longer than clients keep theirs).

The waits below are on the socket itself: a receive that returns when the server closes, or that
times out while the connection stays open. Nothing sleeps to let something else happen.
"""

from __future__ import annotations

import http.client
import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from kizuna.cli.node import KEEP_ALIVE_S
from tests.conftest import ServerProcess, kizuna_json, start_server

UVICORN_KEEP_ALIVE_S = 5  # uvicorn's own default, which serve used before --keep-alive


def _node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir: Path = tmp_path_factory.mktemp("keepalive") / "node"
    kizuna_json(data_dir, "init", "--org-name", "Home", "--country", "GBR")
    return data_dir


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(_node(tmp_path_factory), sync=False)
    try:
        yield server
    finally:
        server.stop()


def _get(conn: http.client.HTTPConnection) -> dict[str, object]:
    conn.request("GET", "/healthz")
    answer = conn.getresponse()
    assert answer.status == 200
    assert answer.getheader("connection") != "close"
    body: dict[str, object] = json.loads(answer.read())
    return body


def test_an_idle_connection_outlives_uvicorns_five_seconds(default_server: ServerProcess) -> None:
    assert KEEP_ALIVE_S > 60
    conn = http.client.HTTPConnection("127.0.0.1", default_server.port, timeout=30)
    try:
        _get(conn)
        assert conn.sock is not None
        conn.sock.settimeout(UVICORN_KEEP_ALIVE_S + 2)
        # Before --keep-alive the server closed here after 5 s: recv returned b"" (end of stream).
        with pytest.raises(TimeoutError):
            conn.sock.recv(1)
        conn.sock.settimeout(30)
        _get(conn)  # the same connection serves the next request
    finally:
        conn.close()


def test_a_request_sent_as_the_server_closes_is_lost_and_the_option_sets_when(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """What the load run's clients met, made certain: the request goes out on a connection the server
    has closed for idleness, and the client reads end of stream with no answer."""
    server = start_server(_node(tmp_path_factory), sync=False, extra=("--keep-alive", "1"))
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        _get(conn)
        assert conn.sock is not None
        assert conn.sock.recv(1) == b""  # returns when the server closes the idle connection
        conn.request("GET", "/healthz")  # http.client does not look before it sends, as a racing client
        with pytest.raises(ConnectionResetError):  # RemoteDisconnected is one
            conn.getresponse()
        conn.close()
    finally:
        server.stop()


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_keep_alive_must_be_a_positive_number_of_seconds(tmp_path_factory: pytest.TempPathFactory,
                                                         value: str) -> None:
    import subprocess
    import sys

    data_dir = _node(tmp_path_factory)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run([sys.executable, "-m", "kizuna", "--data", str(data_dir), "serve", "--no-sync",
                           "--port", str(port), "--keep-alive", value], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "--keep-alive" in done.stderr and "Traceback" not in done.stderr


def test_a_request_that_fails_is_a_taxii_500_and_the_connection_lives_on(tmp_path: Path) -> None:
    """A failure no request can cause (a store the read cannot use) is answered with the TAXII error object,
    and the kept-alive connection serves the next request: the last-resort handler used to close it."""
    data_dir = tmp_path / "node"
    kizuna_json(data_dir, "init", "--org-name", "Home", "--country", "GBR")
    made = kizuna_json(data_dir, "collections", "create", "--title", "C", "--alias", "c")
    token = kizuna_json(data_dir, "tokens", "create", "--org", "Home", "--read", "c")["token"]
    server = start_server(data_dir, sync=False)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/taxii+json;version=2.1"}
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        with sqlite3.connect(data_dir / "kizuna.db") as db:
            db.execute("ALTER TABLE objects RENAME TO objects_away")
        try:
            conn.request("GET", f"/main/collections/{made['id']}/objects/", headers=headers)
            failed = conn.getresponse()
            body = json.loads(failed.read())
        finally:
            with sqlite3.connect(data_dir / "kizuna.db") as db:
                db.execute("ALTER TABLE objects_away RENAME TO objects")
        assert failed.status == 500 and failed.getheader("content-type", "").startswith("application/taxii+json")
        assert body["http_status"] == "500" and "objects" not in body["description"]
        conn.request("GET", f"/main/collections/{made['id']}/objects/", headers=headers)  # the same connection
        again = conn.getresponse()
        assert again.status == 200 and json.loads(again.read()).get("objects", []) == []
    finally:
        conn.close()
        server.stop()
