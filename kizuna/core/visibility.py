"""The one visibility check.

Every read path — objects, object, versions, manifest, export, DELETE and everything added
later — asks :func:`view` what a principal may see of one stored object version, and
serves exactly that.  Marking and partner policy therefore land in one place.

The policy (``kizuna.policy``) is compiled once per request into the :class:`Viewer`.
Most rows are decided from their ``created_by_ref`` and ``markings`` columns alone, without
parsing the body: the verdict for one (producer, markings) pair is the same for every row
that shares it.  The columns also settle, unparsed, a row that can reference other objects
when its own markings hide it, and a row with granular markings when the viewer may see every
marking it carries (no part of it can be redacted).  A relationship whose pair the viewer sees
whole is decided by its endpoints alone and served as stored.  Every other row of those kinds, and
rows that need redaction, are parsed (once) and decided in full.

A version that arrived from a partner node stops at this node's organisation, its recipient, from
TLP:AMBER+STRICT up, and at that organisation and its clients from TLP:AMBER up (TLP 2.0): it is
hidden from every other reader but its producer and the organisation whose node sent it, and so is
such an endpoint from a relationship's reader (the policy's ``relay_floor``; provenance is asked with
the look-up, and not at all in a collection that holds nothing from a partner node).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Final, NamedTuple, Protocol

import orjson

from kizuna.core.principal import Principal
from kizuna.core.stored_shapes import Summary, kept_endpoints
from kizuna.policy import ViewerPolicy, embedded_references, hide_dangling
from kizuna.policy.dangling import DECIDING_REFS
from kizuna.policy.decide import Decision, Outcome
from kizuna.store.base import Collection, VersionRow
from kizuna.store.view_edges import GRANULAR as _GRANULAR
from kizuna.store.view_edges import HIDDEN_BY_REFERENCES, REFERENCING_TYPES, stops_onward
from kizuna.store.view_edges import UNDECIDED_TYPES as _UNDECIDED
from kizuna.store.view_edges import WHOLE_OBJECT_TYPES as _WHOLE_OBJECT_TYPES

# The column-decided rows are defined once, in store/view_edges.py, because the store flags which
# versions readers see alike by the same rule (docs/policy.md, "Each principal sees its own history").
__all__ = ["REFERENCING_TYPES", "Viewer", "sees", "served_as_stored", "stops_onward", "view"]
_REF_FIELDS: Final = ("source_ref", "target_ref", "sighting_of_ref", "object_ref")
#: (producer, markings) verdicts kept per reader and collection. A million-object collection from a few
#: thousand producers holds more than 8,192 pairs (bench/gen_stix.py's million: 4,552 producers, 13,498
#: pairs); a smaller bound would empty the cache on every dashboard, which decides every pair in its
#: window (issue 11).
_COLUMN_VERDICTS: Final = 32768
_REF_LISTS: Final = ("observed_data_refs", "where_sighted_refs", "object_refs")

#: Looks up every stored version of some ids in the viewer's collection.
Lookup = Callable[[Sequence[str]], list[VersionRow]]
#: Which of some stored versions, as (id, version), this node received from a partner node (federation
#: provenance): asked once per page for the rows that carry TLP:AMBER+STRICT or TLP:RED.
Relayed = Callable[[Sequence[VersionRow]], set[tuple[str, int]]]
#: Whether any version stored in the viewer's collection was received from a partner node: asked once per page
#: before :data:`Relayed`, which a collection without federated content never needs.
AnythingRelayed = Callable[[], bool]
#: The (producer, markings) pairs and the markings of every version of a column-decided type the viewer's collection
#: stores, when known (core/stored_shapes.py).
StoredShapesOf = Callable[[], Summary | None]


class Elsewhere(Protocol):
    """The node's other collections, which decide an id the viewer's collection does not hold (core/elsewhere.py)."""

    def exist(self) -> bool: ...
    def stamp(self) -> Hashable: ...
    def decide(self, ids: Sequence[str]) -> dict[str, bool]: ...


#: The viewer's collection's change stamp (``Store.collection_change_stamp``), read once per prefetched batch.
ChangeStamp = Callable[[], Hashable]


class Viewer:
    """A principal reading one collection, with its policy compiled for this request.

    ``policy`` None means the local operator, who reads everything (it holds the store
    anyway).  Not thread-safe: one per request.  ``hidden`` and ``redacted`` count what
    was withheld, by reason, for the audit log.
    """

    __slots__ = ("_anything_relayed", "_batch_ids", "_change_stamp", "_endpoints_whole", "_ends", "_kept", "_lookup",
                 "_nothing_relayed", "_parsed", "_relayed_known", "_seen", "_visible_ids", "collection", "elsewhere",
                 "hidden", "policy", "principal", "readable", "redacted", "relayed", "stored_shapes")

    def __init__(
        self, principal: Principal, collection: Collection, policy: ViewerPolicy | None = None,
        lookup: Lookup | None = None, relayed: Relayed | None = None,
        stored_shapes: StoredShapesOf | None = None, anything_relayed: AnythingRelayed | None = None,
        change_stamp: ChangeStamp | None = None, elsewhere: Elsewhere | None = None,
    ) -> None:
        self.principal = principal
        self.collection = collection
        self.readable = principal.can_read(collection)  # asked of every row: a request's grants do not change
        self.policy = policy
        self._lookup = lookup
        #: With a policy: versions received from a partner node that carry TLP:AMBER+STRICT or TLP:RED stop at
        #: the node's own organisation (their recipient), and TLP:AMBER at it and its clients; they are hidden
        #: from everyone else (``policy.relay_floor``).
        self.relayed = relayed
        self._anything_relayed = anything_relayed
        self._change_stamp = change_stamp
        #: The node's other collections, asked of the ids this one does not hold (with a policy; None: not asked).
        self.elsewhere = elsewhere
        #: While a batch is prefetched: the endpoint verdicts kept across pages for the collection as it is now.
        self._kept: dict[str, bool] | None = None
        #: The collection held no version from a partner node when the batch last prefetched was read (None: not
        #: asked yet for this batch; asked only when some row of it or an endpoint may stop here).
        self._nothing_relayed: bool | None = False
        #: Asked once, when the first endpoint is resolved: every (producer, markings) stored in the collection on
        #: the column-decided types, or a superset (core/stored_shapes.py), or None when not known. When the policy
        #: shows each of them whole, no endpoint of a column-decided type can be hidden, and :meth:`resolve` looks
        #: up only endpoints of the other types.
        self.stored_shapes = stored_shapes
        #: (every pair served as stored, every pair whole), for :meth:`_whole_endpoints`
        self._endpoints_whole: tuple[bool, bool] | None = None
        #: (id, version) -> the parsed body, for the batch last prefetched (parsed there, decided in view)
        self._parsed: dict[tuple[str, int], dict[str, Any]] = {}
        #: (id, version) -> (source_ref, target_ref), for the relationships of the batch last prefetched whose
        #: (producer, markings) the viewer sees whole: only their endpoints decide them (kept instead of the parsed
        #: body, which is dropped at once: a page's bodies kept alive make the garbage collector walk them)
        self._ends: dict[tuple[str, int], tuple[str, str]] = {}
        #: (id, version) -> relayed from a partner, for the rows of the batch last prefetched that may stop here
        self._relayed_known: dict[tuple[str, int], bool] = {}
        self._visible_ids: dict[str, bool] = {}
        #: While a batch is prefetched and other collections exist: the ids of its rows (held here, so decided here).
        self._batch_ids: frozenset[str] = frozenset()
        self._seen: dict[tuple[str, int], bool] = {}  # (id, version) -> visible, for version selection
        self.hidden: Counter[str] = Counter()
        self.redacted: Counter[str] = Counter()

    # -- "is this referenced object visible?" (same collection; absent = not hidden) ------------
    def is_visible(self, object_id: str) -> bool:
        known = self._visible_ids.get(object_id)
        if known is None:
            self.resolve((object_id,))
            known = self._visible_ids.get(object_id, True)
        return known

    def resolve(self, ids: Iterable[str]) -> None:
        """Decide, in one store query, whether each of ``ids`` is visible to this viewer; an id the collection does
        not hold is decided by the node's other collections that hold it (core/elsewhere.py)."""
        wanted = [i for i in dict.fromkeys(ids) if i not in self._visible_ids]
        if not wanted:
            return
        for object_id in wanted:
            self._visible_ids[object_id] = True  # absent from the node: not hidden
        if self._lookup is None or self.policy is None:
            return
        elsewhere = self.elsewhere if self.elsewhere is not None and self.elsewhere.exist() else None
        passed: list[str] = []  # held here or nowhere, unasked: the shortcut below shows them whole if held here
        if self.endpoints_whole():
            # An id names its object's type (validated at ingest, checked by the shapes' scan).
            batch = self._batch_ids
            passed = [i for i in wanted if i.partition("--")[0] not in _UNDECIDED and i not in batch]
            wanted = [i for i in wanted if i.partition("--")[0] in _UNDECIDED]
        kept = self._kept
        if kept is not None:
            known = self._visible_ids
            for object_id in wanted:
                if object_id in kept:
                    known[object_id] = kept[object_id]
            wanted = [i for i in wanted if i not in kept]
        rows = self._lookup(wanted) if wanted else []
        seen: dict[str, bool] = {}
        stopping: list[VersionRow] = []  # visible by their markings, unless received from a partner node
        for row in rows:
            if seen.get(row.stix_id):
                continue
            outcome = _column_outcome(self, self.policy, row)
            visible = (
                outcome is Outcome.VISIBLE if outcome is not None
                else self.policy.decide(orjson.loads(row.body)).visible
            )
            if visible and self._may_be_relayed(row):
                stopping.append(row)
                continue
            seen[row.stix_id] = visible
        if stopping:
            assert self.relayed is not None
            relayed = self.relayed(stopping)
            for row in stopping:
                # as view decides: a relayed version is hidden, and one version seen makes the object visible
                if (row.stix_id, row.version) not in relayed:
                    seen[row.stix_id] = True
                else:
                    seen.setdefault(row.stix_id, False)
        self._visible_ids.update(seen)
        held_elsewhere: set[str] = set()
        if elsewhere is not None:
            held = {row.stix_id for row in rows}
            absent = [i for i in wanted if i not in held]
            if absent or passed:
                held_elsewhere = self._decide_elsewhere(elsewhere, absent, passed)
        if kept is not None:
            # Not kept: an id with a version at or above the relay floor, or held in another collection, whose
            # verdict hangs on provenance too (recorded apart from the version). The kept verdicts are valid for the
            # change stamps of this collection and, while they exist, of the others (``prefetch``).
            floor = self.policy.relay_floor
            apart = {row.stix_id for row in rows if row.markings is not None and stops_onward(row.markings, floor)}
            apart |= held_elsewhere
            known = self._visible_ids
            kept.update((i, known[i]) for i in wanted if i not in apart)

    def _decide_elsewhere(self, elsewhere: Elsewhere, absent: list[str], passed: list[str]) -> set[str]:
        """Hide each of ``absent`` (not held here) and ``passed`` (not asked here) that the node's other collections
        hold and do not show this reader, unless, for ``passed``, this collection holds it. Returns the ids the
        other collections hold."""
        verdicts = elsewhere.decide(absent + passed)
        hidden = {i for i, visible in verdicts.items() if not visible}
        if not hidden:
            return set(verdicts)
        unsure = [i for i in passed if i in hidden]
        if unsure:
            # Held here, it is decided here, and the shortcut shows every such id whole.
            assert self._lookup is not None
            hidden.difference_update(row.stix_id for row in self._lookup(unsure))
        for object_id in hidden:
            self._visible_ids[object_id] = False
        return set(verdicts)

    def _may_be_relayed(self, row: VersionRow) -> bool:
        """Whether ``row`` carries a TLP level that its arrival from a partner node would stop here for this viewer
        (AMBER+STRICT/RED; AMBER too outside this node's organisation and its clients)."""
        assert self.policy is not None
        return (
            self.relayed is not None and row.markings is not None
            and row.created_by_ref != self.principal.organisation_id
            and stops_onward(row.markings, self.policy.relay_floor)
            and not self._relay_impossible()
        )

    def _relay_impossible(self) -> bool:
        """Whether the collection held nothing from a partner node when this batch was read: asked of the store
        once per batch, and only once a row or an endpoint that the relay rule may stop is met."""
        nothing = self._nothing_relayed
        if nothing is None:
            nothing = self._nothing_relayed = self._anything_relayed is not None and not self._anything_relayed()
        return nothing

    def begin_batch(self) -> None:
        """A caller that reads rows in batches without :meth:`prefetch` (core/feed_read.py) has read a new one:
        whether the collection holds anything from a partner node is asked again, when first needed."""
        if self.relayed is not None:
            self._nothing_relayed = None

    def endpoints_whole(self) -> bool:
        """Whether every version stored in the collection, of a type the columns decide, is visible whole to this
        viewer: its (producer, markings) pair is served as stored (``stored_shapes``), or is whole and the relay
        rule has nothing to stop in this batch (the collection holds nothing from a partner node)."""
        as_stored, seen_whole = self._endpoint_verdicts()
        # Not kept across batches: content from a partner node may arrive between two of them.
        return as_stored or (seen_whole and self._relay_impossible())

    def endpoints_as_stored(self) -> bool:
        """Whether every such version's pair is served as stored: :meth:`endpoints_whole` without the relay rule's
        part, so true for as long as the collection's stored shapes and the policy are unchanged."""
        return self._endpoint_verdicts()[0]

    def _endpoint_verdicts(self) -> tuple[bool, bool]:
        """(every stored pair served as stored, every stored pair whole), or (False, False) when not known."""
        whole = self._endpoints_whole
        if whole is None:
            policy = self.policy
            summary = self.stored_shapes() if self.stored_shapes is not None and policy is not None else None
            pairs: Iterable[tuple[str | None, str | None]] | None = None
            if policy is not None and summary is not None:
                key: tuple[str, frozenset[Any]]
                if summary.pairs is not None:
                    key, pairs = ("stored-shapes", summary.pairs), summary.pairs
                else:
                    # Too many pairs to keep: each markings with no producer, the strictest case of it (an agreement
                    # that lists producers covers a version without one only when it covers any producer, and the
                    # viewer's own producers are seen whole), so whole here is whole for every producer.
                    key = ("stored-markings", summary.markings)
                    pairs = [(None, markings) for markings in summary.markings]
            if policy is None or pairs is None:
                whole = (False, False)
            else:
                # Kept beside the pair verdicts (same policy generation): the set is the same object until it grows.
                whole = policy.column_verdicts.get(key)
                if whole is None:
                    # The verdict on a pair is the same for every column-decided type (it is kept per pair).
                    verdicts = [_verdict(policy, VersionRow(0, "", "", 0, "2.1", 0, producer, markings, b""))
                                for producer, markings in pairs]
                    whole = policy.column_verdicts[key] = (
                        all(v.served_as_stored for v in verdicts), all(v.whole for v in verdicts)
                    )
            self._endpoints_whole = whole
        return whole

    def shapes_known(self) -> bool:
        """Whether :meth:`endpoints_as_stored` answered from the collection's stored shapes (not for want of them)."""
        return self.policy is None or (self.stored_shapes is not None and self.stored_shapes() is not None)

    def is_relayed(self, row: VersionRow) -> bool:
        """Whether this node received ``row`` from a partner node other than the reader's (asked only of rows at or
        above the reader's relay floor)."""
        known = self._relayed_known.get((row.stix_id, row.version))
        if known is None:
            if self._relay_impossible():
                return False
            assert self.relayed is not None
            known = (row.stix_id, row.version) in self.relayed((row,))
        return known

    def _prefetch_relayed(self, rows: Sequence[VersionRow]) -> None:
        """Ask the provenance of every row of the batch that the relay rule may stop, in one question."""
        self._relayed_known.clear()
        if self.relayed is None:
            return
        self._nothing_relayed = None  # rows of a new batch: asked again, when first needed
        own, policy = self.principal.organisation_id, self.policy
        assert policy is not None
        verdicts = policy.column_verdicts
        # A pair served as stored carries no TLP:AMBER+STRICT/RED: most rows are passed over on one look-up.
        stopping = (row for row in rows if row.markings is not None
                    and ((verdict := verdicts.get((row.created_by_ref, row.markings))) is None
                         or not verdict.served_as_stored)
                    and row.created_by_ref != own and stops_onward(row.markings, policy.relay_floor)
                    and _column_outcome(self, policy, row) is not Outcome.HIDDEN)
        first = next(stopping, None)
        # Whether the collection holds anything from a partner is asked at the first row that may stop (one
        # indexed look-up): most collections hold nothing, and the rest of the batch is then not weighed at all.
        if first is None or self._relay_impossible():
            return
        asked = [first, *stopping]
        found = self.relayed(asked)
        self._relayed_known = {(row.stix_id, row.version): (row.stix_id, row.version) in found for row in asked}

    def prefetch(self, rows: Sequence[VersionRow]) -> None:
        """Resolve every object the page's relationships, sightings and reports point at, in a few
        queries for the whole page instead of one per referencing row.

        Only rows whose own markings let them through are parsed (and kept parsed for :func:`view`): a row
        its markings hide is hidden whatever it points at.  A relationship the reader sees whole keeps only its
        two endpoints (``_ends``): its body is dropped at once, and :func:`view` serves it as stored when both
        are visible.  An object of the batch itself that the columns
        show visible is known visible without a query (relationships often point at their neighbours)."""
        policy = self.policy
        if policy is None:
            return
        self._prefetch_relayed(rows)
        if self._lookup is None:
            return
        try:
            self._prefetch_references(policy, rows)
        finally:
            self._kept = None  # a look-up outside a batch asks the store: the stamp was read for this batch only
            self._batch_ids = frozenset()

    def _prefetch_references(self, policy: ViewerPolicy, rows: Sequence[VersionRow]) -> None:
        parsed, ends = self._parsed, self._ends
        parsed.clear()
        ends.clear()
        refs: list[str] = []
        verdicts = policy.column_verdicts
        for row in rows:
            kind = row.type
            if kind not in REFERENCING_TYPES:
                if kind in _WHOLE_OBJECT_TYPES or not row.embeds:
                    continue
                if _column_outcome(self, policy, row) is Outcome.HIDDEN:
                    continue
                obj = parsed[(row.stix_id, row.version)] = orjson.loads(row.body)
                refs.extend(_references(obj, 1))
                continue
            verdict = verdicts.get((row.created_by_ref, row.markings))
            if verdict is not None and kind == "relationship" and (
                verdict.served_as_stored or (verdict.whole and self._nothing_relayed is True)
            ):
                obj = orjson.loads(row.body)
                source, target = obj.get("source_ref"), obj.get("target_ref")
                if type(source) is str and type(target) is str:
                    ends[(row.stix_id, row.version)] = (source, target)
                    refs += (source, target)
                    continue
            elif _column_outcome(self, policy, row) is Outcome.HIDDEN:
                continue
            else:
                obj = orjson.loads(row.body)
            parsed[(row.stix_id, row.version)] = obj
            refs.extend(_references(obj, row.embeds))
        if refs and self._change_stamp is not None:
            # Read after the batch: a write since then moves the stamp, and the kept verdicts are not used.
            # While other collections hold anything, the verdicts hang on their stamps too.
            elsewhere = self.elsewhere
            others = elsewhere.stamp() if elsewhere is not None and elsewhere.exist() else None
            self._kept = kept_endpoints(policy.column_verdicts, (self._change_stamp(), others))
            if others is not None:
                self._batch_ids = frozenset(row.stix_id for row in rows)
        if not refs or self.endpoints_whole():
            self.resolve(refs)  # every endpoint of a column-decided type is visible: nothing to weigh here
            return
        neighbours = {row.stix_id: row for row in rows if row.type not in REFERENCING_TYPES}
        known = self._visible_ids
        for ref in refs:
            neighbour = neighbours.get(ref)
            if neighbour is not None and ref not in known and (
                _column_outcome(self, policy, neighbour) is Outcome.VISIBLE and not self._may_be_relayed(neighbour)
            ):
                known[ref] = True  # one version it sees makes the object visible (as resolve decides)
        self.resolve(refs)


