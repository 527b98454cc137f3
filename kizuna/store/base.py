"""The storage interface every backend implements.

TAXII semantics (filters, paging, visibility) live in ``kizuna.core``; a backend only
stores rows and answers the narrow questions below, so SQLite and PostgreSQL cannot
drift apart in behaviour.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol

from kizuna.config import shown_store_url, without_store_password

if TYPE_CHECKING:
    from kizuna.store.feed_rows import FeedRecord
    from kizuna.store.ops_activity import SightedRow
    from kizuna.store.ops_alerts import AddedCount, AlertRow
    from kizuna.store.sessions import SessionRecord
    from kizuna.store.sighting_inputs import SightingShare, SightingTotal


class StoreError(Exception):
    """A storage-level failure that the caller should report, not crash on."""


class NotFound(StoreError):
    pass


def unreachable_postgres(url: str, exc: BaseException) -> StoreError:
    """The error of a PostgreSQL store ``url`` that cannot be connected to, its password masked."""
    return StoreError(f"cannot connect to PostgreSQL at {shown_store_url(url)}: "
                      f"{without_store_password(str(exc), url)}")


class Conflict(StoreError):
    """A write refused because another writer stored the same unique value first (a name, an alias): the
    callers' own checks run before the write, so two processes creating the same thing at once meet here."""


def unique_conflict(what: str) -> Conflict:
    """The Conflict for a unique ``what`` (``api_roots.name``) that another writer stored first."""
    return Conflict(f"{what} is already taken: another writer stored the same value first; nothing was written")


@dataclass(frozen=True, slots=True)
class ApiRoot:
    name: str
    title: str
    description: str | None
    max_content_length: int


@dataclass(frozen=True, slots=True)
class Collection:
    pk: int
    id: str
    api_root: str
    title: str
    description: str | None
    alias: str | None
    media_types: tuple[str, ...]


class ColumnShapes(NamedTuple):
    """What ``Store.column_shapes`` found in one step over a collection's versions, in date_added order."""

    #: the distinct (type, created_by_ref, markings) of the versions scanned
    shapes: list[tuple[str, str | None, str | None]]
    #: how many versions were scanned (fewer than asked: the scan reached the newest)
    scanned: int
    #: the date_added the scan reached (the one it started after when it found none)
    reached: int
    #: whether every scanned version's id starts with its type and ``--``
    typed_ids: bool
    #: the collection's newest date_added as recorded (it never moves back but for a restore)
    last_added: int


@dataclass(frozen=True, slots=True)
class Organisation:
    id: str  # the organisation's STIX identity id
    name: str
    country: str | None
    identity: bytes  # the STIX identity object, serialised


@dataclass(frozen=True, slots=True)
class Grant:
    collection_pk: int
    can_read: bool
    can_write: bool


@dataclass(frozen=True, slots=True)
class TokenTrust:
    """What a token's secret alone does not say (schema step 13): the client certificate it is bound to
    (SHA-256 of its DER, lower-case hex) and the secret a rotation replaced, valid until a moment (µs)."""

    cert_sha256: str | None
    previous_secret_hash: str | None
    previous_valid_until: int | None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    organisation_id: str
    secret_hash: str
    label: str | None
    created_at: int
    revoked_at: int | None
    grants: tuple[Grant, ...] = ()
    #: When the token stops working (µs since the epoch); None: it works until revoked.
    expires_at: int | None = None
    #: Certificate binding and rotation state (schema step 13).
    trust: TokenTrust = TokenTrust(None, None, None)
    #: The agreement the token reads under, when bound to one (read with the token: one query fewer a request).
    agreement_id: str | None = None


#: ``NewVersion.feed`` when the caller did not note the facts (facts always begin with the object's id).
FEED_NOT_NOTED: Final = ""


class NewVersion(NamedTuple):
    """One validated STIX object version on its way into a collection.

    ``version`` is the object's ``modified`` (else ``created``) in microseconds; it is
    None for unversioned objects (SCOs), which then take their ``date_added``.  A tuple,
    like the rows, because ingest makes one per object.
    """

    stix_id: str
    type: str
    version: int | None
    spec_version: str
    created_by_ref: str | None
    markings: str | None  # JSON list of every marking id the object uses, or None
    body: bytes
    #: The searchable text of ``body`` when the caller already holds the parsed object (ingest does), so
    #: the store need not parse the body again to index it; None: the store derives it from ``body``.
    text: str | None = None
    #: Its feed facts (store/feed_facts.py) when the caller already holds the parsed object, None when it
    #: has none; ``FEED_NOT_NOTED``: the store derives them from ``body``.
    feed: str | None = FEED_NOT_NOTED
    #: The ids it points at through the reference index's properties (store/object_refs.py) when the caller
    #: parsed the object; None: the store derives them from ``body``.
    refs: Sequence[str] | None = None


