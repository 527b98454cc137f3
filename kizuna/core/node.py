"""A Kizuna node: one organisation's store and the services every interface calls.

The TAXII API, the CLI and later the console and federation are thin layers over this
class; none of them talks to the store directly.
"""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import orjson

from kizuna.config import (
    NodeConfig,
    absolute_store_url,
    default_store_url,
    load_config,
    shown_store_url,
    write_config,
)
from kizuna.core.audit import AuditLog, pack_served, tlp_counts
from kizuna.core.bulk_import import gil_shared_sooner
from kizuna.core.cursor import CursorCodec, load_key_ring, rotate_cursor_key
from kizuna.core.elsewhere import OtherCollections
from kizuna.core.errors import AdminError, Forbidden, NotFound, alias_in_several_roots, check_name
from kizuna.core.feed_read import feed_items
from kizuna.core.filters import Endpoint, Filters
from kizuna.core.ingest import _DUPLICATE_MESSAGE as DUPLICATE_MESSAGE
from kizuna.core.ingest import IngestListener, IngestReport, ingest, prepared_ahead
from kizuna.core.policy_source import (
    ANONYMOUS_IDENTITY,
    POLICY_OPTIONS,
    SHARED_COMMUNITIES,
    PolicySource,
    agreement_body,
    agreement_from_record,
    anonymous_identity,
    options_to_json,
)
from kizuna.core.principal import NODE_ADMIN, Principal
from kizuna.core.query import Page, Reader
from kizuna.core.read_ahead import ReadAhead
from kizuna.core.search import Searcher, SearchFilters, SearchResults
from kizuna.core.share_preview import partners as share_partners
from kizuna.core.sighting_shares import merge_stored_sightings
from kizuna.core.stored_shapes import StoredShapes, Summary
from kizuna.core.tokens import (
    active_token,
    authenticate_token,
    issue_token,
    parse_expiry,
    parse_fingerprint,
    parse_grace,
    rotate_token,
)
from kizuna.core.visibility import Viewer
from kizuna.policy import Agreement, PolicyOptions, compile_viewer
from kizuna.policy import Organisation as PolicyOrganisation
from kizuna.policy import Viewer as PolicyViewer
from kizuna.policy.preview import Verdict, preview
from kizuna.policy.releasability import ISO3166_ALPHA3, WELL_KNOWN_CREATORS
from kizuna.policy.tlp import normalise_objects
from kizuna.stix.timestamps import format_timestamp, now_micros, parse_timestamp
from kizuna.store import open_store
from kizuna.store.base import (
    ApiRoot,
    Collection,
    Conflict,
    Grant,
    Organisation,
    OrganisationGroups,
    Store,
    StoredStatus,
    TokenRecord,
    VersionQuery,
    VersionRow,
    VersionSelector,
)
from kizuna.store.sighting_inputs import SightingShare

DEFAULT_API_ROOT = "main"
DEFAULT_MAX_CONTENT_LENGTH = 100 * 1024 * 1024
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"
_API_ROOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ALL = VersionSelector(all=True)


def country_code(country: str | None) -> str | None:
    """``country`` as an ISO 3166-1 alpha-3 code (upper case), refusing anything not on the shipped list."""
    if country is None:
        return None
    code = country.strip().upper()
    if code not in ISO3166_ALPHA3:
        raise AdminError(f"country {country!r} is not an ISO 3166-1 alpha-3 code (such as GBR or JPN)")
    return code


def _rel_to_token(token: str) -> str:
    """A REL TO token an agreement vouches for: a country (ISO 3166-1 alpha-3, upper case, as markings write
    it; a lower-case ``gbr`` would never match) or an identity id."""
    text = token.strip()
    if text.startswith("identity--"):
        if not _IDENTITY_ID.fullmatch(text):
            raise AdminError(f"releasability {token!r} is not an identity id")
        return text
    code = text.upper()
    if code not in ISO3166_ALPHA3:
        raise AdminError(f"releasability {token!r} is neither an ISO 3166-1 alpha-3 country code (such as GBR) "
                         "nor an identity id")
    return code


def agreement_binding_problem(agreement: Agreement, organisation_id: str | None, node_partner: str | None = None
                              ) -> str | None:
    """Why a token of ``organisation_id`` (or the partner node named ``node_partner``) may not read under
    ``agreement``, or None: an agreement is made with one partner, and binding another organisation's token
    to it would hand that organisation what was agreed with someone else."""
    if agreement.partner.startswith("node:"):
        if node_partner is not None and agreement.partner == f"node:{node_partner}":
            return None
        return f"agreement {agreement.agreement_id!r} is made with {agreement.partner}, not with this organisation"
    if organisation_id is None and node_partner is not None:
        return None  # a partner node not tied to an organisation receives as the agreement's partner
    if organisation_id != agreement.partner:
        return (f"agreement {agreement.agreement_id!r} is made with another organisation; a token or partner "
                "reads only under an agreement with its own organisation (`kizuna agreements show` names it)")
    return None


@dataclass(frozen=True, slots=True)
class CollectionStatus:
    collection: Collection
    objects: int
    first_added: int | None
    last_added: int | None


