"""Read MISP events into STIX 2.1 with misp-stix (the MISP project's own converter), plus a loss report.

Entry point: ``read_misp(source, name=None) -> ConversionReport``. ``source`` is a path to a file or a
directory, or the bytes of one document. A document is a REST ``{"Event": …}``, a search result
``{"response": [{"Event": …}, …]}``, a list of those, or a bare event (a feed event file is a REST
document). A directory is read file by file (``*.json``, sorted, ``manifest.json`` skipped): a bad file
becomes a ``Rejected`` and the others are converted. A single document that is not valid is refused
as a whole with ``FormatError`` naming ``FILE:LINE`` (or the event/attribute uuid): nothing of it is
half-converted. After conversion, MISP sharing rules become Kizuna markings (``misp_markings``) and
the STIX is compared with the source for what did not survive (``misp_losses``).
"""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import orjson
import stix2.v21.sdo
from misp_stix_converter import MISPtoSTIX21Parser
from pymisp import MISPAttribute
from stix2.base import _STIXBase
from stix2.utils import format_datetime

from kizuna.core.forked import in_order
from kizuna.formats.base import ConversionReport, FormatError, Loss, Rejected
from kizuna.formats.misp_comments import carry
from kizuna.formats.misp_event_fields import attach
from kizuna.formats.misp_logs import converter_messages
from kizuna.formats.misp_losses import LossFinder
from kizuna.formats.misp_markings import DistributionError, apply_markings, distribution_of, plan_markings
from kizuna.formats.misp_record_fixes import event_records
from kizuna.policy.releasability import KIZUNA_IDENTITY_ID
from kizuna.policy.tlp import normalise_objects
from kizuna.stix.patterns import stix_pattern_problem
from kizuna.stix.vocab import NOT_FOR_DETECTION_PROPERTY


def _pattern_errors(pattern: str, stix_version: str = "2.1") -> list[str]:
    """The node's own STIX pattern check, in the shape stix2's ``run_validator`` returns.

    Every indicator misp-stix builds is a stix2 ``Indicator``, whose constructor re-parses the pattern
    with the ANTLR grammar: a third of the conversion time on the CIRCL events (docs/decisions.md).
    Ingest checks each pattern with ``stix_pattern_problem`` anyway (a fast path, the grammar when in
    doubt), so the constructor asks that same check instead of parsing twice.
    """
    problem = stix_pattern_problem(pattern)
    return [] if problem is None else [problem]


stix2.v21.sdo.run_validator = _pattern_errors

FORMAT = "misp"
#: Namespace of the uuids minted for galaxy clusters and sightings that come without one.
CLUSTER_NAMESPACE = uuid.UUID("4a1c26e5-3f0e-4d55-9d0c-6f1f8a4b7c21")
_KNOWN_TYPES = frozenset(MISPAttribute().known_types)


class _Source:
    """One document's text, for turning a uuid or a parse error into FILE:LINE."""

    def __init__(self, name: str, text: bytes | None) -> None:
        self.name = name
        # A byte order mark (Windows tools write one) is no part of the JSON, as the STIX and CSV readers agree.
        self.text = text[3:] if text is not None and text.startswith(b"\xef\xbb\xbf") else text

    def where(self, record_uuid: object = None) -> str:
        if self.text is not None and record_uuid:
            at = self.text.find(str(record_uuid).encode())
            if at >= 0:
                line = self.text.count(b"\n", 0, at) + 1
                return f"{self.name}:{line}"
        return f"{self.name} ({record_uuid})" if record_uuid else self.name


def _json(source: _Source) -> Any:
    assert source.text is not None
    try:
        return orjson.loads(source.text)
    except orjson.JSONDecodeError as error:
        try:
            source.text.decode("utf-8")
        except UnicodeDecodeError as bad:  # orjson names no place for bytes that are not UTF-8
            line = source.text.count(b"\n", 0, bad.start) + 1
            raise FormatError("not UTF-8 text", f"{source.name}:{line}") from None
        raise FormatError(f"not valid JSON: {error.msg}", f"{source.name}:{error.lineno}") from None


