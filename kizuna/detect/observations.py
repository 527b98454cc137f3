"""Observations: what patterns are matched against.

An observation is one observed-data object with its cyber-observable objects, its time interval and
how many times it was seen. Log events become observations through mappings (see mappings.py). Names
and addresses are read in the form a pattern's constants are compiled in (canonical.py), as a mapping
gives a log's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from kizuna.detect.canonical import canonical_object, canonical_objects
from kizuna.detect.errors import MatchError
from kizuna.detect.values import parse_timestamp

# STIX 2.1 object types that are not cyber-observables; a pattern naming them never matches.
SDO_TYPES = frozenset(
    "attack-pattern bundle campaign course-of-action extension-definition grouping identity incident "
    "indicator infrastructure intrusion-set language-content location malware malware-analysis "
    "marking-definition note observed-data opinion relationship report threat-actor tool sighting "
    "vulnerability".split()
)


@dataclass(slots=True)
class Observation:
    first_observed: datetime
    last_observed: datetime
    objects: Mapping[str, Any]
    count: int = 1
    id: str | None = None
    # STIX 2.1 observations hold their observed-data object among `objects`; its type is not matchable.
    skip_sdo_types: bool = True

    def of_type(self, object_type: str) -> list[Any]:
        if self.skip_sdo_types and object_type in SDO_TYPES:
            return []
        return [
            obj for obj in self.objects.values() if isinstance(obj, dict) and obj.get("type") == object_type
        ]

    def resolve(self, reference: str) -> Any | None:
        return self.objects.get(reference)


def _interval(sdo: Mapping[str, Any]) -> tuple[datetime, datetime, int]:
    try:
        count = sdo["number_observed"]
        first, last = sdo["first_observed"], sdo["last_observed"]
    except KeyError as exc:
        raise MatchError("observed-data needs number_observed, first_observed and last_observed") from exc
    if not isinstance(count, int) or count < 1:
        raise MatchError(f"observed-data with invalid number_observed (must be >= 1): {count}")
    try:
        return parse_timestamp(first), parse_timestamp(last), count
    except (ValueError, TypeError) as exc:
        raise MatchError(f"observed-data with invalid first_observed/last_observed: {exc}") from exc


def observations_from_stix(
    items: Iterable[Mapping[str, Any]],
    stix_version: str = "2.1",
    on_error: Callable[[Mapping[str, Any], str], None] | None = None,
) -> list[Observation]:
    """Build observations from STIX content.

    For 2.1, `items` are bundles and/or bare objects; every observed-data object becomes one
    observation holding the objects named in its `object_refs`. For 2.0, `items` are observed-data
    objects with an embedded `objects` dictionary.

    An observed-data object that cannot be used (say, its `last_observed` is not a timestamp) raises
    MatchError; when `on_error` is given it is called with the object and the reason instead, and
    the object is left out, so one bad object does not cost the others their match.
    """

    def usable(sdo: Mapping[str, Any], build: Callable[[], Observation]) -> Observation | None:
        try:
            return build()
        except MatchError as exc:
            if on_error is None:
                raise
            on_error(sdo, str(exc))
            return None

    out: list[Observation] = []
    if stix_version != "2.1":
        for sdo in items:
            found = usable(sdo, partial(_embedded, sdo))
            if found is not None:
                out.append(found)
        return out
    flat: list[Mapping[str, Any]] = []
    for item in items:
        if item.get("type") == "bundle":
            flat.extend(item.get("objects", []))
        else:
            flat.append(item)
    scos: dict[str, Any] = {}
    observed: list[Mapping[str, Any]] = []
    for obj in flat:
        if obj.get("type") == "observed-data":
            observed.append(obj)
        elif "id" in obj:
            scos[obj["id"]] = obj
    for sdo in observed:
        found = usable(sdo, partial(_referencing, sdo, scos))
        if found is not None:
            out.append(found)
    return out


def _embedded(sdo: Mapping[str, Any]) -> Observation:
    """A STIX 2.0 observed-data with its objects inside."""
    first, last, count = _interval(sdo)
    objects = sdo.get("objects", {})
    if isinstance(objects, Mapping):
        objects = canonical_objects(objects)
    return Observation(first, last, objects, count, sdo.get("id"), skip_sdo_types=False)


def _referencing(sdo: Mapping[str, Any], scos: Mapping[str, Any]) -> Observation:
    """A STIX 2.1 observed-data with the objects it refers to (or, deprecated, embeds)."""
    first, last, count = _interval(sdo)
    if "object_refs" in sdo:
        if not isinstance(sdo["object_refs"], list):
            raise MatchError("observed-data object_refs must be a list of ids")
        objects: dict[str, Any] = {sdo.get("id", "observed-data"): sdo}
        for ref in sdo["object_refs"]:
            if ref in scos:
                objects[ref] = canonical_object(scos[ref])
    elif isinstance(sdo.get("objects"), dict):
        # 2.1 still allows the deprecated embedded form.
        objects = canonical_objects(sdo["objects"])
    else:
        raise MatchError("observed-data needs object_refs")
    return Observation(first, last, objects, count, sdo.get("id"))
