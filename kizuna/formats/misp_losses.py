"""The loss report of a MISP import: each field of the source event that is not in the STIX produced.

misp-stix names every STIX object it makes from an attribute or a MISP object with that record's uuid
(``indicator--<uuid>``, ``observed-data--<uuid>``, ``x-misp-attribute--<uuid>`` and the observables an
observed-data refers to), and writes the MISP type, category and tags as labels. So the check is a
comparison per uuid, without converting back: a field survives when its exact value is in the objects
of its record, and is reported (``Loss(ref=<attribute uuid>, field, value, reason)``) otherwise.
Checked per attribute: value (each part of a composite value), type, category, to_ids, comment, tags,
galaxies and attachment data; per object attribute: value, comment, tags, the object's name and its
references to other records; per event: tags and galaxies.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pymisp import MISPAttribute

from kizuna.formats.base import Loss, Rejected
from kizuna.policy.tlp import misp_tag_level
from kizuna.stix.pattern_scan import string_literals
from kizuna.stix.vocab import shared_not_for_detection

_MISSING = "misp-stix made no STIX object for it"
#: A custom x-misp-attribute has no to_ids; reading it back, misp-stix uses the type's MISP default.
_DEFAULT_TO_IDS = {kind: bool(d.get("to_ids")) for kind, d in MISPAttribute().describe_types["sane_defaults"].items()}
#: Object relations misp-stix writes to the same STIX property as another relation, so that reading the
#: STIX back gives the other one (found by round-tripping the real CIRCL events; see the tests).
_MERGED_RELATIONS = {("ip-port", "ip"): "ip-dst"}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)  # MISP keeps numbers as strings; STIX writes sizes and ports as integers
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


class _Group:
    """Everything misp-stix wrote for one attribute or MISP object."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects
        self.types = {o["type"] for o in objects}
        #: An indicator flagged as its producer's not for detection carries ``to_ids`` off.
        self.detection_off = any(shared_not_for_detection(o) for o in objects)
        self.labels: set[str] = set()
        self.strings: set[str] = set()
        for obj in objects:
            self.labels.update(label for label in obj.get("labels") or () if isinstance(label, str))
            for key, value in obj.items():
                if key in ("id", "type", "spec_version", "created", "modified", "created_by_ref", "labels"):
                    continue
                if key == "pattern" and isinstance(value, str):
                    self.strings.update(string_literals(value))
                self.strings.update(_strings(value))

    def has_value(self, value: str) -> bool:
        return value in self.strings

    def custom(self, name: str) -> set[str]:
        return {str(o[name]) for o in self.objects if name in o}


def _uuid_of(stix_id: str) -> str:
    return stix_id.partition("--")[2]


