"""References that leave the collection being read.

A relationship, sighting or report in one collection may name an object that the node keeps only in another
collection. Were such an id counted as absent, a TLP:CLEAR relationship would disclose, to a reader of its
collection, a TLP:RED object stored next door. So an id the collection does not hold (no stored version, no kept
copy of a deleted one) is decided by the node's other collections that hold it: it is visible when one of them
shows it to the reader, under the reader's policy for that collection (its markings and agreements, as a read
of that collection would decide them; the reader's grants to that collection play no part: what may be disclosed
of an object is what its markings say). An id no collection holds stays "absent, not hidden".

Asking costs one index probe per id and collection, no bodies, and an id found in none is not asked again
while the other collections' change stamps hold. A collection whose stored shapes the reader is served as
stored (core/stored_shapes.py) cannot hide an id of a column-decided type, so it is probed only for ids of the
other types; a node with one collection is never probed at all. An id held both in a collection that hides it
and in one probed only for the other types counts as hidden (the conservative side).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from kizuna.core.visibility import Viewer
from kizuna.store.view_edges import UNDECIDED_TYPES

#: Which of some ids each of some collections holds, as (collection_pk, id), the kept copies of deleted versions
#: asked only of the collections given third (``Store.held_ids``).
Held = Callable[[Sequence[int], Sequence[str], Sequence[int]], set[tuple[int, str]]]
#: Every collection's change stamp by pk (``Store.collection_change_stamps``).
Stamps = Callable[[], dict[int, tuple[int | None, int | None]]]
_WHOLE_KEY: Final = "elsewhere-whole"
_NOT_HELD_KEY: Final = "elsewhere-not-held"
#: Ids kept as held by no other collection, per reader and collection (about 100 bytes each)
_NOT_HELD: Final = 65536


class OtherCollections:
    """The node's collections other than the one being read, as one reader sees them (one per request).

    Asked once per request, when the first reference leaves the collection read: every collection's change stamp
    (one statement). Which of the others the reader sees as stored is kept beside its verdicts on the collection read
    (``verdicts``: one reader, collection and policy generation), valid while their stamps hold; the reader's
    viewer of another collection (``viewer_of``, without an ``OtherCollections`` of its own: what another
    collection holds is decided there, not followed further) is built only to learn that, or to decide an id it
    holds."""

    __slots__ = ("_deleted", "_held", "_key", "_pk", "_stamps", "_verdicts", "_viewer_of", "_viewers", "_whole")

    def __init__(self, collection_pk: int, stamps: Stamps, viewer_of: Callable[[int], Viewer], held: Held,
                 verdicts: dict[Any, Any]) -> None:
        self._pk = collection_pk
        self._stamps = stamps
        self._viewer_of = viewer_of
        self._held = held
        self._verdicts = verdicts
        self._viewers: dict[int, Viewer] = {}
        self._whole: dict[int, bool] | None = None
        self._deleted: list[int] = []
        self._key: tuple[tuple[int, tuple[int | None, int | None]], ...] = ()

    def exist(self) -> bool:
        """Whether another collection holds anything (a node with one collection is never probed)."""
        return bool(self._load())

    def stamp(self) -> tuple[tuple[int, tuple[int | None, int | None]], ...]:
        """The change stamps of the other collections that hold anything, as read for this request."""
        self._load()
        return self._key

    def decide(self, ids: Sequence[str]) -> dict[str, bool]:
        """Visible or not, for each of ``ids`` that another collection holds; ids none holds are left out."""
        whole = self._load()
        if not whole or not ids:
            return {}
        # Ids the collections probed did not hold, as they are now: asked once per state of theirs, not per page.
        kept = self._verdicts.get(_NOT_HELD_KEY)
        if kept is None or kept[0] != self._key or len(kept[1]) >= _NOT_HELD:
            kept = self._verdicts[_NOT_HELD_KEY] = (self._key, set())
        not_held: set[str] = kept[1]
        ids = [i for i in ids if i not in not_held]
        if not ids:
            return {}
        partial = [pk for pk, seen_whole in whole.items() if not seen_whole]
        deleted = [pk for pk in self._deleted if pk in partial]
        held = self._held(partial, ids, deleted) if partial else set()
        others = [i for i in ids if i.partition("--")[0] in UNDECIDED_TYPES]
        full = [pk for pk, seen_whole in whole.items() if seen_whole]
        if others and full:
            held |= self._held(full, others, [pk for pk in self._deleted if pk in full])
        by_collection: dict[int, list[str]] = {}
        for pk, stix_id in held:
            by_collection.setdefault(pk, []).append(stix_id)
        somewhere = {stix_id for _, stix_id in held}
        not_held.update(i for i in ids if i not in somewhere)
        verdicts: dict[str, bool] = {}
        for pk, found in by_collection.items():
            viewer = self._viewer(pk)
            viewer.resolve(found)
            for stix_id in found:
                verdicts[stix_id] = verdicts.get(stix_id, False) or viewer.is_visible(stix_id)
        return verdicts

    def _load(self) -> dict[int, bool]:
        whole = self._whole
        if whole is None:
            # A collection that never stored a version holds nothing, nor kept copies (made only by deletes).
            stamps = {pk: stamp for pk, stamp in self._stamps().items() if pk != self._pk and stamp != (None, None)}
            self._deleted = [pk for pk, (_, deleted) in stamps.items() if deleted is not None]
            key = self._key = tuple(sorted(stamps.items()))
            kept = self._verdicts.get(_WHOLE_KEY)
            if kept is not None and kept[0] == key:
                whole = kept[1]
            else:
                # Served as stored, not merely whole: whether a collection holds anything from a partner node (which
                # the relay rule may stop) can change without its stamp, when a partner resends a stored version.
                whole = {pk: self._viewer(pk).endpoints_as_stored() for pk in stamps}
                # Not kept while a collection's shapes are still being learnt: it may be whole once they are.
                if all(seen_whole or self._viewer(pk).shapes_known() for pk, seen_whole in whole.items()):
                    self._verdicts[_WHOLE_KEY] = (key, whole)
            self._whole = whole
        return whole

    def _viewer(self, pk: int) -> Viewer:
        viewer = self._viewers.get(pk)
        if viewer is None:
            viewer = self._viewers[pk] = self._viewer_of(pk)
        return viewer