def _events(document: Any, source: _Source) -> list[dict[str, Any]]:
    """The events of one document, whatever wrapper MISP put around them."""
    wrapper = ""
    if isinstance(document, Mapping) and "response" in document:
        document, wrapper = document["response"], "response"
    items = document if isinstance(document, list) else [document]
    events = []
    for index, item in enumerate(items):
        event = item.get("Event", item) if isinstance(item, Mapping) else None
        if not isinstance(event, Mapping) or not ("uuid" in event and ("Attribute" in event or "info" in event
                                                                      or "Object" in event)):
            # In a list, the item is named: the events before it are fine, and the file may hold thousands.
            which = f"{wrapper}[{index}] is " if isinstance(document, list) and len(items) > 1 else ""
            raise FormatError(f"{which}not a MISP event document (expected {{\"Event\": …}}, {{\"response\": "
                              "[…]} or an event with uuid and Attribute/Object)", source.where())
        events.append(dict(event))
    return events


def _check_uuid(value: object, what: str, source: _Source) -> None:
    try:
        uuid.UUID(str(value))
    except ValueError:
        raise FormatError(f"{what} has no valid uuid ({value!r})", source.where(value)) from None


def _check_times(record: Mapping[str, Any], what: str, source: _Source, ref: object) -> None:
    """A date or timestamp misp-stix cannot read makes it drop the whole event without an error of its own
    (the event is "lost"): refused here instead, by file and line."""
    day = record.get("date")
    if day not in (None, ""):
        try:
            date.fromisoformat(str(day))
        except ValueError:
            raise FormatError(f"{what}: date {day!r} is not a date (YYYY-MM-DD)", source.where(ref)) from None
    for key in ("timestamp", "publish_timestamp"):
        value = record.get(key)
        if value in (None, ""):
            continue
        try:
            datetime.fromtimestamp(int(str(value)), UTC)
        except (ValueError, OverflowError, OSError):
            raise FormatError(f"{what}: {key} {value!r} is not a time in seconds since 1970 (before the year "
                              "10000)", source.where(ref)) from None


def _unknown_type(attribute: Mapping[str, Any]) -> Rejected | None:
    """The rejection of an attribute whose type MISP does not define (misp-stix raises on it, which lost the whole
    file): only that attribute is left out, as one whose value misp-stix refuses is. ``where``: its uuid."""
    kind = attribute.get("type")
    if isinstance(kind, str) and kind in _KNOWN_TYPES:  # a list or object is no type (nor hashable)
        return None
    ref = attribute.get("uuid")
    value = attribute.get("value")
    return Rejected(str(ref), f"attribute {ref}: unknown MISP type {kind!r}",
                    value if isinstance(value, str) else None)


def _check_attribute(attribute: object, source: _Source, owner: str) -> None:
    if not isinstance(attribute, Mapping):
        raise FormatError(f"{owner}: an Attribute entry is not an object", source.where(owner))
    ref = attribute.get("uuid")
    _check_uuid(ref, f"{owner}: attribute", source)
    if _unknown_type(attribute) is not None:  # left out by _SetAside, the rest converted
        return
    value = attribute.get("value")
    if not isinstance(value, str | int | float) or value == "":  # bool is an int: the boolean type's value
        raise FormatError(f"attribute {ref}: value must be a non-empty string", source.where(ref))
    _check_times(attribute, f"attribute {ref}", source, ref)
    try:
        distribution_of(attribute, 5)
    except DistributionError as error:
        raise FormatError(f"attribute {ref}: {error}", source.where(ref)) from None
    for key in ("Tag", "Galaxy"):
        if not isinstance(attribute.get(key, []), list):
            raise FormatError(f"attribute {ref}: {key} must be a list", source.where(ref))


