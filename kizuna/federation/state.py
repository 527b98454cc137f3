"""Federation state in the node's store: partners, cursors, provenance, quarantine, status, the worker lease.

Everything is written through the store's own transactions (``SqlStore._read``/``_write``, ``?``
placeholders on both backends).  The one operation that matters for correctness is
:meth:`FederationState.commit_pull_page`: a page's object versions, their provenance, its
quarantined entries and the partner cursor that points past the page commit in ONE transaction, so
a sync killed at any instant resumes exactly after the last committed page.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from kizuna.core.ingest import ingest
from kizuna.core.node import Node
from kizuna.federation.config import ConfigProblem, PartnerConfig
from kizuna.federation.errors import StateError
from kizuna.federation.forms import is_redaction_of
from kizuna.stix.timestamps import format_timestamp, now_micros
from kizuna.store.base import NewVersion, Outcome, Store, VersionQuery, VersionRow, VersionSelector
from kizuna.store.sql import SqlStore
from kizuna.store.stats import PartnerStatus

# PartnerStatus is defined beside the dashboard's read of the same rows (store/stats.py); StateError in errors.py.
__all__ = ["PartnerStatus", "StateError"]


@dataclass(frozen=True, slots=True)
class CursorKey:
    partner: str
    direction: str  # "pull" or "push"
    local_collection: str  # collection id
    remote_collection: str


@dataclass(frozen=True, slots=True)
class Source:
    """Where a pulled page came from: recorded as provenance of each version it adds."""

    partner: str
    remote_collection: str


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    stix_id: str | None
    version: str | None
    reason: str
    body: bytes | None


@dataclass(frozen=True, slots=True)
class PageCommit:
    added: int
    duplicates: int
    quarantined: int
    redacted_copies: int = 0  # another form of a version held in full: not stored, not a conflict
    upgraded: int = 0  # a stored redacted copy replaced by the full version
    normalised: int = 0  # TLP alias rewrites made by ingest
    normalisations: list[list[str]] = field(default_factory=list)  # the first ones, for the audit log


def content_hash(body: bytes) -> str:
    """How an unversioned SCO is named in a recall: its stored bytes are the same on every node."""
    return hashlib.sha256(body).hexdigest()


def _dumps(obj: Any) -> bytes | None:
    try:
        return orjson.dumps(obj)
    except (orjson.JSONEncodeError, TypeError):
        return None


#: A run of one partner holds the lease ``run:<partner>`` while it is alive (renewed by a heartbeat),
#: so a run killed without a chance to clean up stops counting as "running" when its lease expires.
RUN_LEASE_PREFIX = "run:"
#: Definitions a node places beside the objects that use them (TLP 2.0 markings and their extension).
DEFINITION_TYPES = ("marking-definition", "extension-definition")


@dataclass(frozen=True, slots=True)
class Provenance:
    partner: str
    remote_collection: str
    received_at: int


@contextmanager
def _joined_transaction(store: SqlStore, cur: Any) -> Iterator[None]:
    """Let store methods called from this thread run inside the transaction ``cur`` belongs to.

    ``add_versions`` opens its own write transaction; routing it into ours makes the page, its
    provenance and the cursor one atomic unit without duplicating the store's versioning logic.
    Other threads keep getting their own transactions.
    """
    owner = threading.get_ident()
    original = store._write

    @contextmanager
    def join() -> Iterator[Any]:
        if threading.get_ident() == owner:
            yield cur
        else:
            with original() as other:
                yield other

    setattr(store, "_write", join)  # noqa: B010 - an instance override of a method, undone below
    try:
        yield
    finally:
        delattr(store, "_write")


class FederationState:
    def __init__(self, store: Store) -> None:
        if not isinstance(store, SqlStore):
            raise StateError("federation needs an SQL store (SQLite or PostgreSQL)")
        self.store: SqlStore = store

    def _read(self) -> AbstractContextManager[Any]:
        return self.store._read()

    def _write(self) -> AbstractContextManager[Any]:
        return self.store._write()

    # -- partners --------------------------------------------------------------------
    # Which partner entry stands for which organisation decides what relayed content that organisation may read
    # (the relay rule's sender exemption, core/node.py), so each change bumps the policy generation in its
    # transaction, as the policy's own tables do: a process then decides afresh, and a page read ahead is
    # dropped (core/read_ahead.py).
    def add_partner(self, config: PartnerConfig) -> None:
        with self._write() as cur:
            cur.execute("SELECT 1 FROM fed_partners WHERE name = ?", (config.name,))
            if cur.fetchone() is not None:
                raise StateError(f"partner {config.name!r} already exists")
            cur.execute(
                "INSERT INTO fed_partners (name, config, created_at) VALUES (?, ?, ?)",
                (config.name, config.to_json(), now_micros()),
            )
            self.store._bump(cur)

    def replace_partner(self, config: PartnerConfig) -> None:
        with self._write() as cur:
            cur.execute("UPDATE fed_partners SET config = ? WHERE name = ?", (config.to_json(), config.name))
            self.store._bump(cur)

    def get_partner(self, name: str) -> PartnerConfig | None:
        """The partner's configuration; :class:`ConfigProblem` when the stored one is unusable."""
        with self._read() as cur:
            cur.execute("SELECT config FROM fed_partners WHERE name = ?", (name,))
            row = cur.fetchone()
        return None if row is None else PartnerConfig.from_json(row[0])

    def partner_names(self) -> list[str]:
        with self._read() as cur:
            cur.execute("SELECT name FROM fed_partners ORDER BY name")
            return [str(row[0]) for row in cur.fetchall()]

    def partner_entries(self) -> list[tuple[str, PartnerConfig | None, str | None]]:
        """Every stored partner as (name, configuration, None) or, when its configuration is unusable,
        (name, None, what is wrong): one corrupt entry must not hide the others."""
        with self._read() as cur:
            cur.execute("SELECT name, config FROM fed_partners ORDER BY name")
            rows = cur.fetchall()
        entries: list[tuple[str, PartnerConfig | None, str | None]] = []
        for name, text in rows:
            try:
                entries.append((str(name), PartnerConfig.from_json(text), None))
            except ConfigProblem as exc:
                entries.append((str(name), None, str(exc)))
        return entries

    def list_partners(self) -> list[PartnerConfig]:
        """The partners whose configuration is usable (see :meth:`partner_entries` for the others)."""
        return [config for _, config, _ in self.partner_entries() if config is not None]

    def remove_partner(self, name: str) -> bool:
        """Forget a partner and its cursors and status; provenance and quarantine stay as history."""
        with self._write() as cur:
            cur.execute("DELETE FROM fed_partners WHERE name = ?", (name,))
            removed = bool(cur.rowcount)
            cur.execute("DELETE FROM fed_cursors WHERE partner = ?", (name,))
            cur.execute("DELETE FROM fed_status WHERE partner = ?", (name,))
            cur.execute("DELETE FROM fed_lease WHERE name = ?", (RUN_LEASE_PREFIX + name,))
            self.store._bump(cur)
        return removed

    # -- cursors ---------------------------------------------------------------------
    def get_cursor(self, key: CursorKey) -> str | None:
        with self._read() as cur:
            cur.execute(
                "SELECT position FROM fed_cursors WHERE partner = ? AND direction = ? "
                "AND local_collection = ? AND remote_collection = ?",
                (key.partner, key.direction, key.local_collection, key.remote_collection),
            )
            row = cur.fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _save_cursor(cur: Any, key: CursorKey, position: str) -> None:
        cur.execute(
            "INSERT INTO fed_cursors (partner, direction, local_collection, remote_collection, position, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (partner, direction, local_collection, remote_collection) "
            "DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
            (key.partner, key.direction, key.local_collection, key.remote_collection, position, now_micros()),
        )

    def save_cursor(self, key: CursorKey, position: str) -> None:
        with self._write() as cur:
            self._save_cursor(cur, key, position)

    def cursors(self, partner: str) -> list[tuple[CursorKey, str, int]]:
        with self._read() as cur:
            cur.execute(
                "SELECT partner, direction, local_collection, remote_collection, position, updated_at "
                "FROM fed_cursors WHERE partner = ? ORDER BY direction, local_collection, remote_collection",
                (partner,),
            )
            return [(CursorKey(*row[:4]), str(row[4]), int(row[5])) for row in cur.fetchall()]

    # -- the atomic page ---------------------------------------------------------------
    def commit_pull_page(
        self, node: Node, collection_pk: int, objects: list[Any], source: Source, cursor: CursorKey, position: str,
    ) -> PageCommit:
        """Store a pulled page, its provenance and quarantine, and move the cursor: all or nothing.

        The page goes through the node's own ingest with its policy, exactly like a TAXII POST:
        validation, TLP alias normalisation, marking definitions registered node-wide, the OASIS TLP
        definitions placed in the collection.  A body that differs from the stored one under the same
        ``(id, modified)`` is a redacted copy (kept out), a fuller form (replaces the stored redaction)
        or a conflict (quarantined), see ``forms.py``.
        """
        at = now_micros()
        with self._write() as cur, _joined_transaction(self.store, cur):
            report = ingest(
                self.store, collection_pk, objects, batch_size=max(1, len(objects)), keep_successes=False,
                policy=node.policy, keep_results=True, listeners=node.ingest_listeners,
            )
            results = report.results or []
            stored = {position for position, _, _ in results}
            quarantine = [
                (source.partner, source.remote_collection, cursor.local_collection, failure.get("id") or None,
                 failure.get("version") or None, f"refused on ingest: {failure.get('message', '')}",
                 _dumps(objects[failed_at]), at)
                for failed_at, failure in zip(report.failure_positions, report.failures, strict=True)
                if failed_at not in stored
            ]
            provenance: list[tuple[Any, ...]] = []
            added = duplicates = redacted = upgraded = 0
            for _, new, result in results:
                if result.outcome is Outcome.ADDED:
                    added += 1
                    provenance.append(
                        (collection_pk, new.stix_id, result.version, source.partner, source.remote_collection, at)
                    )
                elif result.outcome is Outcome.DUPLICATE:
                    duplicates += 1
                else:
                    form = self._other_form(cur, collection_pk, new, result.version)
                    if form == "redacted":
                        redacted += 1
                    elif form == "fuller" and self.store.replace_form(collection_pk, new, result.version):
                        upgraded += 1
                        # The node now holds what this partner sent: it may recall it, and it is not echoed.
                        cur.execute(
                            "DELETE FROM fed_provenance WHERE collection_pk = ? AND stix_id = ? AND version = ?",
                            (collection_pk, new.stix_id, result.version),
                        )
                        provenance.append(
                            (collection_pk, new.stix_id, result.version, source.partner, source.remote_collection, at)
                        )
                    else:
                        quarantine.append((
                            source.partner, source.remote_collection, cursor.local_collection, new.stix_id,
                            str(result.version),
                            "a different object with this id and modified is already stored (and neither is a "
                            "redaction of the other); kept the stored one",
                            new.body, at,
                        ))
            if provenance:
                cur.executemany(
                    "INSERT INTO fed_provenance (collection_pk, stix_id, version, partner, remote_collection, "
                    "received_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    provenance,
                )
            quarantined = self._quarantine(cur, quarantine)
            self._save_cursor(cur, cursor, position)
        return PageCommit(added, duplicates, quarantined, redacted, upgraded, report.normalisation_count,
                          [[n.object_id, n.field, n.old, n.new] for n in report.normalisations])

    @staticmethod
    def _other_form(cur: Any, collection_pk: int, new: NewVersion, version: int) -> str:
        """How ``new`` relates to the stored body of the same version: "redacted", "fuller" or "conflict"."""
        cur.execute(
            "SELECT body FROM objects WHERE collection_pk = ? AND stix_id = ? AND version = ?",
            (collection_pk, new.stix_id, version),
        )
        row = cur.fetchone()
        if row is None:
            return "conflict"
        held, arriving = orjson.loads(bytes(row[0])), orjson.loads(new.body)
        if is_redaction_of(arriving, held):
            return "redacted"
        if is_redaction_of(held, arriving):
            return "fuller"
        return "conflict"

    @staticmethod
    def _quarantine(cur: Any, rows: Sequence[tuple[Any, ...]]) -> int:
        """Quarantine the entries not quarantined already; returns how many were new.

        An entry is the same when the same partner sent the same bytes for the same id and version from the same
        remote collection into the same local one: a partner whose pull position cannot move past a page (it
        sends no X-TAXII-Date-Added-Last) serves its poison objects again at every sync, and they are kept once.
        """
        new: list[tuple[Any, ...]] = []
        seen: set[tuple[Any, ...]] = set()
        for row in rows:
            partner, remote, local, stix_id, version, _, body, _ = row
            key = (partner, remote, local, stix_id or "", version or "", body)
            if key in seen:
                continue
            seen.add(key)
            # By partner and id (schema step 27's index); an entry without an id is rare (a body that was no object).
            named = "stix_id = ?" if stix_id else "COALESCE(stix_id, '') = ?"
            cur.execute(
                f"SELECT body FROM fed_quarantine WHERE partner = ? AND {named} AND remote_collection = ? "
                "AND local_collection = ? AND COALESCE(version, '') = ?",
                (partner, key[3], remote, local, key[4]),
            )
            if not any((bytes(found[0]) if found[0] is not None else None) == body for found in cur.fetchall()):
                new.append(row)
        if new:
            cur.executemany(
                "INSERT INTO fed_quarantine (partner, remote_collection, local_collection, stix_id, version, "
                "reason, body, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                new,
            )
        return len(new)

    def quarantine(self, source: Source, local_collection: str, entries: Sequence[QuarantineEntry]) -> None:
        at = now_micros()
        with self._write() as cur:
            self._quarantine(cur, [
                (source.partner, source.remote_collection, local_collection, q.stix_id, q.version, q.reason,
                 q.body, at)
                for q in entries
            ])

    def quarantined(self, partner: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, params = ("WHERE partner = ?", (partner,)) if partner else ("", ())
        with self._read() as cur:
            cur.execute(
                "SELECT partner, remote_collection, local_collection, stix_id, version, reason, at "
                f"FROM fed_quarantine {where} ORDER BY seq DESC LIMIT ?",
                (*params, limit),
            )
            names = ("partner", "remote_collection", "local_collection", "id", "version", "reason", "at")
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def quarantine_count(self, partner: str) -> int:
        with self._read() as cur:
            cur.execute("SELECT COUNT(*) FROM fed_quarantine WHERE partner = ?", (partner,))
            return int(cur.fetchone()[0])

    # -- provenance --------------------------------------------------------------------
    def provenance_of(self, collection_pk: int, ids: Sequence[str]) -> dict[tuple[str, int], Provenance]:
        found: dict[tuple[str, int], Provenance] = {}
        unique = sorted(set(ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            with self._read() as cur:
                cur.execute(
                    "SELECT stix_id, version, partner, remote_collection, received_at FROM fed_provenance "
                    f"WHERE collection_pk = ? AND stix_id IN ({','.join('?' * len(chunk))})",
                    (collection_pk, *chunk),
                )
                for stix_id, version, partner, remote, at in cur.fetchall():
                    found[(stix_id, int(version))] = Provenance(partner, remote, int(at))
        return found

    def received_from(self, collection_pk: int, source: Source, skip_types: Sequence[str] = ()) -> dict[str, set[int]]:
        """The versions (id -> version µs) whose provenance is exactly ``source``, but those of ``skip_types``."""
        found: dict[str, set[int]] = {}
        with self._read() as cur:
            cur.execute(
                "SELECT p.stix_id, p.version, o.type FROM fed_provenance p JOIN objects o ON o.collection_pk = "
                "p.collection_pk AND o.stix_id = p.stix_id AND o.version = p.version "
                "WHERE p.collection_pk = ? AND p.partner = ? AND p.remote_collection = ?",
                (collection_pk, source.partner, source.remote_collection),
            )
            for stix_id, version, stix_type in cur.fetchall():
                if stix_type not in skip_types:
                    found.setdefault(str(stix_id), set()).add(int(version))
        return found

    def versions_after(self, collection_pk: int, after: int | None, content_only: bool = False) -> int:
        """How many versions the collection holds after ``date_added`` ``after`` (all when None);
        ``content_only`` leaves out marking and extension definitions."""
        kinds = f" AND type NOT IN ({', '.join(repr(t) for t in DEFINITION_TYPES)})" if content_only else ""
        with self._read() as cur:
            cur.execute(f"SELECT COUNT(*) FROM objects WHERE collection_pk = ? AND date_added > ?{kinds}",
                        (collection_pk, -1 if after is None else after))
            return int(cur.fetchone()[0])

    def provenance_count(self, collection_pk: int, partner: str | None = None) -> int:
        where, params = (" AND partner = ?", (partner,)) if partner else ("", ())
        with self._read() as cur:
            cur.execute(f"SELECT COUNT(*) FROM fed_provenance WHERE collection_pk = ?{where}",
                        (collection_pk, *params))
            return int(cur.fetchone()[0])

    def withdraw_received(
        self, node: Node, collection_pk: int, wanted: Mapping[str, set[int]], sources: frozenset[str],
        cursor: CursorKey | None = None, position: str | None = None,
        wanted_content: Mapping[str, set[str]] | None = None,
    ) -> int:
        """Delete the wanted versions that arrived from ``sources``; return how many left.

        ``wanted`` names versions by ``(id, version µs)``; ``wanted_content`` names unversioned SCOs by
        id and the SHA-256 of their body, because an SCO's version is the ``date_added`` of each node.
        Versions this node produced, or received from another partner, stay: a partner can only recall
        what it sent.  Deleted versions are kept as recalled copies, so nodes that pulled them from
        here are told in turn.  The deletions, their copies and the recall cursor commit together.
        """
        ids = sorted(set(wanted) | set(wanted_content or ()))
        received = self.provenance_of(collection_pk, ids) if ids else {}
        chosen: dict[str, list[VersionRow]] = {}
        if ids:
            for start in range(0, len(ids), 200):
                rows = self.store.query_versions(VersionQuery(
                    collection_pk=collection_pk, ids=tuple(ids[start:start + 200]),
                    versions=VersionSelector(all=True), limit=100_000,
                ))
                for row in rows:
                    found = received.get((row.stix_id, row.version))
                    if found is None or found.partner not in sources:
                        continue
                    if row.version in wanted.get(row.stix_id, ()) or (
                        wanted_content and content_hash(row.body) in wanted_content.get(row.stix_id, ())
                    ):
                        chosen.setdefault(row.stix_id, []).append(row)
        removed = 0
        with self._write() as cur, _joined_transaction(self.store, cur):
            for stix_id, rows in chosen.items():
                versions = [row.version for row in rows]

                def keep(inner: Any, deleted: int, rows: list[VersionRow] = rows) -> None:
                    if deleted:
                        node.keep_withdrawn(collection_pk, rows, "recalled", inner)

                deleted = self.store.delete_versions_and(
                    collection_pk, stix_id, VersionSelector(exact=tuple(versions)), keep
                )
                if deleted:
                    node.audit.record("recall", None, {
                        "collection_pk": collection_pk, "id": stix_id, "versions": versions, "from": sorted(sources),
                    })
                removed += deleted
            if cursor is not None and position is not None:
                self._save_cursor(cur, cursor, position)
        return removed

    # -- status ------------------------------------------------------------------------
    def get_status(self, partner: str) -> PartnerStatus:
        """The stored status; "running" only while the run's lease is alive, "interrupted" after that."""
        with self._read() as cur:
            cur.execute(
                "SELECT s.partner, s.state, s.failures, s.next_attempt, s.last_attempt, s.last_success, "
                "s.last_error, s.pulled, s.pushed, s.quarantined, s.last_run, l.holder, l.expires_at "
                "FROM fed_status s LEFT JOIN fed_lease l ON l.name = ? WHERE s.partner = ?",
                (RUN_LEASE_PREFIX + partner, partner),
            )
            row = cur.fetchone()
        if row is None:
            return PartnerStatus.fresh(partner)
        status = PartnerStatus(*row[:11])
        holder, expires_at = row[11], row[12]
        if status.state != "running":
            return status
        if holder is not None and int(expires_at) >= now_micros():
            return replace(status, running_in=str(holder))
        # The run stopped without recording an outcome (killed, or its machine went away).
        return replace(status, state="interrupted", last_error=(
            "the last run stopped without finishing (its process died); the next run resumes after the last "
            "committed page"
        ))

    def status_view(self, partner: str) -> dict[str, Any]:
        """The status as operators see it (``partners list/show``, ``GET …/federation/partners/``)."""
        status = self.get_status(partner)

        def when(micros: int | None) -> str | None:
            return format_timestamp(micros) if micros else None

        last_run = orjson.loads(status.last_run) if status.last_run else None
        return {
            "state": status.state, "running_in": status.running_in, "consecutive_failures": status.failures,
            "next_attempt": when(status.next_attempt), "last_attempt": when(status.last_attempt),
            "last_success": when(status.last_success), "last_error": status.last_error,
            "pulled": status.pulled, "pushed": status.pushed, "quarantined": status.quarantined,
            "notes": last_run.get("notes", []) if isinstance(last_run, dict) else [],
            "last_run": last_run,
        }

    def put_status(self, status: PartnerStatus) -> None:
        with self._write() as cur:
            cur.execute(
                "INSERT INTO fed_status (partner, state, failures, next_attempt, last_attempt, last_success, "
                "last_error, pulled, pushed, quarantined, last_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (partner) DO UPDATE SET state = excluded.state, failures = excluded.failures, "
                "next_attempt = excluded.next_attempt, last_attempt = excluded.last_attempt, "
                "last_success = excluded.last_success, last_error = excluded.last_error, "
                "pulled = excluded.pulled, pushed = excluded.pushed, quarantined = excluded.quarantined, "
                "last_run = excluded.last_run",
                (status.partner, status.state, status.failures, status.next_attempt, status.last_attempt,
                 status.last_success, status.last_error, status.pulled, status.pushed, status.quarantined,
                 status.last_run),
            )

    # -- the single worker -------------------------------------------------------------
    def take_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Hold (or renew) the named lease unless another live holder has it."""
        now = now_micros()
        with self._write() as cur:
            cur.execute(
                "INSERT INTO fed_lease (name, holder, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
                "WHERE fed_lease.expires_at < ? OR fed_lease.holder = excluded.holder",
                (name, holder, now + int(ttl_s * 1_000_000), now),
            )
            cur.execute("SELECT holder FROM fed_lease WHERE name = ?", (name,))
            return bool(cur.fetchone()[0] == holder)

    def release_lease(self, name: str, holder: str) -> None:
        with self._write() as cur:
            cur.execute("DELETE FROM fed_lease WHERE name = ? AND holder = ?", (name, holder))

    def hold_run(self, partner: str, holder: str, ttl_s: float) -> None:
        """Mark (or keep marking) a run of ``partner`` as alive in ``holder`` for the next ``ttl_s`` seconds.

        Unconditional: an operator's ``kizuna sync`` may run beside the worker, and the latest run
        is the one whose liveness counts."""
        with self._write() as cur:
            cur.execute(
                "INSERT INTO fed_lease (name, holder, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
                (RUN_LEASE_PREFIX + partner, holder, now_micros() + int(ttl_s * 1_000_000)),
            )

    def release_all(self, holder: str) -> int:
        """Drop every lease ``holder`` has (its process is known to be dead); return how many."""
        with self._write() as cur:
            cur.execute("DELETE FROM fed_lease WHERE holder = ?", (holder,))
            return int(cur.rowcount or 0)

    def lease_holder(self, name: str) -> tuple[str, int] | None:
        with self._read() as cur:
            cur.execute("SELECT holder, expires_at FROM fed_lease WHERE name = ?", (name,))
            row = cur.fetchone()
        return None if row is None else (str(row[0]), int(row[1]))