class Outcome(enum.Enum):
    ADDED = "added"
    DUPLICATE = "duplicate"  # the identical version is already stored: a success
    CONFLICT = "conflict"  # same (id, version), different content: refused


class AddResult(NamedTuple):
    outcome: Outcome
    version: int
    date_added: int | None


class VersionRow(NamedTuple):
    """One stored object version; a tuple because pages build many thousands of them."""

    seq: int
    stix_id: str
    type: str
    version: int
    spec_version: str
    date_added: int
    created_by_ref: str | None
    markings: str | None
    body: bytes
    #: Whether this is the stored first/last version of its object. A reader who may not see it selects
    #: among the versions it does see (``core/query.py``); rows made outside a query default to both.
    is_first: int = 1
    is_last: int = 1
    #: Whether the body embeds references a reader's copy may have to lose (store/embedded.py); rows made
    #: outside a query (kept copies of deleted versions, which are never served) default to none.
    embeds: int = 0
    #: The object's own markings where they differ in kind from the markings column (store/object_markings.py):
    #: what labels the version; None: the markings column does (rows made outside a query default to it).
    object_markings: str | None = None


#: An indicator version as a feed build first reads it, a plain tuple (a million a build): seq, stix_id, version,
#: date_added, created_by_ref, markings, is_last, its feed facts (store/feed_facts.py; None: the body must be
#: read) and the markings that label it (its object's own, store/object_markings.py). The columns that decide who
#: sees it and which version is chosen, no body.
FeedRow = tuple[int, str, int, int, str | None, str | None, int, str | None, str | None]


@dataclass(frozen=True, slots=True)
class VersionSelector:
    """Which versions of each object ``match[version]`` asks for."""

    all: bool = False
    first: bool = False
    last: bool = False
    exact: tuple[int, ...] = ()

    @classmethod
    def latest(cls) -> VersionSelector:
        return cls(last=True)


@dataclass(frozen=True, slots=True)
class VersionQuery:
    collection_pk: int
    ids: tuple[str, ...] | None = None
    types: tuple[str, ...] | None = None
    versions: VersionSelector = field(default_factory=VersionSelector.latest)
    spec_versions: tuple[str, ...] | None = None
    added_after: int | None = None  # exclusive lower bound on date_added
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """Stored versions whose searchable text holds every term (store/search_index.py), newest first.

    Only versions that may be some reader's latest are returned; the filters narrow the candidates by
    their stored columns, and the core checks every one again against what the principal receives.
    """

    collection_pks: tuple[int, ...]
    terms: tuple[str, ...]
    types: tuple[str, ...] | None = None
    producers: tuple[str, ...] | None = None
    partner: str | None = None  # received from this federation partner (provenance)
    added_from: int | None = None  # date_added range, µs: from (inclusive) ...
    added_before: int | None = None  # ... to (exclusive)
    before_seq: int | None = None  # keyset paging: only versions stored before this one
    limit: int = 200


@dataclass(frozen=True, slots=True)
class StoredStatus:
    id: str
    api_root: str
    token_id: str | None
    created_at: int
    body: bytes


