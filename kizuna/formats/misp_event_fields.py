"""The MISP event fields STIX has no property for, carried on the event's report through a Kizuna extension.

misp-stix writes an event as a report (a grouping when unpublished) with its ``info``, timestamps, tags
and galaxies, but the event's threat level, analysis state and date have no STIX property and were
dropped: a MISP event that went through Kizuna came back "undefined", "initial" and dated the day of its
re-import. Kizuna puts them on the report as a property extension (``extension-definition--d4accb11-…``,
"Kizuna MISP event") with MISP's own field names and values, and a MISP export puts them back on the event
made of that report. Values are kept as MISP wrote them (``threat_level_id`` "1" high … "4" undefined,
``analysis`` "0" initial … "2" complete, ``date`` YYYY-MM-DD), so nothing is re-interpreted on the way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from kizuna.policy.releasability import KIZUNA_IDENTITY_ID, kizuna_identity

MISP_EVENT_EXTENSION_ID: Final = "extension-definition--d4accb11-e340-4fd0-b287-60786da951cb"
#: The event fields carried, in the order MISP lists them.
CARRIED_FIELDS: Final = ("date", "threat_level_id", "analysis")
_STAMP = "2026-12-06T00:00:00.000Z"


def kizuna_property_extension(extension_id: str, name: str, description: str, schema: str,
                              version: str = "1.0.0", modified: str = _STAMP) -> dict[str, Any]:
    """A property-extension definition published by the Kizuna project; a later ``version`` of one is a new STIX
    version of its object (a later ``modified``)."""
    return {
        "type": "extension-definition", "spec_version": "2.1", "id": extension_id,
        "created_by_ref": KIZUNA_IDENTITY_ID, "created": _STAMP, "modified": modified,
        "name": name, "description": description, "schema": schema,
        "version": version, "extension_types": ["property-extension"],
    }


def misp_event_extension_definition() -> dict[str, Any]:
    """The extension-definition every report carrying MISP event fields names (stored with the import)."""
    return kizuna_property_extension(
        MISP_EVENT_EXTENSION_ID, "Kizuna MISP event",
        "The fields of a MISP event that STIX 2.1 has no property for, on the report (or grouping) made of the "
        "event, so that a MISP export gives them back.",
        "Property extension on report and grouping. Properties: extension_type = \"property-extension\" "
        "(required); date: the event's date, YYYY-MM-DD; threat_level_id: \"1\" high, \"2\" medium, \"3\" low, "
        "\"4\" undefined; analysis: \"0\" initial, \"1\" ongoing, \"2\" complete. Each is a string as MISP "
        "writes it, omitted when the event has none.",
    )


def event_fields(event: Mapping[str, Any]) -> dict[str, str]:
    """The carried fields an event has, as the strings MISP writes (numbers as their text)."""
    fields = {}
    for name in CARRIED_FIELDS:
        value = event.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value) != "":
            fields[name] = str(value)
    return fields


def attach(objects: list[dict[str, Any]], event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Put ``event``'s carried fields on the report or grouping misp-stix made of it (its id holds the event
    uuid); returns the objects to store beside them (the extension-definition and its publisher), or none."""
    fields = event_fields(event)
    if not fields:
        return []
    wanted = {f"report--{event['uuid']}", f"grouping--{event['uuid']}"}
    for obj in objects:
        if obj["id"] in wanted:
            extensions = dict(obj.get("extensions") or {})
            extensions[MISP_EVENT_EXTENSION_ID] = {"extension_type": "property-extension", **fields}
            obj["extensions"] = extensions
            return [kizuna_identity(), misp_event_extension_definition()]
    return []


def restore(event: dict[str, Any], containers: Iterable[Mapping[str, Any]]) -> None:
    """Set the carried fields on a MISP ``event`` from the report or grouping it was made of: the one with the
    event's uuid, else the only container that carries them."""
    carrying = [c for c in containers
                if isinstance((c.get("extensions") or {}).get(MISP_EVENT_EXTENSION_ID), Mapping)]
    own = [c for c in carrying if str(c["id"]).partition("--")[2] == str(event.get("uuid"))]
    chosen = own or (carrying if len(carrying) == 1 else [])
    if not chosen:
        return
    fields = chosen[0]["extensions"][MISP_EVENT_EXTENSION_ID]
    for name in CARRIED_FIELDS:
        value = fields.get(name)
        if isinstance(value, str) and value:
            event[name] = value
