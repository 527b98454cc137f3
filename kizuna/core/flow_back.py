"""Which stored sightings flow back to a partner: those of objects the partner made, below TLP:AMBER+STRICT.

A partner made an object when a version of it arrived from the partner's node (any partner entry with the
same API root URL) or names the partner's organisation as its ``created_by_ref``. TLP:AMBER+STRICT and TLP:RED
sightings stay here: those levels never leave their recipient.

One rule for the two places that ask: the flow-back stream, which sends these sightings
(``federation/flowback.py``), and the push backlog count (``core/partner_health.py``), which leaves them out
because a push never sends them (they travel in the flow-back stream only).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import orjson

from kizuna.policy.onward import highest_tlp
from kizuna.policy.tlp import TlpLevel
from kizuna.store.base import Store, VersionQuery, VersionRow, VersionSelector

_ALL: Final = VersionSelector(all=True)
#: Object ids asked of the store at once.
_CHUNK: Final = 200


class FlowBackRule:
    """For one partner and collection: which sightings among stored rows flow back (answers kept per object)."""

    def __init__(self, store: Store, collection_pk: int, same_node: frozenset[str], organisation: str | None
                 ) -> None:
        self.store = store
        self.collection_pk = collection_pk
        self.same_node = same_node
        self.organisation = organisation
        self._theirs: dict[str, bool] = {}

    def _learn(self, ids: Iterable[str]) -> None:
        wanted = sorted({i for i in ids if i not in self._theirs})
        made: set[str] = set()
        for start in range(0, len(wanted), _CHUNK):
            rows = self.store.query_versions(VersionQuery(
                collection_pk=self.collection_pk, ids=tuple(wanted[start:start + _CHUNK]), versions=_ALL,
                limit=100_000,
            ))
            made.update(row.stix_id for row in rows
                        if self.organisation and row.created_by_ref == self.organisation)
            senders = self.store.partners_of(self.collection_pk, [(row.stix_id, row.version) for row in rows])
            made.update(stix_id for (stix_id, _), partner in senders.items() if partner in self.same_node)
        for stix_id in wanted:
            self._theirs[stix_id] = stix_id in made

    def select(self, rows: Iterable[VersionRow]) -> list[tuple[VersionRow, dict[str, Any]]]:
        """The sightings among ``rows`` that flow back, each with its parsed body."""
        sightings: list[tuple[VersionRow, dict[str, Any]]] = []
        for row in rows:
            if row.type != "sighting":
                continue
            obj = orjson.loads(row.body)
            if isinstance(obj.get("sighting_of_ref"), str):
                sightings.append((row, obj))
        self._learn(obj["sighting_of_ref"] for _, obj in sightings)
        chosen = []
        for row, obj in sightings:
            if not self._theirs.get(obj["sighting_of_ref"]):
                continue
            level = highest_tlp(row.markings)
            if level is not None and level >= TlpLevel.AMBER_STRICT:
                continue
            chosen.append((row, obj))
        return chosen
