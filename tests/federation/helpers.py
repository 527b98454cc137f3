"""Real partner nodes for federation tests: ``kizuna init`` + ``kizuna serve`` on loopback ports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import requests

from kizuna.store import open_store
from kizuna.store.base import VersionQuery, VersionSelector
from tests.conftest import TAXII, ServerProcess, free_port, kizuna, kizuna_json, serve_kizuna, wait_for_port

TLP_CLEAR = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"
TLP_AMBER_STRICT = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"


@dataclass
class FedNode:
    name: str
    data_dir: Path
    store_url: str
    identity: str
    collection: str  # id of the "shared" collection
    server: ServerProcess | None = None
    tokens: dict[str, str] = field(default_factory=dict)  # partner name -> token it uses here
    admin_token: str = ""

    @property
    def api_root_url(self) -> str:
        assert self.server is not None
        return f"{self.server.base}/main/"

    def start(self, port: int | None = None, worker: bool = False) -> None:
        """Serve the node; without ``worker`` the scheduled sync stays off so tests decide when syncs run."""
        self.server = serve_kizuna(self.data_dir, ["--sync" if worker else "--no-sync"], port=port,
                                   stderr=subprocess.PIPE)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def post(self, objects: list[dict[str, Any]]) -> Any:
        response = requests.post(
            f"{self.api_root_url}collections/{self.collection}/objects/",
            data=json.dumps({"objects": objects}),
            headers={"Accept": TAXII, "Content-Type": TAXII, "Authorization": f"Bearer {self.admin_token}"},
            timeout=60,
        )
        assert response.status_code == 202, response.text
        status = response.json()
        assert status["failure_count"] == 0, status
        return status

    def import_objects(self, objects: list[dict[str, Any]]) -> None:
        """Store objects through ``kizuna import`` (works whether or not the node is serving)."""
        path = self.data_dir / f"import-{uuid.uuid4()}.json"
        path.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}))
        result = self.cli_json("import", str(path), "--collection", "shared")
        assert result["failed"] == 0, result

    def versions(self) -> dict[tuple[str, int], bytes]:
        """Every stored version of the shared collection: (id, version µs) -> exact bytes."""
        store = open_store(self.store_url)
        try:
            found: dict[tuple[str, int], bytes] = {}
            collection = store.get_collection("main", self.collection)
            assert collection is not None
            after = None
            while True:
                rows = store.query_versions(VersionQuery(
                    collection_pk=collection.pk, versions=VersionSelector(all=True), added_after=after, limit=5000,
                ))
                for row in rows:
                    assert (row.stix_id, row.version) not in found
                    found[(row.stix_id, row.version)] = bytes(row.body)
                if len(rows) < 5000:
                    return found
                after = rows[-1].date_added
        finally:
            store.close()

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        store = open_store(self.store_url)
        try:
            with store._read() as cur:  # type: ignore[attr-defined]
                cur.execute(query, params)
                return [tuple(row) for row in cur.fetchall()]
        finally:
            store.close()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return kizuna(self.data_dir, *args, check=check)

    def cli_json(self, *args: str) -> Any:
        return kizuna_json(self.data_dir, *args)


def make_fed_node(base: Path, name: str, country: str, store_url: str | None = None) -> FedNode:
    data_dir = base / name
    args = ["init", "--org-name", f"{name} national CERT", "--country", country]
    if store_url:
        args += ["--store", store_url]
    init = kizuna_json(data_dir, *args)
    collection = kizuna_json(data_dir, "collections", "create", "--title", "Shared", "--alias", "shared")["id"]
    admin = kizuna_json(data_dir, "tokens", "create", "--org", f"{name} national CERT", "--read", collection,
                        "--write", collection)["token"]
    return FedNode(name, data_dir, init["store"], init["identity"]["id"], collection, admin_token=admin)


def grant_partner(host: FedNode, partner: FedNode, country: str) -> str:
    """Create ``partner``'s organisation on ``host`` and a read/write token for it; return the token."""
    org = f"{partner.name} national CERT"
    host.cli_json("orgs", "create", org, "--country", country)
    token: str = host.cli_json("tokens", "create", "--org", org, "--read", "shared", "--write", "shared")["token"]
    host.tokens[partner.name] = token
    return token


def add_partner(node: FedNode, partner: FedNode, direction: str, page_size: int = 1000,
                token: str | None = None, name: str | None = None) -> None:
    node.cli_json(
        "partners", "add", name or partner.name, "--url", partner.api_root_url,
        "--map", f"shared={partner.collection}:{direction}",
        "--token", token or partner.tokens[node.name], "--page-size", str(page_size),
    )


def sync(node: FedNode, partner: str | None = None, check: bool = True) -> Any:
    result = kizuna(node.data_dir, "sync", *([partner] if partner else []), "--json", check=check)
    return json.loads(result.stdout)


def stamp(second: int, micros: int = 0) -> str:
    return f"2026-01-01T00:{second // 60:02d}:{second % 60:02d}.{micros // 1000:03d}Z"


def indicator(producer: str, versions: int = 1, marking: str | None = None, name: str = "ind") -> list[dict[str, Any]]:
    """All versions of one indicator produced by ``producer``."""
    stix_id = f"indicator--{uuid.uuid4()}"
    objects = []
    for index in range(versions):
        obj: dict[str, Any] = {
            "type": "indicator", "spec_version": "2.1", "id": stix_id, "created": stamp(0),
            "modified": stamp(index), "name": f"{name} v{index}", "pattern_type": "stix",
            "pattern": f"[ipv4-addr:value = '198.51.100.{index % 250}']", "valid_from": stamp(0),
            "created_by_ref": producer,
        }
        if marking:
            obj["object_marking_refs"] = [marking]
        objects.append(obj)
    return objects


