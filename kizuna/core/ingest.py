"""Adding objects to a collection: validate each, store the valid ones, report all.

One bad object never sinks its envelope: it is listed in the status resource's
``failures`` with a reason a person can act on, and the others are stored.  An exact
duplicate of a stored version is a success.  Nothing is half-written: the valid
objects of an envelope commit together or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from kizuna.core.errors import BadRequest, Unprocessable
from kizuna.stix.jsonio import loads_exact
from kizuna.stix.timestamps import format_timestamp, now_micros, parse_timestamp
from kizuna.stix.validation import check_object
from kizuna.store.base import NewVersion, Outcome, Store

_DUPLICATE_MESSAGE = "already stored with identical content"
_CONFLICT_MESSAGE = (
    "a different object with this id and modified is already stored; STIX versions are "
    "immutable, so publish the change with a later modified"
)


@dataclass(slots=True)
class IngestReport:
    """The content of a TAXII status resource for one add-objects request."""

    id: str
    request_timestamp: int
    total: int = 0
    success_count: int = 0
    keep_successes: bool = True  # a bulk import keeps counts only, so memory stays bounded
    successes: list[dict[str, str]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    failure_positions: list[int] = field(default_factory=list)  # index of each failure in the input

    def succeeded(self, entry: dict[str, str]) -> None:
        self.success_count += 1
        if self.keep_successes:
            self.successes.append(entry)

    def failed(self, position: int, entry: dict[str, str]) -> None:
        self.failures.append(entry)
        self.failure_positions.append(position)

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
    except orjson.JSONEncodeError:
        return "contains an integer outside the 64-bit range, which cannot be stored or exchanged exactly"
    stamp = obj.get("modified", obj.get("created"))
    spec_version = obj.get("spec_version", "2.1")
    created_by = obj.get("created_by_ref")
    return NewVersion(
        stix_id=obj["id"],
        type=obj["type"],
        version=parse_timestamp(stamp) if stamp is not None else None,
        spec_version=spec_version,
        created_by_ref=created_by,
        markings=_marking_ids(obj) if ("object_marking_refs" in obj or "granular_markings" in obj) else None,
        body=body,
    )


def ingest(
    store: Store, collection_pk: int, objects: Iterable[Any], batch_size: int = 1000,
    keep_successes: bool = True,
) -> IngestReport:
    """Store ``objects`` in a collection and report on each one."""
    report = IngestReport(
        id=str(uuid.uuid4()), request_timestamp=now_micros(), keep_successes=keep_successes
    )
    for batch in _batches(objects, batch_size):
        _ingest_batch(store, collection_pk, batch, report)
    return report


def _batches(objects: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for obj in objects:
        batch.append(obj)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _ingest_batch(store: Store, collection_pk: int, objects: list[Any], report: IngestReport) -> None:
    offset = report.total
    report.total += len(objects)
    ready: list[NewVersion] = []
    positions: list[int] = []
    for position, obj in enumerate(objects, offset):
        prepared = prepare(obj)
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
    results = store.add_versions(collection_pk, ready)
    for new, position, result in zip(ready, positions, results, strict=True):
        # The status names each version as the object itself does; SCOs by their date_added.
        version_text = _version_text(objects[position - offset]) or format_timestamp(result.version)
        entry = {"id": new.stix_id, "version": version_text}
        if result.outcome is Outcome.ADDED:
            report.succeeded(entry)
        elif result.outcome is Outcome.DUPLICATE:
            entry["message"] = _DUPLICATE_MESSAGE
            report.succeeded(entry)
        else:
            entry["message"] = _CONFLICT_MESSAGE
            report.failed(position, entry)
