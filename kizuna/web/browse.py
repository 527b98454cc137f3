"""Browse: a collection's objects as the signed-in token sees them, with filters, paging and counts."""

from __future__ import annotations

import datetime as dt
import re
from typing import NamedTuple

from starlette.responses import Response

from kizuna.core.errors import BadRequest
from kizuna.core.listing import (
    NO_TLP,
    Criteria,
    browse,
    find_readable,
    partner_names,
    readable_collections,
    sees_provenance,
)
from kizuna.numerals import whole_number
from kizuna.policy.tlp import TlpLevel
from kizuna.web.page import Visit

PAGE_SIZE = 50
TYPE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,249}$")
#: The TLP filter's choices, least restrictive first; the labels stay untranslated.
TLP_CHOICES = [(level.token, level.label) for level in TlpLevel]


class Narrowing(NamedTuple):
    """The filters Browse and Search share, checked: a type, a TLP token or "none", midnight (µs) of a day,
    the partner node an object came from."""

    kind: str | None
    tlp: str | None
    since: int | None
    partner: str | None


def narrowing(visit: Visit) -> Narrowing:
    """The ``type``, ``tlp``, ``since`` and ``partner`` query parameters, or a translated 400 saying which
    is wrong. Only the node's own organisation may filter by partner; to anyone else every partner is
    unknown, so the answer says nothing about which partners exist."""
    params = visit.request.query_params
    kind = params.get("type") or None
    if kind is not None and not TYPE_PATTERN.match(kind):
        raise BadRequest(visit.gettext("Unknown object type."))
    tlp = params.get("tlp") or None
    if tlp is not None and tlp != NO_TLP and TlpLevel.from_token(tlp) is None:
        raise BadRequest(visit.gettext("Unknown TLP level."))
    since = params.get("since") or None
    midnight = None
    if since is not None:
        try:
            day = dt.date.fromisoformat(since)
        except ValueError:
            raise BadRequest(visit.gettext("The date must be written as YYYY-MM-DD.")) from None
        midnight = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1_000_000
    partner = params.get("partner") or None
    if partner is not None and partner not in partner_choices(visit):
        raise BadRequest(visit.gettext("Unknown partner."))
    return Narrowing(kind, tlp, midnight, partner)


def partner_choices(visit: Visit) -> list[str]:
    """The partner entries the reader may filter by: all of them for the node's own organisation, else none."""
    return partner_names(visit.node) if sees_provenance(visit.node, visit.principal) else []


def _criteria(visit: Visit) -> Criteria:
    params = visit.request.query_params
    kind, tlp, since, partner = narrowing(visit)
    added_after = since - 1 if since is not None else None
    raw_after = params.get("after") or None
    after = whole_number(raw_after) if raw_after is not None else None
    if raw_after is not None and after is None:
        raise BadRequest(visit.gettext("The page position is not valid."))
    level = TlpLevel.from_token(tlp) if tlp and tlp != NO_TLP else None
    return Criteria(
        types=(kind,) if kind else (), tlp=level.token if level is not None else tlp,
        producer=params.get("producer") or None, partner=partner, added_after=added_after,
        after=after, limit=PAGE_SIZE,
    )


def browse_page(visit: Visit) -> Response:
    collections = readable_collections(visit.node, visit.principal)
    if not collections:
        return visit.render("browse.html", collections=[], listing=None, criteria=None, chosen=None,
                            tlp_choices=TLP_CHOICES, params={})
    ref = visit.request.query_params.get("collection")
    collection = find_readable(visit.node, visit.principal, ref) if ref else collections[0]
    criteria = _criteria(visit)
    listing = browse(visit.node, visit.principal, collection, criteria)
    params = {key: value for key, value in visit.request.query_params.items() if value and key != "after"}
    params["collection"] = collection.alias or collection.id
    return visit.render(
        "browse.html", collections=collections, listing=listing, criteria=criteria, chosen=collection,
        tlp_choices=TLP_CHOICES, params=params, no_tlp=NO_TLP,
    )
