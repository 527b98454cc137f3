"""Search: full-text search over every collection the signed-in token reads, in English and Japanese.

The results come from `Node.search` (core/search.py): each hit passed the same visibility check as a
TAXII read, the count is of visible hits only, and the page served is audited like a read. Filters
narrow the copy the reader sees (collection, type, TLP, added since); the node's own organisation
may also narrow to what one partner node sent (federation provenance).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from kizuna.core.cursor import BadCursor
from kizuna.core.errors import BadRequest
from kizuna.core.listing import readable_collections
from kizuna.core.search import NO_TLP, SearchFilters
from kizuna.stix.search_text import MAX_QUERY_CHARS, MAX_TERMS, MIN_TERM, query_terms
from kizuna.web.browse import TLP_CHOICES, narrowing, partner_choices
from kizuna.web.page import Visit

PAGE_SIZE = 25
#: The types offered in the filter menu: what analysts look for first.
TYPE_CHOICES = ("indicator", "report", "malware", "threat-actor", "intrusion-set", "campaign", "attack-pattern",
                "vulnerability", "course-of-action", "note", "opinion", "sighting", "identity", "tool")


def _filters(visit: Visit) -> SearchFilters:
    kind, tlp, since, partner = narrowing(visit)
    collection = visit.request.query_params.get("collection") or None
    return SearchFilters(collections=(collection,) if collection else (), types=(kind,) if kind else (),
                         tlp=(tlp,) if tlp else (), partner=partner, added_from=since)


def search_page(visit: Visit) -> Response:
    params = visit.request.query_params
    text = (params.get("q") or "").strip()
    collections = readable_collections(visit.node, visit.principal)
    shown = {key: value for key, value in params.items() if value and key != "next"}
    values: dict[str, Any] = dict(words=text, params=shown, collections=collections, tlp_choices=TLP_CHOICES,
                                  no_tlp=NO_TLP, type_choices=TYPE_CHOICES, results=None, problem=None,
                                  partners=partner_choices(visit))
    if not text:
        return visit.render("search.html", **values)
    filters = _filters(visit)
    if isinstance(query_terms(text), str):
        values["problem"] = visit.gettext(
            "This search cannot be run: give 1 to %(terms)s words of at least %(min)s characters each, "
            "at most %(chars)s characters in all.", terms=MAX_TERMS, min=MIN_TERM, chars=MAX_QUERY_CHARS)
        return visit.render("search.html", 400, **values)
    cursor = params.get("next") or None
    try:
        values["results"] = visit.node.search(visit.principal, text, filters, limit=PAGE_SIZE, cursor=cursor)
    except BadCursor:
        raise BadRequest(visit.gettext("This link to more results is out of date or belongs to another search: "
                                       "search again.")) from None
    return visit.render("search.html", **values)
