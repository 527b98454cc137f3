"""What misp-stix's parsers from STIX to MISP add to an event or leave out of it, put right after conversion.

Each function takes the event document (``{"Event": …}``'s inner dict) misp-stix wrote for ``objects``: a
note of its own conversion taken off, or a field of the objects it left out written back, so a MISP user sees
what the producer wrote and a node reading its own export back finds the versions it stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from kizuna.stix.timestamps import parse_timestamp
from kizuna.stix.vocab import shared_not_for_detection

#: The labels misp-stix gives every report or grouping it makes of a MISP event, before the event's own tags.
CONVERTER_LABELS: Final = ("Threat-Report", 'misp:tool="MISP-STIX-Converter"')
_PRODUCER_TAG: Final = "misp-galaxy:producer="


def stix_uuid(stix_id: object) -> str:
    return str(stix_id).partition("--")[2]


def add_tag(record: dict[str, Any], tag: dict[str, Any]) -> None:
    tags = record.setdefault("Tag", [])
    if all(t.get("name") != tag["name"] for t in tags):
        tags.append(tag)


def event_records(event: dict[str, Any]) -> Iterable[dict[str, Any]]:
    yield from event.get("Attribute") or ()
    for misp_object in event.get("Object") or ():
        yield misp_object
        yield from misp_object.get("Attribute") or ()


def keep_timestamps(event: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    """Give back its ``timestamp`` (the ``modified`` of the STIX object made of it) to each attribute or object
    PyMISP wrote without one: it leaves out the timestamp of a record edited after loading (misp-stix tags a
    record whose TLP differs from the event's), and a record without one was stamped with the time of its next
    import, a new version of an object nobody changed."""
    records = {str(r.get("uuid")): r for r in event_records(event) if not r.get("timestamp")}
    if not records:
        return
    for obj in objects:
        record = records.get(stix_uuid(obj["id"]))
        if record is not None and isinstance(obj.get("modified"), str):
            try:
                record["timestamp"] = str(parse_timestamp(obj["modified"]) // 1_000_000)
            except ValueError:
                continue


def _listing_order(objects: list[dict[str, Any]]) -> dict[str, int]:
    """STIX id -> where the first report or grouping among ``objects`` that lists it does: misp-stix lists what it
    makes of an event in the order of the event's records, so an export restores that order from it."""
    listed: dict[str, int] = {}
    for obj in objects:
        if obj["type"] in ("report", "grouping") and isinstance(obj.get("object_refs"), list):
            for position, ref in enumerate(obj["object_refs"]):
                listed.setdefault(str(ref), position)
    return listed


def keep_galaxy_clusters(event: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    """Give galaxy clusters back what misp-stix's parsers from STIX change, each of which made a node reading its
    own export back refuse the objects made of them as changed versions (or the report listing them):

    * the ``tag_name``, the label ``misp-galaxy:<type>="<value>"`` misp-stix wrote among the labels of the STIX
      object made of the cluster; the parsers leave it out, or put it in the cluster's ``meta``, which the way
      back reads as the object's ``threat_actor_types`` (or ``tool_types`` …);
    * the order of galaxies and clusters, in which misp-stix lists the objects it makes of them: the report's;
    * the order of ``external_id`` and ``refs`` (``_order_external_ids``) and a custom galaxy's cluster's own
      description (``_one_description``)."""
    objects_by_uuid = {stix_uuid(o["id"]): o for o in objects}
    listed = _listing_order(objects)

    def place(cluster: dict[str, Any]) -> int:
        made = objects_by_uuid.get(str(cluster.get("uuid")))
        return listed.get(made["id"], len(listed)) if made is not None else len(listed)

    for holder in (event, *event_records(event)):
        galaxies = holder.get("Galaxy") or []
        for galaxy in galaxies:
            clusters = galaxy.get("GalaxyCluster") or []
            clusters.sort(key=place)
            for cluster in clusters:
                made = objects_by_uuid.get(str(cluster.get("uuid")))
                if made is not None:
                    _one_description(galaxy, cluster, made)
                    _order_external_ids(cluster.get("meta"), made)
                    _tag_name(cluster, made)
        galaxies.sort(key=lambda g: min(map(place, g.get("GalaxyCluster") or ()), default=len(listed)))


def _tag_name(cluster: dict[str, Any], made: dict[str, Any]) -> None:
    prefix = f'misp-galaxy:{cluster.get("type")}="'
    tag = next((label for label in made.get("labels") or () if isinstance(label, str) and label.startswith(prefix)),
               None)
    if cluster.get("tag_name") or tag is None:
        return
    cluster["tag_name"] = tag
    meta = cluster.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("labels"), list) and tag in meta["labels"]:
        meta["labels"].remove(tag)
        if not meta["labels"]:
            del meta["labels"]


def _one_description(galaxy: dict[str, Any], cluster: dict[str, Any], made: dict[str, Any]) -> None:
    """Take the galaxy's description off a cluster of a galaxy STIX has no object type for: misp-stix writes
    "<galaxy description> | <cluster description>" as the ``x_misp_description`` of the object made of it, and
    its parsers from STIX give that whole text to the cluster, so each round trip put the galaxy's in once more."""
    prefix = f'{galaxy.get("description")} | '
    description = cluster.get("description")
    if (made["type"] == "x-misp-galaxy-cluster" and galaxy.get("description")
            and isinstance(description, str) and description == made.get("x_misp_description")
            and description.startswith(prefix)):
        cluster["description"] = description[len(prefix):]


def _order_external_ids(meta: Any, made: dict[str, Any]) -> None:
    """Put a cluster's ``external_id`` before or after its ``refs`` as the STIX object made of it lists them:
    misp-stix writes the external references in the order of the cluster's ``meta``."""
    if not isinstance(meta, dict) or "external_id" not in meta or "refs" not in meta:
        return
    references = [r for r in made.get("external_references") or () if isinstance(r, dict)]
    by_id = next((i for i, r in enumerate(references) if "external_id" in r), None)
    by_url = next((i for i, r in enumerate(references) if "url" in r and "external_id" not in r), None)
    if by_id is None or by_url is None:
        return
    first, second = ("external_id", "refs") if by_id < by_url else ("refs", "external_id")
    kept = {key: meta.pop(key) for key in (first, second)}
    others = dict(meta)
    meta.clear()
    meta.update({**kept, **others})


def keep_published(event: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    """Publish the event made of a STIX report, as of the report's ``published``. misp-stix writes a published
    MISP event as a report and an unpublished one as a grouping, but its parsers from STIX leave every event
    unpublished: a node reading its own export back stored the event again as a grouping."""
    for obj in objects:
        if obj["type"] == "report" and stix_uuid(obj["id"]) == str(event.get("uuid")):
            try:
                stamp = parse_timestamp(str(obj.get("published"))) // 1_000_000
            except ValueError:
                return
            event["published"] = True
            event["publish_timestamp"] = str(stamp)
            return


def keep_reference_ids(event: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    """Give each object reference the uuid and timestamp of the STIX relationship it was made of. misp-stix's
    parsers from STIX write a reference with a new uuid and no timestamp, while its MISP-to-STIX direction names
    the relationship after the reference's uuid and dates it by the reference's timestamp: a node reading its own
    export back stored every such relationship again under a new id, and the report holding it as a changed
    version."""
    made_of: dict[tuple[str, str, str], dict[str, Any]] = {}
    for obj in objects:
        if obj["type"] == "relationship":
            made_of.setdefault((stix_uuid(obj.get("source_ref")), str(obj.get("relationship_type")),
                                stix_uuid(obj.get("target_ref"))), obj)
    listed = _listing_order(objects) if made_of else {}
    for misp_object in event.get("Object") or () if made_of else ():
        references = misp_object.get("ObjectReference") or []
        found: list[tuple[int, dict[str, Any]]] = []
        for index, reference in enumerate(references):
            relationship = made_of.get((str(reference.get("object_uuid") or misp_object.get("uuid")),
                                        str(reference.get("relationship_type")), str(reference.get("referenced_uuid"))))
            if relationship is None:
                continue
            found.append((index, relationship))
            reference["uuid"] = stix_uuid(relationship["id"])
            try:
                reference["timestamp"] = str(parse_timestamp(str(relationship.get("modified"))) // 1_000_000)
            except ValueError:
                reference.pop("timestamp", None)
        # misp-stix lists the relationships it makes in the order of the references: they go back in the order
        # the report listed them (the other references keep their places), or the report comes back changed.
        moved = [references[index] for index, _ in
                 sorted(found, key=lambda pair: listed.get(pair[1]["id"], len(listed)))]
        for (index, _), reference in zip(found, moved, strict=True):
            references[index] = reference


def keep_sighting_ids(event: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    """Give each MISP sighting the uuid of the STIX sighting (seen, type 0) or opinion (false positive, type 1)
    it was made of, found by its attribute, date and type. misp-stix's parsers from STIX write sightings without
    a uuid, which its MISP-to-STIX direction names them by: a node reading its own export back stored every
    sighting and opinion again under a new id."""
    made_of: dict[tuple[str, str, str], str] = {}
    for obj in objects:
        if obj["type"] == "sighting":
            sighted = [obj.get("sighting_of_ref")]
        elif obj["type"] == "opinion":
            sighted = list(obj.get("object_refs") or ())
        else:
            continue
        try:
            date = str(parse_timestamp(str(obj.get("created"))) // 1_000_000)
        except ValueError:
            continue
        kind = "0" if obj["type"] == "sighting" else "1"
        for ref in sighted:
            made_of.setdefault((stix_uuid(ref), date, kind), stix_uuid(obj["id"]))
    for record in event_records(event) if made_of else ():
        for sighting in record.get("Sighting") or ():
            if isinstance(sighting, dict) and not sighting.get("uuid"):
                found = made_of.get((str(record.get("uuid")), str(sighting.get("date_sighting")),
                                     str(sighting.get("type", "0"))))
                if found is not None:
                    sighting["uuid"] = found


def keep_detection_off(event: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    """Turn ``to_ids`` off again on each attribute made of an indicator its producer shared as not for detection
    (`NOT_FOR_DETECTION_PROPERTY`, from a MISP attribute with ``to_ids`` off): misp-stix sets it for any
    indicator."""
    off = {stix_uuid(o["id"]) for o in objects
           if o["type"] == "indicator" and shared_not_for_detection(o)}
    for attribute in event.get("Attribute") or () if off else ():
        if str(attribute.get("uuid")) in off:
            attribute["to_ids"] = False


def drop_indicator_id_comments(event: dict[str, Any]) -> None:
    """Take off the "Indicator ID: indicator--<uuid>" that misp-stix's parsers put before the comment of each
    attribute they make of a MISP object's indicator pattern (the object has the indicator's uuid). It notes
    their conversion, not the producer's content; read back in, it became a comment the event never had, and
    the objects a node re-imported from its own export no longer matched the versions it stored."""
    for misp_object in event.get("Object") or ():
        note = f"Indicator ID: indicator--{misp_object.get('uuid')}"
        for attribute in misp_object.get("Attribute") or ():
            comment = attribute.get("comment")
            if comment == note:
                del attribute["comment"]
            elif isinstance(comment, str) and comment.startswith(note + " - "):
                attribute["comment"] = comment[len(note) + 3:]


def descriptions_as_comments(event: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    """Each object's description as the comment of the attribute misp-stix made of it, where it wrote none: a
    MISP attribute's comment becomes the indicator's description on the way in, and misp-stix's parsers do not
    write it back (an attribute's context was lost on every round trip)."""
    records = {str(r.get("uuid")): r for r in event_records(event)}
    for obj in objects:
        record = records.get(stix_uuid(obj["id"]))
        description = obj.get("description")
        if record is not None and isinstance(description, str) and description and not record.get("comment"):
            record["comment"] = description


def drop_converter_tags(event: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    """Leave out of the event's tags the two labels misp-stix itself put first on the event's report, which its
    parser reads back as tags: a MISP event sent through Kizuna would otherwise come back with two tags it never
    had, and two more on every further round trip. Likewise the ``misp-galaxy:producer`` tag its parser adds for
    the report's creator, whom the event's ``Orgc`` already names. A label the event also carried as its own tag
    stays."""
    containers = [o for o in objects if o["type"] in ("report", "grouping")]
    artefacts = set(CONVERTER_LABELS)
    own: set[str] = set()
    for container in containers:
        labels = list(container.get("labels") or ())
        if tuple(labels[:2]) != CONVERTER_LABELS:
            return  # not a report misp-stix made of a MISP event: its labels are all the producer's
        own.update(labels[2:])
    artefacts -= own
    if containers and event.get("Tag"):
        event["Tag"] = [tag for tag in event["Tag"] if tag.get("name") not in artefacts and (
            not str(tag.get("name", "")).startswith(_PRODUCER_TAG) or tag.get("name") in own)]


def labels_as_tags(event: dict[str, Any], objects: list[dict[str, Any]], from_misp: bool = False) -> None:
    """Each object's labels as tags of the attribute or object misp-stix made of it (its parser for any STIX
    drops them; MISP's tags are where a MISP user looks for them). TLP labels are left to the markings.

    ``from_misp``: the objects misp-stix made of a MISP event, whose parser reads their tags back but leaves out
    of an attribute a tag its event also carries; only such tags are added (``misp:`` labels describe the
    record, ``misp-galaxy:`` ones come back as galaxies, and a report's labels are the event's tags)."""
    records = {str(r.get("uuid")): r for r in event_records(event)}
    for obj in objects:
        record = records.get(stix_uuid(obj["id"]))
        if record is None or (from_misp and obj["type"] in ("report", "grouping")):
            continue
        for label in obj.get("labels") or ():
            if isinstance(label, str) and label and not label.lower().startswith("tlp:") and not (
                    from_misp and label.startswith(("misp:", "misp-galaxy:"))):
                add_tag(record, {"name": label})
