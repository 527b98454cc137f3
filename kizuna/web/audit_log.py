"""Audit (operators): the newest audit records, a page at a time, and the chain's verification.

Records are read by sequence number from the head down (``Store.audit_records``), so a page costs
the same on a log of millions. Verifying the chain reads every record (``AuditLog.verify``, as
``kizuna audit verify`` does), so it runs when the operator asks for it — the "Verify the chain"
button, a GET that changes nothing — and never on every visit. A record's principal is a token id
or "admin"; the page names the token by its label and organisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson
from starlette.responses import Response

from kizuna.core.audit import unpack_served
from kizuna.core.errors import BadRequest
from kizuna.core.vocab import N_
from kizuna.numerals import whole_number
from kizuna.web.page import Visit

#: How each kind of record reads on the page (translated); the kind itself is shown beside it, as
#: `kizuna audit export --kind` takes it.
KIND_NAMES: Final = {
    "agreement-changed": N_("Agreement changed"), "api-root-created": N_("API root created"),
    "auth-failure": N_("Failed sign-in"), "collection-created": N_("Collection created"),
    "cursor-key-rotated": N_("Cursor key rotated"), "delete": N_("Objects deleted"), "egress": N_("Objects served"),
    "feed-created": N_("Feed created"), "feed-removed": N_("Feed removed"),
    "metrics-right": N_("Metrics right changed"),
    "misp-import": N_("MISP import"), "import-report": N_("Import"),
    "node-backed-up": N_("Node backed up"), "node-restored": N_("Node restored"),
    "operation-closed": N_("Operation closed"), "operation-created": N_("Operation created"),
    "operation-declassified": N_("Operation declassified"), "operator-right": N_("Operator right changed"),
    "organisation-changed": N_("Organisation changed"), "organisation-created": N_("Organisation created"),
    "partner-added": N_("Partner added"), "partner-removed": N_("Partner removed"),
    "policy-changed": N_("Policy changed"), "recall": N_("Recall"), "search": N_("Search"),
    "token-bound": N_("Token bound to an agreement"), "token-certificate-bound": N_("Token bound to a certificate"),
    "token-created": N_("Token created"), "token-revoked": N_("Token revoked"), "token-rotated": N_("Token rotated"),
    "write": N_("Objects written"),
}
PAGE_SIZE: Final = 50
#: Characters of a record's body shown in the list (the whole body is in `kizuna audit export`).
BODY_SHOWN: Final = 300


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    at: int
    kind: str
    who: str
    summary: str


def _summary(kind: str, body: str, names: dict[str, str]) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:BODY_SHOWN]
    if kind == "egress" and isinstance(data, dict) and "served" in data:
        data = {**data, "served": len(unpack_served(data["served"]))}  # a count, not packed bytes
    if isinstance(data, dict):
        data = _named(data, names)
    text = orjson.dumps(data).decode()
    return text if len(text) <= BODY_SHOWN else text[:BODY_SHOWN] + "…"


def _named(data: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The record's ids read as the page's other columns read them: an organisation by its name, a token's
    grants as ``r:alias``/``w:alias`` (the record keeps the collections' internal keys)."""
    shown = dict(data)
    for key in ("organisation", "partner", "collection"):
        if isinstance(shown.get(key), str):
            shown[key] = names.get(shown[key], shown[key])
    grants = shown.get("grants")
    if isinstance(grants, list) and all(isinstance(g, list) and len(g) == 3 for g in grants):
        shown["grants"] = [f"{'r' if read else ''}{'w' if write else ''}:{names.get(f'pk:{pk}', pk)}"
                           for pk, read, write in grants]
    return shown


def audit_page(visit: Visit) -> Response:
    raw_before = visit.request.query_params.get("before", "")
    head_seq, _ = visit.node.store.audit_head()
    asked = whole_number(raw_before) if raw_before else None
    if raw_before and asked is None:
        raise BadRequest(visit.gettext("The page position must be a whole number."))
    before = min(asked, head_seq + 1) if asked is not None else head_seq + 1
    after = max(0, before - 1 - PAGE_SIZE)
    records = [r for r in visit.node.store.audit_records(after, PAGE_SIZE) if r.seq < before]
    organisations = {o.id: o.name for o in visit.node.store.list_organisations()}
    tokens = {t.id: f"{t.label or t.id} ({organisations.get(t.organisation_id, t.organisation_id)})"
              for t in visit.node.store.list_tokens()}
    tokens["admin"] = visit.gettext("node administrator (CLI)")
    collections = visit.node.store.list_collections()
    names = {**organisations, **{f"pk:{c.pk}": c.alias or c.title for c in collections},
             **{c.id: c.alias or c.title for c in collections}}
    entries = [Entry(r.seq, r.at, r.kind, tokens.get(r.principal or "", r.principal or "—"),
                     _summary(r.kind, r.body, names)) for r in reversed(records)]
    verified = visit.node.audit.verify() if visit.request.query_params.get("verify") == "1" else None
    return visit.render("audit.html", entries=entries, head=head_seq, verified=verified,
                        kind_names={k: visit.gettext(v) for k, v in KIND_NAMES.items()},
                        older=after if after > 0 else None,
                        newer=before + PAGE_SIZE if before <= head_seq else None)
