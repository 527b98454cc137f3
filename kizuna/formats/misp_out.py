"""Write STIX 2.1 objects as one MISP event with misp-stix, keeping TLP as ``tlp:`` tags.

Entry point: ``write_misp_event(objects, report=None, *, info=None) -> dict`` returns a REST-shaped
``{"Event": {…}}`` document that PyMISP's ``MISPEvent().load`` and a MISP instance read. STIX that
misp-stix itself wrote from MISP (it carries ``misp:`` labels) goes through misp-stix's internal parser,
which restores attributes, objects and galaxies; any other STIX (ATT&CK, OASIS examples, partners)
through its external parser. Kizuna then:

- tags the event and each attribute/object with ``tlp:<level>`` (TLP 2.0 words: ``tlp:clear`` …) for the
  OASIS TLP markings its STIX carried, the strictest level of the content on the event;
- gives the event the widest distribution its TLP allows and every attribute/object 5 (inherit): 3 (all
  communities) when everything in it is TLP:CLEAR, 1 (this community) when it is at most TLP:GREEN, and
  0 ("your organisation only") for anything stricter or unmarked, so an export never widens sharing;
  content carrying a Kizuna REL TO marking gets distribution 0 itself, and the report says a MISP file
  cannot name who;
- lists in ``report.losses`` (``ref`` = STIX id) every object the MISP event does not represent.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson
from misp_stix_converter import ExternalSTIX2toMISPParser, InternalSTIX2toMISPParser
from misp_stix_converter.tools.stix2_loading_helpers import load_stix2_content
from misp_stix_converter.tools.stix2_to_misp_helpers import is_stix2_from_misp

from kizuna.formats.base import ConversionReport, FormatError, Loss
from kizuna.formats.misp_comments import restore_comments
from kizuna.formats.misp_event_fields import restore
from kizuna.formats.misp_logs import converter_messages
from kizuna.formats.misp_record_fixes import (
    add_tag,
    descriptions_as_comments,
    drop_converter_tags,
    drop_indicator_id_comments,
    event_records,
    keep_detection_off,
    keep_galaxy_clusters,
    keep_published,
    keep_reference_ids,
    keep_sighting_ids,
    keep_timestamps,
    labels_as_tags,
    stix_uuid,
)
from kizuna.policy.releasability import KIZUNA_IDENTITY_ID, RELEASABILITY_EXTENSION_ID
from kizuna.policy.tlp import LEVEL_BY_OASIS_ID, TlpLevel

FORMAT = "misp"
#: The title of an event made of objects that no STIX report or grouping names.
DEFAULT_INFO = "Kizuna export"
_BUNDLE_NAMESPACE = uuid.UUID("b7b0f0c4-2a55-4f8e-9a0c-5d3d1f4e6a10")


def _bundle_id(objects: Iterable[Mapping[str, Any]]) -> str:
    """A bundle id that depends only on which objects it holds (misp-stix may take an event's uuid from it)."""
    return f"bundle--{uuid.uuid5(_BUNDLE_NAMESPACE, ','.join(sorted(str(o['id']) for o in objects)))}"


def _tag(level: TlpLevel) -> dict[str, Any]:
    return {"name": f"tlp:{level.token}"}


#: Objects that carry no markings of their own in an event (misp-stix makes no record of them).
_UNMARKED_TYPES: Final = frozenset({"identity", "marking-definition", "extension-definition"})
#: The MISP distribution of an event all of whose content is at most this TLP level: the TLP 2.0 definitions
#: let TLP:CLEAR go to the world (MISP's "all communities") and TLP:GREEN within the recipient's community
#: ("this community only"); anything stricter stays with the receiving organisation (0).
_DISTRIBUTION_BY_TLP: Final = {TlpLevel.CLEAR: "3", TlpLevel.GREEN: "1"}


class _Markings:
    """Per STIX uuid: its TLP level and whether a REL TO marking restricts it."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        rel_to = {o["id"] for o in objects if o["type"] == "marking-definition"
                  and RELEASABILITY_EXTENSION_ID in (o.get("extensions") or {})}
        self.tlp: dict[str, TlpLevel] = {}
        self.restricted: set[str] = set()
        #: Some content has no TLP marking: what the node's policy makes of it, a MISP file cannot say.
        self.unmarked = False
        for obj in objects:
            refs = obj.get("object_marking_refs") or ()
            levels = [LEVEL_BY_OASIS_ID[r] for r in refs if r in LEVEL_BY_OASIS_ID]
            if levels:
                self.tlp[stix_uuid(obj["id"])] = max(levels)
            elif obj["type"] not in _UNMARKED_TYPES:
                self.unmarked = True
            if any(r in rel_to for r in refs):
                self.restricted.add(obj["id"])
        self.strictest = max(self.tlp.values(), default=None)


def _creator(items: list[dict[str, Any]], org: Mapping[str, str] | None) -> dict[str, str] | None:
    """The event's creator (MISP's ``Orgc``): the identity that created most of the objects, else ``org``.

    The creator is who made the content, not who exports it: a partner's event passed on keeps its producer, so
    agreements that name producers and the onward-sharing rules judge it the same after a round trip."""
    identities = {o["id"]: o for o in items if o["type"] == "identity"}
    counts = Counter(o.get("created_by_ref") for o in items if o.get("created_by_ref") in identities)
    if not counts:
        return None if org is None else {"name": str(org["name"]), "uuid": str(org["uuid"])}
    creator = identities[counts.most_common(1)[0][0]]
    return {"name": str(creator.get("name", "")), "uuid": stix_uuid(creator["id"])}


def _apply_sharing(event: dict[str, Any], markings: _Markings, report: ConversionReport) -> None:
    # A Kizuna export never widens sharing: the event goes as far as the TLP of all its content allows, and no
    # further than the receiving organisation when anything in it is stricter than TLP:GREEN or unmarked (its
    # MISP administrator decides then). Every record inherits that. Reading the file back gives no marking for
    # 3 and 1 (a loss for 1), so a node re-importing its own export of TLP:CLEAR or GREEN content finds it as it
    # stored it.
    widest = None if markings.unmarked or markings.strictest is None else _DISTRIBUTION_BY_TLP.get(markings.strictest)
    event["distribution"] = widest or "0"
    for record in event_records(event):
        record["distribution"] = "5"
    if markings.strictest is not None:
        event["Tag"] = [t for t in event.get("Tag") or () if not str(t.get("name", "")).startswith("tlp:")]
        add_tag(event, _tag(markings.strictest))
    restricted = {stix_uuid(i) for i in markings.restricted}
    for record in event_records(event):
        level = markings.tlp.get(str(record.get("uuid")))
        if level is not None and level != markings.strictest and "object_relation" not in record:
            add_tag(record, _tag(level))
        if str(record.get("uuid")) in restricted:
            record["distribution"] = "0"
    for stix_id in sorted(markings.restricted):
        report.losses.append(Loss(stix_id, "object_marking_refs", "REL TO",
                                  "MISP files cannot name releasability: exported as 'your organisation only'"))


def _represented(event: dict[str, Any]) -> tuple[set[str], set[tuple[str, str]], set[tuple[str, str, str]]]:
    """uuids in the event, (galaxy type suffix, cluster value) pairs, (source, relationship, target) uuids."""
    uuids = {str(event.get("uuid"))}
    uuids.update(str(org.get("uuid")) for org in (event.get("Orgc"), event.get("Org")) if isinstance(org, Mapping))
    clusters: set[tuple[str, str]] = set()
    references: set[tuple[str, str, str]] = set()
    for record in event_records(event):
        uuids.add(str(record.get("uuid")))
        for ref in record.get("ObjectReference") or ():
            references.add((str(ref.get("object_uuid") or record.get("uuid")), str(ref.get("relationship_type")),
                            str(ref.get("referenced_uuid"))))
    galaxies = list(event.get("Galaxy") or ())
    for record in event_records(event):
        galaxies.extend(record.get("Galaxy") or ())
    for galaxy in galaxies:
        for cluster in galaxy.get("GalaxyCluster") or ():
            uuids.add(str(cluster.get("uuid")))
            clusters.add((str(galaxy.get("type", "")).rpartition("-")[2], str(cluster.get("value"))))
            for relation in cluster.get("GalaxyClusterRelation") or ():
                references.add((str(cluster.get("uuid")), str(relation.get("referenced_galaxy_cluster_type")),
                                str(relation.get("referenced_galaxy_cluster_uuid"))))
    for key in ("EventReport", "Note", "Opinion", "Relationship"):
        uuids.update(str(r.get("uuid")) for r in event.get(key) or ())
    return uuids, clusters, references


def _losses(objects: list[dict[str, Any]], event: dict[str, Any], markings: _Markings) -> list[Loss]:
    uuids, clusters, references = _represented(event)
    losses = []
    for obj in objects:
        kind = obj["type"]
        if stix_uuid(obj["id"]) in uuids or (kind.rpartition("-")[2], str(obj.get("name"))) in clusters:
            continue
        if kind == "marking-definition" and (obj["id"] in LEVEL_BY_OASIS_ID or
                                             RELEASABILITY_EXTENSION_ID in (obj.get("extensions") or {})):
            continue  # TLP became tags, REL TO a distribution (reported per object)
        if kind == "extension-definition" or obj["id"] == KIZUNA_IDENTITY_ID:
            # TLP 2.0, releasability and MISP event (and their publisher): what tags, distribution and the
            # event's own fields express
            continue
        if kind == "relationship":
            source, target = stix_uuid(obj.get("source_ref")), stix_uuid(obj.get("target_ref"))
            if source == target or (source, str(obj.get("relationship_type")), target) in references:
                continue
            losses.append(Loss(obj["id"], "relationship",
                               f"{obj.get('source_ref')} {obj.get('relationship_type')} {obj.get('target_ref')}",
                               "misp-stix made no MISP reference for it"))
            continue
        what = obj.get("name") or obj.get("value") or kind
        losses.append(Loss(obj["id"], "object", f"{kind}: {what}", "misp-stix made no MISP record for it"))
    return losses


def _carried(records: Iterable[Mapping[str, Any]]) -> set[str]:
    """Tag names of records, galaxy clusters written as the ``misp-galaxy:`` tags they come from."""
    names: set[str] = set()
    for record in records:
        names.update(str(t.get("name")) for t in record.get("Tag") or ())
        for galaxy in record.get("Galaxy") or ():
            names.update(f'misp-galaxy:{galaxy.get("type")}="{c.get("value")}"'
                         for c in galaxy.get("GalaxyCluster") or ())
    return names


def _label_losses(objects: list[dict[str, Any]], event: dict[str, Any]) -> list[Loss]:
    """Labels misp-stix wrote from MISP tags that did not come back as tags of their attribute or object."""
    records: dict[str, list[Mapping[str, Any]]] = {str(a.get("uuid")): [a] for a in event.get("Attribute") or ()}
    for misp_object in event.get("Object") or ():
        records[str(misp_object.get("uuid"))] = [misp_object, *(misp_object.get("Attribute") or ())]
    everywhere = _carried([event, *(r for rs in records.values() for r in rs)])
    losses = []
    for obj in objects:
        for label in obj.get("labels") or ():
            if isinstance(label, str) and label.startswith("misp-galaxy:") and label not in everywhere:
                losses.append(Loss(obj["id"], "galaxy", label,
                                   "misp-stix read this galaxy cluster back under another name, or not at all"))
        record = records.get(stix_uuid(obj["id"]))
        if record is None or obj["type"] in ("report", "grouping"):
            continue
        tags = _carried(record)
        for label in obj.get("labels") or ():
            if (isinstance(label, str) and not label.startswith("misp:") and not label.lower().startswith("tlp:")
                    and label not in tags):
                losses.append(Loss(obj["id"], "tag", label, "misp-stix did not read this label back as a tag"))
    return losses


def write_misp_event(objects: Iterable[Mapping[str, Any]], report: ConversionReport | None = None, *,
                     info: str | None = None, org: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Convert STIX 2.1 objects to one MISP event document ``{"Event": {…}}`` via misp-stix.

    ``info`` is the event's title; without it, the name of the STIX report or grouping the objects hold, or
    ``DEFAULT_INFO`` when they hold none. ``report`` (optional) receives the losses (by STIX id) and misp-stix's
    warnings. The identity that created most objects becomes the event's creator (``Orgc``); ``org``
    (``{"name", "uuid"}``, e.g. the exporting node's organisation) becomes its owner (``Org``), and its creator
    too when no object names one; without ``org`` the creator owns the event.
    """
    report = report if report is not None else ConversionReport(FORMAT)
    items = [dict(o) for o in objects]
    if not items:
        raise FormatError("no STIX objects to write as a MISP event")
    bundle_id = _bundle_id(items)
    # Kizuna's releasability definitions carry an extension misp-stix does not know; they become distribution.
    convertible = [o for o in items if not (o["type"] == "marking-definition"
                                            and RELEASABILITY_EXTENSION_ID in (o.get("extensions") or {}))]
    with converter_messages():  # its messages on detection say nothing a user can act on
        from_misp = is_stix2_from_misp(convertible)
    event = _converted(convertible, bundle_id, from_misp, None, report)
    if not from_misp:
        labels_as_tags(event, convertible)
    else:
        # misp-stix's parser for STIX it wrote itself reads only MISP's own shapes: a collection holding a MISP
        # event beside other content (a CSV import, a partner's indicators) would lose the rest. That rest goes
        # through the parser for any STIX, and its records join the event.
        others = _not_from_misp(convertible, event)
        if others:
            other = _converted(others, _bundle_id(others), False, None, report)
            labels_as_tags(other, others)
            _merge(event, other)
    if from_misp:
        drop_converter_tags(event, convertible)
        labels_as_tags(event, convertible, from_misp=True)
    drop_indicator_id_comments(event)
    keep_timestamps(event, convertible)
    keep_reference_ids(event, convertible)
    keep_sighting_ids(event, convertible)
    keep_published(event, convertible)
    keep_galaxy_clusters(event, convertible)
    keep_detection_off(event, convertible)
    descriptions_as_comments(event, convertible)
    restore_comments(event, convertible)
    # misp-stix puts a title given to it before the report's name ("Kizuna export Phishing wave …"), and without
    # one names a bundle of no report after the bundle's id: the event gets the one title instead.
    if info is not None or not any(o["type"] in ("report", "grouping") for o in convertible):
        event["info"] = info if info is not None else DEFAULT_INFO
    restore(event, [o for o in convertible if o["type"] in ("report", "grouping")])
    creator = _creator(items, org)
    if creator is not None:
        event["Orgc"] = creator
        # MISP's ``Org`` owns the event where it is held: the exporting organisation, which "your organisation
        # only" (the export's distribution) then names.
        event["Org"] = {"name": str(org["name"]), "uuid": str(org["uuid"])} if org is not None else dict(creator)
    markings = _Markings(items)
    _apply_sharing(event, markings, report)
    report.losses.extend(_losses(convertible, event, markings))
    if from_misp:
        report.losses.extend(_label_losses(convertible, event))
    return {"Event": event}