def view(viewer: Viewer, row: VersionRow) -> bytes | None:
    """The bytes ``viewer`` may receive for ``row``, or None when it is hidden.

    A hidden row must be indistinguishable from an absent one, so callers drop it
    silently: it is not counted, not paged, and not named in any error.
    """
    if not viewer.readable:
        return None
    policy = viewer.policy
    if policy is None:
        return row.body
    # The bulk of any read-out: a pair the reader sees whole, on a type the columns decide, that no relay rule
    # can stop, or none in this batch (one look-up, as for the node's own organisation).
    verdict = policy.column_verdicts.get((row.created_by_ref, row.markings))
    if verdict is not None and (verdict.served_as_stored or (verdict.whole and viewer._nothing_relayed is True)):
        kind = row.type
        if kind not in _UNDECIDED:
            if not row.embeds:
                return row.body
        elif kind == "relationship":
            # Whole to the reader, so decided VISIBLE: the no-dangling rule alone may hide it. Both endpoints
            # resolved visible with the page (prefetch): what the general path below would serve, unparsed again.
            ends = viewer._ends.get((row.stix_id, row.version))
            if ends is not None:
                known = viewer._visible_ids
                if known.get(ends[0]) is True and known.get(ends[1]) is True and not row.embeds:
                    return row.body
    outcome = _column_outcome(viewer, policy, row)
    if outcome is Outcome.HIDDEN:
        viewer.hidden[_verdict(policy, row).reason] += 1
        return None
    # Provenance costs a store query: it is asked only of rows the markings would otherwise let through.
    if (
        viewer.relayed is not None and row.markings is not None and stops_onward(row.markings, policy.relay_floor)
        and row.created_by_ref != viewer.principal.organisation_id and viewer.is_relayed(row)
    ):
        viewer.hidden["relayed"] += 1
        return None
    if outcome is Outcome.VISIBLE and not row.embeds:
        return row.body
    return _full_view(viewer, policy, row)


