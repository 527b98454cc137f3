"""Opening and closing an operation: collections, agreements, time-boxed tokens and its STIX context.

Everything here calls the node's own services (`Node.create_collection`, `set_agreement`,
`create_token`, `revoke_token`, `import_objects`), so an operation is nothing but ordinary
collections, agreements and tokens with a name on them, and the policy applies to it unchanged.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from kizuna.core.errors import MAX_LABEL_CHARS, AdminError, check_name
from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN
from kizuna.core.tokens import MAX_EXPIRY_YEARS, latest_expiry
from kizuna.ops.alerts import NOT_ACTIVITY
from kizuna.ops.reading import latest_objects, stix_now, tlp_level, tlp_of
from kizuna.ops.records import Operation, Partner, find, load_all, save, slug_of
from kizuna.policy.tlp import TlpLevel, oasis_id, tlp2_marking_definition
from kizuna.stix.timestamps import LAST_MICROS, format_timestamp, now_micros
from kizuna.store.base import Organisation

ROLES = ("intel", "incidents", "watchlist")
DEFAULT_GRACE_DAYS = 7
_DAY_US = 86_400 * 1_000_000
#: The label of the operation's partner tokens.
_TOKEN_LABEL = "operation {name}"


@dataclass(frozen=True)
class IssuedToken:
    organisation: str
    token_id: str
    secret: str


def _day_start(text: str, what: str) -> int:
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise AdminError(f"{what} {text!r} is not a date such as 2027-09-20") from None
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1_000_000


def create_operation(node: Node, name: str, start: str, end: str, partners: list[str], tlp_default: str = "amber",
                     grace_days: int = DEFAULT_GRACE_DAYS) -> tuple[Operation, list[IssuedToken]]:
    """Create the workspace. The operation runs from the start of ``start`` to the end of ``end`` (UTC);
    partner tokens stop working ``grace_days`` after that. Everything is checked before anything is made."""
    name = name.strip()
    # Its partner tokens are labelled with it, so it is bounded by what a label may hold.
    check_name(name, "an operation's name", MAX_LABEL_CHARS - len(_TOKEN_LABEL.format(name="")))
    slug = slug_of(name)
    if slug in load_all(node.store):
        raise AdminError(f"operation {name!r} already exists; `kizuna ops show {slug}` shows it")
    begins, ends = _day_start(start, "--from"), _day_start(end, "--to") + _DAY_US
    if ends <= begins:
        raise AdminError(f"--to {end} is before --from {start}")
    if grace_days < 0:
        raise AdminError("--grace-days cannot be negative")
    expires = ends + grace_days * _DAY_US
    if expires > LAST_MICROS:
        raise AdminError(f"--to {end} with --grace-days {grace_days} ends after the year 9999, which no "
                         "STIX timestamp can write")
    if expires > latest_expiry(now_micros()):  # said here, in the options given: ops create has no --expires
        raise AdminError(f"--to {end} with --grace-days {grace_days} makes the partner tokens work until "
                         f"{format_timestamp(expires)[:10]}, more than {MAX_EXPIRY_YEARS} years from now, longer "
                         "than any token may last; give an earlier --to or fewer --grace-days")
    if expires <= now_micros():
        raise AdminError(f"operation {name!r} ended with its grace period on {format_timestamp(expires)[:10]}; "
                         "its tokens would never work")
    level = tlp_level(tlp_default)
    if not partners:
        raise AdminError("an operation needs at least one --partner organisation")
    organisations: list[Organisation] = []
    for ref in dict.fromkeys(partners):
        org = node.store.get_organisation(ref)
        if org is None:
            raise AdminError(f"no organisation {ref!r}; create it with `kizuna orgs create`")
        if org.id == node.home_organisation_id:
            raise AdminError(f"{org.name!r} is this node's own organisation: it runs the operation and reads it "
                             "with its own tokens, it is not one of its partners")
        if all(org.id != known.id for known in organisations):  # named twice, by name and by id: one partner
            organisations.append(org)
    for role in ROLES:
        if node.store.get_collection("main", f"{slug}-{role}") is not None:
            raise AdminError(f"alias {slug}-{role} is already used by another collection")

    collections = {role: node.create_collection(
        f"{name} {role}", alias=f"{slug}-{role}",
        description=f"Operation {name}: {role} shared with its partner set") for role in ROLES}
    ids = [c.id for c in collections.values()]
    now = stix_now()
    marking = oasis_id(level)
    home = node.store.get_setting("node_identity")
    identity: dict[str, Any] = {
        "type": "identity", "spec_version": "2.1", "id": f"identity--{uuid.uuid4()}", "created": now,
        "modified": now, "name": f"Operation {name}", "identity_class": "group",
        "object_marking_refs": [marking], **({"created_by_ref": home} if home else {}),
    }
    grouping: dict[str, Any] = {
        "type": "grouping", "spec_version": "2.1", "id": f"grouping--{uuid.uuid4()}", "created": now,
        "modified": now, "name": name, "context": "mass-event-operation",
        "description": f"Operation {name}, {start} to {end}", "object_refs": [identity["id"]],
        "object_marking_refs": [marking], **({"created_by_ref": home} if home else {}),
        "x_kizuna_operation": {"start": format_timestamp(begins), "end": format_timestamp(ends)},
    }
    node.import_objects(collections["watchlist"], [tlp2_marking_definition(level), identity, grouping])

    operation = Operation(
        name=name, slug=slug, start=format_timestamp(begins), end=format_timestamp(ends),
        expires=format_timestamp(expires), tlp_default=level.token, identity_id=identity["id"],
        grouping_id=grouping["id"], collections={role: c.id for role, c in collections.items()},
    )
    issued = []
    for org in organisations:
        agreement = f"ops-{slug}-{slug_of(org.name)}"
        node.set_agreement(agreement, org.id, collections=ids, max_tlp=max(level, TlpLevel.AMBER))
        token_id, secret = node.create_token(
            org.name, read=ids, write=[collections["intel"].id, collections["incidents"].id],
            label=_TOKEN_LABEL.format(name=name), agreement=agreement, expires=operation.expires)
        operation.partners.append(Partner(org.name, org.id, agreement, token_id))
        issued.append(IssuedToken(org.name, token_id, secret))
    save(node.store, operation)
    node.audit.record("operation-created", NODE_ADMIN.key, {
        "operation": slug, "name": name, "start": operation.start, "end": operation.end,
        "expires": operation.expires, "tlp_default": level.token,
        "partners": [p.organisation_id for p in operation.partners],
    })
    return operation, issued


def describe(node: Node, operation: Operation) -> dict[str, Any]:
    """The operation as the CLI shows it: names, not internal keys, plus each token's state."""
    now = now_micros()
    partners = []
    for p in operation.partners:
        token = node.store.get_token(p.token_id)
        if token is None or token.revoked_at is not None:
            state = "revoked"
        elif token.expires_at is not None and token.expires_at <= now:
            state = "expired"
        else:
            state = "active"
        partners.append({"organisation": p.organisation, "agreement": p.agreement, "token": p.token_id,
                         "token_state": state})
    collections = {role: node.store.get_collection("main", cid) for role, cid in operation.collections.items()}
    return {
        "name": operation.name, "slug": operation.slug, "state": operation.state, "start": operation.start,
        "end": operation.end, "last_day": operation.last_day, "tokens_expire": operation.expires,
        "tlp_default": operation.tlp_default,
        "closed_at": operation.closed_at, "partners": partners,
        "collections": {role: {"title": c.title, "alias": c.alias, "id": c.id}
                        for role, c in collections.items() if c is not None},
    }


