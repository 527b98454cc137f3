"""``back_up`` a running node into a directory, and ``restore`` one into a data directory.

Everything a node is lives in its store (objects, tokens, partners, cursors, the cursor key, the
audit chain) and in ``kizuna.toml``; a backup directory holds both, so it is itself a node directory
for SQLite. The directory appears under its final name only once it is complete and checked: it is
built under a hidden name beside it and renamed, so a crash leaves no backup that looks whole.

Both are admin actions in the audit chain. A backup appends ``node-backed-up`` to the live node once
the copy is complete: where it went and the copy's versions, audit length and head, so the live chain
names the exact prefix of itself the copy holds. A restore appends ``node-restored`` to the restored
node once the copy checks out: which backup it came from (its path, creation time, checksum and audit
head), so the restored chain says where its history was cut and why it continues.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from kizuna.config import ConfigError, NodeConfig, default_store_url, load_config, shown_store_url, write_config
from kizuna.core.audit import AuditLog, verify_chain
from kizuna.core.principal import NODE_ADMIN
from kizuna.stix.timestamps import format_timestamp, now_micros
from kizuna.store import open_store
from kizuna.store.backup import (
    copy_sqlite,
    dump_postgres,
    install_sqlite,
    open_sqlite_copy,
    other_sessions,
    postgres_snapshot,
    restore_postgres,
    stage_sqlite,
)
from kizuna.store.base import Store, StoreError
from kizuna.store.sqlite.store import path_from_url

MANIFEST = "backup.json"
BACKED_UP = "node-backed-up"
RESTORED = "node-restored"
FORMAT = "kizuna-backup/1"
SQLITE_FILE = "kizuna.db"
POSTGRES_FILE = "kizuna.pgdump"

#: Called with (records checked, records in the chain) while the audit chain is verified.
ProgressHook = Callable[[int, int], None]


class BackupError(Exception):
    """A backup or restore that cannot be made, or a copy that does not check out."""


@dataclass(frozen=True, slots=True)
class Contents:
    """What a store holds, as the checks see it."""

    versions: int
    audit_records: int
    audit_head: str


def inspect(store: Store, progress: ProgressHook | None = None) -> Contents:
    """Count the stored versions and verify the whole audit chain; a broken chain is a BackupError."""
    versions = sum(store.collection_stats(c.pk)[0] for c in store.list_collections())
    head = store.audit_head()

    def counted() -> Iterator[Any]:
        for done, record in enumerate(AuditLog(store).records(), 1):
            if progress is not None and (done % 500 == 0 or done == head[0]):
                progress(done, head[0])
            yield record

    result = verify_chain(counted(), head)
    if not result.ok:
        raise BackupError(f"the audit chain does not verify: {result.problem}")
    return Contents(versions, result.records, head[1])


def back_up(config: NodeConfig, dest: Path, progress: ProgressHook | None = None) -> dict[str, Any]:
    """Copy the node to the new directory ``dest`` while it keeps serving; returns the manifest.

    ``dest`` must not exist: a scheduled backup that ran twice never replaces a good copy."""
    if dest.exists() or dest.is_symlink():
        raise BackupError(f"{dest} already exists; a backup goes to a new directory, never over another")
    parent = dest.parent
    if not parent.is_dir():
        raise BackupError(f"{parent} is not a directory" if parent.exists() else f"directory {parent} does not exist")
    try:
        stage = Path(tempfile.mkdtemp(dir=parent, prefix=f".{dest.name}.", suffix=".partial"))
    except OSError as exc:  # named by the directory asked for, not by the hidden one being staged
        raise BackupError(f"cannot create {dest}: {exc.strerror or exc}") from None
    try:
        postgres = not config.store_url.startswith("sqlite:")
        if postgres:
            data = stage / POSTGRES_FILE
            with postgres_snapshot(config.store_url) as snapshot:
                dump_postgres(config.store_url, snapshot.snapshot_id, data)
                contents = inspect(snapshot.store, progress)  # the very moment that was dumped
            kept = replace(config, data_dir=stage)
        else:
            data = stage / SQLITE_FILE
            copy_sqlite(config.store_url, data)
            contents = _inspect_closing(open_sqlite_copy(data), progress)
            kept = replace(config, data_dir=stage, store_url=default_store_url(stage))
        # SQLite: ``store = "sqlite:kizuna.db"``, so the backup is a node directory; [metrics] and other
        # tables the node's file holds come along.
        write_config(kept, carry_from=config.path)
        manifest = {
            "format": FORMAT, "backend": "postgresql" if postgres else "sqlite",
            "created": format_timestamp(now_micros()), "file": data.name, "sha256": _sha256(data),
            **asdict(contents),
        }
        (stage / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
        for path in stage.rglob("*"):  # readable by the owner only, also once copied out of the directory
            if path.is_file():
                path.chmod(0o600)
        _sync_tree(stage)
        stage.rename(dest)
        _sync_directory(parent)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    # After the copy is in place: a record never names a backup that does not exist. The copy does not
    # hold this record; it names the copy's own head, which is where the two chains part.
    body = {"dest": str(dest), **{key: manifest[key] for key in (
        "backend", "created", "file", "sha256", "versions", "audit_records", "audit_head")}}
    try:
        seq = _record(config.store_url, BACKED_UP, body)
    except StoreError as exc:
        raise BackupError(f"the backup in {dest} is complete, but the node's audit chain could not record it: "
                          f"{exc}") from None
    return {**manifest, "audit_seq": seq}


def restore(src: Path, data_dir: Path, store_url: str | None = None, force: bool = False,
            progress: ProgressHook | None = None) -> dict[str, Any]:
    """Make ``data_dir`` the node in the backup ``src``; refuses to replace a node unless ``force``.

    SQLite goes to ``kizuna.db`` in ``data_dir`` (or ``store_url``); PostgreSQL to ``store_url``, by
    default the database the backup was taken from. The restored store must hold what the manifest
    says (same version count, same audit head), or the restore fails, leaving no directory it made."""
    made = not data_dir.exists()
    try:
        return _restore(src, data_dir, store_url, force, progress)
    except BaseException:
        if made and data_dir.is_dir() and not any(data_dir.iterdir()):
            data_dir.rmdir()
        raise


def _restore(src: Path, data_dir: Path, store_url: str | None, force: bool,
             progress: ProgressHook | None) -> dict[str, Any]:
    manifest = read_manifest(src)
    data = src / manifest["file"]
    if _sha256(data) != manifest["sha256"]:
        raise BackupError(f"{data}: the file does not match its checksum in {MANIFEST}; the backup is damaged")
    saved = _saved_config(src)
    postgres = manifest["backend"] == "postgresql"
    if store_url is not None and store_url.startswith("sqlite:") == postgres:
        raise BackupError(f"a {manifest['backend']} backup restores to a {manifest['backend']} store, "
                          f"not {shown_store_url(store_url)}")
    url = store_url or (saved.store_url if postgres else default_store_url(data_dir))
    if not force:
        _refuse_to_replace(data_dir, url)
    if postgres:
        # The serve lock guards a data directory; a server started from another directory on the same database
        # holds none of it, but its connections show (the restore's own checks above closed theirs).
        sessions = other_sessions(url)
        if sessions:
            raise BackupError(f"the database {shown_store_url(url)} has {sessions} other connection(s), such as a "
                              "kizuna serve of another data directory: stop them before a restore, or they go on "
                              "using the tables the restore replaces")
        restore_postgres(data, url)
        contents = _inspect_closing(open_store(url), progress)
    else:
        staged = stage_sqlite(data, url)
        try:
            contents = _inspect_closing(open_sqlite_copy(staged), progress)
            _expect(manifest, contents)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        install_sqlite(staged, url)
    _expect(manifest, contents)
    write_config(replace(saved, data_dir=data_dir, store_url=url), carry_from=src / "kizuna.toml")
    try:
        seq = _record(url, RESTORED, {
            "source": str(src), "backend": manifest["backend"], "backup_created": manifest["created"],
            "sha256": manifest["sha256"], "versions": contents.versions, "audit_records": contents.audit_records,
            "audit_head": contents.audit_head, "forced": force,
        })
    except StoreError as exc:
        raise BackupError(f"the node is restored in {data_dir}, but its audit chain could not record where from: "
                          f"{exc}") from None
    return {"data_dir": str(data_dir), "store": shown_store_url(url), "backend": manifest["backend"],
            "created": manifest["created"], **asdict(contents), "audit_seq": seq}


def _record(store_url: str, kind: str, body: dict[str, Any]) -> int:
    """Append an admin record to the audit chain of the node at ``store_url``; its sequence number."""
    store = open_store(store_url)
    try:
        return AuditLog(store).record(kind, NODE_ADMIN.key, body).seq
    finally:
        store.close()


def read_manifest(src: Path) -> dict[str, Any]:
    path = src / MANIFEST
    if not src.exists():
        raise BackupError(f"{src} does not exist")
    if not src.is_dir():
        raise BackupError(f"{src} is a file; a backup is the directory `kizuna backup` wrote")
    try:
        manifest = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise BackupError(f"{src}: not a Kizuna backup (no {MANIFEST})") from None
    except orjson.JSONDecodeError as exc:
        raise BackupError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: not a {FORMAT} manifest")
    if manifest.get("backend") not in ("sqlite", "postgresql") or manifest.get("file") not in (
        SQLITE_FILE, POSTGRES_FILE
    ):
        raise BackupError(f"{path}: unknown backend or data file")
    return manifest


def _saved_config(src: Path) -> NodeConfig:
    try:
        return load_config(src)
    except ConfigError as exc:
        raise BackupError(f"{src}: the backup's node configuration is unusable: {exc}") from None


def _refuse_to_replace(data_dir: Path, url: str) -> None:
    config = data_dir / "kizuna.toml"
    if config.exists():
        try:
            load_config(data_dir)
        except ConfigError as exc:  # not a node, but a file restore would overwrite: said as what it is
            raise BackupError(f"{config} already exists and is no node configuration ({exc}); --force replaces "
                              "it with the backup's") from None
        raise BackupError(f"{data_dir}: a Kizuna node already lives here; --force replaces it with the backup")
    if url.startswith("sqlite:"):
        target = path_from_url(url)
        if target.exists() and target.stat().st_size > 0:
            raise BackupError(f"{target} already exists; --force replaces it with the backup")
        return
    store = open_store(url)
    try:
        holds_node = store.schema_versions()[0] > 0 and store.get_setting("cursor_key") is not None
    except StoreError:
        holds_node = False  # an empty database: no schema to read yet
    finally:
        store.close()
    if holds_node:
        raise BackupError(f"the database {shown_store_url(url)} already holds a Kizuna node; --force replaces it "
                          "with the backup")


def _expect(manifest: dict[str, Any], found: Contents) -> None:
    if (found.versions, found.audit_records, found.audit_head) != (
        manifest.get("versions"), manifest.get("audit_records"), manifest.get("audit_head")
    ):
        raise BackupError(
            f"the restored store holds {found.versions} versions and {found.audit_records} audit records, "
            f"the backup's manifest says {manifest.get('versions')} and {manifest.get('audit_records')}"
        )


def _inspect_closing(store: Store, progress: ProgressHook | None) -> Contents:
    try:
        return inspect(store, progress)
    finally:
        store.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _sync_tree(directory: Path) -> None:
    """Flush the backup's files and their directory entries to disk before it takes its final name."""
    for path in directory.iterdir():
        with path.open("rb") as stream:
            os.fsync(stream.fileno())
    _sync_directory(directory)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
