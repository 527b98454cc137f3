"""Adding objects to a collection: validate each, store the valid ones, report all.

One bad object never sinks its envelope: it is listed in the status resource's
``failures`` with a reason a person can act on, and the others are stored.  An exact
duplicate of a stored version is a success.  Nothing is half-written: the valid
objects of an envelope commit together or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import orjson

from kizuna.core import metrics
from kizuna.core.errors import BadRequest, Unprocessable
from kizuna.core.forked import in_order
from kizuna.core.policy_source import PolicySource
from kizuna.policy import Normalisation, TlpAliasTable, shipped_objects
from kizuna.policy.tlp import KNOWN_ALIAS_IDS, LEVEL_BY_OASIS_ID, TLP2_EXTENSION_ID, tlp2_marking_definition
from kizuna.stix.jsonio import loads_exact, unwritable_reason
from kizuna.stix.timestamps import format_timestamp, now_micros, parse_timestamp_recent
from kizuna.stix.validation import check_object
from kizuna.store.base import AddResult, NewVersion, Outcome, Store, VersionQuery, VersionSelector
from kizuna.store.feed_facts import facts_of_object
from kizuna.store.object_refs import references_of_object
from kizuna.store.search_index import text_of_object

_DUPLICATE_MESSAGE = "already stored with identical content"
_REDEFINED_MESSAGE = (
    "a different marking-definition with this id is already known to this node; marking "
    "definitions cannot be versioned, so publish the new definition under a new id"
)
_SHIPPED = {obj["id"]: obj for obj in shipped_objects()}
#: Normalisations kept per report for the audit log; a bulk import may do millions.
_NOTES_KEPT = 1000
_CONFLICT_MESSAGE = (
    "a different object with this id and modified is already stored; STIX versions are "
    "immutable, so publish the change with a later modified"
)


#: Told of the objects each ingest batch added to a collection, once they are stored, inside the batch's
#: transaction (the caller's when one is open, as for a TAXII post or a sync page), so a listener's writes
#: commit with the batch: ``(store, collection pk, [(object as stored, its date_added)])``, oldest first.
#: Registered on the node by rooms above core (the operations room judges its watchlist here,
#: ops/arrivals.py) so core never imports them; a listener must not assume it sees every object (a process
#: may run without it, or die between a batch and its listener) and must not raise.
IngestListener = Callable[[Store, int, list[tuple[dict[str, Any], int]]], None]


@dataclass(slots=True)
class IngestReport:
    """The content of a TAXII status resource for one add-objects request."""

    id: str
    request_timestamp: int
    total: int = 0
    success_count: int = 0
    #: Of the successes, how many were already stored with identical content.
    duplicate_count: int = 0
    #: Objects the node stored on its own account (the OASIS TLP definitions the input refers to).
    node_added: int = 0
    #: The ids of those, until the input's own copy of one arrives: that copy is then the input's, stored (not
    #: "already stored" on a collection that held none of it), and the node no longer counts it.
    placed_by_node: set[str] = field(default_factory=set)
    keep_successes: bool = True  # a bulk import keeps counts only, so memory stays bounded
    successes: list[dict[str, str]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    failure_positions: list[int] = field(default_factory=list)  # index of each failure in the input
    normalisations: list[Normalisation] = field(default_factory=list)
    normalisation_count: int = 0
    #: With ``keep_results``: (input position, stored form, outcome) of every valid object, for callers
    #: that record something per version in the same transaction (federation provenance).
    results: list[tuple[int, NewVersion, AddResult]] | None = None

    def succeeded(self, entry: dict[str, str]) -> None:
        self.success_count += 1
        if self.keep_successes:
            self.successes.append(entry)

    def failed(self, position: int, entry: dict[str, str]) -> None:
        self.failures.append(entry)
        self.failure_positions.append(position)

    def mask_hidden(self, hidden: Callable[[list[tuple[str, str]]], set[tuple[str, str]]]) -> int:
        """Answer for each stored version the writer may not see (``hidden``: of some (id, version), those) as
        for an absent one: a conflict with it or a duplicate of it is a plain success, so a write cannot probe for
        hidden versions (STIX 2.1 §3.6: one id and modified are one version, and the node holds it). How many
        were masked."""
        def said(entry: dict[str, str], message: str) -> bool:
            return entry.get("message", "").startswith(message)

        asked = [(e["id"], e["version"]) for e in self.failures if said(e, _CONFLICT_MESSAGE)]
        asked += [(e["id"], e["version"]) for e in self.successes if said(e, _DUPLICATE_MESSAGE)]
        masked = hidden(asked) if asked else set()
        if not masked:
            return 0

        def plain(entry: dict[str, str], message: str) -> dict[str, str]:
            """The entry as an absent id's success: what ``message`` said of the stored version gone, notes kept."""
            notes = entry["message"][len(message):].lstrip("; ")
            return {"id": entry["id"], "version": entry["version"], **({"message": notes} if notes else {})}

        def masks(entry: dict[str, str], message: str) -> bool:
            return said(entry, message) and (entry["id"], entry["version"]) in masked

        failures: list[dict[str, str]] = []
        positions: list[int] = []
        conflicts: list[dict[str, str]] = []
        for entry, position in zip(self.failures, self.failure_positions, strict=True):
            if masks(entry, _CONFLICT_MESSAGE):
                conflicts.append(entry)
            else:
                failures.append(entry)
                positions.append(position)
        self.failures, self.failure_positions = failures, positions
        duplicates = [i for i, entry in enumerate(self.successes) if masks(entry, _DUPLICATE_MESSAGE)]
        for i in duplicates:
            self.successes[i] = plain(self.successes[i], _DUPLICATE_MESSAGE)
        self.duplicate_count -= len(duplicates)
        for entry in conflicts:
            self.succeeded(plain(entry, _CONFLICT_MESSAGE))
        return len(conflicts) + len(duplicates)

    def to_taxii(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "id": self.id,
            "status": "complete",
            "request_timestamp": format_timestamp(self.request_timestamp),
            "total_count": self.total,
            "success_count": self.success_count,
            "failure_count": len(self.failures),
            "pending_count": 0,
        }
        if self.successes:
            status["successes"] = self.successes
        if self.failures:
            status["failures"] = self.failures
        return status