def served_as_stored(viewer: Viewer, row_type: str, producer: str | None, markings: str | None) -> bool:
    """Whether :func:`view` serves every version with these columns as stored, but for the references a body may
    embed (decided apart, policy/dangling.py): the fast path at the top of :func:`view`. A reader that knows
    this of a row and serves none of its references need not hold its body (a feed build serves the stored
    facts of such rows, values only, core/feed_read.py). The answer holds for the batch being read
    (``Viewer.begin_batch``)."""
    if not viewer.readable:
        return False
    policy = viewer.policy
    if policy is None:
        return True
    if row_type in _UNDECIDED:
        return False
    verdict = policy.column_verdicts.get((producer, markings))
    if verdict is None:
        verdict = _verdict(policy, VersionRow(0, "", row_type, 0, "2.1", 0, producer, markings, b""))
    # Whole, and at or above the reader's relay floor: as stored while the collection holds nothing from a
    # partner node (asked once per batch: a caller reading in batches calls ``Viewer.begin_batch``).
    return verdict.served_as_stored or (verdict.whole and viewer._relay_impossible())


def sees(viewer: Viewer, row: VersionRow) -> bool:
    """Whether ``viewer`` may see ``row``, without counting it as served or withheld.

    Version selection asks this of an object's other versions to find the first or last one the viewer
    sees; only what is then served (or hidden) goes into the audit counts.
    """
    key = (row.stix_id, row.version)
    known = viewer._seen.get(key)
    if known is None:
        hidden, redacted = viewer.hidden, viewer.redacted
        viewer.hidden, viewer.redacted = Counter(), Counter()
        try:
            known = view(viewer, row) is not None
        finally:
            viewer.hidden, viewer.redacted = hidden, redacted
        viewer._seen[key] = known
    return known


