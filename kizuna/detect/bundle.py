"""A self-contained sightings bundle: the sightings plus the indicators and identities they refer to.

A bundle of bare sightings names indicators (`sighting_of_ref`) and identities (`where_sighted_refs`,
`created_by_ref`) that its reader may not hold, so it could not be imported or understood on its
own. `SightingBundle` remembers the indicators and identities met while loading indicators, and
adds to the bundle every one a sighting (or an included indicator, through its `created_by_ref`)
refers to. A reference it cannot satisfy is listed with the reason, for the run's summary.
"""

from __future__ import annotations

import uuid
from typing import Any

from kizuna.stix.timestamps import parse_timestamp

# The identity `kizuna match` records sightings under when there is no node and no --identity.
# Its content is fixed, so every run produces the same (immutable) version of it.
LOCAL_IDENTITY_ID = "identity--" + str(uuid.uuid5(uuid.NAMESPACE_DNS, "kizuna.local"))
LOCAL_IDENTITY: dict[str, Any] = {
    "type": "identity",
    "spec_version": "2.1",
    "id": LOCAL_IDENTITY_ID,
    "created": "2020-01-01T00:00:00.000Z",
    "modified": "2020-01-01T00:00:00.000Z",
    "name": "Kizuna match (no node)",
    "identity_class": "system",
    "description": "Sightings made by `kizuna match` run without a Kizuna node or --identity.",
}


def _version(obj: dict[str, Any]) -> int:
    """`modified` in microseconds; objects without a readable one count as the oldest."""
    try:
        return parse_timestamp(obj.get("modified", obj.get("created", "")))
    except (ValueError, TypeError):
        return -1


class SightingBundle:
    """Collects the objects sightings may refer to; `build` picks the ones they do."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[str, Any]] = {LOCAL_IDENTITY_ID: LOCAL_IDENTITY}

    def remember(self, obj: dict[str, Any]) -> bool:
        """Keep an indicator or identity in case a sighting names it; False if a newer version is known.

        Versions are compared by `modified`, so an older version met later (a collection exports
        every version) does not replace a newer one.
        """
        if obj.get("type") not in ("indicator", "identity") or not isinstance(obj.get("id"), str):
            return True
        known = self._objects.get(obj["id"])
        if known is not None and _version(obj) < _version(known):
            return False
        self._objects[obj["id"]] = obj
        return True

    def build(self, sightings: list[dict[str, Any]], bundle_id: str) -> tuple[dict[str, Any], dict[str, str]]:
        """(bundle, {referenced id: why it is not included})."""
        included: dict[str, dict[str, Any]] = {}
        missing: dict[str, str] = {}

        def include(ref: Any, why: str) -> None:
            if not isinstance(ref, str) or ref in included or ref in missing:
                return
            found = self._objects.get(ref)
            if found is None:
                missing[ref] = why
                return
            included[ref] = found
            include(found.get("created_by_ref"), "the producer of an included indicator was not among the input")

        for sighting in sightings:
            include(sighting.get("sighting_of_ref"), "the indicator was not among the input")
            for ref in [sighting.get("created_by_ref"), *sighting.get("where_sighted_refs", [])]:
                include(ref, "the sighting identity (--identity) was not among the input; add it to the bundle")
        # Identities first, then indicators, then sightings: each object after the ones it names.
        order = {"identity": 0, "indicator": 1}
        objects = sorted(included.values(), key=lambda o: order.get(o["type"], 2)) + sightings
        return {"type": "bundle", "id": bundle_id, "objects": objects}, missing