_IDENTITY_ID = re.compile(r"identity--[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _identity(name: str, country: str | None, created: str, identity_id: str | None = None) -> dict[str, Any]:
    identity: dict[str, Any] = {
        "type": "identity",
        "spec_version": "2.1",
        "id": identity_id or f"identity--{uuid.uuid4()}",
        "created": created,
        "modified": created,
        "name": name,
        "identity_class": "organization",
    }
    if country:
        identity["x_kizuna_country"] = country
    return identity


#: Objects an import must hold for workers to prepare them ahead: below, forking costs about what it saves.
PREPARED_AHEAD_FROM: Final = 10_000


class Node:
    def __init__(self, config: NodeConfig, store: Store) -> None:
        self.config = config
        self.store = store
        key = store.get_setting("cursor_key")
        if key is None:
            raise AdminError(f"{shown_store_url(config.store_url)}: this store has not been initialised; "
                             "run `kizuna init`")
        cursors = self.cursors = CursorCodec(lambda: load_key_ring(store))
        self.reader = Reader(
            store, cursors, config.default_page_size, config.max_page_size,
            rows_per_object=config.page_rows_per_object,
            seconds_per_object=config.page_microseconds_per_object / 1_000_000,
        )
        self.searcher = Searcher(store, self.reader, cursors, self.viewer_for)
        self._last_purge = 0
        self.policy = PolicySource(store)
        self._stored_shapes = StoredShapes(store)
        self.home_organisation_id = store.get_setting("node_identity")
        self.audit = AuditLog(store)
        #: Told of every object this node's ingest adds (core/ingest.py); rooms above core register here.
        self.ingest_listeners: list[IngestListener] = []
        #: Pages of TAXII read-outs computed ahead (core/read_ahead.py), in a serving process only.
        self.read_ahead: ReadAhead | None = None

    # -- lifecycle -------------------------------------------------------------------
    @classmethod
    def open(cls, data_dir: Path) -> Node:
        config = load_config(data_dir)
        store = open_store(config.store_url, create=False)
        store.migrate()
        return cls(config, store)

    @classmethod
    def init(
        cls, data_dir: Path, store_url: str | None = None, org_name: str | None = None,
        country: str | None = None, title: str | None = None,
    ) -> Node:
        if (data_dir / "kizuna.toml").exists():
            raise AdminError(f"{data_dir}: a Kizuna node already lives here")
        country = country_code(country)  # refused before anything is created
        if org_name is not None and not org_name.strip():
            raise AdminError("--org-name is empty: give the organisation's name, or leave the option out")
        if org_name is not None:
            check_name(org_name, "--org-name")
        if title is not None:
            check_name(title, "--title")
        url = absolute_store_url(store_url, data_dir) if store_url else default_store_url(data_dir)
        if url.startswith("sqlite:///"):
            from kizuna.store.sqlite.store import path_from_url  # the SQLite backend's own reading of its URL

            # The data directory is made here; a store file elsewhere goes into a directory that already exists
            # (a mistyped path would otherwise be created, as root perhaps, and the node live there unnoticed).
            folder = path_from_url(url).parent
            if not folder.exists() and not folder.resolve().is_relative_to(data_dir.resolve()):
                raise AdminError(f"directory {folder} does not exist: create it first, or leave --store out to keep "
                                 "the store in the data directory")
        config = NodeConfig(data_dir=data_dir, store_url=url)
        store = open_store(config.store_url)
        store.migrate()
        if store.get_setting("cursor_key") is not None:
            store.close()
            raise AdminError(f"{shown_store_url(config.store_url)}: this store already holds a node; "
                             "use another database")
        write_config(config)
        store.set_setting_if_absent("cursor_key", base64.b64encode(secrets.token_bytes(32)).decode())
        store.set_setting("title", title or f"Kizuna node of {org_name or 'this organisation'}")
        node = cls(config, store)
        identity = node.create_organisation(org_name or "This node", country)
        store.set_setting("node_identity", identity["id"])
        node.home_organisation_id = identity["id"]
        node.create_api_root(DEFAULT_API_ROOT, "Main API root", "Collections shared by this node")
        return node

    def close(self) -> None:
        if self.read_ahead is not None:
            self.read_ahead.close()
        self._stored_shapes.stop()
        self.store.close()

    def read_pages_ahead(self) -> None:
        """From now on, compute the next page of a TAXII read-out that follows cursors while its client takes in
        the last one (core/read_ahead.py): what a serving process does, where client and server run at once."""
        if self.read_ahead is None:
            self.read_ahead = ReadAhead(self._page_for, self.store.policy_generation,
                                        lambda: tuple(sorted(self.store.collection_change_stamps().items())))

    def _page_for(self, principal: Principal, collection: Collection, endpoint: Endpoint, filters: Filters,
                  object_id: str | None) -> tuple[Page, Viewer]:
        viewer = self.viewer_for(principal, collection)
        return self.reader.page(viewer, endpoint, filters, object_id), viewer

    def learn_stored_shapes(self) -> None:
        """From now on, learn each collection's stored shapes (core/stored_shapes.py) in a thread of their
        own, starting with every collection now: what a serving process does, so no request pays a step."""
        self._stored_shapes.background = True
        for collection in self.store.list_collections():
            self._stored_shapes.learn(collection.pk)

    # -- identity --------------------------------------------------------------------
    @property
    def title(self) -> str:
        return self.store.get_setting("title") or "Kizuna node"

    def identity(self) -> dict[str, Any]:
        identity_id = self.store.get_setting("node_identity")
        org = self.store.get_organisation(identity_id) if identity_id else None
        return orjson.loads(org.identity) if org else {}

    def acting_identity(self, principal: Principal) -> str:
        """The identity id that what ``principal`` produces names: its organisation's, or the node's own for
        the operator (sightings of matches, verdicts)."""
        return principal.organisation_id or self.home_organisation_id or ""

    # -- administration ------------------------------------------------------------------
    def create_api_root(
        self, name: str, title: str, description: str | None = None,
        max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH, reserved: frozenset[str] = frozenset(),
    ) -> ApiRoot:
        """A new API root served at /NAME/; ``reserved``: the first path segments the node's app serves itself,
        which no API root may take, in any case (``kizuna.app.reserved_api_root_names``, read from its routes)."""
        if name in (".", ".."):  # a URL path segment that means "here" or "up", never a name
            raise AdminError(f"API root name {name!r} is a path step ('.' or '..'), not a name")
        if not _API_ROOT_NAME.match(name):
            raise AdminError(f"API root name {name!r} must be letters, digits, '.', '_' or '-'")
        if not title.strip():
            raise AdminError("the title is empty: discovery and the console show it; give one")
        check_name(title, "the title")
        if name.lower() in {own.lower() for own in reserved}:
            raise AdminError(f"API root name {name!r} is reserved for the node's own paths "
                             f"({', '.join(sorted(reserved))})")
        if max_content_length < 1:
            raise AdminError("max_content_length must be greater than 0")
        if self.store.get_api_root(name) is not None:
            raise AdminError(f"API root {name!r} already exists")
        root = ApiRoot(name, title, description, max_content_length)
        try:
            self.store.create_api_root(root)
        except Conflict:  # another process created it since the check above
            raise AdminError(f"API root {name!r} already exists") from None
        self.audit.record("api-root-created", NODE_ADMIN.key, {
            "api_root": name, "title": title, "max_content_length": max_content_length})
        return root

    def create_collection(
        self, title: str, api_root: str = DEFAULT_API_ROOT, description: str | None = None,
        alias: str | None = None,
    ) -> Collection:
        if self.store.get_api_root(api_root) is None:
            raise AdminError(f"API root {api_root!r} does not exist")
        if not title.strip():
            raise AdminError("the title is empty: listings and the console name a collection by it; give one")
        check_name(title, "the title")
        if alias is not None and (not alias or "/" in alias or not alias.isprintable() or " " in alias):
            # An alias is a URL path segment and a word in listings (`r:alias` in tokens list).
            raise AdminError(f"alias {alias!r} must be a non-empty word without '/' or spaces")
        if alias is not None and self.store.get_collection(api_root, alias) is not None:
            raise AdminError(f"alias {alias!r} is already used in API root {api_root!r}")
        try:
            collection = self.store.create_collection(
                str(uuid.uuid4()), api_root, title, description, alias, (STIX_MEDIA_TYPE,)
            )
        except Conflict:  # another process took the alias since the check above
            raise AdminError(f"alias {alias!r} is already used in API root {api_root!r}") from None
        self._place_anonymous_identity([collection])
        self.audit.record("collection-created", NODE_ADMIN.key, {
            "collection": collection.id, "api_root": api_root, "title": title, "alias": alias})
        return collection

    def find_collection(self, ref: str, api_root: str | None = None) -> Collection:
        roots = [api_root] if api_root else [r.name for r in self.store.list_api_roots()]
        matches = [found for root in roots if (found := self.store.get_collection(root, ref)) is not None]
        if len(matches) == 1:
            return matches[0]
        if matches:
            # An alias is unique within its API root only: never pick one of two collections silently.
            raise AdminError(alias_in_several_roots(ref, matches))
        # A newcomer naming a collection by its title is told what to give instead (the node's
        # administrator sees every collection, so naming one here reveals nothing).
        titled = [c for c in self.store.list_collections() if c.title == ref and c.api_root in roots]
        hint = (f"; the collection titled {ref!r} is named by its id {titled[0].id}"
                + (f" or alias {titled[0].alias!r}" if titled[0].alias else "")) if titled else ""
        raise AdminError(f"no collection {ref!r}" + (f" in API root {api_root!r}" if api_root else "") + hint)

    def create_organisation(self, name: str, country: str | None = None,
                            identity_id: str | None = None) -> dict[str, Any]:
        """``identity_id``: the identity the organisation already has elsewhere (a partner node's own
        identity), so that the objects it produces are named by this organisation here too."""
        if not name.strip():
            raise AdminError("an organisation needs a name")
        if name != name.strip():
            # " NCSC UK" would be another organisation than "NCSC UK", told apart by nobody reading a list.
            raise AdminError(f"an organisation's name may not start or end with spaces: {name!r}")
        check_name(name, "an organisation's name")
        country = country_code(country)
        if self.store.get_organisation(name) is not None:
            raise AdminError(f"organisation {name!r} already exists")
        alike = [o.name for o in self.store.list_organisations() if o.name.casefold() == name.casefold()]
        if alike:
            raise AdminError(f"organisation {alike[0]!r} already exists; names that differ only in case are refused")
        if identity_id is not None:
            if not _IDENTITY_ID.fullmatch(identity_id):
                raise AdminError(f"{identity_id!r} is not a STIX identity id (identity--<UUID>)")
            if self.store.get_organisation(identity_id) is not None or identity_id == self.home_organisation_id:
                raise AdminError(f"identity {identity_id} is already an organisation of this node")
        identity = _identity(name, country, format_timestamp(now_micros())[:-4] + "Z", identity_id)
        try:
            self.store.create_organisation(Organisation(identity["id"], name, country, orjson.dumps(identity)))
        except Conflict:  # another process created it since the checks above
            raise AdminError(f"organisation {name!r} already exists") from None
        self.audit.record("organisation-created", NODE_ADMIN.key,
                          {"organisation": identity["id"], "name": name, "country": country})
        return identity

    def identity_names(self, refs: Iterable[object]) -> dict[str, str]:
        """Names of the identity ids among ``refs`` that every token of the node may read: the node's organisations,
        and the creators of the definitions every node carries (whose identity objects no node holds)."""
        names: dict[str, str] = {}
        for ref in refs:
            if isinstance(ref, str) and ref.startswith("identity--"):
                org = self.store.get_organisation(ref)
                name = org.name if org is not None else WELL_KNOWN_CREATORS.get(ref)
                if name is not None:
                    names[ref] = name
        return names

    def create_token(
        self, organisation: str, read: Iterable[str] = (), write: Iterable[str] = (),
        label: str | None = None, agreement: str | None = None, expires: str | None = None,
        actor: str = NODE_ADMIN.key, cert_fingerprint: str | None = None,
    ) -> tuple[str, str]:
        """Issue a token; ``expires`` is a duration (``30d``, ``12h``, ``90m``) or an ISO date/time.
        ``actor`` is who the audit record names: the CLI's administrator, or a console operator's token;
        ``cert_fingerprint`` binds it to one client certificate (SHA-256, hex)."""
        org = self.store.get_organisation(organisation)
        if org is None:
            raise AdminError(f"no organisation {organisation!r}; create it with `kizuna orgs create`")
        read, write = list(read), list(write)
        if not read and not write:
            # Such a token could authenticate but never read or write anything: surely a mistake.
            raise AdminError("a token needs at least one right: give --read and/or --write COLLECTION")
        if agreement is not None:
            found = self.policy.agreement(agreement)
            if found is None:
                raise AdminError(f"no agreement {agreement!r}; create it with `kizuna agreements set`")
            if (problem := agreement_binding_problem(found, org.id)) is not None:
                raise AdminError(problem)
        expires_at = parse_expiry(expires, now_micros()) if expires is not None else None
        rights: dict[int, list[bool]] = {}
        for ref in read:
            rights.setdefault(self.find_collection(ref).pk, [False, False])[0] = True
        for ref in write:
            rights.setdefault(self.find_collection(ref).pk, [False, False])[1] = True
        grants = [Grant(pk, r, w) for pk, (r, w) in sorted(rights.items())]
        fingerprint = parse_fingerprint(cert_fingerprint) if cert_fingerprint is not None else None
        token_id, secret = issue_token(self.store, org.id, grants, label, agreement, expires_at)
        if fingerprint is not None:
            # Bound before the secret is shown, so the token never works without the certificate.
            self.store.set_token_certificate(token_id, fingerprint)
        self.audit.record("token-created", actor, {
            "token": token_id, "organisation": org.id, "agreement": agreement, "label": label,
            "grants": [[g.collection_pk, g.can_read, g.can_write] for g in grants],
            **({"expires": format_timestamp(expires_at)} if expires_at is not None else {}),
            **({"certificate": fingerprint} if fingerprint is not None else {}),
        })
        return token_id, secret

    def bind_token_certificate(self, token_id: str, fingerprint: str | None) -> str | None:
        """Bind a token to a client certificate's SHA-256 fingerprint (None unbinds); returns it normalised."""
        value = parse_fingerprint(fingerprint) if fingerprint is not None else None
        active_token(self.store, token_id)
        if not self.store.set_token_certificate(token_id, value):
            raise NotFound(f"no token {token_id!r}")
        self.audit.record("token-certificate-bound", NODE_ADMIN.key, {"token": token_id, "certificate": value})
        return value

    def rotate_cursor_key(self, keep: int) -> tuple[str, list[str]]:
        """A new key for ``next`` cursors; the ``keep`` newest old keys still open cursors in flight."""
        current, retired = rotate_cursor_key(self.store, keep)
        self.cursors.reload()
        self.audit.record("cursor-key-rotated", NODE_ADMIN.key, {"key_id": current, "retired": retired})
        return current, retired

    def rotate_token(self, token_id: str, grace: str) -> tuple[str, int]:
        """A new secret for a token (to show once) and when the replaced secret stops working (µs)."""
        now = now_micros()
        until = parse_grace(grace, now)
        secret = rotate_token(self.store, token_id, until)
        self.audit.record("token-rotated", NODE_ADMIN.key,
                          {"token": token_id, "previous_valid_until": format_timestamp(until)})
        return secret, until

    def revoke_token(self, token_id: str, actor: str = NODE_ADMIN.key) -> None:
        if not self.store.revoke_token(token_id, now_micros()):
            known = self.store.get_token(token_id)
            why = f": it was revoked at {format_timestamp(known.revoked_at)}" if known and known.revoked_at else ""
            raise AdminError(f"no active token {token_id!r}{why}; `kizuna tokens list` shows the tokens")
        self.store.delete_sessions_of_token(token_id)  # its console sessions end with it
        self.audit.record("token-revoked", actor, {"token": token_id})

    # -- policy configuration ------------------------------------------------------------
    def set_agreement(self, agreement_id: str, partner: str, **settings: Any) -> Agreement:
        """Store a new version of an agreement (the first version creates it)."""
        if not agreement_id.strip() or agreement_id != agreement_id.strip():
            raise AdminError(f"an agreement needs a name without spaces around it, not {agreement_id!r}")
        check_name(agreement_id, "an agreement's name")
        org = self.store.get_organisation(partner)
        if org is None and not partner.startswith("node:"):
            raise AdminError(f"no organisation {partner!r} (a partner is an organisation or node:<name>)")
        collections = settings.pop("collections", None)
        if collections is not None:
            collections = ["*" if ref == "*" else self.find_collection(ref).id for ref in collections]
            settings["collections"] = frozenset(collections)
        if settings.get("releasability") is not None:
            settings["releasability"] = [_rel_to_token(token) for token in settings["releasability"]]
        if settings.get("producers") is not None:
            bad = [p for p in settings["producers"] if p != "*" and not _IDENTITY_ID.fullmatch(p)]
            if bad:
                raise AdminError(f"producers are identity ids or *, not {', '.join(map(repr, bad))}")
        for key in ("producers", "releasability"):
            if key in settings and settings[key] is not None:
                settings[key] = frozenset(settings[key])
        settings = {k: v for k, v in settings.items() if v is not None}
        try:
            draft = Agreement(agreement_id, 0, org.id if org else partner, **settings)
        except TypeError as exc:
            raise AdminError(f"unknown agreement setting: {exc}") from None
        if draft.anonymise_producer and self.store.get_setting(ANONYMOUS_IDENTITY) is None:
            self.store.set_setting_if_absent(ANONYMOUS_IDENTITY, f"identity--{uuid.uuid4()}")
        body = agreement_body(draft)
        version = self.store.add_agreement_version(
            agreement_id, draft.partner, orjson.dumps(body).decode(), now_micros(), NODE_ADMIN.key
        )
        self.audit.record("agreement-changed", NODE_ADMIN.key,
                          {"agreement": agreement_id, "version": version, **body})
        found = self.policy.agreement(agreement_id)
        assert found is not None
        if found.anonymise_producer:
            self._place_anonymous_identity(self.store.list_collections())
        return found

    def remove_agreement(self, agreement_id: str) -> tuple[Agreement, list[TokenRecord]]:
        """Store a version that removes the agreement; returns it and the tokens still bound to it, which from now
        on read nothing until bound to another agreement (the policy fails closed on a missing agreement)."""
        current = self.policy.agreement(agreement_id)
        if current is None:
            raise NotFound(f"no agreement {agreement_id!r}")
        body = {**agreement_body(current), "removed": True}
        version = self.store.add_agreement_version(
            agreement_id, current.partner, orjson.dumps(body).decode(), now_micros(), NODE_ADMIN.key
        )
        self.audit.record("agreement-changed", NODE_ADMIN.key, {"agreement": agreement_id, "version": version, **body})
        removed = replace(current, version=version, removed=True)  # what agreement_history now holds last
        bound = [t for t in self.store.list_tokens() if t.agreement_id == agreement_id and t.revoked_at is None]
        return removed, bound

    def _place_anonymous_identity(self, collections: Iterable[Collection]) -> None:
        """Store the node's anonymous identity in each collection an anonymising agreement covers, so a
        partner whose objects name it as ``created_by_ref`` can resolve it (docs/policy.md)."""
        identity_id = self.store.get_setting(ANONYMOUS_IDENTITY)
        if identity_id is None:
            return
        anonymising = [a for a in self.policy.context().agreements() if a.anonymise_producer]
        for collection in collections:
            if any(a.covers_collection(collection.id) for a in anonymising):
                self.import_objects(collection, [anonymous_identity(identity_id)])

    def agreement_history(self, agreement_id: str | None = None) -> list[Agreement]:
        return [
            agreement_from_record(r) for r in self.store.list_agreements()
            if agreement_id is None or r.agreement_id == agreement_id
        ]

    def set_organisation_groups(
        self, organisation: str, communities: Iterable[str] | None = None,
        client_of: Iterable[str] | None = None,
    ) -> OrganisationGroups:
        org = self.store.get_organisation(organisation)
        if org is None:
            raise AdminError(f"no organisation {organisation!r}")
        current = next((g for g in self.store.list_organisation_groups() if g.organisation_id == org.id),
                       OrganisationGroups(org.id))
        patrons: tuple[str, ...] = current.client_of
        if client_of is not None:
            found = [self.store.get_organisation(ref) for ref in client_of]
            missing = [ref for ref, o in zip(client_of, found, strict=True) if o is None]
            if missing:
                raise AdminError(f"no organisation {missing[0]!r}")
            if any(o is not None and o.id == org.id for o in found):
                # TLP:AMBER that reaches a recipient's clients would reach the recipient itself: nothing changes,
                # and the listing would say it is its own client.
                raise AdminError(f"--client-of: {org.name!r} cannot be a client of itself")
            patrons = tuple(sorted(o.id for o in found if o is not None))
        groups = OrganisationGroups(
            org.id, tuple(sorted(set(communities))) if communities is not None else current.communities, patrons
        )
        self.store.set_organisation_groups(groups)
        self.audit.record("organisation-changed", NODE_ADMIN.key, {
            "organisation": org.id, "communities": list(groups.communities), "client_of": list(groups.client_of)
        })
        return groups

    def shared_communities(self) -> list[str]:
        """The communities this node shares TLP:GREEN with."""
        return sorted(orjson.loads(self.store.get_setting(SHARED_COMMUNITIES) or "[]"))

    def set_shared_communities(self, communities: Iterable[str]) -> list[str]:
        shared = sorted(set(communities))
        self.store.set_setting(SHARED_COMMUNITIES, orjson.dumps(shared).decode())
        self.store.bump_policy_generation()
        self.audit.record("policy-changed", NODE_ADMIN.key, {"shared_communities": shared})
        return shared

    def set_policy_options(self, options: PolicyOptions) -> None:
        text = options_to_json(options)
        self.store.set_setting(POLICY_OPTIONS, text)
        self.store.bump_policy_generation()
        self.audit.record("policy-changed", NODE_ADMIN.key, {"options": orjson.loads(text)})

    def viewer_for(self, principal: Principal, collection: Collection, elsewhere: bool = True) -> Viewer:
        """Compile the read policy for one principal and one collection (once per request). With ``elsewhere``, an
        id the collection does not hold is decided by the node's other collections that hold it (core/elsewhere.py)."""
        ceiling = principal.tlp_ceiling
        if principal.is_admin and ceiling is None:
            return Viewer(principal, collection)  # the local operator holds the store itself
        # The policy's generation and the collection's change stamp in one statement (one round trip on PostgreSQL).
        generation, stamp = self.store.policy_generation_and_change_stamp(collection.pk)
        ctx = self.policy.context(generation)
        org_id = principal.organisation_id
        unrestricted = principal.is_admin or (
            ctx.options.home_organisation_sees_everything and principal.agreement_id is None
            and org_id is not None and org_id == self.home_organisation_id
        )
        if unrestricted and ceiling is None:
            return Viewer(principal, collection)
        org = ctx.organisation(org_id) if org_id else None
        if org is None and org_id:
            org = PolicyOrganisation(org_id, org_id)
        agreement: Agreement | None = None
        if principal.agreement_id is not None:
            # A token bound to an agreement that no longer exists reads nothing but its own objects.
            agreement = self.policy.agreement(principal.agreement_id, generation) or Agreement(
                principal.agreement_id, 0, org_id or "", collections=frozenset()
            )
        policy = compile_viewer(
            PolicyViewer(principal.key, organisation=org, agreement=agreement, tlp_ceiling=ceiling,
                         unrestricted=unrestricted), ctx, collection.id
        )

        def lookup(ids: Any) -> list[VersionRow]:
            rows: list[VersionRow] = []
            for start in range(0, len(ids), 200):
                rows += self.store.query_versions(VersionQuery(
                    collection_pk=collection.pk, ids=tuple(ids[start:start + 200]),
                    versions=_ALL, limit=100_000,
                ))
            if stamp[1] is not None:
                # An id deleted from the collection is decided by the kept copies of its versions: a reference to
                # an object the reader could not see stays hidden once the object is gone (docs/policy.md).
                held = {row.stix_id for row in rows}
                rows += self.store.withdrawn_copies(collection.pk, [i for i in ids if i not in held])
            return rows

        senders: frozenset[str] | None = None  # the reader's own partner entries, read when first needed

        def relayed(rows: Sequence[VersionRow]) -> set[tuple[str, int]]:
            nonlocal senders
            if senders is None:
                senders = frozenset(self.partner_entries_of(org_id)) if org_id else frozenset()
            return self._relayed_from_partner(collection.pk, rows, senders)

        def stored_shapes() -> Summary | None:
            return self._stored_shapes.of(collection.pk, stamp[1])

        def anything_relayed() -> bool:
            return self.store.holds_provenance(collection.pk)

        first_stamp: list[tuple[int | None, int | None]] = [stamp]

        def change_stamp() -> tuple[int | None, int | None]:
            # The first batch takes the stamp read with the generation, before any of the data it is checked
            # against (a verdict kept under it is never older than it); later batches of a long walk read it again.
            try:
                return first_stamp.pop()  # atomic: a page computed ahead may ask from another thread
            except IndexError:
                return self.store.collection_change_stamp(collection.pk)

        others = OtherCollections(
            collection.pk, self.store.collection_change_stamps,
            lambda pk: self.viewer_for(principal, self._collection_by_pk(pk), elsewhere=False),
            self.store.held_ids, policy.column_verdicts,
        ) if elsewhere else None
        return Viewer(principal, collection, policy, lookup, relayed, stored_shapes, anything_relayed, change_stamp,
                      others)

    def _collection_by_pk(self, pk: int) -> Collection:
        return next(c for c in self.store.list_collections() if c.pk == pk)

    def _relayed_from_partner(
        self, collection_pk: int, rows: Sequence[VersionRow], senders: frozenset[str] = frozenset(),
    ) -> set[tuple[str, int]]:
        """Which of ``rows`` arrived from a partner node other than ``senders`` (the partner entries that stand
        for the reader's own organisation, which holds what it sent), as (id, version): asked only of rows at or
        above the reader's relay floor, once per page."""
        if len(rows) == 1 and not senders:
            row = rows[0]
            return {(row.stix_id, row.version)} if self.store.has_provenance(collection_pk, row.stix_id, row.version) \
                else set()
        found = self.store.partners_of(collection_pk, [(row.stix_id, row.version) for row in rows])
        return {version for version, partner in found.items() if partner not in senders}

    def keep_withdrawn(
        self, collection_pk: int, rows: Iterable[VersionRow], reason: str, cur: Any = None
    ) -> None:
        """Keep a copy of versions that left the collection, so federation can tell partners that had
        them (a recall), checking each partner's right to know against the copy's markings.

        With ``cur``, the copy is written in that (the deleting) transaction."""
        self.store.keep_withdrawn(collection_pk, list(rows), reason, now_micros(), cur)

    def _recalling_partner(self, principal: Principal) -> list[str]:
        """The partner entries a token's organisation is configured as (empty for every other token)."""
        org_id = principal.organisation_id
        if principal.is_admin or org_id is None or org_id == self.home_organisation_id:
            return []
        return self.partner_entries_of(org_id)

    def _pushed_in(self, names: list[str], collection_pk: int, rows: list[VersionRow]) -> list[VersionRow]:
        """The rows that one of the partner entries ``names`` pushed in (provenance)."""
        if not rows:
            return []
        sent = {version for version, partner in self.store.provenance_of(collection_pk, rows[0].stix_id)
                if partner in names}
        return [row for row in rows if row.version in sent]

    def partner_entries_of(self, organisation_id: str) -> list[str]:
        """Federation partner entries configured with this organisation (their tokens push into this node)."""
        return [name for name, config in self.store.partner_configs()
                if orjson.loads(config).get("organisation") == organisation_id]

    def _record_pushed_in(self, principal: Principal, collection: Collection, report: IngestReport) -> None:
        """Provenance for versions a partner node pushed in, so they are never echoed back to it and
        AMBER+STRICT/RED stop here, exactly as for pulled versions."""
        if principal.is_admin or principal.organisation_id is None or not report.successes:
            return
        if principal.organisation_id == self.home_organisation_id:
            return
        names = self.partner_entries_of(principal.organisation_id)
        if not names:
            return
        added = {
            (entry["id"], parse_timestamp(entry["version"])) for entry in report.successes
            if entry.get("version") and not entry.get("message", "").startswith(DUPLICATE_MESSAGE)
        }
        at = now_micros()
        self.store.add_provenance(
            [(collection.pk, stix_id, version, names[0], "push", at) for stix_id, version in sorted(added)]
        )

    def record_auth_failure(self, presented: str | None, path: str, client: str | None) -> None:
        # Only the token id part is kept: the secret never reaches the log.
        token_id = presented[3:].partition("_")[0] if presented and presented.startswith("kz_") else None
        self.audit.record("auth-failure", None, {"token": token_id, "path": path, "client": client})

    def collection_status(self) -> list[CollectionStatus]:
        return [
            CollectionStatus(c, *self.store.collection_stats(c.pk)) for c in self.store.list_collections()
        ]

    # -- requests --------------------------------------------------------------------
    def authenticate(self, token: str, client_cert: str | None = None) -> Principal | None:
        return authenticate_token(self.store, token, client_cert)

    def api_root(self, name: str) -> ApiRoot:
        root = self.store.get_api_root(name)
        if root is None:
            raise NotFound("no such API root")
        return root

    def collections_for(self, principal: Principal, api_root: str) -> list[Collection]:
        self.api_root(api_root)
        return [c for c in self.store.list_collections(api_root) if principal.sees_collection(c)]

    def collection_for(self, principal: Principal, api_root: str, ref: str) -> Collection:
        # The collection first: found, its API root exists (a collection cannot outlive it), and every request
        # of a collection saves the API root's round trip to the store; not found, the API root is asked.
        collection = self.store.get_collection(api_root, ref)
        if collection is None:
            self.api_root(api_root)
        if collection is None or not principal.sees_collection(collection):
            raise NotFound("no such collection")
        return collection

    def readable(self, principal: Principal, api_root: str, ref: str) -> Viewer:
        collection = self.collection_for(principal, api_root, ref)
        if not principal.can_read(collection):
            raise Forbidden("this token may not read this collection")
        return self.viewer_for(principal, collection)

    def writable(self, principal: Principal, api_root: str, ref: str) -> Collection:
        collection = self.collection_for(principal, api_root, ref)
        if not principal.can_write(collection):
            raise Forbidden("this token may not write to this collection")
        return collection

    def read(self, viewer: Viewer, endpoint: Endpoint, filters: Filters, object_id: str | None = None,
             *, ahead: bool = False, head: bool = False, audited: bool = True) -> Page:
        """One page for ``viewer``, audited as egress. ``ahead`` (TAXII reads): take the page computed ahead for
        this cursor when it is still exact, and compute the following one (core/read_ahead.py). ``head``: the
        page answers an HTTP HEAD, whose response carries its headers only: audited as a HEAD that served no
        object (the dashboard's shared counts and the served pairs count what left). ``audited=False``: the
        caller records what it sends of the page itself (``record_served``; a push, once its POST is done)."""
        read_ahead = self.read_ahead if ahead and not head else None
        kept = read_ahead.take(viewer, endpoint, filters, object_id) if read_ahead is not None else None
        if kept is not None:
            page, decided = kept
        else:
            decided = viewer
            try:
                page = self.reader.page(viewer, endpoint, filters, object_id)
            except NotFound:
                if audited:
                    self._record_egress(viewer, endpoint, None, head=head)
                raise
        if audited:
            self._record_egress(decided, endpoint, None if head else page, head=head)
        if read_ahead is not None:
            read_ahead.after(viewer, endpoint, filters, object_id, page)
        return page

    def _record_egress(self, viewer: Viewer, endpoint: Endpoint, page: Page | None, head: bool = False) -> None:
        self.record_rows_served(viewer, endpoint, [row for row, _ in page.items] if page else [], head=head)

    def record_rows_served(self, viewer: Viewer, endpoint: Endpoint, rows: Sequence[VersionRow], head: bool = False,
                           delivered: bool = True) -> None:
        """``record_served`` for stored rows: their ids, versions and, for content, TLP counts."""
        tlp = tlp_counts(rows) if rows and endpoint in (Endpoint.OBJECTS, Endpoint.OBJECT) else None
        self.record_served(viewer, endpoint, [row.stix_id for row in rows], [row.version for row in rows], tlp,
                           method="HEAD" if head else None, delivered=delivered)

    def record_served(self, viewer: Viewer, endpoint: Endpoint, ids: list[str], versions: list[int],
                      tlp: dict[str, int] | None, method: str | None = None, delivered: bool = True) -> None:
        """One audit record per page served: what left (``ids`` and ``versions``, with their ``tlp_counts``
        when the endpoint serves content), and how much was withheld and why; ``method`` when the request was
        not a GET (a HEAD, whose response carries no object). ``delivered=False``: a push whose POST failed,
        so what it names may not have left (recorded all the same; the dashboard does not count it)."""
        body: dict[str, Any] = {"collection": viewer.collection.id, "endpoint": endpoint.value}
        if not delivered:
            body["undelivered"] = True  # in the head the dashboard reads (store/stats.py)
        if tlp is not None:
            # Before the served pairs, so the dashboard reads the counts without the pairs (store/stats.py).
            body["tlp"] = tlp
        body["served"] = pack_served(ids, versions)
        if viewer.hidden:
            body["hidden"] = dict(viewer.hidden)
        if viewer.redacted:
            body["redacted"] = dict(viewer.redacted)
        if method is not None:
            body["method"] = method
        viewer.hidden.clear()
        viewer.redacted.clear()
        self.audit.record("egress", viewer.principal.key, body)

    # -- the console's share form ----------------------------------------------------------
    def share_preview(
        self, principal: Principal, draft: dict[str, Any], collections: list[str],
        definitions: list[dict[str, Any]] | None = None, api_root: str = DEFAULT_API_ROOT,
    ) -> list[Verdict]:
        """Per partner: whether it will see ``draft`` once written to ``collections`` (ids or aliases), and
        why not (``kizuna.policy.preview``). ``definitions``: marking definitions the draft brings along.

        Only the node's own organisation and its operator may ask: the answer names every partner."""
        if not principal.is_admin and principal.organisation_id != self.home_organisation_id:
            raise Forbidden("the share preview is for the node's own organisation")
        targets = [self.collection_for(principal, api_root, ref) for ref in collections]
        if not targets:
            raise AdminError("name at least one collection the draft is for")
        if not all(principal.can_write(c) for c in targets):
            raise Forbidden("this token may not write to this collection")
        # The TLP alias rewriting of ingest, so the preview judges what would be stored.
        normalised, _ = normalise_objects([*(definitions or ()), draft], self.policy.alias_table())
        brought = [o for o in normalised[:-1] if o.get("type") == "marking-definition"]
        ctx = self.policy.context().with_definitions(brought)
        own = frozenset({self.home_organisation_id} if self.home_organisation_id else ())
        found = share_partners(self.store, self.policy, self.home_organisation_id)
        return preview(normalised[-1], found, ctx, [c.id for c in targets], own,
                       {c.id: c.alias or c.title for c in targets})

    def search(
        self, principal: Principal, text: str, filters: SearchFilters | None = None, limit: int = 20,
        cursor: str | None = None,
    ) -> SearchResults:
        """Full-text search over every collection the principal reads (core/search.py): each result passed
        the same visibility check as a TAXII read, and the page served is audited like one."""
        results = self.searcher.search(principal, text, filters or SearchFilters(), limit, cursor)
        self.audit.record("search", principal.key, {
            "query": text, "count": results.count,
            "served": pack_served([hit.id for hit in results.hits],
                                  [hit.version for hit in results.hits]),
        })
        return results

    def add_objects(self, principal: Principal, collection: Collection, objects: list[Any]) -> IngestReport:
        if not principal.can_write(collection):
            raise Forbidden("this token may not write to this collection")
        # One batch for the whole envelope, and one transaction for it, its status resource, its
        # provenance and its ``write`` audit record: a crash at any point leaves all of them or none,
        # never stored objects whose status a client cannot read or whose write the audit chain lacks.
        with self.store.atomic():
            report = ingest(self.store, collection.pk, objects, batch_size=max(1, len(objects)), policy=self.policy,
                            listeners=self.ingest_listeners)
            masked = report.mask_hidden(self._hidden_from(principal, collection))
            self.store.put_status(StoredStatus(
                report.id, collection.api_root, principal.key, report.request_timestamp,
                orjson.dumps(report.to_taxii()),
            ))
            self._record_pushed_in(principal, collection, report)
            # Last: the audit head's lock is then held only for the commit.
            self._record_write(principal, collection, report, masked)
        self._purge_old_statuses()
        return report

    def _hidden_from(self, principal: Principal, collection: Collection
                     ) -> Callable[[list[tuple[str, str]]], set[tuple[str, str]]]:
        """Which stored versions (id, version as the object states it) ``principal`` may not see, by the one
        visibility check: asked once a write, of its conflicts and duplicates together (a partner resending a
        page is all duplicates), and not at all by a principal that sees everything."""

        def hidden(wanted: list[tuple[str, str]]) -> set[tuple[str, str]]:
            viewer = self.viewer_for(principal, collection)
            if viewer.policy is None:
                return set()
            seen: set[tuple[str, int]] = set()
            filters = Filters(ids=tuple(dict.fromkeys(i for i, _ in wanted)), versions=_ALL)
            while True:
                page = self.read(viewer, Endpoint.OBJECTS, filters, audited=False)
                seen.update((row.stix_id, row.version) for row, _ in page.items)
                if not page.more:
                    break
                filters = replace(filters, next=page.next)
            found = set()
            for stix_id, version in wanted:
                try:
                    if (stix_id, parse_timestamp(version)) not in seen:
                        found.add((stix_id, version))
                except ValueError:
                    continue  # no version the node could hold under that text
            return found

        return hidden

    def store_sightings(self, principal: Principal, collection: Collection, sightings: Sequence[dict[str, Any]],
                        shares: Sequence[SightingShare]) -> IngestReport | None:
        """Sightings a matching run made, stored as the totals of every input's share (core/sighting_shares.py)
        in one transaction with the shares; None when the store held every total already."""
        if not principal.can_write(collection):
            raise Forbidden("this token may not write to this collection")
        with self.store.atomic():
            merged = merge_stored_sightings(self.store, collection, sightings, shares)
            return self.add_objects(principal, collection, merged) if merged else None

    def _record_write(self, principal: Principal, collection: Collection, report: IngestReport,
                      masked: int = 0) -> None:
        body: dict[str, Any] = {
            "collection": collection.id, "status": report.id, "total": report.total,
            "succeeded": report.success_count, "failed": len(report.failures),
        }
        if masked:  # answered as stored, but the node holds another version under that id and modified
            body["held_hidden"] = masked
        if report.normalisation_count:
            body["normalised"] = report.normalisation_count
            body["normalisations"] = [[n.object_id, n.field, n.old, n.new] for n in report.normalisations]
        self.audit.record("write", principal.key, body)

    def status(self, principal: Principal, api_root: str, status_id: str) -> bytes:
        self.api_root(api_root)
        stored = self.store.get_status(status_id)
        if stored is None or stored.api_root != api_root or not (
            principal.is_admin or stored.token_id == principal.key
        ):
            raise NotFound("no such status resource")
        return stored.body

    def delete_object(self, principal: Principal, api_root: str, ref: str, object_id: str, filters: Filters) -> int:
        collection = self.collection_for(principal, api_root, ref)
        can_read, can_write = principal.can_read(collection), principal.can_write(collection)
        if not (can_read and can_write):
            raise Forbidden("deleting needs both read and write access to this collection")
        partner_names = self._recalling_partner(principal)
        if partner_names:
            # A partner node recalls what it sent: exactly the versions it pushed in, visible to its token
            # or not (it sent those bytes), and nothing this node holds from anyone else.
            everything = Viewer(principal, collection)
            rows = self._pushed_in(partner_names, collection.pk,
                                   self.reader.visible_versions(everything, object_id, filters))
            reason = "recalled"
        else:
            rows = self.reader.visible_versions(self.viewer_for(principal, collection), object_id, filters)
            reason = "deleted"
        if not rows:
            raise NotFound("no such object in this collection")
        selector = VersionSelector(exact=tuple(r.version for r in rows))

        # The recall copy commits with the delete: a crash between them would lose the recall.
        def keep(cur: Any, deleted: int) -> None:
            if deleted:
                self.keep_withdrawn(collection.pk, rows, reason, cur)

        deleted = self.store.delete_versions_and(collection.pk, object_id, selector, keep)
        self.audit.record("delete", principal.key, {
            "collection": collection.id, "id": object_id, "versions": [r.version for r in rows],
            "deleted": deleted,
        })
        return deleted

    def _purge_old_statuses(self) -> None:
        now = now_micros()
        if now - self._last_purge > 3600 * 1_000_000:
            self._last_purge = now
            self.store.purge_statuses(now - self.config.status_retention_hours * 3600 * 1_000_000)

    # -- bulk paths for the CLI ------------------------------------------------------
    def import_objects(self, collection: Collection, objects: Iterable[Any], *,
                       ahead: Sequence[Any] | None = None, workers: int = 0) -> IngestReport:
        """Store ``objects`` as an import (audited as one write). ``ahead``: the same objects as a list, which
        ``workers`` forked processes prepare batch by batch ahead of the one being stored (`prepared_ahead`;
        for a command, not a server: core/forked.py)."""
        prepared = (prepared_ahead(ahead, workers)
                    if ahead is not None and workers >= 2 and len(ahead) >= PREPARED_AHEAD_FROM else None)
        try:
            with gil_shared_sooner():
                report = ingest(self.store, collection.pk, objects, keep_successes=False, policy=self.policy,
                                listeners=self.ingest_listeners, prepared=prepared)
        finally:
            if prepared is not None:
                prepared.close()
        self._record_write(NODE_ADMIN, collection, report)
        return report

    def export_objects(self, collection: Collection, principal: Principal = NODE_ADMIN, *,
                       latest_only: bool = False) -> Iterator[bytes]:
        """Every version (or, with ``latest_only``, the newest version) of every object the principal
        may see, oldest first, as JSON bytes."""
        viewer = self.viewer_for(principal, collection)
        versions = VersionSelector(last=True) if latest_only else _ALL
        filters = Filters(versions=versions)
        while True:
            page = self.read(viewer, Endpoint.OBJECTS, filters)
            for _, body in page.items:
                yield body
            if not page.more:
                return
            filters = Filters(versions=versions, next=page.next)

    def export_feed(self, collection: Collection, principal: Principal = NODE_ADMIN) -> Iterator[bytes | str]:
        """What a feed reads of a collection: the newest version the principal sees of each indicator, as its
        stored feed facts (str) when the principal receives it as stored and it has them, as the JSON bytes the
        principal receives otherwise (core/feed_read.py). Audited as egress, batch by batch."""
        return feed_items(self, self.viewer_for(principal, collection))