#: Event fields MISP holds to a few levels (threat level 1 high to 4 undefined; analysis 0 initial to 2 completed).
_EVENT_LEVELS: Final = {"threat_level_id": ("1", "2", "3", "4"), "analysis": ("0", "1", "2")}


def check_event(event: Mapping[str, Any], source: _Source) -> None:
    """Refuse an event MISP itself would not hold: the error names the file and line of the culprit."""
    ref = event.get("uuid")
    _check_uuid(ref, "event", source)
    for key in ("Attribute", "Object", "Tag", "Galaxy"):
        if not isinstance(event.get(key, []), list):
            raise FormatError(f"event {ref}: {key} must be a list", source.where(ref))
    try:
        distribution_of(event, 3)
    except DistributionError as error:
        raise FormatError(f"event {ref}: {error}", source.where(ref)) from None
    _check_times(event, f"event {ref}", source, ref)
    for key, allowed in _EVENT_LEVELS.items():  # MISP refuses any other, and misp-stix then converts nothing
        value = event.get(key)
        if value is not None and str(value).strip() not in allowed:
            raise FormatError(f"event {ref}: {key} {value!r} is not one of MISP's {', '.join(allowed)}",
                              source.where(ref))
    for attribute in event.get("Attribute") or ():
        _check_attribute(attribute, source, f"event {ref}")
    for misp_object in event.get("Object") or ():
        if not isinstance(misp_object, Mapping) or not isinstance(misp_object.get("Attribute", []), list):
            raise FormatError(f"event {ref}: an Object entry is not an object with an Attribute list",
                              source.where(ref))
        _check_uuid(misp_object.get("uuid"), f"event {ref}: object", source)
        if not misp_object.get("name"):
            raise FormatError(f"object {misp_object['uuid']}: no template name", source.where(misp_object["uuid"]))
        for attribute in misp_object.get("Attribute") or ():
            _check_attribute(attribute, source, f"object {misp_object['uuid']}")


def _settle_uuids(event: dict[str, Any], warnings: list[str]) -> None:
    """Give galaxy clusters and sightings written without a uuid a stable one; misp-stix needs it for the id.

    A cluster whose uuid another cluster of the event already uses with another value gets one too: older MISP
    exports wrote the galaxy's uuid on each of its clusters, and misp-stix, which knows a cluster by its uuid,
    kept the first of them and dropped the rest without a word (six of ten clusters of a real CIRCL event)."""
    records = [event, *(event.get("Attribute") or ())]
    for misp_object in event.get("Object") or ():
        records.extend(misp_object.get("Attribute") or ())
    named: dict[str, tuple[Any, Any]] = {}  # cluster uuid -> the (galaxy type, value) it was first seen with
    for record in records:
        for galaxy in record.get("Galaxy") or ():
            for cluster in galaxy.get("GalaxyCluster") or ():
                given, name = cluster.get("uuid"), (galaxy.get("type"), cluster.get("value"))
                if given and named.setdefault(str(given), name) == name:
                    continue
                cluster["uuid"] = str(uuid.uuid5(CLUSTER_NAMESPACE, f"{galaxy.get('type')}:{cluster.get('value')}"))
                named.setdefault(cluster["uuid"], name)
                why = "had no uuid" if not given else f"shared the uuid {given} with another cluster"
                warnings.append(f"event {event['uuid']}: galaxy cluster {galaxy.get('type')}="
                                f"{cluster.get('value')!r} {why}; given {cluster['uuid']}")
        for number, sighting in enumerate(record.get("Sighting") or ()):
            if isinstance(sighting, dict) and not sighting.get("uuid"):
                sighting["uuid"] = str(uuid.uuid5(CLUSTER_NAMESPACE, f"{record.get('uuid')}:sighting:{number}"))
                warnings.append(f"attribute {record.get('uuid')}: a sighting had no uuid; given {sighting['uuid']}")