def _converted(objects: list[dict[str, Any]], bundle_id: str, from_misp: bool, info: str | None,
               report: ConversionReport) -> dict[str, Any]:
    """One MISP event of ``objects`` by misp-stix's parser for its own STIX (``from_misp``) or for any STIX."""
    with converter_messages() as logged:
        try:
            bundle = load_stix2_content({"type": "bundle", "id": bundle_id, "objects": objects})
            parser = InternalSTIX2toMISPParser() if from_misp else ExternalSTIX2toMISPParser()
            parser.load_stix_bundle(bundle)
            parser.parse_stix_bundle(single_event=True, title=info)
        except Exception as error:  # misp-stix raises what stix2 raises for content it cannot load
            raise FormatError(
                f"misp-stix cannot convert these objects: {' '.join(str(error).split())[:300]}") from None
    report.warnings.extend(logged)
    event: dict[str, Any] = orjson.loads(parser.misp_event.to_json())
    report.warnings.extend(" ".join(str(m).split()) for ms in parser.errors.values() for m in ms)
    return event


#: What a set of objects holds beside its content: the identities and definitions the content names.
SUPPORTING_TYPES = frozenset({"identity", "marking-definition", "extension-definition"})


def _from_misp(obj: Mapping[str, Any]) -> bool:
    return any(isinstance(label, str) and label.startswith("misp:") for label in obj.get("labels") or ())