class Store(Protocol):
    url: str

    def migrate(self) -> int: ...
    def close(self) -> None: ...
    def lean_reads(self) -> None:
        """Make this thread's reads hold as little memory as they can (a background scan that runs once)."""
        ...

    def schema_versions(self) -> tuple[int, int]:
        """(version the database holds, newest this code knows), over a new connection; StoreError if unreachable."""
        ...

    def get_setting(self, key: str) -> str | None: ...
    def set_setting(self, key: str, value: str) -> None: ...
    def set_setting_if_absent(self, key: str, value: str) -> str: ...

    def create_api_root(self, root: ApiRoot) -> None: ...
    def list_api_roots(self) -> list[ApiRoot]: ...
    def get_api_root(self, name: str) -> ApiRoot | None: ...

    def create_collection(
        self, collection_id: str, api_root: str, title: str, description: str | None,
        alias: str | None, media_types: Sequence[str],
    ) -> Collection: ...
    def list_collections(self, api_root: str | None = None) -> list[Collection]: ...
    def get_collection(self, api_root: str, id_or_alias: str) -> Collection | None: ...

    def create_organisation(self, org: Organisation) -> None: ...
    def get_organisation(self, id_or_name: str) -> Organisation | None: ...
    def list_organisations(self) -> list[Organisation]: ...

    def create_token(self, token: TokenRecord) -> None: ...
    def get_token(self, token_id: str) -> TokenRecord | None: ...
    def list_tokens(self) -> list[TokenRecord]: ...
    def revoke_token(self, token_id: str, at: int) -> bool: ...

    def add_versions(self, collection_pk: int, versions: Sequence[NewVersion]) -> list[AddResult]: ...
    def query_versions(self, query: VersionQuery) -> list[VersionRow]:
        """Rows in ``date_added`` order; ``first``/``last`` give every version that may be the first/last one
        some reader sees (store/view_edges.py), each row saying whether it is the stored first/last."""
        ...
    def feed_rows(self, collection_pk: int, added_after: int | None, limit: int) -> list[FeedRow]:
        """The indicator versions that may be the last one some reader sees, in ``date_added`` order, without bodies."""
        ...
    def versions_by_seq(self, seqs: Sequence[int]) -> list[VersionRow]:
        """The stored versions of some ``seq`` numbers (those still stored), in ``date_added`` order."""
        ...
    def delete_versions(
        self, collection_pk: int, stix_id: str, selector: VersionSelector,
        spec_versions: tuple[str, ...] | None,
    ) -> int: ...
    def delete_versions_and(
        self, collection_pk: int, stix_id: str, selector: VersionSelector, then: Callable[[Any, int], None],
    ) -> int: ...
    def collection_stats(self, collection_pk: int) -> tuple[int, int | None, int | None]: ...
    def column_shapes(self, collection_pk: int, after: int, limit: int) -> ColumnShapes: ...
    def search_versions(self, query: SearchQuery) -> list[tuple[int, VersionRow]]:
        """(collection pk, version) candidates for a full-text search (schema step 11), newest stored first."""
        ...

    def atomic(self) -> AbstractContextManager[None]:
        """A block whose writes (from this thread) commit together or not at all; see ``SqlStore.atomic``."""
        ...
    def put_status(self, status: StoredStatus) -> None: ...
    def get_status(self, status_id: str) -> StoredStatus | None: ...
    def purge_statuses(self, created_before: int) -> int: ...

    # policy configuration and the audit log (schema step 2)
    def policy_generation(self) -> int: ...
    def policy_generation_and_change_stamp(self, collection_pk: int) -> tuple[int, tuple[int | None, int | None]]: ...
    def bump_policy_generation(self) -> None: ...
    def set_organisation_groups(self, groups: OrganisationGroups) -> None: ...
    def list_organisation_groups(self) -> list[OrganisationGroups]: ...
    def add_agreement_version(
        self, agreement_id: str, partner: str, body: str, created_at: int, created_by: str | None
    ) -> int: ...
    def list_agreements(self) -> list[AgreementRecord]: ...
    def set_token_agreement(self, token_id: str, agreement_id: str | None) -> None: ...
    def get_token_agreement(self, token_id: str) -> str | None: ...
    # client-certificate binding and secret rotation (schema step 13)
    def set_token_certificate(self, token_id: str, fingerprint: str | None) -> bool: ...
    def rotate_token_secret(self, token_id: str, secret_hash: str, previous_valid_until: int) -> bool: ...
    def register_marking_definitions(self, definitions: Sequence[tuple[str, bytes]], at: int) -> int: ...
    def list_marking_definitions(self) -> list[bytes]: ...
    def add_tlp_aliases(self, aliases: Sequence[tuple[str, int]]) -> None: ...
    def list_tlp_aliases(self) -> list[tuple[str, int]]: ...
    def append_audit(
        self, entries: Sequence[AuditEntry], seal: Callable[[int, str, AuditEntry], str], *, lazily: bool = False
    ) -> list[AuditRecord]: ...
    def audit_records(self, after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]: ...
    def audit_head(self) -> tuple[int, str]: ...

    # Federation bookkeeping the core consults (schema steps 3+).
    def has_provenance(self, collection_pk: int, stix_id: str, version: int) -> bool: ...
    def holds_provenance(self, collection_pk: int) -> bool: ...
    def provenance_of(self, collection_pk: int, stix_id: str) -> list[tuple[int, str]]: ...
    def referencing(
        self, collection_pk: int, refs: Sequence[str], types: Sequence[str], limit: int
    ) -> list[VersionRow]: ...
    def partners_of(self, collection_pk: int, versions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], str]: ...
    def add_provenance(self, rows: Sequence[tuple[int, str, int, str, str, int]]) -> None: ...
    def partner_configs(self) -> list[tuple[str, bytes]]: ...
    def keep_withdrawn(
        self, collection_pk: int, rows: Sequence[VersionRow], reason: str, at: int, cur: Any = None
    ) -> None: ...
    def held_ids(self, collection_pks: Sequence[int], ids: Sequence[str],
                 deleted_from: Sequence[int] = ()) -> set[tuple[int, str]]: ...
    def withdrawn_copies(self, collection_pk: int, ids: Sequence[str]) -> list[VersionRow]: ...
    def withdrawn_shapes(
        self, collection_pk: int, after: int
    ) -> tuple[list[tuple[str, str | None, str | None]], int]: ...

    # Console sign-in sessions (schema step 12; kizuna/store/sessions.py).
    def create_session(self, session: SessionRecord) -> None: ...
    def get_session(self, id_hash: str) -> SessionRecord | None: ...
    def set_session_language(self, id_hash: str, language: str) -> None: ...
    def delete_session(self, id_hash: str) -> None: ...
    def delete_sessions_of_token(self, token_id: str) -> int: ...
    def purge_sessions(self, expired_before: int) -> int: ...

    # Feed definitions (schema step 9; kizuna/store/feed_rows.py).
    def create_feed(self, feed: FeedRecord) -> bool: ...
    def get_feed(self, name: str) -> FeedRecord | None: ...
    def list_feeds(self) -> list[FeedRecord]: ...
    def delete_feed(self, name: str) -> bool: ...
    def collection_change_stamp(self, collection_pk: int) -> tuple[int | None, int | None]: ...
    def collection_change_stamps(self) -> dict[int, tuple[int | None, int | None]]: ...
    def newest_deletion(self, collection_pk: int) -> int | None: ...

    # Each input's share of a stored sighting (schema step 22; kizuna/store/sighting_inputs.py).
    def record_sighting_shares(
        self, collection_pk: int, shares: Sequence[SightingShare],
    ) -> dict[str, SightingTotal]: ...

    # An operation's judged alerts (schema step 18; kizuna/store/ops_alerts.py).
    def replace_ops_alerts(self, operation: str, judged: Sequence[str], rows: Sequence[AlertRow]) -> None: ...
    def clear_ops_alerts(self, operation: str) -> None: ...
    def ops_alert_matches(self, operation: str, ids: Sequence[str]) -> list[AlertRow]: ...
    def ops_alerts(self, operation: str, added_after: int | None = None) -> list[AlertRow]: ...
    def added_counts(self, collection_pk: int, added_after: int) -> list[AddedCount]: ...
    def added_between(self, collection_pk: int, after: int, before: int, skip_types: Sequence[str]) -> int: ...
    def top_seq_between(self, collection_pk: int, first: int, last: int) -> int: ...
    def moved_after(self, collection_pk: int, after: int, top_seq: int) -> bool: ...

    # The sightings an operation's collections received per minute (schema steps 19, 21; store/ops_activity.py).
    def add_ops_sighted(self, operation: str, sighted: Sequence[SightedRow]) -> None: ...
    def clear_ops_sighted(self, operation: str) -> None: ...
    def ops_sighted(self, operation: str, from_slot: int) -> dict[str, tuple[int, int]]: ...
    def not_newest_between(self, collection_pk: int, first: int, last: int) -> set[int]: ...
    def newest_through(self, collection_pk: int, ids: Sequence[str],
                       through: int) -> list[tuple[str, str | None, str, int, bytes]]: ...


# -- policy configuration and the audit log (schema step 2) -------------------------------------


@dataclass(frozen=True, slots=True)
class OrganisationGroups:
    """The communities an organisation belongs to and the organisations it is a client of."""

    organisation_id: str
    communities: tuple[str, ...] = ()
    client_of: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AgreementRecord:
    """One stored version of a partner agreement; ``body`` is its JSON configuration."""

    agreement_id: str
    version: int
    partner: str
    body: str
    created_at: int
    created_by: str | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An audit event before it is sealed into the chain."""

    at: int
    kind: str
    principal: str | None
    body: str  # compact JSON


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    at: int
    kind: str
    principal: str | None
    body: str
    prev_hash: str
    hash: str

