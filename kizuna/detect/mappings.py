"""Log mappings: how a line of Zeek, Suricata, ECS or any JSON log becomes STIX cyber-observables.

A mapping file (JSON) names the log it reads, the fields that identify it, where the timestamp is,
and the objects to build:

    {"name": "zeek-conn", "signature": ["id.orig_h", "conn_state"],
     "time": {"field": "ts", "format": "epoch"},
     "objects": {
        "src": {"type": "ip", "properties": {"value": "id.orig_h"}},
        "flow": {"type": "network-traffic", "properties": {"src_port": "id.orig_p"},
                 "refs": {"src_ref": "src"}}}}

A property source is a field name (a literal key such as Zeek's "id.orig_h" is tried first, then
the same text as a nested path), {"template": "http://{host}{uri}"}, {"field": ..., "list": true}
to wrap a scalar in a list, {"const": value}, or {"request_url": {"host": "host", "target": "uri"}}
and {"request_host": ...} for an HTTP request's URL and host (a proxy request's target is the URL).
The pseudo-type "ip" becomes ipv4-addr or ipv6-addr by the value.
Property names use pattern path syntax (`hashes.'SHA-256'`).

Matching needs *facts* — (type, path, value) — rather than objects, so a compiled mapping produces
facts straight from the record and builds the STIX objects only when a candidate must be confirmed
or a sighting recorded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from string import Formatter
from typing import Any

import orjson

from kizuna.detect.canonical import NORMALISERS
from kizuna.detect.compiler import compile_pattern
from kizuna.detect.errors import PatternError
from kizuna.detect.model import STAR, ObjectPath, PathStep
from kizuna.detect.observations import Observation
from kizuna.detect.values import parse_timestamp
from kizuna.numerals import integer
from kizuna.stix.patterns import pattern_type_problem

Fact = tuple[str, str, Any]
Record = dict[str, Any]
Getter = Callable[[Record], Any]


# Sightings and alerts write times as STIX timestamps, which (like Python's datetime) span the years
# 1-9999. A log time outside them, NaN or infinite makes its line a bad line — counted and reported
# with its number — rather than a crash when the sighting is written.
EARLIEST_EPOCH = datetime(1, 1, 1, tzinfo=UTC).timestamp()
LATEST_EPOCH = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def zeek_int(cell: str) -> int | str:
    """A Zeek log's count, int or port cell as a number (64 bits, signed or not); any other text as it is."""
    value = integer(cell, 2**64 - 1)
    return cell if value is None else value


def checked_epoch(value: float) -> float:
    """`value` if it is a time a STIX timestamp can hold, else ValueError (NaN fails every comparison)."""
    if not EARLIEST_EPOCH <= value <= LATEST_EPOCH:
        raise ValueError(f"time {value!r} is outside the years 1-9999")
    return value


def _normalised(getter: Getter, normalise: Callable[[str], str]) -> Getter:
    def get(record: Record) -> Any:
        value = getter(record)
        if type(value) is str:
            return normalise(value)
        if isinstance(value, list):
            return [normalise(v) if type(v) is str else v for v in value]
        return value

    return get


def _field_getter(name: str) -> Getter:
    parts = name.split(".")

    def get(record: Record) -> Any:
        value = record.get(name)
        if value is not None or len(parts) == 1:
            return value
        current: Any = record
        for part in parts:
            if not isinstance(current, dict):
                return None
            current = current.get(part)
        return current

    return get


def _template_getter(template: str, names: list[str]) -> Getter:
    getters = {n: _field_getter(n) for n in names}

    def get(record: Record) -> Any:
        values = {}
        for n, g in getters.items():
            v = g(record)
            if v is None:
                return None
            values[n.replace(".", "_")] = v
        return template.format(**values)

    return get