class _Verdict(NamedTuple):
    """What the columns say of every row sharing one (producer, markings) pair."""

    #: The viewer may see every marking the column lists: such a row is visible whole, granular or not.
    whole: bool
    #: The verdict on a row whose markings are all object-level (the column is then exactly those).
    outcome: Outcome
    #: Why it hides, for the audit log ("" when it does not).
    reason: str
    #: ``whole``, and no TLP level that the relay rule may stop per version for this reader: served as stored.
    served_as_stored: bool


def _column_outcome(viewer: Viewer, policy: ViewerPolicy, row: VersionRow) -> Outcome | None:
    """The verdict from the producer and markings columns alone, or None when the body must be read.

    HIDDEN and VISIBLE are final.  A referencing row is only ever HIDDEN here (what it points at decides
    the rest).  A row whose markings the viewer may all see is VISIBLE without looking for granular
    markings in its body: no selector can then be denied."""
    row_type = row.type
    if row_type in _WHOLE_OBJECT_TYPES:
        return None
    verdict = policy.column_verdicts.get((row.created_by_ref, row.markings)) or _verdict(policy, row)
    if verdict.whole:
        return None if row_type in REFERENCING_TYPES else Outcome.VISIBLE
    if row.markings is not None and _GRANULAR in row.body:
        return None  # some marking is denied: it may govern a selector only (redaction) or the object
    outcome = verdict.outcome
    if outcome is Outcome.REDACTED or (outcome is Outcome.VISIBLE and row_type in REFERENCING_TYPES):
        return None
    return outcome


