"""Agreements (operators): every partner agreement, and one agreement with all its versions.

The same as ``kizuna agreements list`` and ``kizuna agreements show`` (core/policy_source.agreement_body
for each version), with organisations and collections by name rather than by identity id, as listings
show them. Agreements are never changed here: a new version is a deliberate act of `kizuna agreements set`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from kizuna.core.errors import NotFound
from kizuna.core.policy_source import agreement_body
from kizuna.policy import Agreement, relayed_amber_reach
from kizuna.web.page import Visit

#: The yes/no settings of an agreement, in the order the page lists them, with their labels.
FLAGS = ("anonymise_producer", "sightings_flow_back", "amber_extends_to_clients")


@dataclass(frozen=True, slots=True)
class AgreementRow:
    id: str
    version: int
    partner: str  # by name when it is an organisation; node:<name> as it is
    max_tlp: str
    collections: list[str]
    producers: list[str]
    releasability: list[str]
    flags: dict[str, bool]
    changed: frozenset[str]  # settings that differ from the version before (nothing for the first)
    removed: bool = False  # this version removed the agreement (`kizuna agreements remove`)


def _rows(visit: Visit, history: list[Agreement]) -> list[AgreementRow]:
    store = visit.node.store
    organisations = {o.id: o.name for o in store.list_organisations()}
    collections = {c.id: c.alias or c.title for c in store.list_collections()}
    everything = visit.gettext("all")

    def named(values: list[str], names: dict[str, str]) -> list[str]:
        return [everything if v == "*" else names.get(v, v) for v in values]

    rows: list[AgreementRow] = []
    before: dict[str, Any] | None = None
    for agreement in history:
        body = agreement_body(agreement)
        changed = frozenset(k for k, v in body.items() if before is not None and before.get(k) != v)
        rows.append(AgreementRow(
            agreement.agreement_id, agreement.version, organisations.get(agreement.partner, agreement.partner),
            agreement.max_tlp.label, named(body["collections"], collections), named(body["producers"], organisations),
            body["releasability"], {flag: bool(body[flag]) for flag in FLAGS}, changed, agreement.removed,
        ))
        before = body
    return rows


def agreements_page(visit: Visit) -> Response:
    current = sorted(visit.node.policy.context().agreements(), key=lambda a: a.agreement_id)
    return visit.render("agreements.html", agreements=_rows(visit, current))


def agreement_page(visit: Visit) -> Response:
    agreement_id = visit.request.path_params["agreement_id"]
    history = sorted(visit.node.agreement_history(agreement_id), key=lambda a: a.version)
    if not history:
        raise NotFound("no such agreement")
    return visit.render("agreement.html", agreement_id=agreement_id, versions=_rows(visit, history),
                        relayed_amber=relayed_amber_reach(history[-1], visit.node.policy.context()))
