"""Rate limits hold across server processes: two real ``kizuna serve`` processes on one node (one
SQLite file, or one PostgreSQL database) spend from the same buckets; with ``--rate-limit-scope
process`` each counts alone, which is what the node-wide scope exists to prevent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS, TAXII, ServerProcess, create_pg_database, kizuna_json, start_server

RATE = "0.25/s"  # a bucket of one request, refilled every 4 s


@pytest.fixture(params=BACKENDS)
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """A node on each backend and two read tokens."""
    database = create_pg_database() if request.param == "postgresql" else None
    data_dir = tmp_path / "node"
    kizuna_json(data_dir, "init", "--org-name", "Home", "--country", "GBR",
                *(["--store", database.url] if database else []))
    kizuna_json(data_dir, "collections", "create", "--title", "C", "--alias", "c")
    tokens = [kizuna_json(data_dir, "tokens", "create", "--org", "Home", "--read", "c")["token"] for _ in range(2)]
    try:
        yield data_dir, tokens
    finally:
        if database is not None:
            database.drop()


def _two_servers(data_dir: Path, *options: str) -> list[ServerProcess]:
    servers: list[ServerProcess] = []
    try:
        for _ in range(2):
            servers.append(start_server(data_dir, sync=False, extra=("--rate-limit", RATE, *options)))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def _get(server: ServerProcess, source: str, token: str) -> httpx.Response:
    with httpx.Client(base_url=server.base, timeout=30, transport=httpx.HTTPTransport(local_address=source),
                      headers={"Accept": TAXII, "Authorization": f"Bearer {token}"}) as http:
        return http.get("/taxii2/")


def test_two_serve_processes_share_one_limit(node: tuple[Path, list[str]]) -> None:
    data_dir, (token, spare) = node
    first, second = _two_servers(data_dir)  # --rate-limit-scope node is the default
    try:
        assert _get(first, "127.0.1.1", token).status_code == 200
        # The other process, another address: this token's one request is spent node-wide.
        by_token = _get(second, "127.0.1.2", token)
        assert by_token.status_code == 429 and "token" in by_token.json()["description"]
        assert int(by_token.headers["retry-after"]) >= 1 and by_token.headers["content-type"] == TAXII
        # The other process, another token, the first address: the address's request is spent too.
        by_address = _get(second, "127.0.1.1", spare)
        assert by_address.status_code == 429 and "127.0.1.1" in by_address.json()["description"]
    finally:
        first.stop()
        second.stop()


def test_per_process_scope_counts_each_process_alone(node: tuple[Path, list[str]]) -> None:
    data_dir, (token, _) = node
    first, second = _two_servers(data_dir, "--rate-limit-scope", "process")
    try:
        assert _get(first, "127.0.1.3", token).status_code == 200
        assert _get(second, "127.0.1.4", token).status_code == 200  # the second process never saw the first
        assert _get(second, "127.0.1.5", token).status_code == 429  # its own bucket is spent now
    finally:
        first.stop()
        second.stop()
