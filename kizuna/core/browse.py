"""Browsing a collection as a chosen principal: what `kizuna objects` shows an operator.

The operator picks whose eyes to read with — a token, an organisation, or by default the node's own
organisation — and every read goes through `Node.read` / `Node.delete_object`, so the same
`core/visibility.view` check, paging, cursors and audit records apply as over TAXII. An object the
principal may not see is reported exactly as one that does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from kizuna.core.errors import AdminError, BadRequest, Forbidden, NotFound, alias_in_several_roots
from kizuna.core.filters import Endpoint, Filters, parse_filters
from kizuna.core.node import Node
from kizuna.core.principal import AS_TOKEN, Principal
from kizuna.core.query import Page
from kizuna.core.tokens import principal_of, token_state
from kizuna.core.visibility import Viewer
from kizuna.policy.tlp import LEVEL_BY_ANY_ID
from kizuna.stix.search_text import display_name
from kizuna.stix.timestamps import format_timestamp, now_micros
from kizuna.stix.validation import is_stix_id
from kizuna.store.base import Collection, Grant, VersionRow

#: TAXII query parameter -> the `kizuna objects` option that sets it, to name options in messages.
_OPTION_OF = {
    "match[id]": "--id", "match[type]": "--type", "match[version]": "--version",
    "match[spec_version]": "--spec-version", "added_after": "--added-after", "limit": "--limit",
    "next": "--next",
}


@dataclass(frozen=True, slots=True)
class Acting:
    """Whose eyes an operator reads with, and how to say so."""

    principal: Principal
    described: str


@dataclass(frozen=True, slots=True)
class Query:
    """The TAXII filters, as `kizuna objects` options give them (None: not given)."""

    ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    version: str | None = None
    spec_versions: tuple[str, ...] = ()
    added_after: str | None = None
    limit: int | None = None
    next: str | None = None

    def filters(self, endpoint: Endpoint) -> Filters:
        """Parsed by the TAXII parser itself, so the CLI accepts exactly what TAXII accepts."""
        params = [(name, value) for name, value in (
            ("match[id]", ",".join(self.ids)), ("match[type]", ",".join(self.types)),
            ("match[version]", self.version or ""), ("match[spec_version]", ",".join(self.spec_versions)),
            ("added_after", self.added_after or ""), ("limit", "" if self.limit is None else str(self.limit)),
            ("next", self.next or ""),
        ) if value]
        try:
            return parse_filters(params, endpoint)
        except BadRequest as exc:
            message = exc.description
            for param, option in _OPTION_OF.items():
                message = message.replace(f"query parameter {param!r}", option).replace(param, option)
            raise AdminError(message) from None


def acting_as(node: Node, token_id: str | None = None, organisation: str | None = None) -> Acting:
    """The principal to read as: a token's own rights, or an organisation (by name or identity id)
    reading and writing every collection, where its markings and agreements still decide what it sees.
    Neither given: the node's own organisation."""
    if token_id is not None and organisation is not None:
        raise AdminError("give --as-token-id or --as-org, not both")
    if token_id is not None:
        record = node.store.get_token(token_id)
        if record is None:
            raise AdminError(f"no token {token_id!r}; `kizuna tokens list` shows the tokens")
        state = token_state(record, now_micros())
        if state != "active":
            raise AdminError(f"token {token_id!r} is {state}; over TAXII it reads nothing")
        # The key names the operator, so audit records and cursors never pass for the token's own.
        return Acting(principal_of(node.store, record, key=AS_TOKEN + record.id), f"token {record.id}")
    org_ref = organisation if organisation is not None else node.home_organisation_id
    org = node.store.get_organisation(org_ref) if org_ref else None
    if org is None:
        raise AdminError(f"no organisation {org_ref!r}; `kizuna orgs list` shows them")
    every = {c.pk: Grant(c.pk, True, True) for c in node.store.list_collections()}
    principal = Principal(key=f"admin-as-org:{org.id}", organisation_id=org.id, grants=every)
    return Acting(principal, f"organisation {org.name}")


def find_collection(node: Node, acting: Acting, ref: str, api_root: str | None = None) -> Collection:
    """A collection the principal may use, by id or alias; one it may not is reported as absent."""
    roots = [api_root] if api_root else [root.name for root in node.store.list_api_roots()]
    found: list[Collection] = []
    for root in roots:
        try:
            found.append(node.collection_for(acting.principal, root, ref))
        except NotFound:
            continue
    if len(found) > 1:
        # An alias is unique within its API root only: a read, and above all a delete, never picks one silently.
        raise AdminError(alias_in_several_roots(ref, found) + " or --api-root")
    if found:
        return found[0]
    raise NotFound(f"no collection {ref!r}" + (f" in API root {api_root!r}" if api_root else ""))