def _index(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_id = {o["id"]: o for o in objects}
    groups: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        if obj["type"] in ("relationship", "identity", "marking-definition", "report", "grouping"):
            continue
        group = groups.setdefault(_uuid_of(obj["id"]), [])
        group.append(obj)
        if obj["type"] == "observed-data":
            group.extend(by_id[r] for r in obj.get("object_refs") or () if r in by_id and r != obj["id"])
    return groups


def _value_parts(record: Mapping[str, Any]) -> list[str]:
    value = str(record.get("value", ""))
    if "|" in str(record.get("type", "")) and "|" in value:
        return value.split("|")
    return [value]


def _tags(record: Mapping[str, Any]) -> list[str]:
    names = [t.get("name") for t in record.get("Tag") or () if isinstance(t, Mapping)]
    # tlp: tags become OASIS markings (misp_markings), misp-galaxy: tags are checked as galaxies.
    return [n for n in names if isinstance(n, str) and misp_tag_level(n) is None
            and not n.startswith("misp-galaxy:")]


class LossFinder:
    """Compares one source event with the STIX objects misp-stix produced from it."""

    def __init__(self, objects: list[dict[str, Any]], errors: list[str]) -> None:
        self.groups = _index(objects)
        self.all_labels = {label for o in objects for label in o.get("labels") or () if isinstance(label, str)}
        self.ids = {_uuid_of(o["id"]) for o in objects}
        self.relationships = {(_uuid_of(o["source_ref"]), _uuid_of(o["target_ref"]))
                              for o in objects if o["type"] == "relationship"}
        self.errors = errors
        self.losses: list[Loss] = []
        #: Attributes misp-stix refused with a reason and made nothing of: rejected input, not a loss.
        self.refused: list[Rejected] = []

    def _lost(self, ref: str, field: str, value: Any, reason: str) -> None:
        self.losses.append(Loss(ref, field, value, reason))

    def _why_missing(self, *uuids: str) -> str:
        for message in self.errors:
            if any(u in message for u in uuids):
                return f"{_MISSING}: {message.splitlines()[0]}"
        return _MISSING

    def event(self, event: Mapping[str, Any], container: list[dict[str, Any]]) -> list[Loss]:
        ref = str(event.get("uuid"))
        labels = {label for o in container for label in o.get("labels") or ()}
        for tag in _tags(event):
            if tag not in labels:
                self._lost(ref, "tag", tag, "event tag not on the report")
        self._galaxies(ref, event)
        for attribute in event.get("Attribute") or ():
            self._attribute(attribute)
        for misp_object in event.get("Object") or ():
            self._object(misp_object)
        return self.losses

    def _galaxies(self, ref: str, record: Mapping[str, Any], labels: set[str] | None = None) -> None:
        """Galaxy clusters survive as SDOs (found by uuid) or as labels; on object attributes, on the object."""
        for galaxy in record.get("Galaxy") or ():
            for cluster in galaxy.get("GalaxyCluster") or ():
                label = f'misp-galaxy:{galaxy.get("type")}="{cluster.get("value")}"'
                if labels is not None:
                    if label not in labels:
                        self._lost(ref, "galaxy", f'{galaxy.get("type")}={cluster.get("value")}',
                                   "galaxy cluster of an object attribute not carried on the object")
                elif label not in self.all_labels and str(cluster.get("uuid")) not in self.ids:
                    self._lost(ref, "galaxy", f'{galaxy.get("type")}={cluster.get("value")}',
                               "galaxy cluster not converted")

    def _common(self, ref: str, record: Mapping[str, Any], group: _Group) -> None:
        complaint = next((m for m in self.errors if ref in m), None)
        if complaint is not None:
            self._lost(ref, "attribute", {"type": record.get("type"), "value": record.get("value")},
                       f"misp-stix: {complaint.splitlines()[0][:300]}")
        for part in _value_parts(record):
            if not group.has_value(part):
                self._lost(ref, "value", record.get("value"), "value not in the STIX objects as written")
                break
        comment = record.get("comment")
        if comment and not group.has_value(str(comment)):
            self._lost(ref, "comment", comment, "comment not carried")
        for tag in _tags(record):
            if tag not in group.labels:
                self._lost(ref, "tag", tag, "tag not carried as a label")
        data = record.get("data")
        if data and not group.has_value(str(data)):
            self._lost(ref, "data", f"{len(str(data))} base64 characters", "attachment content not carried")

    def _references(self, ref: str, misp_object: Mapping[str, Any]) -> None:
        """An object reference survives as a relationship between the two records, either way round."""
        for reference in misp_object.get("ObjectReference") or ():
            target = str(reference.get("referenced_uuid"))
            if (ref, target) in self.relationships or (target, ref) in self.relationships:
                continue
            self._lost(ref, "object_reference", f'{reference.get("relationship_type")} {target}',
                       "no relationship between the two records in the STIX")

    def _attribute(self, attribute: Mapping[str, Any]) -> None:
        ref = str(attribute.get("uuid"))
        objects = self.groups.get(ref)
        if not objects:
            complaint = next((m for m in self.errors if ref in m), None)
            if complaint is not None:
                self.refused.append(Rejected(ref, f"misp-stix refused the {attribute.get('type')} attribute: "
                                                  f"{complaint.splitlines()[0][:300]}", str(attribute.get("value"))))
                return
            self._lost(ref, "attribute", {"type": attribute.get("type"), "value": attribute.get("value")}, _MISSING)
            return
        group = _Group(objects)
        self._common(ref, attribute, group)
        kind, category = attribute.get("type"), attribute.get("category")
        if f'misp:type="{kind}"' not in group.labels and str(kind) not in group.custom("x_misp_type"):
            self._lost(ref, "type", kind, "MISP type not recorded")
        if (category and f'misp:category="{category}"' not in group.labels
                and str(category) not in group.custom("x_misp_category")):
            self._lost(ref, "category", category, "MISP category not recorded")
        to_ids = attribute.get("to_ids") in (True, 1, "1", "true", "True")
        if group.types == {"x-misp-attribute"}:
            if to_ids != _DEFAULT_TO_IDS.get(str(kind), False):
                self._lost(ref, "to_ids", to_ids, "a custom MISP attribute object does not carry to_ids")
        elif to_ids != ("indicator" in group.types and not group.detection_off):
            self._lost(ref, "to_ids", to_ids, "an indicator exists exactly when to_ids is set; it does not here")
        self._galaxies(ref, attribute)

    def _object(self, misp_object: Mapping[str, Any]) -> None:
        ref = str(misp_object.get("uuid"))
        objects = self.groups.get(ref)
        attributes = misp_object.get("Attribute") or ()
        if not objects:
            why = self._why_missing(ref, *(str(a.get("uuid")) for a in attributes))
            for attribute in attributes:
                self._lost(str(attribute.get("uuid")), "attribute",
                           {"object": misp_object.get("name"), "object_relation": attribute.get("object_relation"),
                            "value": attribute.get("value")}, why)
            return
        group = _Group(objects)
        self._references(ref, misp_object)
        name = misp_object.get("name")
        if f'misp:name="{name}"' not in group.labels and str(name) not in group.custom("x_misp_name"):
            self._lost(ref, "name", name, "MISP object name not recorded")
        for attribute in attributes:
            attribute_ref = str(attribute.get("uuid"))
            self._common(attribute_ref, attribute, group)
            self._galaxies(attribute_ref, attribute, group.labels)
            merged = _MERGED_RELATIONS.get((str(name), str(attribute.get("object_relation"))))
            if merged is not None:
                self._lost(attribute_ref, "object_relation", attribute.get("object_relation"),
                           f"misp-stix writes it like '{merged}' and reads it back as '{merged}'")
