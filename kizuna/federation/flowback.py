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

from kizuna.core.flow_back import FlowBackRule
from kizuna.core.node import Node
from kizuna.core.policy_source import ANONYMOUS_IDENTITY
from kizuna.federation.config import PartnerConfig
from kizuna.policy import Agreement
from kizuna.store.base import VersionRow


def flow_back_agreement(node: Node, partner: PartnerConfig) -> Agreement | None:
    if not partner.agreement:
        return None
    agreement = node.policy.agreement(partner.agreement)
    return agreement if agreement is not None and agreement.sightings_flow_back else None


class FlowBack:
    """The flow-back stream for one partner and collection: which sightings go (``core/flow_back.py``, the rule
    the push backlog count shares) and in what form."""

    def __init__(self, node: Node, partner: PartnerConfig, collection_pk: int, same_node: frozenset[str],
                 agreement: Agreement) -> None:
        self.node = node
        self.partner = partner
        self.collection_pk = collection_pk
        self.same_node = same_node
        self.anonymous = node.store.get_setting(ANONYMOUS_IDENTITY) if agreement.anonymise_producer else None
        self._rule = FlowBackRule(node.store, collection_pk, same_node, partner.organisation)

    def select(self, rows: Iterable[VersionRow]) -> list[tuple[VersionRow, bytes]]:
        """The sightings among ``rows`` that flow back, with the bytes to send."""
        return [(row, self._form(row, obj)) for row, obj in self._rule.select(rows)]

    def _form(self, row: VersionRow, obj: dict[str, Any]) -> bytes:
        if self.anonymous is None:
            return bytes(row.body)
        if "created_by_ref" in obj:
            obj["created_by_ref"] = self.anonymous
        if isinstance(obj.get("where_sighted_refs"), list):
            obj["where_sighted_refs"] = [self.anonymous]
        return orjson.dumps(obj)
