"""CSV and plain-text IOC lists in: one STIX 2.1 indicator per IOC, every refused line accounted for.

A list is either a CSV (comma, semicolon or tab) whose header names a value column — and optionally
type, comment and first-seen columns — or lines of values, possibly with comments after them.
Well-formed values take an exact fast path (shape test plus `ipaddress`), which is what makes 50,000
lines a second possible; defanged values (``hxxp``, ``[.]``…) are refanged with ioc-fanger, and a line
of prose is searched with ioc-finder; those cost tens of microseconds to a millisecond a line, so they
run only where the fast path cannot decide (docs/decisions.md).

Each indicator's id is derived from kind and value, so importing the same list again gives new
versions of the same indicators instead of copies. Values on the chosen warninglists are kept but
flagged (kizuna/formats/warninglists.py).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final

from kizuna.core.messages import N_, Message
from kizuna.formats.base import ConversionReport, FormatError, Loss, Rejected
from kizuna.formats.csv_line import csv_cells
from kizuna.formats.ioc_list_vocab import (
    ANY_IP,
    COMMENT_COLUMNS,
    FIRST_SEEN_COLUMNS,
    ROW_COLUMNS,
    TYPE_COLUMNS,
    TYPE_NAMES,
    VALUE_COLUMNS,
    indicator_template,
    stix_time,
)
from kizuna.formats.iocs import (
    DOMAIN,
    EMAIL,
    HASH_KINDS,
    IPV4,
    IPV6,
    JA3,
    MD5,
    SHA1,
    SHA256,
    SHA512,
    URL,
    canonical,
    classify,
    indicator_id,
    pattern_for,
)
from kizuna.formats.tlds import unknown_top_level_domain
from kizuna.formats.warninglists import DEFAULT_LISTS, WARNINGLIST_PROPERTY, Warninglists, load_warninglists
from kizuna.numerals import whole_number
from kizuna.policy.tlp import LEVEL_BY_ANY_ID, TLP2_IDS, TlpLevel, misp_tag_restriction
from kizuna.stix.timestamps import MomentOutOfRange, parse_timestamp

FORMAT: Final = "ioc-list"

_DEFANGED = re.compile(r"[\[\](){}]|hxx|fxp|\\\.| dot |\[at\]", re.IGNORECASE)
_COMMENT_LINE = ("#", "//", ";")
_FINDER_KINDS: Final = {
    "ipv4s": IPV4, "ipv4_cidrs": IPV4, "ipv6s": IPV6, "domains": DOMAIN, "urls": URL,
    "email_addresses": EMAIL, "md5s": MD5, "sha1s": SHA1, "sha256s": SHA256, "sha512s": SHA512,
}
_USE_DEFAULT: Any = object()


def _column(names: set[str], header: list[str]) -> int | None:
    for index, cell in enumerate(header):
        if cell in names:
            return index
    return None


def _normal_header(cell: str) -> str:
    return cell.strip().strip("#").strip().lower().replace(" ", "_").replace("-", "_")


def _lines(source: str | Path | IO[str] | IO[bytes] | Iterable[str], name: str | None) -> tuple[Iterable[str], str]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        return _read_file(path), name or str(path)
    if hasattr(source, "read") and isinstance(source.read(0), bytes):
        binary: Any = source
        return _decoded(binary), name or str(getattr(source, "name", "<stream>"))
    text: Iterable[str] = source  # type: ignore[assignment]  # a text stream or lines
    return text, name or str(getattr(source, "name", "<stream>"))


def _decoded(binary: Iterable[bytes]) -> Iterator[str]:
    """Lines decoded one at a time, so an invalid byte is reported on its own line."""
    for raw in binary:
        yield raw.decode("utf-8")


def _read_file(path: Path) -> Iterator[str]:
    with path.open("rb") as handle:
        yield from _decoded(handle)


#: The longest text ioc-finder is given at once.
_SEARCHED_AT_ONCE = 20_000


def _pieces(text: str) -> list[str]:
    """``text`` cut at white space into pieces of at most ``_SEARCHED_AT_ONCE`` characters; a run of more
    without white space (no IOC is that long) is left out."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for word in text.split():
        if len(word) > _SEARCHED_AT_ONCE:
            continue
        if size + len(word) + 1 > _SEARCHED_AT_ONCE:
            pieces.append(" ".join(current))
            current, size = [], 0
        current.append(word)
        size += len(word) + 1
    if current:
        pieces.append(" ".join(current))
    return pieces


