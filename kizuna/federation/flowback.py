"""Sightings flow-back: sightings of a partner's indicators go back to that partner.

When the agreement a partner receives under has ``sightings_flow_back``, every sighting this node
stores of an object that partner produced (it arrived from that partner's node, or its
``created_by_ref`` is the partner's organisation here) is sent to the partner as a light stream:
the sighting alone, never the sighted object again.  With ``anonymise_producer`` the sighting's
``created_by_ref`` and ``where_sighted_refs`` name the node's anonymous identity instead of who saw
it.  TLP:AMBER+STRICT and TLP:RED sightings stay here: those levels never leave their recipient.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from kizuna.core.node import Node
from kizuna.core.policy_source import ANONYMOUS_IDENTITY
from kizuna.federation.config import PartnerConfig
from kizuna.federation.state import FederationState
from kizuna.policy import Agreement
from kizuna.policy.onward import highest_tlp
from kizuna.policy.tlp import TlpLevel
from kizuna.store.base import VersionQuery, VersionRow, VersionSelector

_ALL = VersionSelector(all=True)


def flow_back_agreement(node: Node, partner: PartnerConfig) -> Agreement | None:
    if not partner.agreement:
        return None
    agreement = node.policy.agreement(partner.agreement)
    return agreement if agreement is not None and agreement.sightings_flow_back else None


class FlowBack:
    """Decides, for one partner and collection, which sightings flow back and in what form."""

    def __init__(self, node: Node, partner: PartnerConfig, collection_pk: int, same_node: frozenset[str],
                 agreement: Agreement) -> None:
        self.node = node
        self.partner = partner
        self.collection_pk = collection_pk
        self.same_node = same_node
        self.anonymous = node.store.get_setting(ANONYMOUS_IDENTITY) if agreement.anonymise_producer else None
        self._state = FederationState(node.store)
        self._theirs: dict[str, bool] = {}

    def _partner_made(self, ids: Iterable[str]) -> None:
        wanted = sorted({i for i in ids if i not in self._theirs})
        if not wanted:
            return
        received = self._state.provenance_of(self.collection_pk, wanted)
        from_partner = {sid for (sid, _), found in received.items() if found.partner in self.same_node}
        for start in range(0, len(wanted), 200):
            rows = self.node.store.query_versions(VersionQuery(
                collection_pk=self.collection_pk, ids=tuple(wanted[start:start + 200]), versions=_ALL,
                limit=100_000,
            ))
            for row in rows:
                if self.partner.organisation and row.created_by_ref == self.partner.organisation:
                    from_partner.add(row.stix_id)
        for sid in wanted:
            self._theirs[sid] = sid in from_partner

    def select(self, rows: Iterable[VersionRow]) -> list[tuple[VersionRow, bytes]]:
        """The sightings among ``rows`` that flow back, with the bytes to send."""
        sightings: list[tuple[VersionRow, dict[str, Any]]] = []
        for row in rows:
            if row.type != "sighting":
                continue
            obj = orjson.loads(row.body)
            if isinstance(obj.get("sighting_of_ref"), str):
                sightings.append((row, obj))
        self._partner_made(obj["sighting_of_ref"] for _, obj in sightings)
        chosen = []
        for row, obj in sightings:
            if not self._theirs.get(obj["sighting_of_ref"]):
                continue
            level = highest_tlp(row.markings)
            if level is not None and level >= TlpLevel.AMBER_STRICT:
                continue
            chosen.append((row, self._form(row, obj)))
        return chosen

    def _form(self, row: VersionRow, obj: dict[str, Any]) -> bytes:
        if self.anonymous is None:
            return bytes(row.body)
        if "created_by_ref" in obj:
            obj["created_by_ref"] = self.anonymous
        if isinstance(obj.get("where_sighted_refs"), list):
            obj["where_sighted_refs"] = [self.anonymous]
        return orjson.dumps(obj)
