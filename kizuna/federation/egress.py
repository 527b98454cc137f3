"""What may leave this node for one partner.

The read itself goes through the node's one visibility check (``Node.read`` with a principal that
stands for the partner's organisation under its agreement), so hidden objects are never read and
redacted ones are read redacted.  On top of that, federation adds the two rules that only it can
know about, because they depend on where a version came from:

* a version received from a partner node is never sent back to that node (no echo), whichever of
  the node's partner entries (same API root URL) it came through;
* a version that this node did not produce and that carries TLP:AMBER+STRICT or TLP:RED is never
  forwarded onward to anyone: those levels stop at the recipient organisation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import orjson

from kizuna.core.principal import Principal, partner_reader
from kizuna.federation.config import PartnerConfig
from kizuna.federation.state import Provenance
from kizuna.policy.tlp import LEVEL_BY_ANY_ID, TlpLevel
from kizuna.store.base import VersionRow

_NO_ONWARD = TlpLevel.AMBER_STRICT


def partner_principal(partner: PartnerConfig, readable_collection_pks: Iterable[int]) -> Principal:
    """The partner as a reader of this node: its organisation, bound to its agreement, read-only."""
    return partner_reader(partner.name, partner.organisation, partner.agreement, readable_collection_pks)


def highest_tlp(markings: str | None) -> TlpLevel | None:
    if not markings:
        return None
    levels = [LEVEL_BY_ANY_ID[m] for m in orjson.loads(markings) if m in LEVEL_BY_ANY_ID]
    return max(levels) if levels else None


def is_foreign(row: VersionRow, provenance: Provenance | None, own_identities: frozenset[str]) -> bool:
    """Whether this node only relays ``row``: it arrived from a partner or another producer made it."""
    if provenance is not None:
        return True
    return row.created_by_ref is not None and row.created_by_ref not in own_identities


def may_send(
    partner: frozenset[str], row: VersionRow, provenance: Provenance | None, own_identities: frozenset[str]
) -> bool:
    """``partner``: the names of every partner entry that stands for the receiving node."""
    if provenance is not None and provenance.partner in partner:
        return False
    level = highest_tlp(row.markings)
    return not (level is not None and level >= _NO_ONWARD and is_foreign(row, provenance, own_identities))


def select_for_partner(
    partner: frozenset[str], items: Sequence[tuple[VersionRow, bytes]],
    provenance: Mapping[tuple[str, int], Provenance], own_identities: frozenset[str],
) -> list[bytes]:
    return [
        body for row, body in items
        if may_send(partner, row, provenance.get((row.stix_id, row.version)), own_identities)
    ]