#: A request target in absolute form (`http://evil.com/dl/x.exe`, as a client sends it to a proxy), not the
#: origin form (`/dl/x.exe`) that follows the Host header.
_ABSOLUTE_TARGET = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _target_host(target: str) -> str:
    """The host (with its port, if any) of an absolute-form request target."""
    authority = re.split(r"[/?#]", target.split("://", 1)[1], maxsplit=1)[0]
    return authority.rpartition("@")[2]


#: A request target in authority form (`evil.com:443`, `[2001:db8::1]:443`): the host and port of a CONNECT
#: request, which asks a proxy for a tunnel (RFC 9112, 3.2.3).
_AUTHORITY_TARGET = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[^\s/?#@\[\]:]+):[0-9]+\Z")


def _request_getter(parts: dict[str, Any], what: str) -> Getter:
    """An HTTP request's URL (`request_url`) or host (`request_host`) from its Host header and request
    target. A client talking to a proxy sends the whole URL as the target (RFC 9112, absolute form):
    that URL is the request's URL and its host the host, where the Host header would name the proxy.
    A CONNECT request's target is the host and port of the tunnel it asks for (authority form): that is
    its host, and it has no URL (what goes through the tunnel is not in the log); nor has `OPTIONS *`."""
    host_getter, target_getter = _field_getter(parts["host"]), _field_getter(parts["target"])
    scheme = parts.get("scheme", "http")

    def get(record: Record) -> Any:
        target = target_getter(record)
        if isinstance(target, str) and _ABSOLUTE_TARGET.match(target):
            return target if what == "request_url" else _target_host(target)
        if isinstance(target, str) and _AUTHORITY_TARGET.match(target):
            return None if what == "request_url" else target
        host = host_getter(record)
        if what == "request_host":
            return host
        # Only a path (origin form) joins the host into a URL: `OPTIONS *` asks about the server itself (asterisk
        # form, RFC 9112, 3.2.4) and names no resource, nor does a target that is no path at all.
        if host is None or not isinstance(target, str) or not target.startswith("/"):
            return None
        return f"{scheme}://{host}{target}"

    return get


REQUEST_SOURCES = ("request_url", "request_host")


def _source_getter(source: Any) -> Getter:
    if isinstance(source, str):
        return _field_getter(source)
    for what in REQUEST_SOURCES:
        if what in source:
            return _request_getter(source[what], what)
    if "const" in source:
        constant = source["const"]
        return lambda record: constant
    if "template" in source:
        template: str = source["template"]
        names = [part.split("}", 1)[0] for part in template.split("{")[1:]]
        return _template_getter(_safe_template(template), names)
    getter = _field_getter(source["field"])
    if source.get("list"):
        return lambda record: None if (v := getter(record)) is None else (v if isinstance(v, list) else [v])
    if source.get("first"):
        return lambda record: v[0] if isinstance(v := getter(record), list) and v else None
    return getter


def _safe_template(template: str) -> str:
    """Field names may contain dots; str.format would read them as attribute access."""
    out, rest = [], template
    while "{" in rest:
        head, _, tail = rest.partition("{")
        name, _, rest = tail.partition("}")
        out.append(head + "{" + name.replace(".", "_") + "}")
    out.append(rest)
    return "".join(out)


def _parse_property_path(object_type: str, text: str) -> ObjectPath:
    """Read a property path written in pattern syntax, reusing the pattern compiler."""
    try:
        pattern = compile_pattern(f"[{object_type}:{text} = 'x']", allow_fast_path=False)
    except PatternError as exc:
        raise ValueError(f"invalid property path {text!r}: {exc}") from exc
    expression = pattern.single_observation
    assert expression is not None and hasattr(expression, "path")
    path: ObjectPath = expression.path
    return path


def _set_path(obj: dict[str, Any], steps: tuple[PathStep, ...], value: Any) -> None:
    current = obj
    for step in steps[:-1]:
        assert isinstance(step, str) and step is not STAR
        current = current.setdefault(step, {})
    last = steps[-1]
    assert isinstance(last, str)
    current[last] = value


@dataclass
class _ObjectSpec:
    alias: str
    object_type: str  # "ip" means ipv4-addr or ipv6-addr by value
    properties: list[tuple[str, tuple[PathStep, ...], Getter]]  # (dotted, steps, getter)
    refs: dict[str, str] = field(default_factory=dict)
    sources: list[Any] = field(default_factory=list)  # the mapping file's source of each property
    #: per property, the inline test (a format with {v}) and the function that put its values in canonical
    #: form (NORMALISERS), or None: the getters apply them already, the fast path's inlined reads must too
    normalisers: list[tuple[Callable[[str], str], str] | None] = field(default_factory=list)


def _ip_type(value: Any) -> str:
    return "ipv6-addr" if isinstance(value, str) and ":" in value else "ipv4-addr"


@dataclass
class Event:
    """One log record after mapping."""

    line: int
    time: float | None
    facts: list[Fact]
    types: set[str]
    build: Callable[[], Observation]
    mapping: str
    record: Record


TIME_FORMATS = ("epoch", "iso")


_MAPPING_KEYS = frozenset({"name", "description", "signature", "where", "time", "objects"})


def _shape_problem(spec: Any) -> str | None:
    """Why a mapping file's object is not shaped as docs/detection.md describes, or None. Checked before a
    mapping is built from it, so a wrong shape is refused as the file's fault, not met later as a crash."""
    if not isinstance(spec, dict):
        return "a mapping must be a JSON object"
    if not isinstance(spec.get("name"), str) or not spec["name"]:
        return "a mapping needs a name (a string)"
    # A misspelt key would be ignored: a mapping without its signature claims every record of every format.
    unknown = sorted(set(spec) - _MAPPING_KEYS)
    if unknown:
        return f"{spec['name']}: unknown key {unknown[0]!r} (a mapping has {', '.join(sorted(_MAPPING_KEYS))})"
    signature = spec.get("signature")
    if not isinstance(signature, list) or not signature or not all(isinstance(f, str) and f for f in signature):
        return (f"{spec['name']}: signature must list the fields every record of this format has (at least one): "
                "a mapping without one would claim every record")
    for key in ("where", "time"):
        if not isinstance(spec.get(key, {}), dict):
            return f"{spec['name']}: {key} must be an object"
    time_spec = spec.get("time", {})
    if not all(isinstance(time_spec.get(k, ""), str) for k in ("field", "format")):
        return f"{spec['name']}: time.field and time.format must be strings"
    if extra := sorted(set(time_spec) - {"field", "format"}):
        return f"{spec['name']}: unknown key {extra[0]!r} in time (it has field and format)"
    if time_spec and not time_spec.get("field"):
        return f"{spec['name']}: time needs a field (the record's time), or leave time out"
    if time_spec.get("format", "epoch") not in TIME_FORMATS:
        return (f"{spec['name']}: time.format {time_spec['format']!r} is not one of "
                f"{', '.join(TIME_FORMATS)}")
    objects = spec.get("objects")
    if not isinstance(objects, dict) or not objects:
        return f"{spec['name']}: objects must be an object of aliases, each describing one STIX object"
    for alias, obj in objects.items():
        if (problem := _object_problem(f"{spec['name']}: objects.{alias}", obj, objects)) is not None:
            return problem
    return None


def _object_problem(where: str, obj: Any, objects: dict[str, Any]) -> str | None:
    """Why one entry of a mapping's `objects` is not as docs/detection.md describes it, or None."""
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        return f"{where} must be an object with a type"
    if obj["type"] != "ip" and pattern_type_problem(obj["type"]) is not None:
        return (f"{where}.type {obj['type']!r} is not a STIX 2.1 cyber-observable type, ip, or a custom type "
                "starting with x-")
    if not isinstance(obj.get("properties", {}), dict) or not isinstance(obj.get("refs", {}), dict):
        return f"{where}: properties and refs must be objects"
    for prop, source in obj.get("properties", {}).items():
        if isinstance(source, str):
            continue
        usable = isinstance(source, dict) and ("const" in source or isinstance(source.get("template"), str)
                                               or isinstance(source.get("field"), str)
                                               or any(k in source for k in REQUEST_SOURCES))
        if not usable:
            return (f"{where}.properties.{prop} must be a field name or an object with field, const, template, "
                    "request_url or request_host")
        for kind in REQUEST_SOURCES:
            parts = source.get(kind)
            if kind in source and not (isinstance(parts, dict) and isinstance(parts.get("host"), str)
                                       and isinstance(parts.get("target"), str)
                                       and isinstance(parts.get("scheme", ""), str)):
                return f"{where}.properties.{prop}.{kind} must be an object with host and target field names"
        if "template" in source and (problem := _template_problem(source["template"])) is not None:
            return f"{where}.properties.{prop}: template {source['template']!r} {problem}"
    for ref, target in obj.get("refs", {}).items():
        if not ref.endswith("_ref"):
            return f"{where}.refs.{ref}: a reference property's name ends in _ref (src_ref, dst_ref, …)"
        if not isinstance(target, str) or target not in objects:
            return f"{where}.refs.{ref}: {target!r} is not an alias of this mapping's objects"
    return None


def _template_problem(template: str) -> str | None:
    """Why a template is not text with `{field}` names, or None."""
    try:
        names = [name for _text, name, _spec, _conversion in Formatter().parse(template)
                 if name is not None]
    except ValueError as exc:
        return f"is not a template: {exc}"
    if not names:
        return "names no field ({field})"
    if not all(names):
        return "has an empty {} (give a field name)"
    return None


class Mapping:
    def __init__(self, spec: dict[str, Any]) -> None:
        if (problem := _shape_problem(spec)) is not None:
            raise ValueError(problem)
        self.name: str = spec["name"]
        self.signature: list[str] = list(spec.get("signature", []))
        self.where: dict[str, Any] = dict(spec.get("where", {}))
        self._signature_getters = [_field_getter(f) for f in self.signature]
        self._where_getters = [(_field_getter(k), v) for k, v in self.where.items()]
        time_spec = spec.get("time", {})
        self._time_getter = _field_getter(time_spec["field"]) if time_spec.get("field") else None
        self._time_format = time_spec.get("format", "epoch")
        self.objects: list[_ObjectSpec] = []
        for alias, obj_spec in spec["objects"].items():
            object_type = obj_spec["type"]
            path_type = "ipv4-addr" if object_type == "ip" else object_type
            properties, sources, normalisers = [], [], []
            for prop, source in obj_spec.get("properties", {}).items():
                path = _parse_property_path(path_type, prop)
                getter = _source_getter(source)
                normaliser = NORMALISERS.get((object_type, path.dotted()))
                if normaliser is not None:
                    getter = _normalised(getter, normaliser[0])
                properties.append((path.dotted(), path.steps, getter))
                sources.append(source)
                normalisers.append(normaliser)
            refs = dict(obj_spec.get("refs", {}))
            self.objects.append(_ObjectSpec(alias, object_type, properties, refs, sources, normalisers))
        self.time_field: str | None = time_spec.get("field")
        self.time_format: str = self._time_format

    def accepts(self, record: Record) -> bool:
        if any(g(record) is None for g in self._signature_getters):
            return False
        return all(g(record) == expected for g, expected in self._where_getters)

    def event_time(self, record: Record) -> float | None:
        """The record's time as epoch seconds; ValueError when it is not a usable time."""
        if self._time_getter is None:
            return None
        raw = self._time_getter(record)
        if raw is None:
            return None
        if self._time_format == "epoch":
            if type(raw) is bool or not isinstance(raw, int | float | str):
                raise ValueError(f"time {raw!r} is not a number of seconds")
            try:
                return checked_epoch(float(raw))
            except OverflowError:  # an integer beyond any float
                raise ValueError(f"time {raw!r} is outside the years 1-9999") from None
        if not isinstance(raw, str):
            raise ValueError(f"time {raw!r} is not ISO 8601 text")
        text = raw.replace("Z", "+00:00")
        if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
            text = text[:-2] + ":" + text[-2:]  # Suricata writes +0000
        return checked_epoch(datetime.fromisoformat(text).timestamp())

    def to_event(self, record: Record, line: int) -> Event:
        time = self.event_time(record)
        facts: list[Fact] = []
        types: set[str] = set()
        values: dict[str, list[tuple[str, Any]]] = {}
        resolved_type: dict[str, str] = {}
        for spec in self.objects:
            found = []
            for dotted, _steps, getter in spec.properties:
                value = getter(record)
                if value is not None:
                    found.append((dotted, value))
            if not found:
                continue
            object_type = spec.object_type
            if object_type == "ip":
                object_type = _ip_type(found[0][1])
            resolved_type[spec.alias] = object_type
            values[spec.alias] = found
            types.add(object_type)
            for dotted, value in found:
                if isinstance(value, list):
                    facts.extend((object_type, dotted + "[*]", v) for v in value if isinstance(v, str))
                elif isinstance(value, str):
                    facts.append((object_type, dotted, value))
        for spec in self.objects:
            if spec.alias not in values:
                continue
            for ref, target in spec.refs.items():
                if target in values:
                    owner = resolved_type[spec.alias]
                    for dotted, value in values[target]:
                        if isinstance(value, str):
                            facts.append((owner, f"{ref}.{dotted}", value))

        def build() -> Observation:
            return self._observation(record, time)

        return Event(line, time, facts, types, build, self.name, record)

    def _observation(self, record: Record, time: float | None) -> Observation:
        objects: dict[str, dict[str, Any]] = {}
        ids: dict[str, str] = {}
        for spec in self.objects:
            obj: dict[str, Any] = {}
            for _dotted, steps, getter in spec.properties:
                value = getter(record)
                if value is not None:
                    _set_path(obj, steps, value)
            if not obj:
                continue
            object_type = spec.object_type
            if object_type == "ip":
                object_type = _ip_type(obj.get("value"))
            obj["type"] = object_type
            obj["id"] = ids[spec.alias] = f"{object_type}--{spec.alias}"
            objects[obj["id"]] = obj
        for spec in self.objects:
            if spec.alias in ids:
                obj = objects[ids[spec.alias]]
                for ref, target in spec.refs.items():
                    if target in ids:
                        obj[ref] = ids[target]
        when = datetime.fromtimestamp(time if time is not None else 0.0, UTC)
        return Observation(when, when, objects)


def load_mapping(source: str | Path | dict[str, Any] | list[Any]) -> list[Mapping]:
    """Load a mapping file (one mapping object, or a list of them)."""
    if isinstance(source, dict | list):
        data: Any = source
    else:
        data = json.loads(Path(source).read_text("utf-8"))
    return [Mapping(m) for m in (data if isinstance(data, list) else [data])]


def shipped_mappings() -> dict[str, Mapping]:
    """The mappings shipped with Kizuna, by name."""
    out: dict[str, Mapping] = {}
    folder = resources.files("kizuna.detect") / "mappings"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            for mapping in load_mapping(json.loads(entry.read_text("utf-8"))):
                out[mapping.name] = mapping
    return out


@dataclass
class ParseProblem:
    line: int
    reason: str
    file: str | None = None  # set by callers that read several files through one reader

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason}


