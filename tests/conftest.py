"""Shared fixtures: real nodes, real stores, real server processes on loopback ports.

Every backend-sensitive test runs against SQLite and against the PostgreSQL server on
127.0.0.1:5432 (a fresh database per test module, dropped afterwards).  On CI
(``CI=true``) an unreachable PostgreSQL fails the run instead of skipping it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import secrets
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.kizuna_process import run_kizuna

PG_ADMIN_URL = os.environ.get("KIZUNA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TAXII = "application/taxii+json;version=2.1"
BACKENDS = ["sqlite", "postgresql"]


def _pg_admin() -> Any:
    import psycopg

    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL must be reachable on CI ({PG_ADMIN_URL}): {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")


@dataclass
class PgDatabase:
    name: str
    url: str

    def drop(self) -> None:
        with _pg_admin() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (self.name,)
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}"')


def create_pg_database(prefix: str = "kizuna_test") -> PgDatabase:
    name = f"{prefix}_{secrets.token_hex(6)}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return PgDatabase(name, f"{base}/{name}")


@contextlib.contextmanager
def uk_node(backend: str, data_dir: Path) -> Iterator[Any]:
    """A node of "NCSC UK" (GBR) on a fresh store of ``backend`` ("sqlite" or "postgresql"), closed (and its
    database dropped) afterwards."""
    from kizuna.core.node import Node

    database = create_pg_database() if backend == "postgresql" else None
    node = Node.init(data_dir, database.url if database else None, org_name="NCSC UK", country="GBR")
    try:
        yield node
    finally:
        node.close()
        if database:
            database.drop()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store on each backend."""
    if request.param == "sqlite":
        yield "sqlite:///" + str(tmp_path / "store.db").lstrip("/")
        return
    database = create_pg_database()
    try:
        yield database.url
    finally:
        database.drop()


@pytest.fixture()
def home_node(store_url: str, tmp_path: Path) -> Iterator[Any]:
    """A node of NCSC UK (GBR) on each backend, opened in this process (``kizuna.core.node.Node``)."""
    from kizuna.core.node import Node as CoreNode

    opened = CoreNode.init(tmp_path / "node", store_url, org_name="NCSC UK", country="GBR")
    try:
        yield opened
    finally:
        opened.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kizuna(
    data_dir: Path, *args: str, check: bool = True, input: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``kizuna`` command, in a process of its own (tests/kizuna_process.py)."""
    result = run_kizuna(["--data", str(data_dir), *args], input=None if input is None else input.decode())
    if check and result.returncode != 0:
        raise AssertionError(f"kizuna {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def kizuna_json(data_dir: Path, *args: str) -> Any:
    return json.loads(kizuna(data_dir, *args, "--json").stdout)


def imported_with_rejections(data_dir: Path, *args: str) -> Any:
    """``kizuna import … --json`` of an input with lines the converter rejects: the rest is stored, the report
    printed, and the exit status is 1 (a rejected line is never dropped with exit 0)."""
    result = kizuna(data_dir, "import", *args, "--json", check=False)
    assert result.returncode == 1 and not result.stderr, (result.returncode, result.stderr)
    return json.loads(result.stdout)


class PortTaken(AssertionError):
    """Another process listens on the port a test picked for its server (``free_port`` gave it to both)."""


def wait_for_port(port: int, process: subprocess.Popen[bytes], deadline_s: float = 30.0) -> None:
    """Block until the server accepts connections; fail fast if it died, or if what listens is not it."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except OSError:
            time.sleep(0.05)  # polling for readiness, bounded by the deadline
            continue
        # A free port is only free when it is picked: a server another test started on the same one would
        # answer in place of this one (and this one would fail to bind a moment later).
        if _holds_a_listener(process.pid, port):
            return
        raise PortTaken(f"another process listens on {port}")
    raise AssertionError(f"server did not listen on {port} within {deadline_s}s")


def _holds_a_listener(pid: int, port: int) -> bool:
    """Whether ``pid`` or a process below it holds a socket listening on ``port`` (/proc/net/tcp{,6})."""
    listening: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                fields = row.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    listening.add(f"socket:[{fields[9]}]")
    pending = [str(pid)]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):  # a process or a descriptor may go while we look
            for fd in os.scandir(f"/proc/{current}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in listening:
                        return True
            for task in os.scandir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError):
                    pending += Path(task.path, "children").read_text().split()
    return False