def _not_from_misp(objects: list[dict[str, Any]], event: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects misp-stix's own-STIX parser left out of ``event`` that MISP did not write (no ``misp:``
    label), with the relationships among them and the identities and markings they name; empty if none."""
    uuids, _, _ = _represented(event)
    left = {o["id"] for o in objects if o["type"] not in SUPPORTING_TYPES and o["type"] != "relationship"
            and stix_uuid(o["id"]) not in uuids and not _from_misp(o)}
    if not left:
        return []
    chosen = set(left)
    for obj in objects:
        if obj["type"] == "relationship" and obj.get("source_ref") in left and obj.get("target_ref") in left:
            chosen.add(obj["id"])
    by_id = {o["id"]: o for o in objects}
    for ref in list(chosen):
        obj = by_id[ref]
        chosen.update(r for r in obj.get("object_marking_refs") or () if r in by_id)
        if obj.get("created_by_ref") in by_id:
            chosen.add(obj["created_by_ref"])
    return [o for o in objects if o["id"] in chosen]


def _merge(event: dict[str, Any], other: dict[str, Any]) -> None:
    """Add ``other``'s attributes, objects and galaxies to ``event``, each record once (by uuid)."""
    uuids, _, _ = _represented(event)
    for key in ("Attribute", "Object", "Galaxy", "EventReport"):
        added = [r for r in other.get(key) or () if str(r.get("uuid")) not in uuids]
        if added:
            event.setdefault(key, []).extend(added)