def _verdict(policy: ViewerPolicy, row: VersionRow) -> _Verdict:
    """The verdict on ``row``'s (producer, markings) pair, from the policy's cache (shared by the requests of
    one reader: the pair means the same on every page) or decided now."""
    key = (row.created_by_ref, row.markings)
    cache = policy.column_verdicts
    verdict: _Verdict | None = cache.get(key)
    if verdict is None:
        stub = _stub(row)
        outcome = policy.decide(stub).outcome
        whole = policy.sees_every_marking(stub.get("object_marking_refs", ()), row.created_by_ref)
        verdict = _Verdict(
            whole, outcome, (policy.explain(stub) or "markings") if outcome is Outcome.HIDDEN else "",
            whole and (row.markings is None or not stops_onward(row.markings, policy.relay_floor)),
        )
        if len(cache) >= _COLUMN_VERDICTS:
            cache.clear()
        cache[key] = verdict
    return verdict


def _stub(row: VersionRow) -> dict[str, Any]:
    # Without granular markings the markings column is exactly the object's marking refs,
    # which with the producer is all the decision reads for such a row.
    stub: dict[str, Any] = {"type": row.type}
    if row.created_by_ref is not None:
        stub["created_by_ref"] = row.created_by_ref
    if row.markings is not None:
        stub["object_marking_refs"] = orjson.loads(row.markings)
    return stub