@dataclass
class ReadStats:
    lines: int = 0
    events: int = 0
    skipped: int = 0
    problems: list[ParseProblem] = field(default_factory=list)
    problem_count: int = 0
    #: the first record of no known format (``skipped``), named in the summary so a person can look at it
    first_unmapped: ParseProblem | None = None
    #: records a forced mapping (``--mapping``) was applied to although they lack the fields it knows its
    #: records by, and the first of them: a wrong mapping otherwise reads every line as an event that never hits
    unlike: int = 0
    first_unlike: ParseProblem | None = None

    def problem(self, line: int, reason: str, keep: int = 1000) -> None:
        self.problem_count += 1
        if len(self.problems) < keep:
            self.problems.append(ParseProblem(line, reason))

    def unmapped(self, line: int) -> None:
        self.skipped += 1
        if self.first_unmapped is None:
            self.first_unmapped = ParseProblem(line, "of no format a mapping knows")

    def unlike_forced(self, line: int, mapping: str) -> None:
        self.unlike += 1
        if self.first_unlike is None:
            self.first_unlike = ParseProblem(line, f"lacks the fields mapping {mapping} knows its records by")

    def name_file(self, label: str) -> None:
        """Name ``label`` as the file of the first unmapped and unlike records not yet named (one reader reads
        several files in turn)."""
        for first in (self.first_unmapped, self.first_unlike):
            if first is not None and first.file is None:
                first.file = label


