"""STIX 2.0 JSON and STIX 1.x XML in: upgraded to the STIX 2.1 a node stores, every change reported.

* ``read_stix20`` upgrades a 2.0 bundle (or list, or single object) itself, following the 2.1
  specification's list of changes from 2.0: ``spec_version: "2.1"`` on every object that needs it,
  ``labels`` moved to the type's own vocabulary property (``indicator_types``, ``malware_types``,
  ``report_types``, ``threat_actor_types``, ``tool_types``), ``pattern_type: "stix"`` on indicators
  and the now required ``is_family`` on malware. Ids are kept; only an id whose UUID 2.1 does not
  allow is replaced, by a name-based UUID of the old id, and every reference to it follows.
  TLP 1.0 markings are left as they are: the node's ingest maps them to TLP 2.0 and says so.
* ``read_stix1x`` hands STIX 1.x XML to stix2-elevator (2.1 output, properties without a 2.1 home
  kept as extension properties) and keeps each of its warnings and errors in the report. The XML
  is parsed here first, without entity expansion or network access, so a syntax error is a
  ``FormatError`` with its line and the elevator never sees it.

Both finish the same way: ids repaired, then every object checked with ``check_object``; an object
the node would refuse is listed in ``rejected`` with the reason instead of being returned, so what a
report returns imports cleanly.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import threading
import uuid
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import orjson

from kizuna.formats.base import ConversionReport, FormatError, Loss, Rejected
from kizuna.stix import vocab
from kizuna.stix.timestamps import format_timestamp
from kizuna.stix.validation import check_object, is_stix_id

__all__ = ["read_stix1x", "read_stix20", "sniff", "upgrade_stix20"]

STIX20: Final = "stix20"
STIX1: Final = "stix1"

# Replacement ids are name-based (uuid5 of the old id), so importing the same file twice gives the same ids.
_REPLACED_ID_NAMESPACE: Final = uuid.UUID("3b0f5c9e-6a8d-4e2f-9b71-c4d2a7e85f10")
# 2.0 `labels` carried the type's open vocabulary; 2.1 moved it to a property of the type's own.
_LABELS_MOVED_TO: Final = {
    "indicator": "indicator_types", "malware": "malware_types", "report": "report_types",
    "threat-actor": "threat_actor_types", "tool": "tool_types",
}
_SPEC_VERSION_VALUE: Final = re.compile(rb'"spec_version"\s*:\s*"([0-9.]+)"')
_STIX1_NAMESPACE: Final = "http://stix.mitre.org/stix-1"


def sniff(head: bytes) -> str | None:
    """``"stix20"`` for STIX 2.0 JSON, ``"stix1"`` for STIX 1.x XML, ``None`` otherwise (2.1 or not STIX).

    JSON is 2.0 when the first ``spec_version`` in ``head`` says ``"2.0"`` (a 2.0 bundle carries it),
    or when there is none but an object with ``created`` (an SDO without ``spec_version`` cannot be
    2.1). XML is STIX 1.x when it names the STIX 1.x namespace or a ``STIX_Package`` element.
    """
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        return STIX1 if _STIX1_NAMESPACE.encode() in text or b"STIX_Package" in text else None
    if not text.startswith((b"{", b"[")):
        return None
    found = _SPEC_VERSION_VALUE.search(text)
    if found is not None:
        return STIX20 if found.group(1) == b"2.0" else None
    return STIX20 if re.search(rb'"created"\s*:', text) and re.search(rb'"type"\s*:', text) else None


# --------------------------------------------------------------------------- STIX 2.0


class _Text:
    """The input's text, to turn an object id into FILE:LINE for the report."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name, self.data = name, data

    def where(self, ref: object) -> str:
        if isinstance(ref, str) and ref:
            at = self.data.find(ref.encode())
            if at >= 0:
                line = self.data.count(b"\n", 0, at) + 1
                return f"{self.name}:{line}"
        return f"{self.name} ({ref})" if ref else self.name