@dataclass
class ServerProcess:
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                # serve's HTTP shutdown is bounded at 5 s, then it gives its sync worker up to 30 s to finish its
                # page and give the lease back; killing serve sooner would orphan a worker that keeps the lease.
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(data_dir: Path, workers: int = 1, port: int | None = None, sync: bool = True,
                 extra: tuple[str, ...] = ()) -> ServerProcess:
    """``sync=False`` leaves out the scheduled sync worker, for tests that run syncs themselves; ``extra``
    are more ``serve`` options (TLS, limits)."""
    return serve_kizuna(data_dir, ["--workers", str(workers), *([] if sync else ["--no-sync"]), *extra], port=port,
                        stderr=subprocess.PIPE)


def serve_kizuna(data_dir: Path, serve_args: list[str], port: int | None = None, **popen: Any) -> ServerProcess:
    """``kizuna --data DATA_DIR serve --port PORT SERVE_ARGS`` once it listens; without ``port``, on a free
    port, and on another one if another test's server took that first. ``popen``: more Popen arguments."""
    for attempt in range(3):
        chosen = port or free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "kizuna", "--data", str(data_dir), "serve", "--port", str(chosen), *serve_args],
            **{"stdout": subprocess.DEVNULL, **popen},
        )
        try:
            wait_for_port(chosen, process)
        except PortTaken:
            process.kill()
            process.wait()
            if port or attempt == 2:
                raise
            continue  # another free port
        return ServerProcess(data_dir, chosen, process)
    raise AssertionError("unreachable")


@dataclass
class Node:
    """A running node with a read-write collection and a few principals."""

    backend: str
    data_dir: Path
    server: ServerProcess
    collection: str  # id of the collection "shared" (alias "shared")
    other_collection: str  # id of a second collection ("other")
    tokens: dict[str, str] = field(default_factory=dict)  # name -> secret

    @property
    def base(self) -> str:
        return self.server.base

    @property
    def api_root(self) -> str:
        return f"{self.base}/main/"

    def collection_url(self, collection: str | None = None) -> str:
        return f"{self.base}/main/collections/{collection or self.collection}/"

    def session(self, token: str = "writer") -> requests.Session:
        session = requests.Session()
        session.headers.update({"Accept": TAXII, "Authorization": f"Bearer {self.tokens[token]}"})
        return session

    def post(self, objects: list[dict[str, Any]], token: str = "writer", collection: str | None = None) -> Any:
        response = self.session(token).post(
            self.collection_url(collection) + "objects/",
            data=json.dumps({"objects": objects}),
            headers={"Content-Type": TAXII},
        )
        assert response.status_code == 202, response.text
        return response.json()


def make_node(backend: str, base_dir: Path, store_url: str | None = None) -> Node:
    data_dir = base_dir / f"node-{backend}"
    args = ["init", "--org-name", "NCSC UK", "--country", "GBR"]
    if store_url:
        args += ["--store", store_url]
    kizuna_json(data_dir, *args)
    shared = kizuna_json(data_dir, "collections", "create", "--title", "Shared indicators", "--alias", "shared",
                         "--description", "Indicators shared under the pact")["id"]
    other = kizuna_json(data_dir, "collections", "create", "--title", "Other", "--alias", "other")["id"]
    kizuna_json(data_dir, "orgs", "create", "JPCERT/CC", "--country", "JPN")
    tokens = {
        "writer": kizuna_json(data_dir, "tokens", "create", "--org", "NCSC UK", "--read", shared, "--write", shared,
                              "--read", other, "--write", other)["token"],
        "reader": kizuna_json(data_dir, "tokens", "create", "--org", "JPCERT/CC", "--read", shared)["token"],
        "writeonly": kizuna_json(data_dir, "tokens", "create", "--org", "JPCERT/CC", "--write", shared)["token"],
        "outsider": kizuna_json(data_dir, "tokens", "create", "--org", "JPCERT/CC", "--read", other)["token"],
    }
    server = start_server(data_dir)
    return Node(backend, data_dir, server, shared, other, tokens)


@pytest.fixture(scope="module", params=BACKENDS)
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A running ``kizuna serve`` on each backend, shared by the tests of one module."""
    base = tmp_path_factory.mktemp("node")
    database = create_pg_database() if request.param == "postgresql" else None
    running = make_node(request.param, base, database.url if database else None)
    try:
        yield running
    finally:
        running.server.stop()
        if database:
            database.drop()


def run_on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run with standard error on a pseudo-terminal (standard output on a pipe); (status, stdout, stderr)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=slave,
                               env={**os.environ, "COLUMNS": "160", "TERM": "xterm"})
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the terminal closed: the process is gone
                    break
                if not chunk:
                    break
                seen += chunk
            elif process.poll() is not None:
                break
        assert process.stdout is not None
        out = process.stdout.read().decode()
        status = process.wait(timeout=60)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    return status, out, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