def _settle_sighting_organisations(event: dict[str, Any], warnings: list[str]) -> list[Loss]:
    """Make each sighting's organisation one misp-stix can name: it reads the organisation's uuid and name and
    raised a bare KeyError on either missing, losing the whole event. An organisation known only by its name gets
    a uuid derived from that name (the same on every import, so one identity); one without a name cannot become
    an identity, and is taken off its sighting, which is kept and reported as having lost it."""
    losses: list[Loss] = []
    for record in event_records(event):
        for sighting in record.get("Sighting") or () if isinstance(record, dict) else ():
            organisation = sighting.get("Organisation") if isinstance(sighting, dict) else None
            if not organisation:
                continue
            name = organisation.get("name") if isinstance(organisation, Mapping) else None
            if not isinstance(name, str) or not name.strip():
                del sighting["Organisation"]
                losses.append(Loss(str(record.get("uuid")), "sighting organisation", sighting.get("uuid"),
                                   "the organisation that reported the sighting has no name: the sighting is "
                                   "kept without it"))
            elif not organisation.get("uuid"):
                sighting["Organisation"] = {**organisation,
                                            "uuid": str(uuid.uuid5(CLUSTER_NAMESPACE, f"organisation:{name}"))}
                warnings.append(f"attribute {record.get('uuid')}: the organisation {name!r} of a sighting had no "
                                f"uuid; given {sighting['Organisation']['uuid']}")
    return losses


def _settle_timestamps(event: dict[str, Any], warnings: list[str], undated: int | None) -> None:
    """Date an event written without a ``timestamp`` at ``undated`` (µs; the file's time) or else now, to the
    second, and each attribute or object without one as its event. misp-stix dates them now to the microsecond,
    which no MISP file can say: a node reading its own export of such an event back stored every object made of
    them again (MISP timestamps are whole seconds). Dated by its file, an event imported again from the same
    file is the same objects, whichever second (or worker process) converts it."""
    if not event.get("timestamp"):
        when = "the file's time" if undated is not None else "now"
        seconds = undated // 1_000_000 if undated is not None else int(datetime.now(UTC).timestamp())
        event["timestamp"] = str(seconds)
        warnings.append(f"event {event.get('uuid')}: no timestamp; dated {event['timestamp']} ({when})")
    for record in event_records(event):
        if isinstance(record, dict) and not record.get("timestamp"):
            record["timestamp"] = event["timestamp"]


def _stix_default(value: Any) -> Any:
    """What python-stix2's own JSON encoder writes for its types (timestamps at their STIX precision)."""
    if isinstance(value, date | datetime):
        return format_datetime(value)
    if isinstance(value, _STIXBase):
        plain = dict(value)
        for name in value._defaulted_optional_properties:
            del plain[name]
        return plain
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _as_dict(stix_object: Any) -> dict[str, Any]:
    """A stix2 object as a plain dict, as ``serialize()`` would write it, several times faster (orjson)."""
    if isinstance(stix_object, dict):
        return stix_object
    result: dict[str, Any] = orjson.loads(
        orjson.dumps(stix_object, default=_stix_default, option=orjson.OPT_PASSTHROUGH_DATETIME))
    return result


#: MISP attribute types whose value is a rule of another language, which misp-stix writes as an indicator's pattern.
_RULE_TYPES = frozenset({"sigma", "snort", "suricata", "yara"})