def _event_members(container: dict[str, Any], by_id: dict[str, dict[str, Any]],
                   attached: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A report or grouping with what it refers to, the relationships, sightings, notes and opinions
    about those, and the identities and markings all of them name."""
    members = {container["id"], *(container.get("object_refs") or ())}
    for ref in list(members):
        members.update(by_id.get(ref, {}).get("object_refs") or ())  # observed-data's observables
    for obj in attached:
        if obj["type"] == "relationship":
            if obj["source_ref"] in members and obj["target_ref"] in members:
                members.add(obj["id"])
        elif obj.get("sighting_of_ref") in members or set(obj.get("object_refs") or ()) & members:
            members.add(obj["id"])
            members.update(obj.get("where_sighted_refs") or ())
            members.update(obj.get("observed_data_refs") or ())
    for ref in list(members):
        obj = by_id.get(ref, {})
        members.update(obj.get("object_marking_refs") or ())
        if obj.get("created_by_ref"):
            members.add(obj["created_by_ref"])
    return [obj for obj_id, obj in by_id.items() if obj_id in members]


def write_misp_events(objects: Iterable[Mapping[str, Any]], report: ConversionReport | None = None, *,
                      org: Mapping[str, str] | None = None, info: str = DEFAULT_INFO) -> list[dict[str, Any]]:
    """One MISP event per STIX report or grouping (with what it refers to); the rest as one more event.

    This is what a feed needs: a collection exported from Kizuna holds many events, and
    ``write_misp_event`` would merge them into one.
    """
    by_id = {str(o["id"]): dict(o) for o in objects}
    containers = [o for o in by_id.values() if o["type"] in ("report", "grouping")]
    attached = [o for o in by_id.values() if o["type"] in ("relationship", "sighting", "note", "opinion")]
    events = []
    covered: set[str] = set()
    for container in containers:
        members = _event_members(container, by_id, attached)
        covered.update(o["id"] for o in members)
        events.append(write_misp_event(members, report, org=org))
    rest = [o for o in by_id.values() if o["id"] not in covered
            and o["type"] not in ("marking-definition", "identity", "extension-definition")]
    if rest:
        needed = {r for o in rest for r in o.get("object_marking_refs") or ()}
        needed.update(o["created_by_ref"] for o in rest if o.get("created_by_ref"))
        events.append(write_misp_event(rest + [by_id[i] for i in needed if i in by_id], report, org=org, info=info))
    return events