def parse_envelope(body: bytes) -> list[Any]:
    """The ``objects`` of a TAXII envelope (or a STIX bundle) sent by a client."""
    try:
        envelope = loads_exact(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise Unprocessable("the request body must be a TAXII envelope: a JSON object with an 'objects' list")
    objects = envelope.get("objects", [])
    if not isinstance(objects, list):
        raise Unprocessable("'objects' in the envelope must be a list of STIX objects")
    return objects


def _version_text(obj: Any) -> str:
    if isinstance(obj, dict):
        value = obj.get("modified", obj.get("created"))
        if isinstance(value, str):
            return value
    return ""


def _marking_ids(obj: dict[str, Any]) -> str | None:
    refs = list(obj.get("object_marking_refs", ()))
    for granular in obj.get("granular_markings", ()):
        ref = granular.get("marking_ref")
        if ref is not None:
            refs.append(ref)
    return orjson.dumps(sorted(set(refs))).decode() if refs else None


def prepare(obj: Any) -> NewVersion | str:
    """A storable version of ``obj``, or the reason it cannot be stored."""
    problem = check_object(obj)
    if problem is not None:
        return problem
    try:
        body = orjson.dumps(obj)
    except orjson.JSONEncodeError:  # parsed, but too deep or holding too large an integer to be written
        return unwritable_reason(obj)
    stamp = obj.get("modified", obj.get("created"))
    spec_version = obj.get("spec_version", "2.1")
    created_by = obj.get("created_by_ref")
    return NewVersion(
        stix_id=obj["id"],
        type=obj["type"],
        version=parse_timestamp_recent(stamp) if stamp is not None else None,
        spec_version=spec_version,
        created_by_ref=created_by,
        markings=_marking_ids(obj) if ("object_marking_refs" in obj or "granular_markings" in obj) else None,
        body=body,
        # Taken from the parsed object now, so indexing the stored version does not parse its body again.
        text=text_of_object(obj),
        feed=facts_of_object(obj),
        refs=references_of_object(obj),
    )


def prepared_ahead(objects: Sequence[Any], workers: int,
                   batch_size: int = 1000) -> Generator[list[NewVersion | str], None, None]:
    """What `prepare` makes of each batch of ``objects``, batch by batch, worked out by ``workers`` forked
    processes (core/forked.py) while the caller stores the batches before: for `ingest`'s ``prepared``.

    Validating, serialising and indexing an object's text took about a third of a CSV import's time in the
    importing process; a prepared version comes back through a pipe for less than half of what preparing it
    costs (bench/README.md).
    For a command (core/forked.py says why the store's threads do not matter), not a server."""
    batches = (len(objects) + batch_size - 1) // batch_size
    return in_order(lambda n: [prepare(o) for o in objects[n * batch_size:(n + 1) * batch_size]], batches, workers)


def ingest(
    store: Store, collection_pk: int, objects: Iterable[Any], batch_size: int = 1000,
    keep_successes: bool = True, policy: PolicySource | None = None, keep_results: bool = False,
    listeners: Sequence[IngestListener] = (),
    prepared: Iterator[list[NewVersion | str]] | None = None,
) -> IngestReport:
    """Store ``objects`` in a collection and report on each one.

    With ``policy`` (every node path), TLP aliases are rewritten to the OASIS ids first,
    marking definitions are registered node-wide, and the TLP definitions an object refers
    to are placed in the collection so clients can resolve them. ``prepared``: for each batch of
    ``batch_size`` objects in turn, what `prepare` makes of each, worked out ahead (`prepared_ahead`); an
    object the TLP rewriting changed is prepared again here.
    """
    report = IngestReport(
        id=str(uuid.uuid4()), request_timestamp=now_micros(), keep_successes=keep_successes,
        results=[] if keep_results else None,
    )
    table = policy.alias_table() if policy is not None else None
    learnt_before = table.aliases() if table is not None else {}
    present: set[str] = set()
    for batch in _batches(objects, batch_size):
        notes: dict[int, list[Normalisation]] = {}
        if table is not None:
            batch, notes = _normalise_batch(batch, table)
        ahead = next(prepared) if prepared is not None else None
        _ingest_batch(store, collection_pk, batch, report, notes, policy, present, listeners, ahead)
    if table is not None:
        learnt = [(i, int(level)) for i, level in table.aliases().items()
                  if i not in KNOWN_ALIAS_IDS and learnt_before.get(i) != level]
        store.add_tlp_aliases(learnt)
    metrics.objects_ingested(report.success_count, len(report.failures))
    return report


def _normalise_batch(
    objects: list[Any], table: TlpAliasTable
) -> tuple[list[Any], dict[int, list[Normalisation]]]:
    """Rewrite TLP aliases object by object, so positions (and the status counts) stay as sent."""
    for obj in objects:
        if isinstance(obj, dict) and obj.get("type") == "marking-definition" and isinstance(obj.get("id"), str):
            table.learn(obj)
    out: list[Any] = []
    notes: dict[int, list[Normalisation]] = {}
    for position, obj in enumerate(objects):
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not (
            "object_marking_refs" in obj or "granular_markings" in obj or "labels" in obj
            or obj.get("type") == "marking-definition"
        ):
            out.append(obj)  # nothing that could name a TLP alias
            continue
        if obj.get("type") == "marking-definition":
            replaced, record = table.replace_marking_definition(obj)
            if record is not None:
                out.append(replaced)
                notes[position] = [record]
                continue
            level = LEVEL_BY_OASIS_ID.get(obj["id"])
            if level is not None:
                canonical = tlp2_marking_definition(level)
                if obj != canonical:
                    # The OASIS ids name fixed objects; a differing copy is replaced, never believed.
                    notes[position] = [Normalisation(obj["id"], "*", "non-canonical content", obj["id"],
                                                     "OASIS TLP 2.0 marking replaced by the canonical object")]
                out.append(canonical)
                continue
        normalised, records = table.normalise_object(obj)
        if records:
            out.append(normalised)
            notes[position] = records
        else:
            out.append(obj)
    return out, notes


def _note_text(records: list[Normalisation]) -> str:
    return "; ".join(f"TLP normalised: {r.field} {r.old} -> {r.new} ({r.reason})" for r in records)


def _batches(objects: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for obj in objects:
        batch.append(obj)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _ingest_batch(
    store: Store, collection_pk: int, objects: list[Any], report: IngestReport,
    notes: dict[int, list[Normalisation]], policy: PolicySource | None, present: set[str],
    listeners: Sequence[IngestListener] = (), ahead: list[NewVersion | str] | None = None,
) -> None:
    offset = report.total
    report.total += len(objects)
    ready: list[NewVersion] = []
    positions: list[int] = []
    context = policy.context() if policy is not None else None
    for position, obj in enumerate(objects, offset):
        records = notes.get(position - offset)
        if records:
            report.normalisation_count += len(records)
            room = _NOTES_KEPT - len(report.normalisations)
            report.normalisations.extend(records[:max(room, 0)])
        prepared = ahead[position - offset] if ahead is not None and not records else prepare(obj)
        if (
            context is not None and not isinstance(prepared, str) and prepared.type == "marking-definition"
            and prepared.stix_id not in LEVEL_BY_OASIS_ID
        ):
            known = context.marking_definition(prepared.stix_id)
            if known is not None and known != obj:
                prepared = _REDEFINED_MESSAGE
        if isinstance(prepared, str):
            object_id = obj.get("id") if isinstance(obj, dict) else None
            report.failed(position, {
                "id": object_id if isinstance(object_id, str) else "",
                "version": _version_text(obj),
                "message": prepared,
            })
        else:
            ready.append(prepared)
            positions.append(position)
    if policy is not None:
        placed = _place_shipped_definitions(store, collection_pk, ready, present)
        report.node_added += len(placed)
        report.placed_by_node.update(placed)
    # With listeners, their writes commit with the batch: one commit instead of two for a bulk import (a
    # TAXII post already holds one transaction), and never a batch stored without its listeners' rows.
    with store.atomic() if listeners else nullcontext():
        results = store.add_versions(collection_pk, ready)
        if listeners:
            added = [(objects[position - offset], result.date_added)
                     for position, result in zip(positions, results, strict=True)
                     if result.outcome is Outcome.ADDED and result.date_added is not None]
            for listener in listeners if added else ():
                listener(store, collection_pk, added)
    if policy is not None:
        store.register_marking_definitions(
            [(new.stix_id, new.body) for new, result in zip(ready, results, strict=True)
             if new.type == "marking-definition" and result.outcome is not Outcome.CONFLICT
             and new.stix_id not in LEVEL_BY_OASIS_ID],
            now_micros(),
        )
    if report.results is not None:
        report.results.extend(zip(positions, ready, results, strict=True))
    for new, position, result in zip(ready, positions, results, strict=True):
        # The status names each version as the object itself does; SCOs by their date_added.
        version_text = _version_text(objects[position - offset]) or format_timestamp(result.version)
        sent = objects[position - offset]
        sent_id = sent.get("id") if isinstance(sent, dict) else None
        entry = {"id": sent_id if isinstance(sent_id, str) else new.stix_id, "version": version_text}
        messages = [_note_text(notes[position - offset])] if notes.get(position - offset) else []
        if result.outcome is Outcome.ADDED:
            if messages:
                entry["message"] = "; ".join(messages)
            report.succeeded(entry)
        elif result.outcome is Outcome.DUPLICATE and new.stix_id in report.placed_by_node:
            report.placed_by_node.discard(new.stix_id)  # a second copy in the input is a duplicate again
            report.node_added -= 1
            if messages:
                entry["message"] = "; ".join(messages)
            report.succeeded(entry)
        elif result.outcome is Outcome.DUPLICATE:
            entry["message"] = "; ".join([_DUPLICATE_MESSAGE, *messages])
            report.duplicate_count += 1
            report.succeeded(entry)
        else:
            entry["message"] = "; ".join([_CONFLICT_MESSAGE, *messages])
            report.failed(position, entry)


def _place_shipped_definitions(
    store: Store, collection_pk: int, ready: list[NewVersion], present: set[str]
) -> list[str]:
    """Store the OASIS TLP definitions (all five, and their extension) when the batch refers to one, if
    missing; returns the ids of those added.

    They go in before the objects that use them, so a client reading in date_added order can
    always resolve a marking reference.
    """
    needed: set[str] = set()
    for new in ready:
        if new.markings is not None:
            needed.update(ref for ref in orjson.loads(new.markings) if ref in LEVEL_BY_OASIS_ID)
        if new.stix_id in LEVEL_BY_OASIS_ID:
            needed.add(new.stix_id)
    if needed:
        # All five levels at once, with their extension: a definition placed only when the first object of its
        # level arrived told every reader when an object it may not see (TLP:RED, say) came into the collection.
        needed = {*LEVEL_BY_OASIS_ID, TLP2_EXTENSION_ID}
    needed -= present
    if not needed:
        return []
    found = store.query_versions(VersionQuery(
        collection_pk=collection_pk, ids=tuple(sorted(needed)), versions=VersionSelector(all=True), limit=100,
    ))
    have = {row.stix_id for row in found}
    present.update(have)
    missing = [_SHIPPED[i] for i in sorted(needed - have, key=lambda i: i != TLP2_EXTENSION_ID)]
    prepared = [p for p in map(prepare, missing) if not isinstance(p, str)]
    added = store.add_versions(collection_pk, prepared)
    present.update(needed)
    return [new.stix_id for new, result in zip(prepared, added, strict=True) if result.outcome is Outcome.ADDED]
