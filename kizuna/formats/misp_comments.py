"""MISP attribute comments that STIX has no place for, carried through a Kizuna extension.

misp-stix writes the comment of a ``to_ids`` attribute as its indicator's description, but an attribute
without ``to_ids`` becomes an observed-data, which has no description, and the attributes of a MISP object
become one STIX object between them: their comments were dropped (98 of the losses of the 14 real CIRCL
events in the tests, the most common loss). Kizuna keeps each on the STIX object made of the attribute, or of
its MISP object, as a property extension (``extension-definition--c55df225-…``, "Kizuna MISP comments":
``{"comments": {"<attribute uuid>": "<comment>"}}``), and a MISP export writes each back on its attribute.

misp-stix's parsers from STIX give the attributes of a MISP object new uuids, so since version 1.1.0 of the
extension a commented attribute of an object is also named by its ``object_relation`` and value
(``"attributes": {"<attribute uuid>": ["<object_relation>", "<value>"]}``): the export finds it by them in the
object made again, and gives it back its uuid with its comment. A node reading its own export back then finds
the object it stored, not a changed version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from kizuna.formats.misp_event_fields import kizuna_property_extension
from kizuna.formats.misp_record_fixes import event_records
from kizuna.policy.releasability import kizuna_identity
from kizuna.stix.vocab import SDO_TYPES

MISP_COMMENTS_EXTENSION_ID: Final = "extension-definition--c55df225-d984-42df-9746-7dca14569d04"
#: Which STIX object made of a record carries its comments, best first (misp-stix names each with the uuid).
_PREFERRED: Final = ("indicator", "observed-data", "x-misp-attribute", "x-misp-object")


def misp_comments_extension_definition() -> dict[str, Any]:
    """The extension-definition every object carrying MISP comments names (stored with the import)."""
    return kizuna_property_extension(
        MISP_COMMENTS_EXTENSION_ID, "Kizuna MISP comments",
        "The comments of MISP attributes that the STIX made of them has no property for (an observed-data has no "
        "description; the attributes of a MISP object share one STIX object), so that a MISP export gives them "
        "back.",
        "Property extension on the STIX object made of a MISP attribute or object. Properties: extension_type = "
        "\"property-extension\" (required); comments (required): an object whose keys are MISP attribute uuids and "
        "whose values are those attributes' comments; attributes (optional): an object whose keys are uuids of "
        "commented attributes of a MISP object and whose values are [object_relation, value] of each, by which an "
        "export finds the attribute again when a converter gave it a new uuid.",
        version="1.1.0", modified="2026-12-07T00:00:00.000Z",
    )


def _carrier(by_uuid: Mapping[str, list[dict[str, Any]]], record_uuid: str) -> dict[str, Any] | None:
    made = [o for o in by_uuid.get(record_uuid, ()) if o["type"] in SDO_TYPES or o["type"].startswith("x-misp-")]
    made.sort(key=lambda o: _PREFERRED.index(o["type"]) if o["type"] in _PREFERRED else len(_PREFERRED))
    return made[0] if made else None


def _located(attribute: Mapping[str, Any]) -> tuple[str, str]:
    """An object attribute's (object_relation, value), a ``datetime`` value in one form: PyMISP writes
    "2019-02-22 20:12:18" back as "2019-02-22T20:12:18+00:00"."""
    value = str(attribute.get("value"))
    if attribute.get("type") == "datetime":
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            value = (stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    return str(attribute.get("object_relation")), value


def _comments(event: Mapping[str, Any]) -> Iterable[tuple[str, str, str, list[str] | None]]:
    """(uuid of the record whose STIX object carries it, attribute uuid, comment, and for an attribute of a MISP
    object its [object_relation, value]) of every commented attribute."""
    for attribute in event.get("Attribute") or ():
        if isinstance(attribute, Mapping) and attribute.get("comment"):
            yield str(attribute.get("uuid")), str(attribute.get("uuid")), str(attribute["comment"]), None
    for misp_object in event.get("Object") or ():
        for attribute in (misp_object.get("Attribute") or ()) if isinstance(misp_object, Mapping) else ():
            if isinstance(attribute, Mapping) and attribute.get("comment"):
                yield (str(misp_object.get("uuid")), str(attribute.get("uuid")), str(attribute["comment"]),
                       list(_located(attribute)))


def carry(produced: list[dict[str, Any]], event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Put on ``produced`` (misp-stix's objects of ``event``, changed in place) each attribute comment that none
    of them holds as its description; returns the objects to store beside them (the extension-definition and
    its publisher), or none."""
    by_uuid: dict[str, list[dict[str, Any]]] = {}
    for obj in produced:
        by_uuid.setdefault(str(obj["id"]).partition("--")[2], []).append(obj)
    carried = False
    for record_uuid, attribute_uuid, comment, located in _comments(event):
        carrier = _carrier(by_uuid, record_uuid)
        if carrier is None or carrier.get("description") == comment:
            continue
        extensions = carrier.setdefault("extensions", {})
        entry = extensions.setdefault(MISP_COMMENTS_EXTENSION_ID, {"extension_type": "property-extension",
                                                                   "comments": {}})
        entry["comments"][attribute_uuid] = comment
        if located is not None:
            entry.setdefault("attributes", {})[attribute_uuid] = located
        carried = True
    for obj in produced if carried else ():
        kept: dict[str, Any] = (obj.get("extensions") or {}).get(MISP_COMMENTS_EXTENSION_ID) or {}
        for name in ("comments", "attributes"):
            if name in kept:  # in uuid order: the STIX made again from an export lists attributes in its own order
                kept[name] = dict(sorted(kept[name].items()))
    return [kizuna_identity(), misp_comments_extension_definition()] if carried else []


def restore_comments(event: dict[str, Any], objects: Iterable[Mapping[str, Any]]) -> None:
    """Write back, on the MISP attributes of an exported ``event``, each comment the STIX ``objects`` carry for
    them, where the attribute has none; an attribute of a MISP object found by its object_relation and value
    first gets back its uuid."""
    comments: dict[str, str] = {}
    located: dict[str, dict[tuple[str, str], str]] = {}  # object uuid -> (relation, value) -> attribute uuid
    for obj in objects:
        entry = (obj.get("extensions") or {}).get(MISP_COMMENTS_EXTENSION_ID)
        if not isinstance(entry, Mapping) or not isinstance(entry.get("comments"), Mapping):
            continue
        comments.update({str(k): v for k, v in entry["comments"].items() if isinstance(v, str)})
        attributes = entry.get("attributes")
        for attribute_uuid, where in attributes.items() if isinstance(attributes, Mapping) else ():
            if isinstance(where, list) and len(where) == 2:
                owner = located.setdefault(str(obj["id"]).partition("--")[2], {})
                owner[(str(where[0]), str(where[1]))] = str(attribute_uuid)
    if not comments:
        return
    for misp_object in event.get("Object") or () if located else ():
        found = located.get(str(misp_object.get("uuid")), {})
        for attribute in misp_object.get("Attribute") or () if found else ():
            uuid = found.get(_located(attribute))
            if uuid is not None:
                attribute["uuid"] = uuid
    for record in event_records(event):
        comment = comments.get(str(record.get("uuid")))
        if comment is not None and not record.get("comment"):
            record["comment"] = comment
