"""References that leave the collection being read.

A relationship, sighting or report in one collection may name an object that the node keeps only in another
collection. Were such an id counted as absent, a TLP:CLEAR relationship would disclose, to a reader of its
collection, a TLP:RED object stored next door. So an id the collection does not hold (no stored version, no kept
copy of a deleted one) is decided by the node's other collections that hold it: it is visible when one of them
shows it to the reader, under the reader's policy for that collection (its markings and agreements, as a read
of that collection would decide them; the reader's grants to that collection play no part: what may be disclosed
of an object is what its markings say). An id no collection holds stays "absent, not hidden".

Asking costs one index probe per id and collection, no bodies. A collection whose stored shapes the reader sees
whole (core/stored_shapes.py) cannot hide an id of a column-decided type, so it is probed only for ids of the
other types; a node with one collection is never probed at all. Being conservative costs nothing here: an id
held both in a collection that hides it and in one probed only for the other types counts as hidden.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kizuna.core.visibility import Viewer
from kizuna.store.base import Collection
from kizuna.store.view_edges import UNDECIDED_TYPES

#: Which of some ids each of some collections holds: (collection_pk, id) pairs (``Store.held_ids``).
Held = Callable[[Sequence[int], Sequence[str]], set[tuple[int, str]]]


class OtherCollections:
    """The node's collections other than the one being read, as one reader sees them (one per request).

    ``others`` lists them and ``viewer_of`` builds the reader's viewer of one (without an ``OtherCollections`` of
    its own: what another collection holds is decided there, not followed further); both are asked once, when
    the first reference leaves the collection being read."""

    __slots__ = ("_held", "_others", "_viewer_of", "_viewers", "_whole")

    def __init__(self, others: Callable[[], Sequence[Collection]], viewer_of: Callable[[Collection], Viewer],
                 held: Held) -> None:
        self._others = others
        self._viewer_of = viewer_of
        self._held = held
        self._viewers: dict[int, Viewer] | None = None
        self._whole: dict[int, bool] = {}

    def exist(self) -> bool:
        """Whether the node has any other collection (asked first: a node with one collection is never probed)."""
        return bool(self._load())

    def decide(self, ids: Sequence[str]) -> dict[str, bool]:
        """Visible or not, for each of ``ids`` that another collection holds; ids none holds are left out."""
        viewers = self._load()
        if not viewers or not ids:
            return {}
        partial = [pk for pk, whole in self._whole.items() if not whole]
        held = self._held(partial, ids) if partial else set()
        others = [i for i in ids if i.partition("--")[0] in UNDECIDED_TYPES]
        whole = [pk for pk, seen_whole in self._whole.items() if seen_whole]
        if others and whole:
            held |= self._held(whole, others)
        by_collection: dict[int, list[str]] = {}
        for pk, stix_id in held:
            by_collection.setdefault(pk, []).append(stix_id)
        verdicts: dict[str, bool] = {}
        for pk, found in by_collection.items():
            viewer = viewers[pk]
            viewer.resolve(found)
            for stix_id in found:
                verdicts[stix_id] = verdicts.get(stix_id, False) or viewer.is_visible(stix_id)
        return verdicts

    def _load(self) -> dict[int, Viewer]:
        viewers = self._viewers
        if viewers is None:
            viewers = self._viewers = {c.pk: self._viewer_of(c) for c in self._others()}
            self._whole = {pk: viewer.endpoints_whole() for pk, viewer in viewers.items()}
        return viewers