def _readable(node: Node, acting: Acting, collection: Collection) -> Viewer:
    if not acting.principal.can_read(collection):
        raise Forbidden(f"{acting.described} may not read collection {collection.alias or collection.id}")
    return node.viewer_for(acting.principal, collection)


def list_objects(node: Node, acting: Acting, collection: Collection, query: Query) -> Page:
    """One page of the collection's objects endpoint, as the principal receives it."""
    return node.read(_readable(node, acting, collection), Endpoint.OBJECTS, query.filters(Endpoint.OBJECTS))


def show_object(node: Node, acting: Acting, collection: Collection, object_id: str, query: Query) -> Page:
    """One object (its selected versions), as the principal receives it."""
    return _one(node, acting, collection, object_id, query, Endpoint.OBJECT)


def object_versions(node: Node, acting: Acting, collection: Collection, object_id: str, query: Query) -> Page:
    """The versions of one object the principal sees."""
    return _one(node, acting, collection, object_id, query, Endpoint.VERSIONS)


def delete_object(node: Node, acting: Acting, collection: Collection, object_id: str, query: Query) -> int:
    """Delete an object (all versions, or those ``--version`` selects) as TAXII DELETE does: same access
    rules, an audit record, and a recall copy for federation. Returns the number of versions deleted."""
    _require_stix_id(object_id)
    try:
        return node.delete_object(acting.principal, collection.api_root, collection.id, object_id,
                                  query.filters(Endpoint.DELETE))
    except NotFound:
        raise _absent(object_id, collection) from None


def _one(node: Node, acting: Acting, collection: Collection, object_id: str, query: Query,
         endpoint: Endpoint) -> Page:
    _require_stix_id(object_id)
    viewer = _readable(node, acting, collection)
    try:
        return node.read(viewer, endpoint, query.filters(endpoint), object_id)
    except NotFound:
        raise _absent(object_id, collection) from None


def _require_stix_id(object_id: str) -> None:
    # As TAXII answers for an object path (400): a malformed id is a mistake to name, not an absent object.
    if not is_stix_id(object_id):
        raise BadRequest(f"{object_id!r} is not a STIX identifier (type--UUID)")


def _absent(object_id: str, collection: Collection) -> NotFound:
    # The same words whether the object does not exist or the principal may not see it.
    return NotFound(f"no object {object_id!r} in collection {collection.alias or collection.id}")


def summarise(node: Node, acting: Acting, collection: Collection, page: Page) -> list[dict[str, Any]]:
    """What an operator reads in a listing: type, name, producer name, TLP label, dates and id — taken
    from the copy the principal receives (after redaction), never from the stored original."""
    objects = [orjson.loads(body) for _, body in page.items]
    names = _producer_names(node, acting, collection, {o.get("created_by_ref") for o in objects} - {None})
    return [_summary(row, obj, names) for (row, _), obj in zip(page.items, objects, strict=True)]


def _summary(row: VersionRow, obj: dict[str, Any], producers: dict[str, str]) -> dict[str, Any]:
    name = display_name(obj)
    producer = obj.get("created_by_ref")
    levels = [LEVEL_BY_ANY_ID[ref] for ref in obj.get("object_marking_refs", ()) if ref in LEVEL_BY_ANY_ID]
    return {
        "id": row.stix_id, "type": row.type, "name": name,
        "producer": producers.get(producer, producer) if isinstance(producer, str) else None,
        "tlp": max(levels).label if levels else None,
        "added": format_timestamp(row.date_added), "version": format_timestamp(row.version),
    }


def _producer_names(node: Node, acting: Acting, collection: Collection, refs: set[Any]) -> dict[str, str]:
    """Names for ``created_by_ref`` ids: the node's organisations, then identity objects of the
    collection that the principal may see (read through the same check, so a hidden identity's name
    never shows)."""
    wanted = sorted(ref for ref in refs if isinstance(ref, str) and ref.startswith("identity--"))
    names = node.identity_names(wanted)
    missing = tuple(ref for ref in wanted if ref not in names)
    if not missing or not acting.principal.can_read(collection):
        return names
    names.update(identity_object_names(node, node.viewer_for(acting.principal, collection), missing))
    return names


def identity_object_names(node: Node, viewer: Viewer, ids: Sequence[str]) -> dict[str, str]:
    """The names of the identity objects ``ids`` of the viewer's collection that it may see, read through the
    same check as any read (so a hidden identity's name never shows)."""
    names: dict[str, str] = {}
    for start in range(0, len(ids), node.reader.max_limit):
        chunk = tuple(ids[start:start + node.reader.max_limit])
        page = node.reader.page(viewer, Endpoint.OBJECTS, Filters(ids=chunk, limit=len(chunk)))
        for _, body in page.items:
            identity = orjson.loads(body)
            if isinstance(identity.get("name"), str):
                names[identity["id"]] = identity["name"]
    return names