def _why_not(text: str) -> str:
    if "/" in text and ":" not in text and text.split("/", 1)[0].replace(".", "").isdigit():
        return Message(N_("not an IPv4 block (host bits set, or a malformed address or prefix)"))
    return Message(N_("no IOC recognised"))


class _ListReader:
    """One pass over a list: header detection, per-line conversion, rejection bookkeeping."""

    def __init__(self, name: str, template: dict[str, Any], warninglists: Warninglists | None,
                 report: ConversionReport) -> None:
        self.name = name
        self.template = template
        self.warninglists = warninglists
        self.report = report
        self.seen: set[str] = set()
        self.delimiter: str | None = None
        self.header: dict[str, int] | None = None
        self.width = 0  # the header's number of columns
        self.implied_type = ""
        self.row_columns: list[tuple[str, int]] = []
        self.refanged = 0
        self.flagged = 0
        self.out: list[dict[str, Any]] = []  # indicators of the current line, handed out after it
        self.duplicates = 0
        self.searched = 0

    # -- structure ------------------------------------------------------------------------
    def start(self, line: str, number: int) -> bool:
        """Decide delimiter and header from the first content line; True when the line was a header."""
        self.delimiter = "\t" if "\t" in line else "," if "," in line else ";" if ";" in line else None
        cells = [_normal_header(c) for c in self._split(line, number) or []]
        value = _column(VALUE_COLUMNS, cells)
        if value is None:  # a column named after a type ("ip", "domain", "sha256") holds values of that type
            value = next((i for i, c in enumerate(cells) if c.replace("_", "-") in TYPE_NAMES), None)
            if value is None:
                return False
            self.implied_type = cells[value].replace("_", "-")
        self.header = {"value": value}
        self.width = len(cells)
        for key, names in (("type", TYPE_COLUMNS), ("comment", COMMENT_COLUMNS),
                           ("first_seen", FIRST_SEEN_COLUMNS), *ROW_COLUMNS.items()):
            found = _column(names, cells)
            if found is not None:
                self.header[key] = found
        #: (property, column) of the columns a row may carry for its own indicator (ROW_COLUMNS)
        self.row_columns = [(key, self.header[key]) for key in ROW_COLUMNS if key in self.header]
        used = set(self.header.values())
        for index, cell in enumerate(cells):
            if index not in used:
                self.report.losses.append(Loss(f"{self.name}:{number}", cell or f"column {index + 1}", None,
                                               "column has no place in an indicator; its values are not imported"))
        return True

    def _split(self, line: str, number: int) -> list[str] | None:
        if self.delimiter is None:
            return [line]
        try:
            return csv_cells(line, self.delimiter)
        except csv.Error as exc:
            self.reject(number, Message(N_("malformed CSV: %(detail)s"), detail=str(exc)), line)
            return None

    def reject(self, number: int, reason: str, text: str) -> None:
        self.report.rejected.append(Rejected(f"{self.name}:{number}", reason, text[:500]))

    # -- one line ---------------------------------------------------------------------------
    def line(self, line: str, number: int) -> None:
        if self.header is not None:
            self._csv_row(line, number)
        else:
            self._bare_line(line, number)

    def _csv_row(self, line: str, number: int) -> None:
        assert self.header is not None
        cells = self._split(line, number)
        if cells is None:
            return
        header = self.header
        if len(cells) > self.width:
            # A cell past the header's columns (an unquoted comma in a comment, say) has no column to belong to:
            # reported as lost, not dropped in silence.
            for index in range(self.width, len(cells)):
                if cells[index].strip():
                    self.report.losses.append(Loss(f"{self.name}:{number}", f"column {index + 1}", cells[index][:200],
                                                   "cell past the header's columns: not imported"))
        if len(cells) <= max(header.values()):
            cells += [""] * (max(header.values()) + 1 - len(cells))
        raw = cells[header["value"]].strip()
        type_name = cells[header["type"]].strip().lower() if "type" in header else self.implied_type
        comment = cells[header["comment"]].strip() if "comment" in header else ""
        first_seen = cells[header["first_seen"]].strip() if "first_seen" in header else ""
        if not raw:
            self.reject(number, "no value", line)
            return
        own = None
        if self.row_columns:  # only a list that has them pays for them
            own = {key: cells[index].strip() for key, index in self.row_columns if cells[index].strip()}
        if own and own.get("to_ids", "1").lower() in ("0", "false", "no"):
            # MISP's own CSV: an attribute not marked for detection is context, not an indicator.
            self.report.losses.append(Loss(f"{self.name}:{number}", "to_ids", own["to_ids"],
                                           "not marked for detection (to_ids): not imported as an indicator"))
            return
        for part_type, part in _composite_parts(type_name, raw):
            found = self._value(part, part_type, number, line)
            if found is not None:
                self._emit(found[0], found[1], comment, first_seen, number, line, own)

    def _row_properties(self, obj: dict[str, Any], own: dict[str, str], number: int, line: str) -> bool:
        """Put a row's own name, TLP, confidence, expiry and labels on its indicator (beside the command's: the
        stricter TLP, the labels of both); False, with the line rejected, when one cannot be read."""
        if "name" in own:
            obj["name"] = own["name"]
        if "tlp" in own:
            level = TlpLevel.from_token(own["tlp"].lower().removeprefix("tlp:"))
            if level is None:
                self.reject(number, Message(N_("tlp %(value)r is not a TLP 2.0 level (clear, green, amber, "
                                               "amber+strict, red)"), value=own["tlp"]), line)
                return False
            _mark_at_least(obj, level)
        if "confidence" in own:
            confidence = own["confidence"]
            score = whole_number(confidence, 100)
            if score is None:
                self.reject(number, Message(N_("confidence %(value)r is not a whole number from 0 to 100"),
                                            value=confidence), line)
                return False
            obj["confidence"] = score
        if "valid_until" in own:
            try:
                obj["valid_until"] = stix_time(own["valid_until"])
            except ValueError:
                self.reject(number, Message(N_("valid-until %(value)r is not an ISO 8601 date or date-time"),
                                            value=own["valid_until"]), line)
                return False
        if "labels" in own:
            labels = [label.strip() for label in re.split(r"[;,]", own["labels"]) if label.strip()]
            # MISP's attribute_tag carries the TLP as a tag, read as MISP event import reads it (failing closed)
            tagged = [level for label in labels if (level := misp_tag_restriction(label)) is not None]
            if tagged:
                _mark_at_least(obj, max(tagged))
            labels = [label for label in labels if misp_tag_restriction(label) is None]
            if labels:
                obj["labels"] = list(dict.fromkeys([*obj.get("labels", ()), *labels]))
        return True

    def _bare_line(self, line: str, number: int) -> None:
        text, comment = line, ""
        if " #" in line:
            text, _, comment = line.partition(" #")
            text, comment = text.strip(), comment.strip()
        found = classify(text) or self._refang(text)
        if found is not None:
            self._emit(found[0], found[1], comment, "", number, line)
            return
        cells = self._split(text, number) if self.delimiter else None
        if cells is not None and len(cells) > 1:
            picked = [(i, classify(c.strip()) or self._refang(c.strip())) for i, c in enumerate(cells)]
            iocs = [(i, f) for i, f in picked if f is not None]
            if iocs:
                hint = next((TYPE_NAMES[c.strip().lower()] for c in cells if c.strip().lower() in TYPE_NAMES), "")
                note = " ".join(c.strip() for i, c in enumerate(cells)
                                if all(i != j for j, _ in iocs) and c.strip().lower() not in TYPE_NAMES)
                for _, found in iocs:
                    if hint == JA3 and found[0] == MD5:
                        found = (JA3, found[1])
                    self._emit(found[0], found[1], note or comment, "", number, line)
                return
        for kind, value in self._search(text):
            self._emit(kind, value, comment, "", number, line)
            found = (kind, value)
        if found is None:
            self.reject(number, _why_not(text), line)

    def _value(self, raw: str, type_name: str, number: int, line: str) -> tuple[str, str] | None:
        if not type_name:
            found = classify(raw) or self._refang(raw)
            if found is None:
                self.reject(number, Message(N_("not an IPv4/IPv6 address or block, domain, URL, e-mail address "
                                               "or hash")), line)
            return found
        kind = TYPE_NAMES.get(type_name)
        if kind is None:
            self.reject(number, Message(N_("unknown type %(name)r"), name=type_name), line)
            return None
        found = self._typed(kind, raw) or self._typed(kind, self._fang(raw))
        if found is None:
            self.reject(number, Message(N_("not a valid %(name)s value"), name=type_name), line)
        return found

    @staticmethod
    def _typed(kind: str, raw: str) -> tuple[str, str] | None:
        if kind == ANY_IP:
            for choice in (IPV4, IPV6):
                value = canonical(choice, raw)
                if value is not None:
                    return choice, value
            return None
        if kind == "hash":
            found = classify(raw)
            return found if found is not None and found[0] in HASH_KINDS else None
        if kind == URL and "://" not in raw and "/" in raw:
            raw = "http://" + raw
        value = canonical(kind, raw)
        return (kind, value) if value is not None else None

    def _fang(self, raw: str) -> str:
        if not _DEFANGED.search(raw):
            return raw
        from ioc_fanger import fang  # imported on first use: a defanged list is the exception

        fanged: str = fang(raw)
        if fanged != raw:
            self.refanged += 1
        return fanged

    def _refang(self, raw: str) -> tuple[str, str] | None:
        fanged = self._fang(raw)
        return classify(fanged) if fanged != raw else None

    def _search(self, text: str) -> list[tuple[str, str]]:
        """IOCs inside a line of prose, found by ioc-finder (slow: only lines the fast path refused). A line
        longer than ``_SEARCHED_AT_ONCE`` is searched in pieces cut at white space, which no IOC holds (the
        finder's time grows faster than the text's length)."""
        if len(text) < 4:
            return []
        if len(text) > _SEARCHED_AT_ONCE:
            return [found for piece in _pieces(text) for found in self._search(piece)]
        from ioc_finder import find_iocs

        self.searched += 1
        found = find_iocs(text, parse_domain_from_url=False, parse_from_url_path=False,
                          parse_domain_from_email_address=False, parse_address_from_cidr=False,
                          parse_domain_name_from_xmpp_address=False, included_ioc_types=list(_FINDER_KINDS))
        results: list[tuple[str, str]] = []
        for key, kind in _FINDER_KINDS.items():
            for value in found.get(key) or ():
                value = canonical(kind, str(value))
                if value is not None:
                    results.append((kind, value))
        return results

    # -- output -----------------------------------------------------------------------------
    def _emit(self, kind: str, value: str, comment: str, first_seen: str, number: int, line: str,
              own: dict[str, str] | None = None) -> None:
        if kind == DOMAIN and (tld := unknown_top_level_domain(value)) is not None:
            # report.pdf, update.exe: a file name has a domain's shape; as an indicator it would be blocked by DNS.
            self.reject(number, Message(N_("%(value)r is not a domain: %(tld)r is not a top-level domain"),
                                        value=value, tld=tld), line)
            return
        key = kind + ":" + value
        if key in self.seen:
            self.duplicates += 1
            return
        obj = dict(self.template)
        if own and not self._row_properties(obj, own, number, line):
            return
        if first_seen:
            try:
                obj["valid_from"] = stix_time(first_seen)
            except MomentOutOfRange:
                self.reject(number, Message(N_("first-seen %(value)r falls outside the years 1 to 9999 in UTC"),
                                            value=first_seen), line)
                return
            except ValueError:
                self.reject(number, Message(N_("first-seen %(value)r is not an ISO 8601 date or date-time"),
                                            value=first_seen), line)
                return
        if "valid_until" in obj and parse_timestamp(obj["valid_until"]) <= parse_timestamp(obj["valid_from"]):
            self.reject(number, Message(N_("valid-until is not later than the first-seen date")), line)
            return
        self.seen.add(key)
        obj["id"] = indicator_id(kind, value)
        obj["name"] = obj["name"] or value
        obj["pattern"] = pattern_for(kind, value)
        if comment:
            obj["description"] = comment
        if self.warninglists is not None:
            hits = self.warninglists.check(kind, value)
            if hits:
                obj[WARNINGLIST_PROPERTY] = hits
        if WARNINGLIST_PROPERTY in obj:
            self.flagged += 1
        self.out.append(obj)

    def finish(self) -> None:
        if self.refanged:
            self.report.warnings.append(Message(N_("%(count)s defanged value(s) refanged"), count=self.refanged))
        if self.duplicates:
            self.report.warnings.append(Message(N_("%(count)s repeated value(s) merged into the first occurrence"),
                                                count=self.duplicates))
        if self.searched:
            self.report.warnings.append(Message(N_("%(count)s line(s) of free text searched for IOCs"),
                                                count=self.searched))
        flagged = self.flagged
        if flagged:
            self.report.warnings.append(Message(
                N_("%(count)s value(s) on warninglists: kept and flagged (%(property)s), not exported"),
                count=flagged, property=WARNINGLIST_PROPERTY))