def _unbracket_rules(produced: list[dict[str, Any]], event: Mapping[str, Any]) -> None:
    """Give back each rule attribute's value as its indicator's pattern, as the STIX text defines a pattern of
    that ``pattern_type``: misp-stix writes a sigma, snort, suricata or yara attribute (not object) as
    ``[<rule>]``, the brackets of a STIX pattern, which no YARA or Sigma parser reads (a real CIRCL event's YARA
    rule was refused at ingest), and which its own parser hands back to MISP as part of the rule."""
    rules = {f"indicator--{a.get('uuid')}": a.get("value") for a in event.get("Attribute") or ()
             if isinstance(a, Mapping) and a.get("type") in _RULE_TYPES and isinstance(a.get("value"), str)}
    for obj in produced:
        value = rules.get(obj["id"]) if obj["type"] == "indicator" else None
        pattern = obj.get("pattern")
        if (value is not None and isinstance(pattern, str) and obj.get("pattern_type") in _RULE_TYPES
                and pattern[:1] == "[" and pattern[-1:] == "]" and pattern[1:-1] in (value, value.strip())):
            obj["pattern"] = value  # as the attribute holds it: misp-stix also strips a rule's last newline


def _mark_not_for_detection(produced: list[dict[str, Any]], event: Mapping[str, Any]) -> None:
    """Flag the indicator misp-stix made of an attribute with ``to_ids`` off (it does so for rule attributes,
    whatever ``to_ids`` says): its producer shared it for context, and MISP's own IDS exports leave it out, so
    Kizuna's matchers and feeds leave it out too, and a MISP export turns ``to_ids`` off again."""
    off = {f"indicator--{a.get('uuid')}" for a in event.get("Attribute") or ()
           if isinstance(a, Mapping) and a.get("to_ids") in (False, 0, "0", "false", "False")}
    for obj in produced:
        if obj["type"] == "indicator" and obj["id"] in off:
            obj[NOT_FOR_DETECTION_PROPERTY] = True