@dataclass(frozen=True)
class TsvLayout:
    """A Zeek TSV header: how rows split and what their cells mean (see `LogReader._tsv_record`)."""

    separator: str
    set_separator: str
    unset: str
    empty: str
    fields: tuple[str, ...]
    types: tuple[str, ...]
    mapping: Mapping | None  # None: each row's mapping is chosen by its fields


class LogReader:
    """Turn log lines (JSON lines or Zeek TSV) into events; bad lines are counted, never fatal."""

    def __init__(self, mappings: Iterable[Mapping], *, forced: str | None = None) -> None:
        self.mappings = list(mappings)
        self.forced = next((m for m in self.mappings if m.name == forced), None) if forced is not None else None
        if forced is not None and self.forced is None:  # '' too: no mapping is called that
            raise ValueError(f"unknown mapping {forced!r}; one of: {', '.join(sorted(m.name for m in self.mappings))}")
        self.stats = ReadStats()
        self._tsv: dict[str, Any] | None = None
        self.tsv_version = 0  # bumped by every header line, so compiled row readers know to rebuild
        self._by_path = {m.name.removeprefix("zeek-"): m for m in self.mappings if m.name.startswith("zeek-")}

    def start_input(self) -> None:
        """A new file begins: a Zeek header read in the one before says nothing about it, so its rows are
        not read with that file's columns (the result would depend on the order the files were given in)."""
        if self._tsv is not None:
            self._tsv = None
            self.tsv_version += 1

    def pick(self, record: Record) -> Mapping | None:
        """The mapping for a JSON record: the forced one, or the first that accepts it."""
        return self._pick(record)

    def _pick(self, record: Record) -> Mapping | None:
        if self.forced is not None:
            return self.forced
        for mapping in self.mappings:
            if mapping.accepts(record):
                return mapping
        return None

    def events(self, lines: Iterable[str | bytes], first_line: int = 1) -> Iterator[Event]:
        stats = self.stats
        for number, raw in enumerate(lines, first_line):
            stats.lines += 1
            found = self.read_line(raw, number)
            if found is None:
                continue
            record, mapping = found
            try:
                event = mapping.to_event(record, number)
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                stats.problem(number, f"{mapping.name}: {exc}")
                continue
            stats.events += 1
            yield event

    def read_line(self, raw: str | bytes, number: int) -> tuple[Record, Mapping] | None:
        """One line to (record, mapping); headers, blank, bad and unmapped lines give None.

        Counts problems and unmapped records, not lines or events (the caller does).
        """
        stats = self.stats
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        # A byte order mark opens a file some Windows tools write; the line after it is a line like any other.
        stripped = text.strip().removeprefix("\ufeff")
        if not stripped:
            return None
        if stripped.startswith("#"):
            self._tsv_header(stripped, number)
            return None
        if self._tsv is not None and not stripped.startswith("{"):
            record = self._tsv_record(text.rstrip("\r\n"), number)
            if record is None:
                return None
            mapping = self.forced or self._tsv.get("mapping") or self._pick(record)
        else:
            try:
                parsed = orjson.loads(stripped)
            except orjson.JSONDecodeError as exc:
                stats.problem(number, f"not JSON: {exc}")
                return None
            if not isinstance(parsed, dict):
                stats.problem(number, "not a JSON object")
                return None
            record = parsed
            mapping = self._pick(record)
        if mapping is None:
            stats.unmapped(number)
            return None
        forced = self.forced
        if forced is not None and mapping is forced and not forced.accepts(record):
            stats.unlike_forced(number, forced.name)
        return record, mapping

    def tsv_layout(self) -> TsvLayout | None:
        """The Zeek TSV header in force, when rows are read as TSV and a `#fields` line was seen."""
        if self._tsv is None or not self._tsv.get("fields"):
            return None
        fields = tuple(self._tsv["fields"])
        return TsvLayout(
            separator=self._tsv["separator"],
            set_separator=self._tsv["set"],
            unset=self._tsv["unset"],
            empty=self._tsv["empty"],
            fields=fields,
            types=tuple(self._tsv.get("types") or ["string"] * len(fields)),
            mapping=self.forced or self._tsv.get("mapping"),
        )

    def _tsv_header(self, line: str, number: int) -> None:
        self.tsv_version += 1
        key, _, value = line[1:].partition("\t" if "\t" in line else " ")
        if key == "separator":
            # A broken escape (``\x`` cut short, found by fuzzing) or an empty separator cannot split
            # rows: the header is a bad line, and the rows after it are read as JSON or refused.
            try:
                separator = value.encode().decode("unicode_escape")
            except UnicodeDecodeError:
                separator = ""
            if not separator:
                self.stats.problem(number, f"#separator {value!r} is not a usable separator")
                self._tsv = None
                return
            self._tsv = {
                "separator": separator,
                "set": ",",
                "unset": "-",
                "empty": "(empty)",
            }
        elif self._tsv is None:
            return
        elif key == "set_separator":
            self._tsv["set"] = value
        elif key == "unset_field":
            self._tsv["unset"] = value
        elif key == "empty_field":
            self._tsv["empty"] = value
        elif key == "path":
            self._tsv["mapping"] = self._by_path.get(value)
        elif key == "fields":
            self._tsv["fields"] = value.split(self._tsv["separator"])
        elif key == "types":
            self._tsv["types"] = value.split(self._tsv["separator"])

    def _tsv_record(self, line: str, number: int) -> Record | None:
        assert self._tsv is not None
        names = self._tsv.get("fields")
        if not names:
            self.stats.problem(number, "TSV row before a #fields header")
            return None
        cells = line.split(self._tsv["separator"])
        if len(cells) != len(names):
            self.stats.problem(number, f"TSV row has {len(cells)} fields, header has {len(names)}")
            return None
        types = self._tsv.get("types") or ["string"] * len(names)
        record: Record = {}
        for name, cell, kind in zip(names, cells, types, strict=False):
            if cell == self._tsv["unset"]:
                continue
            if kind.startswith(("set[", "vector[", "table[")):
                record[name] = [] if cell == self._tsv["empty"] else cell.split(self._tsv["set"])
            elif kind in ("count", "int", "port"):
                record[name] = zeek_int(cell)
            elif kind in ("time", "interval", "double"):
                try:
                    record[name] = float(cell)
                except ValueError:
                    record[name] = cell
            elif kind == "bool":
                record[name] = cell == "T"
            else:
                record[name] = cell
        return record


def stix_time(value: str) -> float:
    return parse_timestamp(value).timestamp()