def _full_view(viewer: Viewer, policy: ViewerPolicy, row: VersionRow) -> bytes | None:
    obj = viewer._parsed.get((row.stix_id, row.version))
    prefetched = obj is not None  # its references were resolved with the page's
    if obj is None:
        obj = orjson.loads(row.body)
    decision = policy.decide(obj)
    if decision.outcome is Outcome.HIDDEN:
        viewer.hidden[policy.explain(obj) or "markings"] += 1
        return None
    if row.type in REFERENCING_TYPES or row.embeds:
        if not prefetched:
            viewer.resolve(_references(obj, row.embeds))
        final: Decision = hide_dangling(obj, decision, viewer.is_visible, embeds=bool(row.embeds))
        if final.outcome is Outcome.HIDDEN:
            viewer.hidden["references"] += 1
            return None
        if final is not decision:
            viewer.redacted["references"] += 1
            decision = final
    if decision.outcome is Outcome.VISIBLE:
        return row.body
    if decision.redacted is None:
        return None
    viewer.redacted["granular" if "granular_markings" in obj else "anonymised"] += 1
    return orjson.dumps(decision.redacted)


def _references(obj: dict[str, Any], embeds: int) -> list[str]:
    """Every id ``obj`` names that its reader must be able to see (policy/dangling.py); ``embeds``: its stored
    version's flag (store/embedded.py), without which only the references its type is decided by are looked for."""
    refs = [obj[name] for name in _REF_FIELDS if isinstance(obj.get(name), str)]
    for name in _REF_LISTS:
        value = obj.get(name)
        if isinstance(value, list):
            refs.extend(ref for ref in value if isinstance(ref, str))
    if embeds:
        refs.extend(ref for _, ref in embedded_references(obj, DECIDING_REFS.get(str(obj.get("type")), frozenset())))
    return refs