def _date_sighting_organisations(produced: list[dict[str, Any]], event: dict[str, Any]) -> None:
    """misp-stix makes an identity for each organisation that reported a sighting without a date of its own, which
    stix2 dates now, to the microsecond: every import of the same event stored a new version of each. They are
    dated as the event's own organisation is, at the event's timestamp."""
    reporters = {f"identity--{sighting['Organisation'].get('uuid')}"
                 for record in event_records(event) if isinstance(record, Mapping)
                 for sighting in record.get("Sighting") or () if isinstance(sighting, Mapping)
                 and isinstance(sighting.get("Organisation"), Mapping)}
    if not reporters:
        return
    try:
        stamp = datetime.fromtimestamp(int(event["timestamp"]), UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    except (ValueError, OverflowError, OSError):  # check_event refuses such a timestamp before misp-stix reads it
        return
    for obj in produced:
        if obj["type"] == "identity" and obj["id"] in reporters:
            obj["created"] = obj["modified"] = stamp


def convert_event(source_event: Mapping[str, Any], *, copy_input: bool = True,
                  undated: int | None = None) -> ConversionReport:
    """One checked event -> STIX objects (misp-stix), markings applied, TLP on OASIS ids, losses found.

    Galaxy clusters and sightings without a uuid get one in place, an event or record without a timestamp one
    to the second (``undated``, µs, or now); ``copy_input=False`` lets a caller that owns the event (freshly
    parsed) skip the defensive copy.
    """
    report = ConversionReport(FORMAT)
    event: dict[str, Any] = copy.deepcopy(dict(source_event)) if copy_input else dict(source_event)
    _settle_uuids(event, report.warnings)
    settled = _settle_sighting_organisations(event, report.warnings)
    _settle_timestamps(event, report.warnings, undated)
    try:
        plan = plan_markings(event)
    except DistributionError as error:
        raise FormatError(str(error)) from None
    with converter_messages() as logged:
        try:
            parser = MISPtoSTIX21Parser()
            parser.parse_misp_event({"Event": event})  # misp-stix reads the event, it does not change it
            produced = [_as_dict(o) for o in parser.stix_objects]
        except Exception as error:  # misp-stix raises whatever its stix2 objects raise
            raise FormatError(f"misp-stix cannot convert event {event['uuid']}: "
                              f"{' '.join(str(error).split())[:300]}") from None
    _unbracket_rules(produced, event)
    _date_sighting_organisations(produced, event)
    _mark_not_for_detection(produced, event)
    supporting = carry(produced, event)
    errors = [m for messages in getattr(parser, "errors", {}).values() for m in messages]
    # misp-stix both records a message and logs it: each is reported once.
    report.warnings.extend(dict.fromkeys([
        *(" ".join(str(m).split("\n", 1)[0].split()) for m in errors),
        *(" ".join(str(m).split()) for ms in getattr(parser, "warnings", {}).values() for m in ms),
        *logged]))
    normalised, _ = normalise_objects(produced)
    report.objects = apply_markings(normalised, plan)
    supporting += attach(report.objects, event)
    report.objects.extend({o["id"]: o for o in supporting}.values())  # the Kizuna identity once
    container = [o for o in produced if o["type"] in ("report", "grouping")]
    finder = LossFinder(produced, [str(e) for e in errors] + logged)
    report.losses = plan.losses + settled + finder.event(event, container)
    if finder.refused:  # misp-stix's message is the rejection's reason: not repeated as a warning
        refs = [r.where for r in finder.refused]
        report.warnings = [w for w in report.warnings if not any(ref in w for ref in refs)]
        report.rejected.extend(finder.refused)
    return report


#: Objects every event of a document may bring alike (its markings, the MISP event extension and its publisher):
#: kept once.
_SHARED_TYPES = frozenset({"marking-definition", "extension-definition"})


def _merge(into: ConversionReport, part: ConversionReport, shared: set[str]) -> None:
    """``part`` added to ``into``; ``shared``: the ids of the objects every event may bring that ``into`` holds
    (kept up to date here, so a document of many events is merged in one pass, not one per event)."""
    for obj in part.objects:
        if obj["id"] in shared:
            continue
        if obj["type"] in _SHARED_TYPES or obj["id"] == KIZUNA_IDENTITY_ID:
            shared.add(obj["id"])
        into.objects.append(obj)
    into.losses.extend(part.losses)
    into.rejected.extend(part.rejected)
    into.warnings.extend(part.warnings)


#: How MISP writes ``deleted`` on a soft-deleted attribute or object (JSON true; older exports "1").
_DELETED: Final = (True, 1, "1", "true", "True")
_DELETED_REASON: Final = "deleted in MISP (soft-deleted there, kept in its exports): not imported"


def _deleted(record: Mapping[str, Any]) -> bool:
    return record.get("deleted") in _DELETED


class _SetAside:
    """What is taken out of a checked event before misp-stix reads it: attributes of a type MISP does not define
    (rejected input, by file and line: misp-stix raises on them, losing the file) and attributes and objects
    deleted in MISP (losses: misp-stix converts them like live ones, and a withdrawn value went out in feeds)."""

    def __init__(self, source: _Source) -> None:
        self.source = source
        self.rejected: list[Rejected] = []
        self.losses: list[Loss] = []
        self.deleted_uuids: set[str] = set()

    def event(self, event: dict[str, Any]) -> None:
        if event.get("Attribute"):
            event["Attribute"] = self._attributes(event["Attribute"])
        objects = []
        for misp_object in event.get("Object") or ():
            if _deleted(misp_object):
                records = [misp_object, *(misp_object.get("Attribute") or ())]
                self.deleted_uuids.update(str(record.get("uuid")) for record in records)
                self.losses.append(Loss(str(misp_object.get("uuid")), "object", misp_object.get("name"),
                                        _DELETED_REASON))
                continue
            if misp_object.get("Attribute"):
                misp_object["Attribute"] = self._attributes(misp_object["Attribute"])
            objects.append(misp_object)
        if event.get("Object"):
            event["Object"] = objects
        if self.deleted_uuids:
            self._references(objects)

    def _attributes(self, attributes: list[Any]) -> list[Any]:
        kept = []
        for attribute in attributes:
            rejected = _unknown_type(attribute)
            if _deleted(attribute):
                self.deleted_uuids.add(str(attribute.get("uuid")))
                self.losses.append(Loss(str(attribute.get("uuid")), "attribute",
                                        {"type": attribute.get("type"), "value": attribute.get("value")},
                                        _DELETED_REASON))
            elif rejected is not None:
                self.rejected.append(replace(rejected, where=self.source.where(rejected.where)))
            else:
                kept.append(attribute)
        return kept

    def _references(self, objects: list[dict[str, Any]]) -> None:
        """A reference to a deleted record goes with it: misp-stix would relate the object to an id never stored."""
        for misp_object in objects:
            references = misp_object.get("ObjectReference")
            if not isinstance(references, list):
                continue
            kept = []
            for reference in references:
                target = str(reference.get("referenced_uuid")) if isinstance(reference, Mapping) else ""
                if target in self.deleted_uuids:
                    self.losses.append(Loss(str(misp_object.get("uuid")), "object_reference",
                                            f"{reference.get('relationship_type')} {target}",
                                            "refers to a record deleted in MISP, which is not imported"))
                else:
                    kept.append(reference)
            misp_object["ObjectReference"] = kept


def _read_document(source: _Source, undated: int | None, workers: int = 0) -> ConversionReport:
    events = _events(_json(source), source)
    for event in events:
        check_event(event, source)
    set_aside = [_SetAside(source) for _ in events]
    for event, aside in zip(events, set_aside, strict=True):
        aside.event(event)

    def converted(index: int) -> ConversionReport:
        event = events[index]
        try:
            part = convert_event(event, copy_input=False, undated=undated)
        except FormatError as error:  # raised in order, whichever process converted it (it pickles whole)
            raise FormatError(error.message, error.where or source.where(event.get("uuid"))) from None
        # A refused attribute is named by its file and line, as the checks name what they refuse.
        part.rejected = set_aside[index].rejected + [replace(r, where=source.where(r.where)) for r in part.rejected]
        part.losses = set_aside[index].losses + part.losses
        return part

    report = ConversionReport(FORMAT)
    shared: set[str] = set()
    parts = in_order(converted, len(events), workers)
    try:
        for part in parts:
            _merge(report, part, shared)
    finally:
        parts.close()
    return report


def _file_time(path: Path, undated: int | None) -> int | None:
    return undated if undated is not None else int(path.stat().st_mtime) * 1_000_000


def _files(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix == ".json" and path.name != "manifest.json":
            yield path


def read_misp(source: str | os.PathLike[str] | bytes, name: str | None = None, *,
              undated: int | None = None, workers: int = 0) -> ConversionReport:
    """Convert MISP event JSON (a file, a directory of files, or one document's bytes) to STIX 2.1.

    An event without a timestamp is dated ``undated`` (µs; default: a file's own time, or now for bytes).
    ``workers``: processes forked to convert the events of a document of several (`kizuna/core/forked.py`;
    a command, not a server), the report the same as with none.

    Raises ``FormatError`` when a single document cannot be read; in a directory, each bad file is a
    ``Rejected`` entry (``where`` = FILE:LINE) and the other files are converted.
    """
    if isinstance(source, bytes):
        return _read_document(_Source(name or "<input>", source), undated, workers)
    path = Path(source)
    if path.is_dir():
        report = ConversionReport(FORMAT)
        shared: set[str] = set()
        for file in _files(path):
            try:
                _merge(report, _read_document(_Source(str(file), file.read_bytes()), _file_time(file, undated)),
                       shared)
            except FormatError as error:
                report.rejected.append(Rejected(error.where or str(file), error.message))
        return report
    try:
        text = path.read_bytes()
    except OSError as error:
        raise FormatError(f"cannot read: {error.strerror}", str(path)) from None
    return _read_document(_Source(name or str(path), text), _file_time(path, undated), workers)


__all__ = ["FORMAT", "Loss", "check_event", "convert_event", "read_misp"]