def _read_source(source: str | os.PathLike[str] | bytes, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, name or "<input>"
    path = Path(source)
    try:
        return path.read_bytes(), name or str(path)
    except OSError as exc:
        raise FormatError(f"cannot read {path}: {exc.strerror or exc}", name or str(path)) from None


def read_stix20(source: str | os.PathLike[str] | bytes, name: str | None = None) -> ConversionReport:
    """A STIX 2.0 bundle, JSON list or single object (file path or bytes) upgraded to STIX 2.1."""
    data, label = _read_source(source, name)
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise FormatError(f"not valid JSON: {error.msg}", f"{label}:{error.lineno}") from None
    if isinstance(document, dict) and document.get("type") == "bundle":
        if document.get("spec_version") not in (None, "2.0"):
            raise FormatError(f"not a STIX 2.0 bundle (spec_version {document.get('spec_version')!r})", label)
        objects = document.get("objects")
        if not isinstance(objects, list):
            raise FormatError("the bundle has no list of objects", label)
    elif isinstance(document, list):
        objects = document
    elif isinstance(document, dict):
        objects = [document]
    else:
        raise FormatError("not a STIX 2.0 bundle, list of objects or object", f"{label}:1")
    return upgrade_stix20(objects, _Text(label, data))


class _Changes:
    """Changes of one kind counted across the input, reported once each: '<what> (N objects, e.g. <id>)'."""

    def __init__(self) -> None:
        self.seen: dict[str, list[Any]] = {}

    def add(self, what: str, ref: Any) -> None:
        self.seen.setdefault(what, [0, ref])[0] += 1

    def warnings(self) -> list[str]:
        return [f"{what} ({count} object{'s' if count != 1 else ''}, e.g. {ref})"
                for what, (count, ref) in self.seen.items()]


def upgrade_stix20(objects: Iterable[Any], text: _Text | None = None) -> ConversionReport:
    """Upgrade already parsed STIX 2.0 objects; see the module text for what changes."""
    text = text or _Text("<input>", b"")
    report = ConversionReport(STIX20)
    changes = _Changes()
    upgraded = []
    for position, obj in enumerate(objects):
        if not isinstance(obj, dict):
            report.rejected.append(Rejected(f"{text.name} (objects[{position}])", "not a JSON object"))
            continue
        upgraded.append(_upgrade_object(dict(obj), changes, report))
    report.warnings.extend(changes.warnings())
    _finish(upgraded, report, text.where)
    return report


def _upgrade_object(obj: dict[str, Any], changes: _Changes, report: ConversionReport) -> dict[str, Any]:
    type_name, ref = obj.get("type"), obj.get("id")
    if not isinstance(type_name, str) or obj.get("spec_version") == "2.1":
        return obj  # nothing a 2.0 reader can do for it; the final check judges it
    if type_name not in vocab.SCO_TYPES and "spec_version" not in obj:
        obj["spec_version"] = "2.1"
        changes.add("spec_version '2.1' added", ref)
    elif obj.get("spec_version") == "2.0":
        obj["spec_version"] = "2.1"
        changes.add("spec_version '2.0' changed to '2.1'", ref)
    moved_to = _LABELS_MOVED_TO.get(type_name)
    if moved_to is not None and "labels" in obj and moved_to not in obj:
        obj[moved_to] = obj.pop("labels")
        changes.add(f"{type_name}: labels moved to {moved_to}", ref)
    if type_name == "indicator" and "pattern_type" not in obj:
        obj["pattern_type"] = "stix"
        changes.add("indicator: pattern_type 'stix' added", ref)
    elif type_name == "malware" and "is_family" not in obj:
        # A 2.0 malware always has a name and is how a piece of malware was tracked across reports:
        # a family in 2.1 terms. The choice is reported, since 2.0 did not say.
        obj["is_family"] = True
        changes.add("malware: is_family true added (STIX 2.0 has no such property)", ref)
    elif type_name == "observed-data" and "objects" in obj:
        changes.add("observed-data: embedded objects kept in the 'objects' property 2.1 deprecates", ref)
    elif type_name == "course-of-action" and "action" in obj:
        report.losses.append(Loss(str(ref), "action", obj.pop("action"),
                                  "STIX 2.1 reserves course-of-action 'action'; it has no 2.1 form"))
    return obj


# --------------------------------------------------------------------------- STIX 1.x


# stix2-elevator keeps its options and id tables in module globals: one conversion at a time.
_elevator_lock = threading.Lock()
_ELEVATOR_LOGGERS: Final = ("stix2elevator", "stix2elevator.options")
_ELEVATOR_OPTIONS: Final = {
    "spec_version": "2.1",
    "missing_policy": "use-extensions",  # 1.x content without a 2.1 property is kept, not dropped
    "validator_args": "--silent",
    "log_level": "WARN",
}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        code = getattr(record, "ecode", None)
        prefix = f"stix2-elevator [{code}]" if code is not None else "stix2-elevator"
        self.messages.append(f"{prefix} {record.levelname.lower()}: {record.getMessage()}")


def read_stix1x(source: str | os.PathLike[str] | bytes, name: str | None = None, *,
                undated: int | None = None) -> ConversionReport:
    """STIX 1.x XML (file path or bytes) elevated to STIX 2.1 by stix2-elevator, its messages kept.

    ``undated`` (µs; a path's modification time by default): the time given to what the package leaves
    undated. The elevator's own choice is the current time, which made every import of the same package new
    versions, and its marking definitions (ids taken from the package, content not) refused as redefined.
    """
    from lxml import etree

    data, label = _read_source(source, name)
    if undated is None and not isinstance(source, bytes):
        undated = int(Path(source).stat().st_mtime) * 1_000_000
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or (exc.position[0] if exc.position else 1)
        raise FormatError(f"not well-formed XML: {_xml_reason(exc)}", f"{label}:{line}") from None
    if etree.QName(root).localname != "STIX_Package" or not (etree.QName(root).namespace or "").startswith(
        _STIX1_NAMESPACE
    ):
        raise FormatError(f"not a STIX 1.x package: the root element is {etree.QName(root).localname}",
                          f"{label}:{root.sourceline or 1}")
    bundle, messages = _elevate(root, label, undated)
    if undated is not None and root.get("timestamp") is None:
        messages.append(f"undated objects are dated {format_timestamp(undated)} (the file's time), so importing "
                        "the same package again stores nothing new")
    report = ConversionReport(STIX1, warnings=messages)
    if not isinstance(bundle, dict) or bundle.get("type") != "bundle":
        raise FormatError("stix2-elevator produced no STIX 2.1 bundle", label)
    objects = bundle.get("objects")
    if not isinstance(objects, list) or not objects:
        raise FormatError("the STIX 1.x package holds nothing STIX 2.1 can express", label)
    text = _Text(label, data)
    # The elevator names 1.x ids inside descriptions only; its objects have new ids, so no line can be found.
    _finish(objects, report, lambda ref: f"{text.name} ({ref})" if ref else text.name)
    return report


def _xml_reason(exc: Any) -> str:
    message = str(exc.msg if getattr(exc, "msg", None) else exc)
    return re.sub(r",? line \d+, column \d+$", "", message.strip())


def _elevate(root: Any, label: str, undated: int | None) -> tuple[Any, list[str]]:
    _lxml_compatibility()
    # Some of the elevator's dependencies print to standard output on import (maec without numpy):
    # that would corrupt `kizuna import --json`, so their imports are silenced too.
    with contextlib.redirect_stdout(io.StringIO()):
        import stixmarx
        from stix2elevator import elevate, options

    collect = _Collect()
    with _elevator_lock:
        loggers = [logging.getLogger(name) for name in _ELEVATOR_LOGGERS]
        # The elevator's own console handlers would print to standard error; the report gets the messages.
        saved = [(lg, list(lg.handlers), lg.level) for lg in loggers]
        for lg in loggers:
            for handler in list(lg.handlers):
                lg.removeHandler(handler)
            lg.addHandler(collect)
        options.ALL_OPTIONS = None  # options are read once per process otherwise
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")  # python-stix's deprecation notices are not about the input
                chosen: dict[str, Any] = dict(_ELEVATOR_OPTIONS)
                if undated is not None:
                    chosen["default_timestamp"] = format_timestamp(undated)
                options.initialize_options(chosen)
                result = elevate(stixmarx.parse(root.getroottree()))
        except Exception as exc:  # noqa: BLE001 - the elevator fails on odd input in many ways; all mean "cannot"
            # The elevator's internal failures (a KeyError on a package with no content) say little on
            # their own: name the exception and the elevator's last error message, if it logged one.
            said = next((m for m in reversed(collect.messages) if " error: " in m), None)
            reason = f"{type(exc).__name__} {' '.join(str(exc).split())}".strip() + (f" ({said})" if said else "")
            raise FormatError(f"stix2-elevator cannot convert this STIX 1.x package: {reason}", label) from None
        finally:
            options.ALL_OPTIONS = None
            for lg, handlers, level in saved:
                lg.removeHandler(collect)
                for handler in handlers:
                    lg.addHandler(handler)
                lg.setLevel(level)
    if result is None:
        last = next((m for m in reversed(collect.messages) if " error: " in m), "no reason given")
        raise FormatError(f"stix2-elevator cannot convert this STIX 1.x package: {last}", label)
    return orjson.loads(result), collect.messages


def _lxml_compatibility() -> None:
    """stixmarx tests for `etree._ElementStringResult`, which lxml 5.1 removed (string results are all
    `_ElementUnicodeResult` since); the alias gives its test the same answer it had."""
    from lxml import etree

    if not hasattr(etree, "_ElementStringResult"):
        etree._ElementStringResult = etree._ElementUnicodeResult


# --------------------------------------------------------------------------- shared ending


def _finish(objects: list[dict[str, Any]], report: ConversionReport, where: Any) -> None:
    """Repair ids 2.1 does not allow, then keep the objects the node accepts and reject the others."""
    replaced = _replace_bad_ids(objects)
    for old, new in replaced.items():
        report.warnings.append(f"id {old} is not a valid STIX 2.1 id (its UUID is not RFC 4122 version 1-5); "
                               f"replaced by {new}, and every reference to it follows")
    if replaced:
        objects[:] = [_rewrite_refs(obj, replaced) for obj in objects]
    for obj in objects:
        problem = check_object(obj)
        if problem is None:
            report.objects.append(obj)
        else:
            ref = obj.get("id") if isinstance(obj.get("id"), str) else None
            report.rejected.append(Rejected(where(ref), problem))


def _replace_bad_ids(objects: list[dict[str, Any]]) -> dict[str, str]:
    replaced: dict[str, str] = {}
    for obj in objects:
        object_id, type_name = obj.get("id"), obj.get("type")
        if not isinstance(object_id, str) or not isinstance(type_name, str) or is_stix_id(object_id):
            continue
        if object_id.startswith(f"{type_name}--") and len(object_id) == len(type_name) + 38:
            replaced[object_id] = f"{type_name}--{uuid.uuid5(_REPLACED_ID_NAMESPACE, object_id)}"
    return replaced


def _rewrite_refs(value: Any, replaced: dict[str, str], key: str = "id") -> Any:
    if isinstance(value, dict):
        return {k: _rewrite_refs(v, replaced, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite_refs(v, replaced, key) for v in value]
    if isinstance(value, str) and (key == "id" or key.endswith(("_ref", "_refs"))):
        return replaced.get(value, value)
    return value