def _mark_at_least(obj: dict[str, Any], level: TlpLevel) -> None:
    """Give ``obj`` the stricter of ``level`` and the TLP marking it has (one TLP marking, its other markings kept)."""
    refs = list(obj.get("object_marking_refs") or ())
    level = max([level, *(LEVEL_BY_ANY_ID[r] for r in refs if r in LEVEL_BY_ANY_ID)])
    obj["object_marking_refs"] = [TLP2_IDS[level], *(r for r in refs if r not in LEVEL_BY_ANY_ID)]


def _composite_parts(type_name: str, raw: str) -> list[tuple[str, str]]:
    """The values of one cell: MISP's composite types (``filename|sha256``, ``ip-dst|port``, ``domain|ip``) carry
    two values in one, of which the file name and the port are no IOC of their own."""
    if "|" not in type_name or "|" not in raw:
        return [(type_name, raw)]
    left_type, _, right_type = type_name.partition("|")
    left, _, right = raw.partition("|")
    if left_type == "filename":
        return [(right_type, right.strip())]
    if right_type == "port":
        return [(left_type, left.strip())]
    return [(left_type, left.strip()), (right_type, right.strip())]


def read_ioc_list(
    source: str | Path | IO[str] | IO[bytes] | Iterable[str],
    name: str | None = None,
    *,
    tlp: TlpLevel | str | None = None,
    markings: Sequence[str] = (),
    labels: Sequence[str] = (),
    confidence: int | None = None,
    valid_from: str | None = None,
    valid_until: str | None = None,
    created_by_ref: str | None = None,
    indicator_types: Sequence[str] = (),
    warninglists: Warninglists | None = _USE_DEFAULT,
    now: str | None = None,
) -> ConversionReport:
    """Read a CSV or text IOC list into STIX 2.1 indicators (``report.objects``).

    ``source`` is a path, an open text or binary file, or an iterable of lines; ``name`` is how
    rejected lines are located (``NAME:LINE``, the path by default). ``tlp``, ``markings``, ``labels``,
    ``confidence``, ``valid_from``/``valid_until``, ``created_by_ref`` and ``indicator_types`` apply to
    every indicator; a first-seen column overrides ``valid_from`` for its line. ``warninglists`` is
    the compiled selection to flag values with (`DEFAULT_LISTS` unless given; None turns flagging
    off). ``now`` fixes ``created``/``modified`` (the time of the import otherwise).

    Refused lines are in ``report.rejected`` with their line number and the rest is imported; options
    that make no sense raise `FormatError`, as does a file that is not UTF-8 text. For lists too big
    to hold as objects, `iter_ioc_list` yields the same indicators one at a time.
    """
    report = ConversionReport(FORMAT)
    report.objects.extend(iter_ioc_list(
        source, name, report=report, tlp=tlp, markings=markings, labels=labels, confidence=confidence,
        valid_from=valid_from, valid_until=valid_until, created_by_ref=created_by_ref,
        indicator_types=indicator_types, warninglists=warninglists, now=now))
    return report


