"""``kizuna backup`` while a writer posts, ``kizuna restore`` of the copy: real servers, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from tests.conftest import BACKENDS, TAXII, PgDatabase, create_pg_database, kizuna, kizuna_json, start_server
from tests.federation.helpers import FedNode, make_fed_node
from tests.recovery.helpers import audit_ok, audit_records, indicators, rows, serve

BATCH = 40


class Writer(threading.Thread):
    """Posts envelopes of BATCH indicators until stopped; keeps every envelope the server acknowledged."""

    def __init__(self, node: FedNode) -> None:
        super().__init__(daemon=True)
        self.node = node
        self.acknowledged: list[list[dict[str, Any]]] = []
        self.stop = threading.Event()
        self.progress = threading.Condition()
        self.error: BaseException | None = None

    def run(self) -> None:
        session = requests.Session()
        session.headers.update({"Accept": TAXII, "Content-Type": TAXII,
                                "Authorization": f"Bearer {self.node.admin_token}"})
        url = f"{self.node.api_root_url}collections/{self.node.collection}/objects/"
        try:
            while not self.stop.is_set():
                envelope = indicators(self.node.identity, BATCH, f"batch {len(self.acknowledged)}")
                response = session.post(url, data=json.dumps({"objects": envelope}), timeout=60)
                assert response.status_code == 202, response.text
                with self.progress:
                    self.acknowledged.append(envelope)
                    self.progress.notify_all()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc
            with self.progress:
                self.progress.notify_all()

    def wait_for(self, batches: int) -> None:
        with self.progress:
            assert self.progress.wait_for(lambda: len(self.acknowledged) >= batches or self.error, timeout=60)
        assert self.error is None, self.error


@pytest.fixture(params=BACKENDS)
def origin(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FedNode]:
    base = tmp_path / "origin"
    databases: list[PgDatabase] = []
    if request.param == "postgresql":
        databases.append(create_pg_database())
    node = make_fed_node(base, "UK", "GBR", databases[0].url if databases else None)
    serve(node)
    try:
        yield node
    finally:
        node.stop()
        for database in databases:
            database.drop()


def test_backup_during_writes_and_restore(origin: FedNode, tmp_path: Path) -> None:
    """One test per backend, so parallel workers never build the same node twice."""
    _backup_during_writes_restores_a_verified_consistent_prefix(origin, tmp_path / "writes")
    _restore_refuses_to_replace_a_node_and_a_damaged_backup(origin, tmp_path / "refusals")


def _backup_during_writes_restores_a_verified_consistent_prefix(origin: FedNode, tmp_path: Path) -> None:
    tmp_path.mkdir()
    writer = Writer(origin)
    writer.start()
    try:
        writer.wait_for(3)
        before = len(writer.acknowledged)
        # A table the node's own file holds beyond the store and [server] travels with the copy.
        with (origin.data_dir / "kizuna.toml").open("a", encoding="utf-8") as toml:
            toml.write('\n[metrics]\naccess = "token"\n')
        manifest = kizuna_json(origin.data_dir, "backup", str(tmp_path / "copy"))
        during = len(writer.acknowledged)
        writer.wait_for(during + 2)  # the writer went on after the copy was taken
    finally:
        writer.stop.set()
        writer.join(timeout=60)
    assert writer.error is None, writer.error
    assert manifest["versions"] >= before * BATCH
    _the_live_chain_records_the_backup(origin, manifest, tmp_path / "copy")

    target = create_pg_database() if origin.store_url.startswith("postgresql") else None
    try:
        restored_dir = tmp_path / "restored"
        args = ["restore", str(tmp_path / "copy"), *(["--store", target.url] if target else [])]
        result = kizuna_json(restored_dir, *args)
        assert (result["versions"], result["audit_records"], result["audit_head"]) == (
            manifest["versions"], manifest["audit_records"], manifest["audit_head"])
        verdict = audit_ok(restored_dir)
        # The backup's chain, then one record saying where the node was restored from.
        assert verdict["records"] == manifest["audit_records"] + 1 == result["audit_seq"]
        [restored] = audit_records(restored_dir, "node-restored")
        assert restored["seq"] == result["audit_seq"] and restored["principal"] == "admin"
        assert restored["prev_hash"] == manifest["audit_head"]  # it continues the backup's chain
        assert restored["body"] == {
            "source": str((tmp_path / "copy").absolute()), "backend": manifest["backend"],
            "backup_created": manifest["created"], "sha256": manifest["sha256"], "versions": manifest["versions"],
            "audit_records": manifest["audit_records"], "audit_head": manifest["audit_head"], "forced": False}
        # The copy holds no record of itself: the live node's backup record came after the copy.
        assert audit_records(restored_dir, "node-backed-up") == []

        source = rows(origin.store_url, origin.collection)
        copy = rows(result["store"], origin.collection)
        # A prefix of the origin in commit order, byte for byte, and not all of it: writes went on.
        assert copy == source[: len(copy)]
        assert before * BATCH <= len(copy) < len(source)
        assert len(copy) == manifest["versions"]
        held = {stix_id for stix_id, _, _ in copy}
        for envelope in writer.acknowledged:  # an envelope is in the copy whole or not at all
            present = {obj["id"] in held for obj in envelope}
            assert len(present) == 1
        for envelope in writer.acknowledged[:before]:  # acknowledged before the backup: in it, exact
            for obj in envelope:
                assert (obj["id"], orjson.dumps(obj)) in {(i, b) for i, _, b in copy}
        # The restored node is a node: it opens, counts the same and answers as itself.
        shown = kizuna_json(restored_dir, "collections", "list")["collections"]
        assert [c["objects"] for c in shown if c["id"] == origin.collection] == [len(copy)]
        for node_dir in (tmp_path / "copy", restored_dir):
            assert '[metrics]\naccess = "token"' in (node_dir / "kizuna.toml").read_text()
    finally:
        if target:
            target.drop()


def _the_live_chain_records_the_backup(origin: FedNode, manifest: dict[str, Any], dest: Path) -> None:
    """The record names the copy and its head, which is a record of the live chain: the copy is a prefix."""
    [backed_up] = audit_records(origin.data_dir, "node-backed-up")
    assert backed_up["seq"] == manifest["audit_seq"] > manifest["audit_records"]
    assert backed_up["principal"] == "admin"
    assert backed_up["body"] == {
        "dest": str(dest.absolute()), "backend": manifest["backend"], "created": manifest["created"],
        "file": manifest["file"], "sha256": manifest["sha256"], "versions": manifest["versions"],
        "audit_records": manifest["audit_records"], "audit_head": manifest["audit_head"]}
    live = kizuna(origin.data_dir, "audit", "export").stdout.splitlines()
    assert json.loads(live[manifest["audit_records"] - 1])["hash"] == manifest["audit_head"]
    audit_ok(origin.data_dir)
    assert "audit_seq" not in json.loads((dest / "backup.json").read_bytes())


def _restore_refuses_to_replace_a_node_and_a_damaged_backup(origin: FedNode, tmp_path: Path) -> None:
    tmp_path.mkdir()
    copy = tmp_path / "copy"
    kizuna_json(origin.data_dir, "backup", str(copy))
    recorded = len(audit_records(origin.data_dir, "node-backed-up"))
    again = kizuna(origin.data_dir, "backup", str(copy), check=False)
    assert again.returncode == 1 and again.stderr.startswith("kizuna backup: ") and "already exists" in again.stderr
    assert len(audit_records(origin.data_dir, "node-backed-up")) == recorded  # a refused backup records nothing
    # Every file of the copy is its owner's alone, also once copied out of the directory.
    assert {oct(path.stat().st_mode & 0o777) for path in copy.iterdir()} == {oct(0o600)}
    # Where a backup or a restore cannot go, the line names the path given and why.
    (tmp_path / "a-file").write_text("x")
    for dest, said in ((tmp_path / "a-file" / "sub", "is not a directory"), (Path("/proc/kizuna-backup"),
                                                                             "cannot create /proc/kizuna-backup")):
        failed = kizuna(origin.data_dir, "backup", str(dest), check=False)
        assert failed.returncode == 1 and said in failed.stderr and ".partial" not in failed.stderr, failed.stderr
    for src, said in ((tmp_path / "nope", "does not exist"), (tmp_path / "a-file", "is a file")):
        failed = kizuna(tmp_path / "never", "restore", str(src), check=False)
        assert failed.returncode == 1 and said in failed.stderr, failed.stderr

    # Over the node the backup came from, which is serving: refused, one line, whatever the backend.
    refused = kizuna(origin.data_dir, "restore", str(copy), check=False)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith("kizuna restore: kizuna serve (pid ") and "stop it before" in refused.stderr
    # A kizuna.toml that is no node's is named as that, not taken for a node.
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "kizuna.toml").write_text("store = [not toml\n")
    garbage = kizuna(tmp_path / "garbage", "restore", str(copy), check=False)
    assert garbage.returncode == 1 and garbage.stderr.count("\n") == 1, garbage.stderr
    assert "kizuna.toml already exists and is no node configuration" in garbage.stderr, garbage.stderr
    if origin.store_url.startswith("postgresql"):
        # A fresh directory, but the backup's own database still holds the node.
        elsewhere = kizuna(tmp_path / "fresh", "restore", str(copy), "--json", check=False)
        assert elsewhere.returncode == 1
        assert "already holds a Kizuna node" in json.loads(elsewhere.stdout)["error"]["message"]
        # Forced from another directory, while the origin's server uses the database: its serve lock is not
        # this directory's, but its connections are the database's.
        forced = kizuna(tmp_path / "fresh", "restore", str(copy), "--force", "--json", check=False)
        assert forced.returncode == 1, forced.stdout
        assert "other connection(s)" in json.loads(forced.stdout)["error"]["message"]
        return

    restored = tmp_path / "restored"
    kizuna_json(restored, "restore", str(copy))
    forced = kizuna_json(restored, "restore", str(copy), "--force")
    assert forced["audit_records"] + 1 == forced["audit_seq"] == audit_ok(restored)["records"]
    # The forced restore replaced the first restore whole, its record too: one record, saying forced.
    [record] = audit_records(restored, "node-restored")
    assert record["seq"] == forced["audit_seq"] and record["body"]["forced"] is True
    # Not beneath a running server, which would go on serving the replaced store (and refuse new tokens).
    server = start_server(restored, sync=False)
    try:
        busy = kizuna(restored, "restore", str(copy), "--force", "--json", check=False)
        error = json.loads(busy.stdout)["error"]
        assert busy.returncode == 1 and error["code"] == "serving" and "stop it before a restore" in error["message"]
        assert f"pid {server.process.pid}" in error["message"]
    finally:
        server.stop()
    unforced = kizuna(restored, "restore", str(copy), check=False)  # a node is there: only with --force
    assert unforced.returncode == 1 and unforced.stderr.startswith("kizuna restore: ") and "--force" in unforced.stderr
    kizuna_json(restored, "restore", str(copy), "--force")  # once it is stopped

    data = copy / "kizuna.db"
    damaged = bytearray(data.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    data.write_bytes(bytes(damaged))
    broken = kizuna(tmp_path / "other", "restore", str(copy), "--json", check=False)
    assert broken.returncode == 1 and "checksum" in json.loads(broken.stdout)["error"]["message"]
    assert not (tmp_path / "other").exists()  # nothing half-made: not even the directory it would have filled


def test_restore_takes_a_relative_sqlite_store_as_init_does(tmp_path: Path) -> None:
    kizuna_json(tmp_path / "node", "init", "--org-name", "NCSC UK", "--country", "GBR")
    kizuna_json(tmp_path / "node", "backup", str(tmp_path / "copy"))
    kizuna_json(tmp_path / "restored", "restore", str(tmp_path / "copy"), "--store", "sqlite:other.db")
    assert (tmp_path / "restored" / "other.db").is_file()
    store = (tmp_path / "restored" / "other.db").resolve()
    assert kizuna_json(tmp_path / "restored", "status")["store"] == "sqlite:///" + str(store).lstrip("/")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_restored_node_is_its_owners_alone_as_an_initialised_one_is(backend: str, tmp_path: Path) -> None:
    """The directory a restore makes is 700 and the files it writes (the database, kizuna.toml naming the store) are
    600, as `kizuna init` makes them; a forced restore over files that were not leaves them owner-only too."""
    databases = [create_pg_database() for _ in range(2)] if backend == "postgresql" else []
    try:
        init_store = ["--store", databases[0].url] if databases else []
        kizuna_json(tmp_path / "node", "init", "--org-name", "NCSC UK", "--country", "GBR", *init_store)
        kizuna_json(tmp_path / "node", "backup", str(tmp_path / "copy"))
        restored = tmp_path / "restored"
        into = ["--store", databases[1].url] if databases else []
        kizuna_json(restored, "restore", str(tmp_path / "copy"), *into)
        files = ["kizuna.toml", *([] if databases else ["kizuna.db"])]

        def modes() -> dict[str, str]:
            return {name: oct((restored / name).stat().st_mode & 0o777) for name in (".", *files)}

        assert modes() == {".": oct(0o700), **{name: oct(0o600) for name in files}}
        for name in files:
            (restored / name).chmod(0o644)
        kizuna_json(restored, "restore", str(tmp_path / "copy"), "--force", *into)
        assert modes() == {".": oct(0o700), **{name: oct(0o600) for name in files}}
        kizuna_json(restored, "status")  # opened: SQLite's -wal and -shm files take the database file's mode
        assert {oct(path.stat().st_mode & 0o777) for path in restored.iterdir()} == {oct(0o600)}
    finally:
        for database in databases:
            database.drop()
