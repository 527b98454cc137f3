"""SQL shared by the SQLite and PostgreSQL backends.

Both speak the same statements written with ``?`` placeholders; a backend supplies
connections, transactions, the collection write lock and the clock.  Writers of one
collection are serialised by that lock and take their ``date_added`` values from a
per-collection high-water mark inside it, so commit order equals ``date_added`` order
and a reader paging by ``added_after`` can never skip a row that commits later.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, Final, NamedTuple, TypeVar

from kizuna.stix.timestamps import now_micros
from kizuna.store import embedded, feed_facts, object_markings, object_refs
from kizuna.store.base import (
    FEED_NOT_NOTED,
    AddResult,
    AgreementRecord,
    ApiRoot,
    AuditEntry,
    AuditRecord,
    Collection,
    ColumnShapes,
    FeedRow,
    Grant,
    NewVersion,
    Organisation,
    OrganisationGroups,
    Outcome,
    SearchQuery,
    StoredStatus,
    TokenRecord,
    TokenTrust,
    VersionQuery,
    VersionRow,
    VersionSelector,
)
from kizuna.store.feed_rows import CHANGE_STAMP_COLUMNS, FeedRows, change_stamp
from kizuna.store.ops_activity import OpsActivityRows
from kizuna.store.ops_alerts import OpsAlertRows
from kizuna.store.search_backlog import SearchBacklog
from kizuna.store.search_index import SearchIndex
from kizuna.store.sessions import SessionRows
from kizuna.store.sighting_inputs import SightingInputRows
from kizuna.store.transactions import Transactions
from kizuna.store.view_edges import Edges, Shape, edges

_IN_CHUNK = 500
_T = TypeVar("_T")
_ROW_COLUMNS = (
    "seq, stix_id, type, version, spec_version, date_added, created_by_ref, markings, body, is_first, is_last, "
    "embeds, object_markings"
)


_JOINED_COLUMNS = ", ".join("o." + column.strip() for column in _ROW_COLUMNS.split(","))


def _chunks(items: Sequence[_T], size: int = _IN_CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def effective_schema_version(applied: set[int], known: Sequence[int]) -> int:
    """The version a store is at: the newest known step with every known step up to it applied, or the
    newest applied step when it is one this Kizuna does not know (a newer Kizuna migrated the store)."""
    if applied and max(applied) > max(known, default=0):
        return max(applied)
    current = 0
    for version in sorted(known):
        if version not in applied:
            break
        current = version
    return current


def _marks(count: int) -> str:
    return ",".join("?" * count)


class _Held(NamedTuple):
    """A version of an object as ``add_versions`` and the flag refresh see it."""

    seq: int | None  # None: being added now
    shape: Shape
    stored: Edges | None = None  # the flags in the row as stored


#: The flags of an object's only version: first and last, for every reader.
_ONLY_VERSION = Edges(1, 1, 1, 1)


def _edges_by_version(known: dict[int, _Held]) -> dict[int, Edges]:
    if len(known) == 1:  # most ingested objects: no neighbours to compare
        return dict.fromkeys(known, _ONLY_VERSION)
    order = sorted(known)
    return dict(zip(order, edges([known[version].shape for version in order]), strict=True))


class SqlStore(Transactions, SessionRows, FeedRows, OpsAlertRows, OpsActivityRows, SightingInputRows, SearchBacklog,
               abc.ABC):
    url: str
    #: The backend's full-text search index (store/search_index.py).
    search_index: SearchIndex

    # -- what a backend provides (and _reader, _transaction: store/transactions.py) ------
    @abc.abstractmethod
    def _lock_collection(self, cur: Any, collection_pk: int) -> tuple[int, int]:
        """Take the collection's write lock; return (last date_added, now) in µs."""

    def _apply_migrations(self, cur: Any, migrations: Sequence[tuple[int, str]]) -> int:
        """Apply every step not yet recorded, in order, in one transaction; return the newest version.

        Steps are applied by membership, not by "above the newest": a database that took a later step
        first (steps developed side by side) still receives the earlier one it lacks.
        """
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
        )
        cur.execute("SELECT version FROM schema_migrations")
        applied = {int(row[0]) for row in cur.fetchall()}
        for version, script in sorted(migrations):
            if version in applied:
                continue
            for statement in filter(str.strip, script.split(";")):
                cur.execute(statement)
            if version in (7, 23):
                self._backfill_edges(cur)
            if version == 11:
                self.search_index.backfill(cur)
            if version == 14:
                feed_facts.backfill(cur)
            if version == 16:
                object_refs.backfill(cur)
            if version == 25:
                object_refs.backfill(cur, ("language-content",))
            if version == 28:
                embedded.backfill(cur)
            if version == 29:
                object_markings.backfill(cur)
            cur.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (version, now_micros()))
            applied.add(version)
        return max(applied, default=0)

    @abc.abstractmethod
    def migrate(self) -> int: ...

    @abc.abstractmethod
    def schema_versions(self) -> tuple[int, int]: ...

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` is one of ``values``; PostgreSQL binds one array instead of many parameters."""
        return f"{column} IN ({_marks(len(values))})", list(values)

    def _holds(self, column: str) -> str:
        """``column`` (bytes) holds the bytes bound to the one parameter."""
        return f"instr({column}, ?) > 0"

    _INSERT_COLUMNS = (
        "collection_pk, stix_id, type, version, spec_version, date_added, created_by_ref, markings, body, "
        "is_first, is_last, maybe_first, maybe_last, feed, embeds, object_markings"
    )

    def _insert_versions(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        """Insert object rows (columns as in ``_INSERT_COLUMNS``); a backend may bulk-load instead."""
        cur.executemany(f"INSERT INTO objects ({self._INSERT_COLUMNS}) VALUES ({_marks(16)})", rows)

    @abc.abstractmethod
    def close(self) -> None: ...

    def lean_reads(self) -> None:
        """Nothing by default: a backend whose readers keep per-connection memory says how to keep it small."""

    # -- settings ----------------------------------------------------------------
    def get_setting(self, key: str) -> str | None:
        with self._read() as cur:
            cur.execute("SELECT value FROM node_settings WHERE key = ?", (key,))
            row = cur.fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        with self._write() as cur:
            cur.execute(
                "INSERT INTO node_settings (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def set_setting_if_absent(self, key: str, value: str) -> str:
        """Store ``value`` unless another process got there first; return the winner."""
        with self._write() as cur:
            cur.execute(
                "INSERT INTO node_settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (key, value),
            )
            cur.execute("SELECT value FROM node_settings WHERE key = ?", (key,))
            return str(cur.fetchone()[0])

    # -- API roots and collections -----------------------------------------------
    def create_api_root(self, root: ApiRoot) -> None:
        with self._write() as cur:
            cur.execute(
                "INSERT INTO api_roots (name, title, description, max_content_length) VALUES (?, ?, ?, ?)",
                (root.name, root.title, root.description, root.max_content_length),
            )

    def list_api_roots(self) -> list[ApiRoot]:
        with self._read() as cur:
            cur.execute("SELECT name, title, description, max_content_length FROM api_roots ORDER BY name")
            return [ApiRoot(*row) for row in cur.fetchall()]

    def get_api_root(self, name: str) -> ApiRoot | None:
        with self._read() as cur:
            cur.execute(
                "SELECT name, title, description, max_content_length FROM api_roots WHERE name = ?", (name,)
            )
            row = cur.fetchone()
        return None if row is None else ApiRoot(*row)

    def create_collection(
        self, collection_id: str, api_root: str, title: str, description: str | None,
        alias: str | None, media_types: Sequence[str],
    ) -> Collection:
        with self._write() as cur:
            cur.execute(
                "INSERT INTO collections (id, api_root, title, description, alias, media_types, last_added) "
                "VALUES (?, ?, ?, ?, ?, ?, 0) RETURNING pk",
                (collection_id, api_root, title, description, alias, ",".join(media_types)),
            )
            pk = int(cur.fetchone()[0])
        return Collection(pk, collection_id, api_root, title, description, alias, tuple(media_types))

    _COLLECTION_COLUMNS = "pk, id, api_root, title, description, alias, media_types"

    @staticmethod
    def _collection(row: Sequence[Any]) -> Collection:
        pk, cid, root, title, description, alias, media = row
        return Collection(int(pk), cid, root, title, description, alias, tuple(media.split(",")))

    def list_collections(self, api_root: str | None = None) -> list[Collection]:
        with self._read() as cur:
            if api_root is None:
                cur.execute(f"SELECT {self._COLLECTION_COLUMNS} FROM collections ORDER BY id")
            else:
                cur.execute(
                    f"SELECT {self._COLLECTION_COLUMNS} FROM collections WHERE api_root = ? ORDER BY id",
                    (api_root,),
                )
            return [self._collection(row) for row in cur.fetchall()]

    def get_collection(self, api_root: str, id_or_alias: str) -> Collection | None:
        with self._read() as cur:
            cur.execute(
                f"SELECT {self._COLLECTION_COLUMNS} FROM collections "
                "WHERE api_root = ? AND (id = ? OR alias = ?) ORDER BY id = ? DESC",
                (api_root, id_or_alias, id_or_alias, id_or_alias),
            )
            row = cur.fetchone()
        return None if row is None else self._collection(row)

    # -- organisations and tokens ------------------------------------------------
    def create_organisation(self, org: Organisation) -> None:
        with self._write() as cur:
            cur.execute(
                "INSERT INTO organisations (id, name, country, identity) VALUES (?, ?, ?, ?)",
                (org.id, org.name, org.country, org.identity),
            )

    def get_organisation(self, id_or_name: str) -> Organisation | None:
        with self._read() as cur:
            cur.execute(
                "SELECT id, name, country, identity FROM organisations WHERE id = ? OR name = ?",
                (id_or_name, id_or_name),
            )
            row = cur.fetchone()
        return None if row is None else Organisation(row[0], row[1], row[2], bytes(row[3]))

    def list_organisations(self) -> list[Organisation]:
        with self._read() as cur:
            cur.execute("SELECT id, name, country, identity FROM organisations ORDER BY name")
            return [Organisation(r[0], r[1], r[2], bytes(r[3])) for r in cur.fetchall()]

    def create_token(self, token: TokenRecord) -> None:
        with self._write() as cur:
            cur.execute(
                "INSERT INTO tokens (id, organisation_id, secret_hash, label, created_at, revoked_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, NULL, ?)",
                (token.id, token.organisation_id, token.secret_hash, token.label, token.created_at,
                 token.expires_at),
            )
            cur.executemany(
                "INSERT INTO grants (token_id, collection_pk, can_read, can_write) VALUES (?, ?, ?, ?)",
                [(token.id, g.collection_pk, int(g.can_read), int(g.can_write)) for g in token.grants],
            )

    _TOKEN_COLUMNS: Final = ("t.id, t.organisation_id, t.secret_hash, t.label, t.created_at, t.revoked_at, "
                             "t.expires_at, t.cert_sha256, t.previous_secret_hash, t.previous_valid_until, "
                             "t.agreement_id")

    @staticmethod
    def _token(t: Sequence[Any], grants: Sequence[Grant]) -> TokenRecord:
        return TokenRecord(
            id=t[0], organisation_id=t[1], secret_hash=t[2], label=t[3], created_at=t[4],
            revoked_at=t[5], grants=tuple(grants), expires_at=t[6],
            trust=TokenTrust(t[7], t[8], None if t[9] is None else int(t[9])), agreement_id=t[10],
        )

    def _tokens(self, cur: Any, where: str, params: tuple[Any, ...]) -> list[TokenRecord]:
        cur.execute(f"SELECT {self._TOKEN_COLUMNS} FROM tokens t {where} ORDER BY t.created_at, t.id", params)
        tokens = cur.fetchall()
        if not tokens:
            return []
        cur.execute(
            f"SELECT token_id, collection_pk, can_read, can_write FROM grants "
            f"WHERE token_id IN ({_marks(len(tokens))})",
            tuple(t[0] for t in tokens),
        )
        grants: dict[str, list[Grant]] = {}
        for token_id, pk, can_read, can_write in cur.fetchall():
            grants.setdefault(token_id, []).append(Grant(int(pk), bool(can_read), bool(can_write)))
        return [self._token(t, grants.get(t[0], ())) for t in tokens]

    def get_token(self, token_id: str) -> TokenRecord | None:
        # One statement with its grants: every authenticated request asks, and on PostgreSQL each statement is
        # a round trip to a database the read path keeps busy.
        with self._read() as cur:
            cur.execute(
                f"SELECT {self._TOKEN_COLUMNS}, g.collection_pk, g.can_read, g.can_write FROM tokens t "
                "LEFT JOIN grants g ON g.token_id = t.id WHERE t.id = ? ORDER BY g.collection_pk",
                (token_id,),
            )
            rows = cur.fetchall()
        if not rows:
            return None
        grants = [Grant(int(r[11]), bool(r[12]), bool(r[13])) for r in rows if r[11] is not None]
        return self._token(rows[0], grants)

    def list_tokens(self) -> list[TokenRecord]:
        with self._read() as cur:
            return self._tokens(cur, "", ())

    def revoke_token(self, token_id: str, at: int) -> bool:
        with self._write() as cur:
            cur.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (at, token_id)
            )
            return bool(cur.rowcount)

    # -- object versions ---------------------------------------------------------
    def add_versions(self, collection_pk: int, versions: Sequence[NewVersion]) -> list[AddResult]:
        if not versions:
            return []
        with self._write() as cur:
            last_added, now = self._lock_collection(cur, collection_pk)
            existing = self._existing_versions(cur, collection_pk, {v.stix_id for v in versions})
            # Reserve one microsecond per new row: date_added is unique within a collection.
            next_added = max(now, last_added + 1)
            results: list[AddResult] = []
            pending: list[tuple[NewVersion, int, int]] = []  # (version, its version µs, date_added)
            for new in versions:
                known = existing.setdefault(new.stix_id, {})
                version = new.version
                if version is None:  # unversioned SCO: identical content is a duplicate
                    same = next((v for v, held in known.items() if held.shape.body == new.body), None)
                    if same is not None:
                        results.append(AddResult(Outcome.DUPLICATE, same, None))
                        continue
                    version = next_added
                elif version in known:
                    outcome = Outcome.DUPLICATE if known[version].shape.body == new.body else Outcome.CONFLICT
                    results.append(AddResult(outcome, version, None))
                    continue
                known[version] = _Held(None, Shape(version, new.type, new.created_by_ref, new.markings, new.body))
                pending.append((new, version, next_added))
                results.append(AddResult(Outcome.ADDED, version, next_added))
                next_added += 1
            if pending:
                touched = {new.stix_id for new, _, _ in pending}
                flags = {stix_id: _edges_by_version(existing[stix_id]) for stix_id in touched}
                self._insert_versions(
                    cur,
                    [
                        (
                            collection_pk, new.stix_id, new.type, version, new.spec_version, added,
                            new.created_by_ref, new.markings, new.body, *flags[new.stix_id][version],
                            *self._noted_columns(new),
                        )
                        for new, version, added in pending
                    ],
                )
                # The new rows' keys, asked once for both indexes: the rows were inserted in date_added order.
                cur.execute(
                    "SELECT seq, date_added FROM objects WHERE collection_pk = ? AND date_added >= ? "
                    "AND date_added <= ?", (collection_pk, pending[0][2], pending[-1][2]),
                )
                seq_of = {int(added): int(seq) for seq, added in cur.fetchall()}
                keyed = [(seq_of[added], new) for new, _, added in pending]
                self.search_index.index_added(cur, [(seq, new.body, new.text) for seq, new in keyed])
                object_refs.index_added(cur, [(seq, new.type, new.body, new.refs) for seq, new in keyed])
                self._update_edges(cur, {stix_id: existing[stix_id] for stix_id in flags}, flags)
                cur.execute("UPDATE collections SET last_added = ? WHERE pk = ?", (next_added - 1, collection_pk))
        if pending:
            self._versions_added()  # their search text waits in the backlog (store/search_backlog.py)
        return results

    def _existing_versions(self, cur: Any, collection_pk: int, ids: set[str]) -> dict[str, dict[int, _Held]]:
        found: dict[str, dict[int, _Held]] = {}
        for chunk in _chunks(sorted(ids)):
            clause, params = self._in("stix_id", chunk)
            cur.execute(
                "SELECT stix_id, version, seq, type, created_by_ref, markings, body, is_first, is_last, maybe_first, "
                f"maybe_last FROM objects WHERE collection_pk = ? AND {clause}",
                (collection_pk, *params),
            )
            for stix_id, version, seq, stix_type, producer, markings, body, *stored in cur.fetchall():
                found.setdefault(stix_id, {})[int(version)] = _Held(
                    int(seq), Shape(int(version), stix_type, producer, markings, bytes(body)),
                    Edges(*(int(flag) for flag in stored)),
                )
        return found

    def _update_edges(
        self, cur: Any, held: dict[str, dict[int, _Held]], flags: dict[str, dict[int, Edges]]
    ) -> None:
        """Rewrite the first/last flags of stored rows whose neighbours changed (view_edges.py)."""
        changes = [
            (*flags[stix_id][version], row.seq)
            for stix_id, versions in held.items() for version, row in versions.items()
            if row.seq is not None and row.stored != flags[stix_id][version]
        ]
        if changes:
            self._write_edges(cur, changes)

    def _write_edges(self, cur: Any, changes: list[tuple[int, int, int, int, int]]) -> None:
        """Set (is_first, is_last, maybe_first, maybe_last) of the row keyed by the last member of each change."""
        cur.executemany(
            "UPDATE objects SET is_first = ?, is_last = ?, maybe_first = ?, maybe_last = ? WHERE seq = ?", changes
        )

    def _refresh_flags(self, cur: Any, collection_pk: int, ids: Sequence[str]) -> None:
        """Recompute the first/last flags of every version of each id (after a delete or a replaced form)."""
        for chunk in _chunks(ids):
            held = self._existing_versions(cur, collection_pk, set(chunk))
            self._update_edges(cur, held, {stix_id: _edges_by_version(known) for stix_id, known in held.items()})

    def _backfill_edges(self, cur: Any) -> None:
        """Schema step 7: the new maybe_first/maybe_last columns start at 1 (right for a single version);
        compute them for every object with several versions.  Step 23 computes them again, after the rule of
        which versions readers see alike changed (store/view_edges.py)."""
        cur.execute("SELECT collection_pk, stix_id FROM objects GROUP BY collection_pk, stix_id HAVING COUNT(*) > 1")
        by_collection: dict[int, list[str]] = {}
        for collection_pk, stix_id in cur.fetchall():
            by_collection.setdefault(int(collection_pk), []).append(stix_id)
        for collection_pk, ids in by_collection.items():
            self._refresh_flags(cur, collection_pk, sorted(ids))

    def _version_clause(self, selector: VersionSelector, candidates: bool = False) -> tuple[str, list[Any]]:
        """``first``/``last`` as stored, or with ``candidates`` every version that may be the first/last one
        some reader sees (the reader's own choice among them is made in ``core/query.py``)."""
        if selector.all:
            return "", []
        parts: list[str] = []
        params: list[Any] = []
        if selector.first:
            parts.append("maybe_first = 1" if candidates else "is_first = 1")
        if selector.last:
            parts.append("maybe_last = 1" if candidates else "is_last = 1")
        if selector.exact:
            clause, values = self._in("version", selector.exact)
            parts.append(clause)
            params.extend(values)
        return (" AND (" + " OR ".join(parts) + ")") if parts else " AND 1 = 0", params

    def query_versions(self, query: VersionQuery) -> list[VersionRow]:
        if query.ids is None and query.types is not None and len(query.types) > 1:
            # Several types: one ordered walk of the (collection, type, date_added) index per type, merged in
            # one statement (one snapshot). With a single IN list SQLite walks the date_added index over the
            # whole collection instead, seconds at a million objects when the types are rare (issue 11).
            parts: list[str] = []
            params: list[Any] = []
            for kind in query.types:
                part, part_params = self._versions_sql(replace(query, types=(kind,)))
                parts.append(f"SELECT * FROM ({part}) AS t{len(parts)}")
                params.extend(part_params)
            sql, params = " UNION ALL ".join(parts) + " ORDER BY date_added LIMIT ?", [*params, query.limit]
        else:
            sql, params = self._versions_sql(query)
        with self._read() as cur:
            cur.execute(sql, tuple(params))
            return list(map(VersionRow._make, cur.fetchall()))

    def feed_rows(self, collection_pk: int, added_after: int | None, limit: int) -> list[FeedRow]:
        clause, params = self._version_clause(VersionSelector(last=True), candidates=True)
        sql = (f"SELECT seq, stix_id, version, date_added, created_by_ref, markings, is_last, feed, "
               f"COALESCE(object_markings, markings) FROM objects "
               f"WHERE collection_pk = ? AND type = 'indicator'{clause} AND date_added > ? ORDER BY date_added LIMIT ?")
        with self._read() as cur:
            cur.execute(sql, (collection_pk, *params, -1 if added_after is None else added_after, limit))
            found: list[FeedRow] = cur.fetchall()
            return found

    def versions_by_seq(self, seqs: Sequence[int]) -> list[VersionRow]:
        found: list[VersionRow] = []
        with self._read() as cur:
            for chunk in _chunks(list(seqs)):
                clause, params = self._in("seq", chunk)
                cur.execute(f"SELECT {_ROW_COLUMNS} FROM objects WHERE {clause}", tuple(params))
                found.extend(map(VersionRow._make, cur.fetchall()))
        return sorted(found, key=lambda row: row.date_added)

    def _versions_sql(self, query: VersionQuery) -> tuple[str, list[Any]]:
        sql = [f"SELECT {_ROW_COLUMNS} FROM objects WHERE collection_pk = ?"]
        params: list[Any] = [query.collection_pk]
        for column, values in (("stix_id", query.ids), ("type", query.types), ("spec_version", query.spec_versions)):
            if values is not None:
                clause, clause_values = self._in(column, values)
                sql.append(f" AND {clause}")
                params.extend(clause_values)
        clause, clause_params = self._version_clause(query.versions, candidates=True)
        sql.append(clause)
        params.extend(clause_params)
        if query.added_after is not None:
            sql.append(" AND date_added > ?")
            params.append(query.added_after)
        # With ids given, the unary plus stops SQLite from walking the date_added index over the
        # whole collection to avoid a sort; the (collection, id, version) index finds the few rows.
        sql.append(" ORDER BY +date_added LIMIT ?" if query.ids is not None else " ORDER BY date_added LIMIT ?")
        params.append(query.limit)
        return "".join(sql), params

    def delete_versions(
        self, collection_pk: int, stix_id: str, selector: VersionSelector,
        spec_versions: tuple[str, ...] | None,
    ) -> int:
        return self._delete(collection_pk, stix_id, selector, spec_versions, None)

    def _delete(
        self, collection_pk: int, stix_id: str, selector: VersionSelector,
        spec_versions: tuple[str, ...] | None, then: Callable[[Any, int], None] | None,
    ) -> int:
        clause, clause_params = self._version_clause(selector)
        spec_clause = ""
        spec_params: tuple[str, ...] = ()
        if spec_versions is not None:
            clause, values = self._in("spec_version", spec_versions)
            spec_clause = f" AND {clause}"
            spec_params = tuple(values)
        with self._write() as cur:
            _, now = self._lock_collection(cur, collection_pk)
            # Deletion times of a collection only grow, even if the clock steps back: the newest one is half of the
            # collection's change stamp (collection_change_stamp), which readers' caches are checked against.
            cur.execute("SELECT MAX(deleted_at) FROM tombstones WHERE collection_pk = ?", (collection_pk,))
            newest = cur.fetchone()[0]
            if newest is not None and now <= int(newest):
                now = int(newest) + 1
            where = f"collection_pk = ? AND stix_id = ?{spec_clause}{clause}"
            params = (collection_pk, stix_id, *spec_params, *clause_params)
            cur.execute(
                "INSERT INTO tombstones (collection_pk, stix_id, version, deleted_at) "
                f"SELECT collection_pk, stix_id, version, ? FROM objects WHERE {where}",
                (now, *params),
            )
            self.search_index.remove(cur, where, params)
            object_refs.remove(cur, where, params)
            cur.execute(f"DELETE FROM objects WHERE {where}", params)
            deleted = int(cur.rowcount)
            if deleted:
                self._refresh_flags(cur, collection_pk, [stix_id])
            if then is not None:
                then(cur, deleted)
        return deleted

    @staticmethod
    def _noted_columns(new: NewVersion) -> tuple[str | None, int, str | None]:
        """The columns noted from a version's body on write: its feed facts, whether it embeds references and its
        object's own markings (store/feed_facts.py, embedded.py, object_markings.py)."""
        return (feed_facts.facts_of(new.type, new.body) if new.feed == FEED_NOT_NOTED else new.feed,
                embedded.embeds(new.type, new.body, new.created_by_ref, new.markings),
                object_markings.object_markings(new.markings, new.body))

    def replace_form(self, collection_pk: int, new: NewVersion, version: int) -> int | None:
        """Store a fuller form of a stored version (same id and version) in its place; return its new
        ``date_added``, or None if the version is not stored.

        The row moves to the end of the change feed, so readers paging by ``added_after`` see the
        fuller form (federation: a redacted copy replaced by the full version, docs/federation.md).
        """
        with self._write() as cur:
            last_added, now = self._lock_collection(cur, collection_pk)
            added = max(now, last_added + 1)
            # The columns noted from the body are written with it, from the version in hand, as add_versions
            # writes them.
            cur.execute(
                "UPDATE objects SET body = ?, markings = ?, created_by_ref = ?, date_added = ?, feed = ?, embeds = ?, "
                "object_markings = ? WHERE collection_pk = ? AND stix_id = ? AND version = ?",
                (new.body, new.markings, new.created_by_ref, added, *self._noted_columns(new),
                 collection_pk, new.stix_id, version),
            )
            if not cur.rowcount:
                return None
            for index in (self.search_index, object_refs):
                index.reindex(cur, "collection_pk = ? AND stix_id = ? AND version = ?",
                              (collection_pk, new.stix_id, version))
            # Other markings or another producer can change which readers see this version like its neighbours.
            self._refresh_flags(cur, collection_pk, [new.stix_id])
            cur.execute("UPDATE collections SET last_added = ? WHERE pk = ?", (added, collection_pk))
        return added

    def delete_versions_and(
        self, collection_pk: int, stix_id: str, selector: VersionSelector, then: Callable[[Any, int], None],
    ) -> int:
        """``delete_versions``, then ``then(cursor, deleted)`` in the same transaction: what is kept about
        the deleted versions (their recall copies) commits with the delete or not at all."""
        return self._delete(collection_pk, stix_id, selector, None, then)

    def collection_stats(self, collection_pk: int) -> tuple[int, int | None, int | None]:
        with self._read() as cur:
            cur.execute(
                "SELECT COUNT(*), MIN(date_added), MAX(date_added) FROM objects WHERE collection_pk = ?",
                (collection_pk,),
            )
            count, first, last = cur.fetchone()
        return int(count), first, last

    def column_shapes(self, collection_pk: int, after: int, limit: int) -> ColumnShapes:
        """The distinct (type, created_by_ref, markings) of the next ``limit`` versions of a collection added after
        ``after`` (by date_added), as the read path's column shapes (core/stored_shapes.py).

        One statement, the collection's recorded newest ``date_added`` on every row (and alone on one row when
        nothing was added): every partner's page takes such a step, usually an empty one, and on PostgreSQL each
        statement is a round trip."""
        with self._read() as cur:
            cur.execute(
                "SELECT c.last_added, g.* FROM collections c LEFT JOIN ("
                "SELECT type, created_by_ref, markings, COUNT(*) AS versions, MAX(date_added) AS newest, "
                "MIN(CASE WHEN substr(stix_id, 1, length(type) + 2) = type || '--' THEN 1 ELSE 0 END) AS typed "
                "FROM (SELECT type, created_by_ref, markings, date_added, stix_id FROM objects "
                "WHERE collection_pk = ? AND date_added > ? ORDER BY date_added LIMIT ?) recent "
                "GROUP BY type, created_by_ref, markings) g ON 1 = 1 WHERE c.pk = ?",
                (collection_pk, after, limit, collection_pk),
            )
            found = cur.fetchall()
        last_added = found[0][0] if found else None
        groups = [row[1:] for row in found if row[4] is not None]  # COUNT(*) is never NULL in a group
        return ColumnShapes(
            [(str(t), producer, markings) for t, producer, markings, _, _, _ in groups],
            sum(int(g[3]) for g in groups),
            max((int(g[4]) for g in groups), default=after),
            all(int(g[5]) == 1 for g in groups),
            int(last_added) if last_added is not None else 0,
        )

    def referencing(
        self, collection_pk: int, refs: Sequence[str], types: Sequence[str], limit: int
    ) -> list[VersionRow]:
        """Versions of ``types`` in a collection that point at one of ``refs`` (store/object_refs.py) and
        may be some reader's latest, at most ``limit``, oldest added first."""
        if not refs:
            return []
        found: list[VersionRow] = []
        kinds, kind_params = self._in("o.type", list(types))
        with self._read() as cur:
            for chunk in _chunks(sorted(set(refs))):
                clause, params = self._in("r.ref", chunk)
                # CROSS JOIN: SQLite then starts from the few index rows of the refs, where it would otherwise
                # walk the collection's date_added index to save a sort (PostgreSQL plans it either way).
                cur.execute(
                    f"SELECT {_JOINED_COLUMNS} FROM object_refs r CROSS JOIN objects o WHERE o.seq = r.seq "
                    f"AND {clause} AND o.collection_pk = ? AND {kinds} AND o.maybe_last = 1 "
                    "ORDER BY o.date_added LIMIT ?",
                    (*params, collection_pk, *kind_params, limit - len(found)),
                )
                found += map(VersionRow._make, cur.fetchall())
                if len(found) >= limit:
                    break
        unique = {row.seq: row for row in found}  # a relationship of an object to itself is found once
        return sorted(unique.values(), key=lambda row: row.date_added)

    def search_versions(self, query: SearchQuery) -> list[tuple[int, VersionRow]]:
        if not query.collection_pks:
            return []
        self.index_search_backlog()  # a search never misses a stored version
        index = self.search_index
        found: list[tuple[int, VersionRow]] = []
        with self._read() as cur:
            if index.windowed(query):
                sql, params = index.statement(query, self._in, windowed=True)
                cur.execute(sql, tuple(params))
                found = [(int(row[0]), VersionRow._make(row[1:])) for row in cur.fetchall()]
                low = None if len(found) >= query.limit else index.window_floor(cur, query.before_seq)
                if low is None:
                    return found
                query = replace(query, before_seq=low, limit=query.limit - len(found))
                if index.gather(len(found), low):
                    sql, params = index.statement(query, self._in, gathered=True)
                    cur.execute(sql, tuple(params))
                    rows = cur.fetchall()
                    if rows[0][0] <= index.gather_cap if rows else not index.overflows(cur, query):
                        return found + [(int(row[1]), VersionRow._make(row[2:])) for row in rows]
            sql, params = index.statement(query, self._in)
            cur.execute(sql, tuple(params))
            return found + [(int(row[0]), VersionRow._make(row[1:])) for row in cur.fetchall()]

    # -- status resources ----------------------------------------------------------
    def put_status(self, status: StoredStatus) -> None:
        with self._write() as cur:
            cur.execute(
                "INSERT INTO statuses (id, api_root, token_id, created_at, body) VALUES (?, ?, ?, ?, ?)",
                (status.id, status.api_root, status.token_id, status.created_at, status.body),
            )

    def get_status(self, status_id: str) -> StoredStatus | None:
        with self._read() as cur:
            cur.execute(
                "SELECT id, api_root, token_id, created_at, body FROM statuses WHERE id = ?", (status_id,)
            )
            row = cur.fetchone()
        return None if row is None else StoredStatus(row[0], row[1], row[2], row[3], bytes(row[4]))

    def purge_statuses(self, created_before: int) -> int:
        with self._write() as cur:
            cur.execute("DELETE FROM statuses WHERE created_at < ?", (created_before,))
            return int(cur.rowcount)

    # -- policy configuration (schema step 2) --------------------------------------
    # Every change here bumps the policy generation in the same transaction, so each
    # server process notices with one cheap read and rebuilds its policy context.
    @staticmethod
    def _bump(cur: Any) -> None:
        cur.execute("UPDATE policy_state SET generation = generation + 1 WHERE id = 1")

    def policy_generation(self) -> int:
        with self._read() as cur:
            cur.execute("SELECT generation FROM policy_state WHERE id = 1")
            row = cur.fetchone()
        return 0 if row is None else int(row[0])

    def policy_generation_and_change_stamp(self, collection_pk: int) -> tuple[int, tuple[int | None, int | None]]:
        """``policy_generation`` and ``collection_change_stamp`` in one statement: what every read of a collection
        by a partner asks first (core/node.py), and on PostgreSQL each statement is a round trip."""
        with self._read() as cur:
            cur.execute(f"SELECT (SELECT generation FROM policy_state WHERE id = 1), {CHANGE_STAMP_COLUMNS}",
                        (collection_pk, collection_pk))
            generation, added, deleted = cur.fetchone()
        return 0 if generation is None else int(generation), change_stamp(added, deleted)

    def bump_policy_generation(self) -> None:
        with self._write() as cur:
            self._bump(cur)

    def set_organisation_groups(self, groups: OrganisationGroups) -> None:
        with self._write() as cur:
            cur.execute(
                "UPDATE organisations SET communities = ?, client_of = ? WHERE id = ?",
                ("\n".join(groups.communities), "\n".join(groups.client_of), groups.organisation_id),
            )
            self._bump(cur)

    def list_organisation_groups(self) -> list[OrganisationGroups]:
        with self._read() as cur:
            cur.execute("SELECT id, communities, client_of FROM organisations ORDER BY id")
            return [
                OrganisationGroups(
                    row[0], tuple(filter(None, (row[1] or "").split("\n"))),
                    tuple(filter(None, (row[2] or "").split("\n"))),
                )
                for row in cur.fetchall()
            ]

    def add_agreement_version(
        self, agreement_id: str, partner: str, body: str, created_at: int, created_by: str | None
    ) -> int:
        with self._write() as cur:
            self._bump(cur)  # also serialises concurrent writers of agreements on the state row
            cur.execute(
                "SELECT COALESCE(MAX(version), 0) FROM agreements WHERE agreement_id = ?", (agreement_id,)
            )
            version = int(cur.fetchone()[0]) + 1
            cur.execute(
                "INSERT INTO agreements (agreement_id, version, partner, body, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (agreement_id, version, partner, body, created_at, created_by),
            )
        return version

    def list_agreements(self) -> list[AgreementRecord]:
        with self._read() as cur:
            cur.execute(
                "SELECT agreement_id, version, partner, body, created_at, created_by FROM agreements "
                "ORDER BY agreement_id, version"
            )
            return [AgreementRecord(r[0], int(r[1]), r[2], r[3], int(r[4]), r[5]) for r in cur.fetchall()]

    def set_token_agreement(self, token_id: str, agreement_id: str | None) -> None:
        with self._write() as cur:
            cur.execute("UPDATE tokens SET agreement_id = ? WHERE id = ?", (agreement_id, token_id))

    def get_token_agreement(self, token_id: str) -> str | None:
        with self._read() as cur:
            cur.execute("SELECT agreement_id FROM tokens WHERE id = ?", (token_id,))
            row = cur.fetchone()
        return None if row is None else row[0]

    def set_token_certificate(self, token_id: str, fingerprint: str | None) -> bool:
        with self._write() as cur:
            cur.execute("UPDATE tokens SET cert_sha256 = ? WHERE id = ?", (fingerprint, token_id))
            return bool(cur.rowcount)

    def rotate_token_secret(self, token_id: str, secret_hash: str, previous_valid_until: int) -> bool:
        """Replace the secret; the one replaced stays valid until ``previous_valid_until`` (one at a time)."""
        with self._write() as cur:
            cur.execute(
                "UPDATE tokens SET previous_secret_hash = secret_hash, previous_valid_until = ?, secret_hash = ? "
                "WHERE id = ? AND revoked_at IS NULL",
                (previous_valid_until, secret_hash, token_id),
            )
            return bool(cur.rowcount)

    def register_marking_definitions(self, definitions: Sequence[tuple[str, bytes]], at: int) -> int:
        """Record marking definitions node-wide; the first definition of an id wins."""
        if not definitions:
            return 0
        added = 0
        with self._write() as cur:
            for marking_id, body in definitions:
                cur.execute(
                    "INSERT INTO marking_definitions (id, body, added_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (id) DO NOTHING",
                    (marking_id, body, at),
                )
                added += max(int(cur.rowcount), 0)
            if added:
                self._bump(cur)
        return added

    def list_marking_definitions(self) -> list[bytes]:
        with self._read() as cur:
            cur.execute("SELECT body FROM marking_definitions ORDER BY added_at, id")
            return [bytes(row[0]) for row in cur.fetchall()]

    def add_tlp_aliases(self, aliases: Sequence[tuple[str, int]]) -> None:
        if not aliases:
            return
        with self._write() as cur:
            for marking_id, level in aliases:
                # An alias is never loosened: keep the stricter reading of an id.
                cur.execute(
                    "INSERT INTO tlp_aliases (id, level) VALUES (?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET level = CASE WHEN excluded.level > tlp_aliases.level "
                    "THEN excluded.level ELSE tlp_aliases.level END",
                    (marking_id, level),
                )
            self._bump(cur)

    def list_tlp_aliases(self) -> list[tuple[str, int]]:
        with self._read() as cur:
            cur.execute("SELECT id, level FROM tlp_aliases ORDER BY id")
            return [(row[0], int(row[1])) for row in cur.fetchall()]

    # -- the audit log ---------------------------------------------------------------
    def append_audit(
        self, entries: Sequence[AuditEntry], seal: Callable[[int, str, AuditEntry], str], *, lazily: bool = False
    ) -> list[AuditRecord]:
        """Append entries to the hash chain; ``seal(seq, prev_hash, entry)`` gives each hash.

        The no-op UPDATE takes the head row's lock first (a row lock in PostgreSQL; SQLite's
        ``BEGIN IMMEDIATE`` already holds the database lock), so appends from every process
        are serialised and the chain never forks; it returns the head it locked.

        ``lazily``: the commit need not wait for the database's log to reach the disk (`_audit_head_lock`). The
        records are written and the chain whole either way; a crash of the database server (not of the node)
        may lose the last fraction of a second of such records, and the chain then ends before them.
        """
        if not entries:
            return []
        with self._write() as cur:
            cur.execute(self._audit_head_lock(lazily))
            head = cur.fetchone()
            records = self._sealed(int(head[0]), str(head[1]), entries, seal)
            self._write_audit_records(cur, records)
        return records

    @staticmethod
    def _sealed(seq: int, prev: str, entries: Sequence[AuditEntry],
                seal: Callable[[int, str, AuditEntry], str]) -> list[AuditRecord]:
        """``entries`` as the records that follow the head ``(seq, prev)``, each sealed onto the one before."""
        records: list[AuditRecord] = []
        for entry in entries:
            seq += 1
            digest = seal(seq, prev, entry)
            records.append(AuditRecord(seq, entry.at, entry.kind, entry.principal, entry.body, prev, digest))
            prev = digest
        return records

    _AUDIT_INSERT: Final = ("INSERT INTO audit_log (seq, at, kind, principal, body, prev_hash, hash) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)")

    def _audit_head_lock(self, lazily: bool) -> str:
        """The statement that locks the chain's head for this transaction and returns its seq and hash first.
        ``lazily``: it also lets the transaction's commit return before the log is flushed, which SQLite in WAL mode
        with ``synchronous = NORMAL`` (store/sqlite/store.py) does for every transaction already."""
        return "UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash"

    @staticmethod
    def _audit_row(record: AuditRecord) -> tuple[Any, ...]:
        return (record.seq, record.at, record.kind, record.principal, record.body, record.prev_hash, record.hash)

    def _write_audit_records(self, cur: Any, records: list[AuditRecord]) -> None:
        """The new records, and the head moved to the last of them."""
        cur.executemany(self._AUDIT_INSERT, [self._audit_row(r) for r in records])
        cur.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (records[-1].seq, records[-1].hash))

    def audit_records(self, after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        with self._read() as cur:
            cur.execute(
                "SELECT seq, at, kind, principal, body, prev_hash, hash FROM audit_log "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            )
            return [AuditRecord(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], r[6]) for r in cur.fetchall()]

    def audit_head(self) -> tuple[int, str]:
        with self._read() as cur:
            cur.execute("SELECT seq, hash FROM audit_head WHERE id = 1")
            row = cur.fetchone()
        return (0, "") if row is None else (int(row[0]), str(row[1]))

    # -- federation bookkeeping the core consults ------------------------------------------
    def has_provenance(self, collection_pk: int, stix_id: str, version: int) -> bool:
        """Whether a stored version arrived from a partner node (pulled, or pushed in by its token)."""
        with self._read() as cur:
            cur.execute(
                "SELECT 1 FROM fed_provenance WHERE collection_pk = ? AND stix_id = ? AND version = ?",
                (collection_pk, stix_id, version),
            )
            return cur.fetchone() is not None

    def holds_provenance(self, collection_pk: int) -> bool:
        """Whether any stored version of a collection arrived from a partner node (one index look-up)."""
        with self._read() as cur:
            cur.execute("SELECT 1 FROM fed_provenance WHERE collection_pk = ? LIMIT 1", (collection_pk,))
            return cur.fetchone() is not None

    def provenance_of(self, collection_pk: int, stix_id: str) -> list[tuple[int, str]]:
        """(version, partner) for every version of one object that came from a partner."""
        with self._read() as cur:
            cur.execute(
                "SELECT version, partner FROM fed_provenance WHERE collection_pk = ? AND stix_id = ?",
                (collection_pk, stix_id),
            )
            return [(int(version), str(partner)) for version, partner in cur.fetchall()]

    def partners_of(self, collection_pk: int, versions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """The partner each of ``versions`` (stix_id, version) came from, for those received from one: one
        question per 500 objects, so a walk over a window of rows asks once (the console's partner filter)."""
        wanted = set(versions)
        ids = sorted({stix_id for stix_id, _ in wanted})
        found: dict[tuple[str, int], str] = {}
        with self._read() as cur:
            for start in range(0, len(ids), 500):
                clause, values = self._in("stix_id", ids[start:start + 500])
                cur.execute("SELECT stix_id, version, partner FROM fed_provenance WHERE collection_pk = ? "
                            f"AND {clause}", (collection_pk, *values))
                for stix_id, version, partner in cur.fetchall():
                    if (stix_id, int(version)) in wanted:
                        found[(stix_id, int(version))] = str(partner)
        return found

    def add_provenance(self, rows: Sequence[tuple[int, str, int, str, str, int]]) -> None:
        """(collection_pk, stix_id, version, partner, remote collection, received at) per version."""
        with self._write() as cur:
            cur.executemany(
                "INSERT INTO fed_provenance (collection_pk, stix_id, version, partner, remote_collection, "
                "received_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                rows,
            )

    def partner_configs(self) -> list[tuple[str, bytes]]:
        with self._read() as cur:
            cur.execute("SELECT name, config FROM fed_partners ORDER BY name")
            return [(str(name), bytes(config) if not isinstance(config, str) else config.encode())
                    for name, config in cur.fetchall()]

    def held_ids(self, collection_pks: Sequence[int], ids: Sequence[str],
                 deleted_from: Sequence[int] = ()) -> set[tuple[int, str]]:
        """(collection_pk, id) for each of ``ids`` that one of the collections holds as a stored version, or, in
        ``deleted_from`` (those with deletions), as the kept copy of a deleted one: index probes only, no bodies
        (core/elsewhere.py asks it once per page)."""
        held: set[tuple[int, str]] = set()
        with self._read() as cur:
            for table, pks in (("objects", collection_pks), ("fed_withdrawn", deleted_from)):
                if not pks:
                    continue
                within, pk_params = self._in("collection_pk", pks)
                for start in range(0, len(ids), 500):
                    clause, params = self._in("stix_id", ids[start:start + 500])
                    cur.execute(f"SELECT DISTINCT collection_pk, stix_id FROM {table} WHERE {within} AND {clause}",
                                (*pk_params, *params))
                    held.update((int(pk), str(stix_id)) for pk, stix_id in cur.fetchall())
        return held

    def collection_change_stamps(self) -> dict[int, tuple[int | None, int | None]]:
        """``collection_change_stamp`` of every collection, by pk, in one statement (index look-ups)."""
        with self._read() as cur:
            cur.execute(
                "SELECT c.pk, (SELECT MAX(date_added) FROM objects o WHERE o.collection_pk = c.pk), "
                "(SELECT MAX(deleted_at) FROM tombstones t WHERE t.collection_pk = c.pk) FROM collections c")
            return {int(pk): change_stamp(added, deleted) for pk, added, deleted in cur.fetchall()}

    def withdrawn_copies(self, collection_pk: int, ids: Sequence[str]) -> list[VersionRow]:
        """The kept copies of deleted versions of ``ids`` in a collection (``keep_withdrawn``)."""
        if not ids:
            return []
        clause, params = self._in("stix_id", ids)
        with self._read() as cur:
            cur.execute(
                "SELECT stix_id, type, version, created_by_ref, markings, body, date_added FROM fed_withdrawn "
                f"WHERE collection_pk = ? AND {clause}", (collection_pk, *params))
            return [VersionRow(0, stix_id, stix_type, int(version), "2.1", int(added or 0), producer, markings,
                               bytes(body))
                    for stix_id, stix_type, version, producer, markings, body, added in cur.fetchall()]

    def withdrawn_shapes(self, collection_pk: int, after: int) -> tuple[list[tuple[str, str | None, str | None]], int]:
        """The distinct (type, created_by_ref, markings) of the kept copies withdrawn from a collection after
        ``after`` (µs), and the newest such withdrawn_at (``after`` when none)."""
        with self._read() as cur:
            cur.execute("SELECT type, created_by_ref, markings, MAX(withdrawn_at) FROM fed_withdrawn "
                        "WHERE collection_pk = ? AND withdrawn_at > ? GROUP BY type, created_by_ref, markings",
                        (collection_pk, after))
            found = cur.fetchall()
        return ([(str(kind), producer, markings) for kind, producer, markings, _ in found],
                max((int(row[3]) for row in found), default=after))

    def keep_withdrawn(
        self, collection_pk: int, rows: Sequence[VersionRow], reason: str, at: int, cur: Any = None
    ) -> None:
        """Copies of versions that left a collection, for recall; with ``cur``, in that transaction."""
        if cur is None:
            with self._write() as own:
                self.keep_withdrawn(collection_pk, rows, reason, at, own)
            return
        cur.executemany(
            "INSERT INTO fed_withdrawn (collection_pk, stix_id, version, type, created_by_ref, markings, body, "
            "reason, withdrawn_at, date_added) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(collection_pk, r.stix_id, r.version, r.type, r.created_by_ref, r.markings, bytes(r.body), reason, at,
              r.date_added)
             for r in rows],
        )