def iter_ioc_list(
    source: str | Path | IO[str] | IO[bytes] | Iterable[str],
    name: str | None = None,
    *,
    report: ConversionReport,
    tlp: TlpLevel | str | None = None,
    markings: Sequence[str] = (),
    labels: Sequence[str] = (),
    confidence: int | None = None,
    valid_from: str | None = None,
    valid_until: str | None = None,
    created_by_ref: str | None = None,
    indicator_types: Sequence[str] = (),
    warninglists: Warninglists | None = _USE_DEFAULT,
    now: str | None = None,
) -> Iterator[dict[str, Any]]:
    """`read_ioc_list` as a stream: indicators are yielded as their lines are read, in bounded memory;
    ``report`` receives rejections, losses and warnings (complete once the iterator is exhausted).
    Options are checked at the call, before anything is read."""
    template = indicator_template(tlp, markings, labels, confidence, valid_from, valid_until, created_by_ref,
                         indicator_types, now)
    if warninglists is _USE_DEFAULT:
        warninglists = load_warninglists(DEFAULT_LISTS)
    lines, where = _lines(source, name)
    return _read(lines, where, _ListReader(where, template, warninglists, report))


def _read(lines: Iterable[str], where: str, reader: _ListReader) -> Iterator[dict[str, Any]]:
    started = False
    number = 0
    out = reader.out
    try:
        for number, raw in enumerate(lines, 1):
            line = raw.strip().lstrip("\ufeff")
            if not line or line.startswith(_COMMENT_LINE):
                continue
            if "\x00" in line:
                reader.reject(number, Message(N_("binary data (NUL byte) in a text list")),
                              line.replace("\x00", "\\0"))
                continue
            if not started:
                started = True
                if reader.start(line, number):
                    continue
            reader.line(line, number)
            if out:
                yield from out
                out.clear()
    except UnicodeDecodeError as exc:
        raise FormatError(Message(N_("not UTF-8 text (%(detail)s)"), detail=exc.reason),
                          f"{where}:{number + 1}") from None
    except FileNotFoundError as exc:
        raise FormatError(f"no such file: {exc.filename}") from None
    reader.finish()