def group_verdict(
    viewer: Viewer, row_type: str, producer: str | None, markings: str | None, relayed: bool,
) -> tuple[bool, bool] | None:
    """What :func:`view` decides for every version sharing these columns, for counting them without
    reading them: (visible, producer anonymised), or None when each version must go through ``view``
    (types whose visibility depends on references or on the whole object).

    A version with granular markings is decided here as if each of its markings covered the whole object,
    which is stricter than ``view`` (a redacted form would be served): a count may leave such a version
    out, it never includes one the viewer cannot see. The dashboard therefore groups versions with granular
    markings apart and passes each through ``view`` (store/received_groups.py).
    """
    if not viewer.readable:
        return (False, False)
    policy = viewer.policy
    if policy is None:
        return (True, False)
    if row_type in REFERENCING_TYPES or row_type in _WHOLE_OBJECT_TYPES or row_type in HIDDEN_BY_REFERENCES:
        return None
    stub = VersionRow(0, "", row_type, 0, "2.1", 0, producer, markings, b"")
    outcome = _column_outcome(viewer, policy, stub)
    if outcome is Outcome.HIDDEN:
        return (False, False)
    if (relayed and markings is not None and stops_onward(markings, policy.relay_floor)
            and producer != viewer.principal.organisation_id):
        return (False, False)
    # Without granular markings the only redaction left is the anonymised producer.
    return (True, outcome is None)
