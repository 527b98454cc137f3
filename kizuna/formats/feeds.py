"""What goes into a feed: the indicators of the caller's view that pass the feed's own limits.

Every writer (plain blocklists, RPZ, Zeek Intel, Suricata, CSV) reads its input through `select`:
the objects the caller may see — already passed through the node's visibility check — as dicts, as
stored JSON bytes, or (blocklists and RPZ, `Node.export_feed`) as the feed facts the store noted of an
indicator the caller receives as stored (store/feed_facts.py), the *latest* version of each. A writer given
facts reads only the IOCs and the indicator's id. `select` keeps indicators that are

* ``pattern_type`` ``stix`` with a pattern that is a list of IOCs (`iocs.pattern_terms`), or one of the
  writer's ``rule_types`` (Suricata takes ``snort`` and ``suricata`` rules whole, as one `RULE` term),
* not revoked, and valid at ``now`` (``valid_from`` ≤ now < ``valid_until``),
* at or below the TLP ceiling and at or above the confidence floor, when those are set,
* not flagged by a warninglist, unless ``include_flagged``, and not shared as not for detection (MISP's
  ``to_ids`` off, `NOT_FOR_DETECTION_PROPERTY`),

and yields each with its canonical IOC values. Indicators it leaves out for a reason the reader of
the report should know (a pattern no list can express, a value that is no valid IOC) become `Loss`
entries; those filtered out by the limits are counted in ``report.warnings``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from kizuna.formats.base import ConversionReport, Loss
from kizuna.formats.iocs import (
    CANONICAL_HOST,
    DOMAIN,
    EMAIL,
    IPV4,
    IPV4_EXACT,
    IPV6,
    JA3,
    KIND_BY_PATH,
    MD5,
    NO_WIRE_FORM,
    SHA1,
    SHA256,
    SHA512,
    SINGLE_TERM,
    URL,
    canonical,
    pattern_terms,
    wire_form,
)
from kizuna.formats.warninglists import WARNINGLIST_PROPERTY
from kizuna.policy.tlp import LEVEL_BY_ANY_ID, TlpLevel
from kizuna.stix.pattern_scan import unescape
from kizuna.stix.timestamps import format_timestamp, now_micros, parse_timestamp
from kizuna.stix.vocab import shared_not_for_detection
from kizuna.store.feed_facts import SEPARATOR as _SEP


def on_the_wire(kind: str, value: str, ident: str, report: ConversionReport | None,
                what: str = "pattern") -> str | None:
    """The non-ASCII ``value`` as devices compare it (`iocs.wire_form`), or None with a loss reported for
    ``ident``'s ``what`` when IDNA cannot write its name. Writers test ``value.isascii()`` before calling: ASCII
    values, the bulk of any feed, are their own wire form."""
    wire = wire_form(kind, value)
    if wire is None and report is not None:
        report.losses.append(Loss(ident, what, value, NO_WIRE_FORM))
    return wire


@dataclass(frozen=True)
class FeedOptions:
    """The limits of one feed, on top of what the caller may see.

    ``unmarked_tlp``: the level an indicator without TLP marking counts as under ``tlp_ceiling``
    (None: unmarked indicators pass, as in the node's policy options). ``min_confidence``: an
    indicator without ``confidence`` fails any floor. ``now``: a STIX timestamp, the present otherwise.
    """

    tlp_ceiling: TlpLevel | None = None
    min_confidence: int | None = None
    now: str | None = None
    include_flagged: bool = False
    unmarked_tlp: TlpLevel | None = None


DEFAULT_OPTIONS: Final = FeedOptions()
#: The term of an indicator whose pattern is a rule in one of the writer's ``rule_types``: its whole text.
RULE: Final = "rule"
#: Lines a list writer joins into one piece of text: a million lines handed on one at a time cost more in
#: the generators they pass through than in writing them.
PIECE_LINES: Final = 1024

# Bytes that the JSON text of a pattern holding each kind must contain (unless it uses \u escapes,
# which disable this shortcut): objects without any are skipped before parsing.
_MARKERS: Final = {
    IPV4: b"ipv4-addr:", IPV6: b"ipv6-addr:", DOMAIN: b"domain-name:", URL: b"url:", EMAIL: b"email-addr:",
    MD5: b"hashes", SHA1: b"hashes", SHA256: b"hashes", SHA512: b"hashes", JA3: b"ja3",
}


#: Stands for the indicator of stored facts where only its terms are wanted (`select_terms`).
_ID_ONLY: Final[dict[str, Any]] = {}


@dataclass(slots=True)
class Selected:
    """One indicator that goes into the feed, with the IOCs its pattern names (canonical values)."""

    indicator: dict[str, Any]
    terms: list[tuple[str, str]] = field(default_factory=list)


def _tlp_of(indicator: dict[str, Any], unmarked: TlpLevel | None) -> TlpLevel | None:
    level: TlpLevel | None = None
    for ref in indicator.get("object_marking_refs") or ():
        found = LEVEL_BY_ANY_ID.get(ref)
        if found is not None and (level is None or found > level):
            level = found
    return level if level is not None else unmarked


def _micros(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def _is_before(stamp: Any, now: int, now_second: str) -> bool | None:
    """Whether a STIX timestamp lies before ``now``; None when it is absent or unreadable.

    Timestamps in the usual ``YYYY-MM-DDTHH:MM:SS…Z`` shape are compared as text to the second,
    which settles almost every case without parsing (a million indicators a feed); ties parse.
    """
    if type(stamp) is str and len(stamp) >= 20 and stamp[10] == "T" and stamp[19] in ".Zz":
        head = stamp[:19]
        if head != now_second and head.isascii():
            return head < now_second
    micros = _micros(stamp)
    return None if micros is None else micros < now


def _note_change(report: ConversionReport, stamp: Any) -> None:
    micros = _micros(stamp)
    if micros is not None:
        report.note_change_at(micros)


def select(
    objects: Iterable[dict[str, Any] | bytes | str], options: FeedOptions, report: ConversionReport | None = None,
    kinds: Collection[str] | None = None, skip_unparsed: bool = True, rule_types: Collection[str] = (),
) -> Iterator[Selected]:
    """The indicators of ``objects`` that belong in a feed under ``options`` (see the module text).

    ``kinds`` limits the IOCs checked and yielded to those a writer can use (all kinds by default);
    with ``skip_unparsed`` stored JSON without any of their pattern paths is not even parsed (a
    writer whose kinds make up most feeds, such as RPZ, turns that off: the test costs more there).
    An indicator whose ``pattern_type`` is one of ``rule_types`` passes the same limits and comes with the
    single term (`RULE`, its pattern).
    """
    selected: Iterator[Selected] = _select(objects, options, report, kinds, skip_unparsed, False, rule_types)
    return selected


def select_terms(
    objects: Iterable[dict[str, Any] | bytes | str], options: FeedOptions, report: ConversionReport | None = None,
    kinds: Collection[str] | None = None, skip_unparsed: bool = True,
) -> Iterator[tuple[str, str]]:
    """The ``terms`` of every indicator `select` yields, one (kind, canonical value) at a time, in the same order
    and with the same report, for writers that read nothing else of an indicator (blocklists, RPZ): no
    `Selected` and no indicator dict is made for each of a million facts."""
    terms: Iterator[tuple[str, str]] = _select(objects, options, report, kinds, skip_unparsed, True)
    return terms


def _select(
    objects: Iterable[dict[str, Any] | bytes | str], options: FeedOptions, report: ConversionReport | None,
    kinds: Collection[str] | None, skip_unparsed: bool, terms_only: bool, rule_types: Collection[str] = (),
) -> Iterator[Any]:
    """`select` (``terms_only`` False) or `select_terms` (True)."""
    now = parse_timestamp(options.now) if options.now else now_micros()
    now_second = format_timestamp(now)[:19]
    skipped: Counter[str] = Counter()
    unused: Counter[str] = Counter()
    floor, ceiling, unmarked = options.min_confidence, options.tlp_ceiling, options.unmarked_tlp
    # Hot loop (a million objects a feed): library functions bound to locals, one regex for the
    # common single-IOC pattern, canonical() only for values that are not plain IPv4 addresses.
    loads, single_term, kind_by_path, plain_ipv4 = orjson.loads, SINGLE_TERM.fullmatch, KIND_BY_PATH, IPV4_EXACT.match
    plain_domain = CANONICAL_HOST.match
    later = now + 1
    include_flagged = options.include_flagged
    # substring tests (memchr-fast); a regular-expression alternation cost more than the parse it saved
    markers = tuple(sorted({_MARKERS[k] for k in kinds})) if kinds is not None and skip_unparsed else None
    unread = 0
    # stored facts of these kinds stand for JSON the test above would skip unparsed: counted alike
    unread_kinds = frozenset(kind for kind, marker in _MARKERS.items() if marker not in markers) if markers else ()
    for item in objects:
        if type(item) is str and item.startswith("indicator--"):
            # The stored facts of an indicator its reader receives as stored (store/feed_facts.py); JSON text
            # never starts so. Checked in the order the body's properties are below, with the same outcomes.
            stix_id, kind, revoked, starts, ends, certainty, tlp, flagged, literal = item.split(_SEP, 8)
            if kind in unread_kinds:
                unread += 1
                continue
            if revoked:
                skipped["revoked"] += 1
                continue
            if starts and int(starts) >= later or ends and int(ends) < later:
                skipped["outside its validity window"] += 1
                if report is not None and starts and int(starts) >= later:
                    report.note_change_at(int(starts))  # it enters the feed then
                continue
            if report is not None and ends:
                report.note_change_at(int(ends))  # it leaves the feed then
            if ceiling is not None:
                level = TlpLevel(int(tlp)) if tlp else unmarked
                if level is not None and level > ceiling:
                    skipped[f"above {ceiling.label}"] += 1
                    continue
            if floor is not None and (not certainty or int(certainty) < floor):
                skipped[f"confidence below {floor} or absent"] += 1
                continue
            if flagged and not include_flagged:
                skipped["on a warninglist"] += 1
                continue
            # all a writer reads of an indicator given by its facts (its id)
            obj: dict[str, Any] = _ID_ONLY if terms_only else {"id": stix_id}
        else:
            if markers is not None and type(item) is bytes:
                for marker in markers:
                    if marker in item:
                        break
                else:
                    if b"\\u" not in item:
                        unread += 1  # stored JSON that cannot hold an IOC of the wanted kinds: not worth parsing
                        continue
            obj = item if isinstance(item, dict) else loads(item)
            get = obj.get
            if get("type") != "indicator":
                continue
            pattern_type = get("pattern_type")
            if pattern_type != "stix" and pattern_type not in rule_types:
                skipped["pattern type is not stix"] += 1
                continue
            if get("revoked") is True:
                skipped["revoked"] += 1
                continue
            valid_from, valid_until = get("valid_from"), get("valid_until")
            # the usual case decided on the text, to the second: valid_from before now, no valid_until
            if not (valid_until is None and type(valid_from) is str and len(valid_from) >= 20
                    and valid_from[:19] < now_second and valid_from[10] == "T" and valid_from[19] in ".Zz"):
                if _is_before(valid_from, later, now_second) is False or (
                        valid_until is not None and _is_before(valid_until, later, now_second) is not False):
                    skipped["outside its validity window"] += 1
                    if report is not None and _is_before(valid_from, later, now_second) is False:
                        _note_change(report, valid_from)  # it enters the feed then
                    continue
                if report is not None and valid_until is not None:
                    _note_change(report, valid_until)  # it leaves the feed then
            if ceiling is not None:
                level = _tlp_of(obj, unmarked)
                if level is not None and level > ceiling:
                    skipped[f"above {ceiling.label}"] += 1
                    continue
            if floor is not None:
                confidence = get("confidence")
                if not isinstance(confidence, int) or confidence < floor:
                    skipped[f"confidence below {floor} or absent"] += 1
                    continue
            if not include_flagged and get(WARNINGLIST_PROPERTY):
                skipped["on a warninglist"] += 1
                continue
            if shared_not_for_detection(obj):
                skipped["not for detection (MISP to_ids off)"] += 1
                continue
            pattern = get("pattern")
            if pattern_type != "stix":  # a rule of the writer's rule_types, taken whole
                if type(pattern) is str and not terms_only:
                    yield Selected(obj, [(RULE, pattern)])
                continue
            one = single_term(pattern) if type(pattern) is str else None
            if one is None:
                terms = _terms(obj, pattern, kinds, unused, report)
                if terms_only:
                    yield from terms
                elif terms:
                    yield Selected(obj, terms)
                continue
            kind, literal = kind_by_path[one.group(1)], one.group(2)[1:-1]
        if kinds is not None and kind not in kinds:
            unused[kind] += 1
            continue
        literal = unescape(literal)
        if (kind == IPV4 and plain_ipv4(literal)) or (
                kind == DOMAIN and len(literal) <= 253 and plain_domain(literal)):
            value: str | None = literal  # already canonical: the bulk of any feed, checked in one match
        else:
            value = canonical(kind, literal)
        if value is not None:
            yield (kind, value) if terms_only else Selected(obj, [(kind, value)])
        elif report is not None:
            where = stix_id if obj is _ID_ONLY else str(obj.get("id", "?"))
            report.losses.append(Loss(where, "pattern", literal, f"not a valid {kind} value"))
    if report is not None:
        for reason, count in sorted(skipped.items()):
            report.warnings.append(f"{count} indicator(s) left out: {reason}")
        for kind, count in sorted(unused.items()):
            report.warnings.append(f"{count} {kind} value(s) have no place in this feed")
        if unread:
            report.warnings.append(f"{unread} object(s) without an IOC of this feed's kinds skipped unparsed")


def _terms(obj: dict[str, Any], pattern: Any, kinds: Collection[str] | None, unused: Counter[str],
           report: ConversionReport | None) -> list[tuple[str, str]]:
    """The canonical IOCs of a pattern of several terms (``pattern_terms``); a loss for each that is none."""
    raw_terms = pattern_terms(pattern) if type(pattern) is str else None
    if raw_terms is None:
        if report is not None:
            report.losses.append(Loss(str(obj.get("id", "?")), "pattern", pattern, "not a list of IOCs (AND, "
                                      "qualifiers or properties a blocklist cannot express)"))
        return []
    terms = []
    for kind, raw in raw_terms:
        if kinds is not None and kind not in kinds:
            unused[kind] += 1
            continue
        value = canonical(kind, raw)
        if value is None:
            if report is not None:
                report.losses.append(Loss(str(obj.get("id", "?")), "pattern", raw, f"not a valid {kind} value"))
            continue
        terms.append((kind, value))
    return terms


def feed_timestamp(options: FeedOptions) -> str:
    """The feed's 'as of' time, for headers and serials."""
    return options.now or format_timestamp(now_micros())
