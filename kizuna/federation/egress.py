"""What may leave this node for one partner.

The read itself goes through the node's one visibility check (``Node.read`` with a principal that
stands for the partner's organisation under its agreement), so hidden objects are never read and
redacted ones are read redacted.  On top of that, federation applies the two rules that depend on
where a version came from (no echo; no onward relay of TLP:AMBER+STRICT/RED), defined once in
``kizuna/policy/onward.py``, where the operator's push backlog reads them too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from kizuna.core.principal import Principal, partner_reader
from kizuna.federation.config import PartnerConfig
from kizuna.federation.state import Provenance
from kizuna.policy import onward
from kizuna.store.base import VersionRow


def partner_principal(partner: PartnerConfig, readable_collection_pks: Iterable[int]) -> Principal:
    """The partner as a reader of this node: its organisation, bound to its agreement, read-only."""
    return partner_reader(partner.name, partner.organisation, partner.agreement, readable_collection_pks)


def may_send(
    partner: frozenset[str], row: VersionRow, provenance: Provenance | None, own_identities: frozenset[str]
) -> bool:
    """``partner``: the names of every partner entry that stands for the receiving node."""
    sender = provenance.partner if provenance is not None else None
    return onward.may_send(partner, row.markings, row.created_by_ref, sender, own_identities)


def select_for_partner(
    partner: frozenset[str], items: Sequence[tuple[VersionRow, bytes]],
    provenance: Mapping[tuple[str, int], Provenance], own_identities: frozenset[str],
) -> list[tuple[VersionRow, bytes]]:
    return [
        (row, body) for row, body in items
        if may_send(partner, row, provenance.get((row.stix_id, row.version)), own_identities)
    ]