def bulk_indicators(producer: str, count: int) -> list[dict[str, Any]]:
    return [obj for _ in range(count) for obj in indicator(producer)]


def python() -> str:
    return sys.executable


def start_medallion(
    tmp_path: Path, objects: list[dict[str, Any]], max_page_size: int = 5,
) -> tuple[subprocess.Popen[bytes], int, str]:
    """medallion (the OASIS TAXII 2.1 reference server) on a loopback port with one read/write collection
    holding ``objects``; user ``sync``, password ``secret``."""
    import medallion  # noqa: F401  (a test dependency: a missing peer must fail, not skip)
    tmp_path.mkdir(exist_ok=True)
    port = free_port()
    collection = str(uuid.uuid4())
    root = f"http://127.0.0.1:{port}/api1/"
    data = {
        "/discovery": {"title": "medallion", "default": root, "api_roots": [root]},
        "api1": {
            "information": {"title": "api1", "versions": [TAXII], "max_content_length": 10_000_000},
            "status": [],
            "collections": [{
                "id": collection, "title": "c", "can_read": True, "can_write": True,
                "media_types": ["application/stix+json;version=2.1"], "objects": [], "manifest": [],
            }],
        },
    }
    (tmp_path / "data.json").write_text(json.dumps(data))
    backend = {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend",
               "filename": str(tmp_path / "data.json")}
    config = {"backend": backend, "users": {"sync": "secret"}, "taxii": {"max_page_size": max_page_size}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    command = shutil.which("medallion", path=str(Path(sys.executable).parent))
    assert command is not None
    process = subprocess.Popen([command, "--host", "127.0.0.1", "--port", str(port), str(tmp_path / "config.json")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, process)
    if objects:
        response = httpx.post(f"{root}collections/{collection}/objects/", auth=("sync", "secret"),
                              content=json.dumps({"objects": objects}),
                              headers={"Accept": TAXII, "Content-Type": TAXII}, timeout=30)
        assert response.status_code == 202, response.text
    return process, port, collection


def medallion_objects(port: int, collection: str, types: str = "indicator") -> list[dict[str, Any]]:
    """Every version of these types medallion holds in the collection.

    (medallion 3.0 answers 500 to an unfiltered read once it holds an extension-definition, which
    a Kizuna node pushes with the TLP 2.0 markings; a type filter avoids it.)"""
    found: list[dict[str, Any]] = []
    params: dict[str, str] = {"match[version]": "all", "match[type]": types}
    while True:
        response = httpx.get(f"http://127.0.0.1:{port}/api1/collections/{collection}/objects/", params=params,
                             auth=("sync", "secret"), headers={"Accept": TAXII}, timeout=30)
        assert response.status_code == 200, response.text
        envelope = response.json()
        found += envelope.get("objects", [])
        if not envelope.get("more"):
            return found
        params["next"] = envelope["next"]


class ScriptedServer:
    """A misbehaving partner on a loopback port: answers every request with ``reply`` (raw HTTP bytes),
    or never answers at all when ``reply`` is None (connections are accepted and then left hanging)."""

    def __init__(self, reply: bytes | None) -> None:
        import socket
        import threading

        self.reply = reply
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = int(self._sock.getsockname()[1])
        self.connections: list[Any] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/main/"

    def _serve(self) -> None:
        import threading

        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            self.connections.append(conn)
            if self.reply is not None:
                # Each connection answered in a thread of its own: one client that connects and sends nothing
                # (a TLS handshake given up, a probe) must not hold the next one's answer back.
                threading.Thread(target=self._answer, args=(conn, self.reply), daemon=True).start()

    @staticmethod
    def _answer(conn: Any, reply: bytes) -> None:
        try:
            conn.recv(65536)
            conn.sendall(reply)
        except OSError:
            pass
        conn.close()

    def close(self) -> None:
        self._sock.close()
        for conn in self.connections:
            conn.close()


class RoutedServer:
    """A partner on a loopback port that answers each GET with the TAXII body of the first route whose path
    fragment the request's path holds (404 when none does)."""

    def __init__(self, routes: dict[str, bytes]) -> None:
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                body = next((reply for fragment, reply in routes.items() if fragment in self.path), None)
                self.send_response(404 if body is None else 200)
                self.send_header("Content-Type", "application/taxii+json;version=2.1")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/main/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def taxii_http(body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """A 200 answer carrying ``body`` under the TAXII media type, with ``headers`` besides."""
    extra = b"".join(f"{name}: {value}\r\n".encode() for name, value in (headers or {}).items())
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/taxii+json;version=2.1\r\n" + extra
            + b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


def garbage_http(body: bytes = b"\x00\xffthis is not a TAXII envelope{") -> bytes:
    """A 200 answer whose body is not JSON, under the TAXII media type."""
    return taxii_http(body)


def write_sql(node: FedNode, query: str, params: tuple[Any, ...] = ()) -> None:
    """Change a node's store behind its back (to plant a corrupt configuration, say)."""
    store = open_store(node.store_url)
    try:
        with store._write() as cur:  # type: ignore[attr-defined]
            cur.execute(query, params)
    finally:
        store.close()


def poll(condition: Any, deadline_s: float = 60.0, what: str = "condition") -> Any:
    """Call ``condition`` until it returns something truthy; fail after ``deadline_s``."""
    import time

    deadline = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)  # polling a condition, bounded by the deadline
