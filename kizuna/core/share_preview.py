"""Who would receive a draft: the partners and routes the share preview judges, read from the store.

A partner receives objects from this node in two ways, and the preview must judge both exactly as
they happen: a token of its organisation reads a collection (``Node.viewer_for``: the token's
agreement if it is bound to one, else the organisation's agreements), and the sync worker pushes a
collection to its node (``federation/egress.partner_principal``: the partner entry's organisation and
agreement).  Core may not import federation, so the partner entries are read here from their stored
JSON, only the fields the push principal is made of.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from kizuna.core.policy_source import PolicySource
from kizuna.policy import Agreement, Organisation
from kizuna.policy.preview import Partner, Route
from kizuna.stix.timestamps import now_micros
from kizuna.store.base import Collection, Store

_PUSHING = ("push", "both")


def partners(store: Store, policy: PolicySource, home_organisation_id: str | None) -> list[Partner]:
    """Every organisation but the node's own, with its tokens' read routes, then every partner node."""
    ctx = policy.context()
    collections = store.list_collections()
    ids = {c.pk: c.id for c in collections}
    now = now_micros()
    routes: dict[str, dict[str | None, set[str]]] = {}
    for token in store.list_tokens():
        if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
            continue
        readable = {ids[g.collection_pk] for g in token.grants if g.can_read and g.collection_pk in ids}
        if readable:
            agreement_id = store.get_token_agreement(token.id)
            routes.setdefault(token.organisation_id, {}).setdefault(agreement_id, set()).update(readable)
    found: list[Partner] = []
    for org in store.list_organisations():
        if org.id == home_organisation_id:
            continue
        known = ctx.organisation(org.id) or Organisation(org.id, org.name, org.country)
        found.append(Partner(org.id, org.name, known, tuple(
            Route(frozenset(readable), _agreement(policy, agreement_id, org.id))
            for agreement_id, readable in sorted(routes.get(org.id, {}).items(), key=lambda kv: kv[0] or "")
        )))
    for name, config in store.partner_configs():
        try:
            data = orjson.loads(config)
            pushed = frozenset(
                _local(collections, m["local"]) for m in data["mappings"] if m["direction"] in _PUSHING
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, LookupError):
            continue  # an unreadable entry pushes nothing (its runs fail); `kizuna partners show` reports it
        org_id = data.get("organisation")
        organisation = (ctx.organisation(org_id) or Organisation(org_id, org_id)) if org_id else None
        route = Route(pushed, _agreement(policy, data.get("agreement"), org_id or ""), push=True)
        found.append(Partner(f"node:{name}", name, organisation, (route,)))
    return found


def _agreement(policy: PolicySource, agreement_id: str | None, org_id: str) -> Agreement | None:
    """The agreement a reader is bound to, as ``Node.viewer_for`` finds it (a missing one covers nothing)."""
    if agreement_id is None:
        return None
    return policy.agreement(agreement_id) or Agreement(agreement_id, 0, org_id, collections=frozenset())


def _local(collections: Sequence[Collection], ref: str) -> str:
    """The id of the local collection a mapping names (id or alias), as ``Node.find_collection`` reads it."""
    found = next((c for c in collections if c.id == ref), None) or next(
        (c for c in collections if c.alias == ref), None)
    if found is None:
        raise LookupError(ref)
    return found.id
