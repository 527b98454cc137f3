"""What federation never sends to a partner node, whatever that partner's agreement lets it read.

Both rules depend on where a version came from, which the visibility check does not weigh for every
reader; they are kept here, pure, so a push (``federation/egress.py``) and the operator's count of what
waits to be pushed (``core/partner_health.py``) apply the same text:

* a version received from a partner node is never sent back to that node (no echo), whichever of
  the node's partner entries (same API root URL) it came through;
* a version that this node did not produce and that carries TLP:AMBER+STRICT or TLP:RED is never
  forwarded onward to anyone: those levels stop at the recipient organisation (TLP 2.0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import orjson

from kizuna.policy.tlp import LEVEL_BY_ANY_ID, TlpLevel

_NO_ONWARD: Final = TlpLevel.AMBER_STRICT


def same_node(name: str, api_roots: Mapping[str, str | None]) -> frozenset[str]:
    """Every partner entry that stands for the same node as entry ``name``: the same API root URL (a trailing
    slash or not), given as entry name -> URL (None for an entry without one, a MISP feed say)."""
    def root(url: str | None) -> str | None:
        return url.rstrip("/") if isinstance(url, str) else None

    mine = root(api_roots.get(name))
    return frozenset(other for other, url in api_roots.items() if mine is not None and root(url) == mine) | {name}


def highest_tlp(markings: str | None) -> TlpLevel | None:
    """The most restrictive TLP level in a stored markings column (a JSON list of ids), or None."""
    if not markings:
        return None
    levels = [LEVEL_BY_ANY_ID[m] for m in orjson.loads(markings) if m in LEVEL_BY_ANY_ID]
    return max(levels) if levels else None


def is_foreign(producer: str | None, sender: str | None, own_identities: frozenset[str]) -> bool:
    """Whether this node only relays a version: it arrived from partner entry ``sender``, or another producer
    made it."""
    if sender is not None:
        return True
    return producer is not None and producer not in own_identities


def may_send(
    same_node: frozenset[str], markings: str | None, producer: str | None, sender: str | None,
    own_identities: frozenset[str],
) -> bool:
    """Whether a version may go to the node that the partner entries ``same_node`` stand for.

    ``sender`` is the partner entry the version arrived through (its provenance), None for one made or
    imported here; ``own_identities`` are the node's own producer identities."""
    if sender is not None and sender in same_node:
        return False
    level = highest_tlp(markings)
    return not (level is not None and level >= _NO_ONWARD and is_foreign(producer, sender, own_identities))
