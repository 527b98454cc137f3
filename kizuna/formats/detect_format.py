"""Which interchange format an input is in, and its conversion to STIX 2.1 (pure: bytes in, report out).

`kizuna import` reads any of these; this module decides which one a file holds — from its first
bytes, the name's extension only breaking ties — and runs the matching converter with the options
an operator gave. STIX 2.1 itself is not converted here: the command streams it straight into
ingest (any size), so `convert` is for everything else.

Values on warninglists are flagged on the indicators *Kizuna writes* (converted MISP, STIX 2.0 and
1.x, IOC lists). STIX 2.1 objects are stored as their producer wrote them, byte for byte, so they
are never flagged (docs/formats.md).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from kizuna.formats.base import ConversionReport, FormatError
from kizuna.formats.ioc_lists import read_ioc_list
from kizuna.formats.iocs import canonical, classify, pattern_terms
from kizuna.formats.stix_legacy import STIX1, STIX20, read_stix1x, read_stix20, sniff
from kizuna.formats.warninglists import Warninglists
from kizuna.stix.pattern_scan import string_literals
from kizuna.stix.vocab import WARNINGLIST_PROPERTY

STIX: Final = "stix"
MISP: Final = "misp"
IOC_CSV: Final = "ioc-csv"
IOC_TEXT: Final = "ioc-text"
#: What ``--format`` accepts besides ``auto``, in the order the help lists them.
IMPORT_FORMATS: Final = (STIX, STIX20, STIX1, MISP, IOC_CSV, IOC_TEXT)

#: How many leading bytes are enough to decide (a MISP event names "Event" in its first line).
HEAD_BYTES: Final = 64 * 1024

#: The first key of a MISP document: its wrappers, or, for an event written bare (PyMISP's ``MISPEvent.to_json()``,
#: an event saved from MISP's UI with its keys sorted), one of the event's own keys. None of them is a STIX
#: property, and a STIX object or bundle starts with its own ("type", "id", "spec_version", "objects").
_MISP_KEY = re.compile(
    rb'^[\s\[]*\{\s*"(?:Event|response|Attribute|Object|Orgc|Org|Tag|Galaxy|EventReport|ShadowAttribute'
    rb'|RelatedEvent|analysis|attribute_count|threat_level_id|info|orgc_id|org_id|publish_timestamp'
    rb'|sharing_group_id|event_creator_email|extends_uuid|proposal_email_lock|disable_correlation|locked'
    rb'|distribution|date|timestamp|uuid)"\s*:'
)
_EXTENSIONS: Final = {".xml": STIX1, ".csv": IOC_CSV, ".tsv": IOC_CSV, ".txt": IOC_TEXT, ".list": IOC_TEXT}


def detect_format(head: bytes, name: str = "") -> str:
    """The format of an input whose first bytes are ``head`` (`HEAD_BYTES` of them is plenty).

    XML naming the STIX 1.x namespace is ``stix1``; JSON whose first key is ``Event`` or ``response`` (a
    MISP REST or feed document) or a MISP event's own (a bare event) is ``misp``; JSON in STIX 2.0
    (``spec_version`` 2.0, or objects without one) is ``stix20``; other JSON is ``stix`` (2.1); anything
    else is an IOC list, ``ioc-csv`` when the name ends in .csv or .tsv or the first line has a delimiter.
    """
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    # A MISP document first: its first key says so, while the STIX 2.0 sniff would take any JSON holding
    # "created" and "type" (a MISP feed's event file, Kizuna's own export among them) for STIX 2.0.
    if text.startswith((b"{", b"[")) and _MISP_KEY.match(text):
        return MISP
    legacy = sniff(text)
    if legacy is not None:
        return legacy
    if text.startswith(b"<"):
        raise FormatError("XML that is not a STIX 1.x package (no STIX 1.x namespace or STIX_Package element)",
                          f"{name}:1" if name else None)
    if text.startswith((b"{", b"[")):
        return STIX
    suffix = name[name.rfind("."):].lower() if "." in name.rsplit("/", 1)[-1] else ""
    if _EXTENSIONS.get(suffix) in (IOC_CSV, IOC_TEXT):
        return _EXTENSIONS[suffix]
    first = next((line for line in text.split(b"\n") if line.strip() and not line.startswith(b"#")), b"")
    return IOC_CSV if any(d in first for d in (b",", b"\t", b";")) else IOC_TEXT


@dataclass(frozen=True)
class IocOptions:
    """What the command line adds to every indicator of an IOC list (see `read_ioc_list`)."""

    tlp: str | None = None
    labels: Sequence[str] = ()
    confidence: int | None = None
    valid_until: str | None = None
    created_by_ref: str | None = None


@dataclass
class Converted:
    """One input converted: the report (objects, losses, rejections, warnings) and how many were flagged."""

    format: str
    report: ConversionReport
    flagged: int = 0
    notes: list[str] = field(default_factory=list)
    #: Each flagged indicator named for the report (`flagged_values`).
    flagged_values: list[dict[str, Any]] = field(default_factory=list)


def convert(fmt: str, data: bytes, name: str, *, ioc: IocOptions = IocOptions(),
            warninglists: Warninglists | None = None, undated: int | None = None, workers: int = 0) -> Converted:
    """Convert one whole input (never STIX 2.1: see the module text) before anything is stored.

    Raises `FormatError` (naming ``name:line`` or a uuid) when the input as a whole is malformed;
    refused lines or attributes are in the report and the rest is converted. ``undated`` (µs, the input
    file's time): when a STIX 1.x package or a MISP event dates nothing, the time its objects get. ``workers``:
    processes forked to convert the events of a MISP document (`misp_in.read_misp`); for a command, not a
    server.
    """
    if fmt == MISP:
        from kizuna.formats.misp_in import read_misp  # PyMISP and misp-stix take seconds to import

        report = read_misp(data, name, undated=undated, workers=workers)
    elif fmt == STIX20:
        report = read_stix20(data, name)
    elif fmt == STIX1:
        report = read_stix1x(data, name, undated=undated)
    elif fmt in (IOC_CSV, IOC_TEXT):
        report = read_ioc_list(io.BytesIO(data), name, tlp=ioc.tlp, labels=ioc.labels, confidence=ioc.confidence,
                               valid_until=ioc.valid_until, created_by_ref=ioc.created_by_ref,
                               warninglists=warninglists)
        flagged = sum(1 for o in report.objects if WARNINGLIST_PROPERTY in o)
        return Converted(fmt, report, flagged, flagged_values=flagged_values(report.objects, warninglists, fmt))
    else:
        raise FormatError(f"no converter for format {fmt!r} (one of {', '.join(IMPORT_FORMATS)})")
    flagged = flag_indicators(report.objects, warninglists) if warninglists is not None else 0
    named = flagged_values(report.objects, warninglists, fmt) if flagged else []
    return Converted(fmt, report, flagged, flagged_values=named)


def _ioc_values(pattern: str) -> list[tuple[str | None, str | None]]:
    """The IOC values of a pattern with their kinds: an IOC-shaped pattern's terms, or else each quoted literal
    that has the shape of an IOC (misp-stix writes ``network-traffic:dst_ref.value = '…' AND …`` for an ip-dst)."""
    terms = pattern_terms(pattern)
    return ([(kind, canonical(kind, raw)) for kind, raw in terms] if terms
            else [classify(literal) or (None, None) for literal in string_literals(pattern)])


def flagged_values(objects: Iterable[dict[str, Any]], warninglists: Warninglists | None,
                   fmt: str) -> list[dict[str, Any]]:
    """Each indicator flagged at import, named for the report: ``ref`` (for MISP the attribute's uuid, which
    misp-stix names the indicator by; else the indicator's id), ``value`` (the value(s) on a list) and ``lists``.
    Only flagged indicators are looked at again, so an import with none pays nothing."""
    named = []
    for obj in objects:
        lists = obj.get(WARNINGLIST_PROPERTY)
        if obj.get("type") != "indicator" or not lists:
            continue
        values = [value for kind, value in _ioc_values(str(obj.get("pattern", "")))
                  if kind is not None and value is not None
                  and (warninglists is None or warninglists.check(kind, value))]
        ref = str(obj["id"]).partition("--")[2] if fmt == MISP else obj["id"]
        named.append({"ref": ref, "value": " ".join(dict.fromkeys(values)), "lists": list(lists)})
    return named


def flag_indicators(objects: Iterable[dict[str, Any]], warninglists: Warninglists) -> int:
    """Add ``x_kizuna_warninglists`` to converted indicators whose IOC values are on a list; the count.

    IOC-shaped patterns give their values with their kinds; in any other STIX pattern (misp-stix
    writes ``network-traffic:dst_ref.value = '…' AND …`` for an ip-dst) each quoted literal that has
    the shape of an IOC is checked, since a listed value anywhere in a pattern makes its hits suspect.
    """
    flagged = 0
    for obj in objects:
        if obj.get("type") != "indicator" or obj.get("pattern_type", "stix") != "stix":
            continue
        values = _ioc_values(str(obj.get("pattern", "")))
        hits: list[str] = []
        for kind, value in values:
            if kind is not None and value is not None:
                hits.extend(h for h in warninglists.check(kind, value) if h not in hits)
        if hits:
            obj[WARNINGLIST_PROPERTY] = hits
            flagged += 1
    return flagged


__all__ = ["HEAD_BYTES", "IMPORT_FORMATS", "Converted", "IocOptions", "convert", "detect_format",
           "flag_indicators", "flagged_values"]