def list_operations(node: Node) -> list[Operation]:
    return sorted(load_all(node.store).values(), key=lambda o: o.start)


def review_list(node: Node, operation: Operation) -> list[dict[str, Any]]:
    """Every AMBER or AMBER+STRICT object in the operation's collections, with its producer: what the
    producers are asked about when the operation closes."""
    names = {o.id: o.name for o in node.store.list_organisations()}
    found = []
    for role in ("intel", "incidents"):
        collection = node.find_collection(operation.collections[role])
        for _, obj in latest_objects(node, collection):
            level = tlp_of(obj)
            # Translations follow their object (``ops declassify`` re-marks them with it); an observable, which
            # has no versions, is re-marked by a new stored form.
            if obj["type"] in NOT_ACTIVITY:
                continue
            if level in (TlpLevel.AMBER, TlpLevel.AMBER_STRICT):
                producer = obj.get("created_by_ref")
                found.append({"id": obj["id"], "type": obj["type"], "name": obj.get("name"),
                              "tlp": level.token, "collection": role,
                              "producer": names.get(producer, producer) if producer else None})
    return found


def close_operation(node: Node, ref: str) -> tuple[Operation, list[dict[str, Any]]]:
    """Close: every partner token stops at once, and the declassification review list is produced."""
    operation = find(node.store, ref)
    if operation.state == "closed":
        raise AdminError(f"operation {operation.name!r} was closed at {operation.closed_at}")
    now = now_micros()
    for partner in operation.partners:
        token = node.store.get_token(partner.token_id)
        if token is not None and token.revoked_at is None and (token.expires_at is None or token.expires_at > now):
            node.revoke_token(partner.token_id)
    operation.state, operation.closed_at = "closed", format_timestamp(now)
    save(node.store, operation)
    review = review_list(node, operation)
    node.audit.record("operation-closed", NODE_ADMIN.key, {"operation": operation.slug, "to_review": len(review)})
    return operation, review
