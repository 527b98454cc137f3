"""The fast path for log lines: probe the index with raw field values, map only the events that hit.

Most log records hit no indicator. For those, building facts, objects and an `Event` is wasted
work, so each mapping is compiled — once per index version — into a small Python function (source
generated and passed to `compile()`) that reads only the fields whose (type, path) the index holds
and tests them directly: membership in the equality table, or `IndicatorIndex.candidates` for keys
with ISSUBSET / LIKE / MATCHES entries. The probe is a pre-filter that must never miss: when it
answers True (or raises, or cannot be built for a mapping), the line takes the full path — the
same `Mapping.to_event` and `DetectionEngine.submit_event` as without the fast path — so hits,
alerts, sightings and statistics are identical by construction; `tests/detect/test_fast_path.py`
checks that differentially.

Selecting the mapping of a JSON record is compiled the same way: the `signature` / `where` tests of
every mapping, in order, become one function of literal dict lookups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import orjson

from kizuna.detect.fast_tsv import PROBE_ERRORS, RowProbe, compile_row_probe
from kizuna.detect.mappings import (
    EARLIEST_EPOCH,
    LATEST_EPOCH,
    REQUEST_SOURCES,
    LogReader,
    Mapping,
    Record,
    _ObjectSpec,
)
from kizuna.detect.sightings import Alert


class MatchingEngine(Protocol):
    """What the line matcher needs of the engine (`kizuna.detect.engine.DetectionEngine`)."""

    index: Any
    events_seen: int

    def needs_generic_facts(self, mapping: Mapping) -> bool: ...

    def submit_event(self, event: Any, mapping: Mapping | None = None) -> list[Alert]: ...


class ValueWatch(Protocol):
    """A second question asked of every log line's domain names, in the same pass (an operation's
    lookalike watch, `kizuna.ops.logwatch`): the last two labels of every name it judges, and the
    judgement itself, called for each domain name of every line that is mapped in full."""

    def domain_tails(self) -> frozenset[str]:
        """Last two labels (lower case, no final dot) of the watched names: a name whose own last two,
        in that form, are not among them is one the watch would not judge a hit."""
        ...

    def see(self, stix_type: str, value: str, when: float | None) -> None: ...


#: Characters `str.strip()` removes at an ASCII name's ends, and the final dot: a name ending in none of
#: them is already in the normal form its tail is compared in (after lower-casing).
_UNTRIMMED = frozenset(" .\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f")
#: At most this many quiet name endings are remembered per compiled probe (a bounded memory on odd logs),
#: each this many characters long.
_QUIET_KEPT = 100_000
_QUIET_CHARS = 16


Probe = Callable[[Record], bool]
Selector = Callable[[Record], int]
PathKey = tuple[str, str]

_PROBE_ERRORS = PROBE_ERRORS


def _nested(record: Record, parts: tuple[str, ...]) -> Any:
    current: Any = record
    for part in parts:
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


class _Source:
    """Accumulates generated source and the constants it refers to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"_nested": _nested}
        self._by_id: dict[int, str] = {}
        self.read: set[str] = set()  # every record field the generated code may look at

    def const(self, value: Any, prefix: str = "k") -> str:
        """A name for `value` in the generated function's globals (one name per object)."""
        name = self._by_id.get(id(value))
        if name is None:
            name = self._by_id[id(value)] = f"{prefix}{len(self.names)}"
            self.names[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def field(self, depth: int, var: str, name: str) -> None:
        """`var = <field>` with the mapping's rule: the literal key first, then the dotted path."""
        self.read.add(name)
        self.emit(depth, f"{var} = g({name!r})")
        if "." in name:
            parts = tuple(name.split("."))
            # `_nested` can only find something when the first part is a key.
            self.emit(depth, f"if {var} is None and {parts[0]!r} in r: {var} = _nested(r, {parts!r})")

    def present(self, depth: int, var: str, name: str) -> int:
        """Open an `if` that holds when the field is not None, with its value in `var`."""
        self.read.add(name)
        if "." in name:
            self.field(depth, var, name)
            self.emit(depth, f"if {var} is not None:")
        else:
            # A membership test settles the common case (an absent key) without a call.
            self.emit(depth, f"if {name!r} in r and ({var} := r[{name!r}]) is not None:")
        return depth + 1

    def source(self, depth: int, var: str, source: Any, getter: Any) -> None:
        """`var = <value of a property source>`, inlined for the common kinds."""
        self.read.update(_source_fields(source))
        if isinstance(source, str):
            self.field(depth, var, source)
        elif "template" in source and set(source) == {"template"}:
            template: str = source["template"]
            names = [part.split("}", 1)[0] for part in template.split("{")[1:]]
            pieces = _template_pieces(template)
            if pieces is None or not names:
                self.emit(depth, f"{var} = {self.const(getter, 'get')}(r)")
                return
            for number, name in enumerate(names):
                self.field(depth, f"{var}_{number}", name)
            parts = [f"{var}_{n}" for n in range(len(names))]
            # str.format of a str with an empty spec is the str itself, so plain concatenation is
            # the same text; other value types go through the mapping's own getter.
            joined = " + ".join(repr(piece) if kind == "text" else parts[int(piece)] for kind, piece in pieces)
            self.emit(depth, f"if {' or '.join(f'{p} is None' for p in parts)}: {var} = None")
            self.emit(depth, f"elif {' and '.join(f'type({p}) is str' for p in parts)}: {var} = {joined}")
            self.emit(depth, f"else: {var} = {self.const(getter, 'get')}(r)")
        elif len(source) == 1 and (kind := next(iter(source))) in REQUEST_SOURCES:
            # An origin-form target (`/path`, all but proxy requests) is settled inline, as the getter
            # would; any other target goes through the getter.
            parts = source[kind]
            self.field(depth, f"{var}_h", parts["host"])
            self.field(depth, f"{var}_t", parts["target"])
            if kind == "request_host":
                self.emit(depth, f"if type({var}_t) is str and {var}_t[:1] == '/': {var} = {var}_h")
            else:
                prefix = parts.get("scheme", "http") + "://"
                self.emit(depth, f"if type({var}_t) is str and {var}_t[:1] == '/' and type({var}_h) is str: "
                                 f"{var} = {prefix!r} + {var}_h + {var}_t")
            self.emit(depth, f"else: {var} = {self.const(getter, 'get')}(r)")
        elif set(source) == {"field", "first"} and source["first"]:
            self.field(depth, var, source["field"])
            self.emit(depth, f"{var} = {var}[0] if isinstance({var}, list) and {var} else None")
        elif set(source) == {"field", "list"} and source["list"]:
            self.field(depth, var, source["field"])
            self.emit(depth, f"if {var} is not None and not isinstance({var}, list): {var} = [{var}]")
        else:
            self.emit(depth, f"{var} = {self.const(getter, 'get')}(r)")

    def function(self, name: str) -> Any:
        code = compile("\n".join(self.lines) + "\n", f"<kizuna-detect {name}>", "exec")
        namespace = dict(self.names)
        exec(code, namespace)  # noqa: S102 - source generated above; field names enter via repr()
        return namespace[name]


def _source_fields(source: Any) -> list[str]:
    """The record fields a property source reads (a constant reads none)."""
    if isinstance(source, str):
        return [source]
    if "template" in source:
        return [part.split("}", 1)[0] for part in str(source["template"]).split("{")[1:]]
    for kind in REQUEST_SOURCES:
        if kind in source:
            return [source[kind]["host"], source[kind]["target"]]
    return [source["field"]] if "field" in source else []


def _template_pieces(template: str) -> list[tuple[str, str]] | None:
    """A template as text pieces and field positions; None if it is not plain `{name}` fields."""
    pieces: list[tuple[str, str]] = []
    rest, number = template, 0
    while "{" in rest:
        head, _, tail = rest.partition("{")
        name, closed, rest = tail.partition("}")
        if not closed or not name or any(c in name for c in "{}:!["):
            return None
        if head:
            pieces.append(("text", head))
        pieces.append(("field", str(number)))
        number += 1
    if "}" in rest:
        return None
    if rest:
        pieces.append(("text", rest))
    return pieces


def _spec_types(spec: _ObjectSpec) -> list[str]:
    return ["ipv4-addr", "ipv6-addr"] if spec.object_type == "ip" else [spec.object_type]


class _ProbeWriter:
    """Writes, for one mapping, code that returns `on_hit` when any indexed structure fires."""

    def __init__(self, src: _Source, mapping: Mapping, plan: tuple[dict[PathKey, Any], set[PathKey], set[str]],
                 watched: dict[PathKey, tuple[str, str]] | None = None):
        self.src, self.mapping = src, mapping
        self.equality, self.other, self.scan = plan
        self.watched = watched or {}  # (type, path) -> names of the watch's tail set and quiet endings
        self.indexed = set(self.equality) | self.other | set(self.watched)
        self.specs = {spec.alias: spec for spec in mapping.objects}
        self.aliases = list(self.specs)

    @property
    def possible(self) -> bool:
        """False when every event of this mapping must take the full path (a scan list applies)."""
        return not any(t in self.scan for spec in self.mapping.objects for t in _spec_types(spec))

    def own_keys(self, spec: _ObjectSpec, object_type: str) -> list[tuple[int, PathKey, PathKey]]:
        out = []
        for number, (dotted, _steps, _getter) in enumerate(spec.properties):
            scalar, listed = (object_type, dotted), (object_type, dotted + "[*]")
            if scalar in self.indexed or listed in self.indexed:
                out.append((number, scalar, listed))
        return out

    def ref_keys(self, spec: _ObjectSpec, object_type: str) -> list[tuple[str, int, PathKey]]:
        out = []
        for ref, target in spec.refs.items():
            if target not in self.specs:
                continue
            for number, (dotted, _steps, _getter) in enumerate(self.specs[target].properties):
                key = (object_type, f"{ref}.{dotted}")
                if key in self.indexed:
                    out.append((target, number, key))
        return out

    def var(self, alias: str, number: int) -> str:
        return f"v_{self.aliases.index(alias)}_{number}"

    def write(self, depth: int, on_hit: str, on_miss: str) -> None:
        src, mapping = self.src, self.mapping
        self.on_hit = on_hit
        # The timestamp is the one part of mapping that can fail: validating it here makes a
        # record the probe settles exactly a record `to_event` would accept.
        if mapping.time_field:
            src.field(depth, "t", mapping.time_field)
            if mapping.time_format == "epoch":
                # A plain number in range is settled inline; anything else is read (and rejected)
                # by the mapping itself.
                in_range = f"{EARLIEST_EPOCH!r} <= t <= {LATEST_EPOCH!r}"
                src.emit(
                    depth,
                    f"if t is not None and not ((type(t) is float or type(t) is int) and {in_range}): "
                    f"{src.const(mapping.event_time, 'time')}(r)",
                )
            else:
                src.emit(depth, f"if t is not None: {src.const(mapping.event_time, 'time')}(r)")

        # Properties to read: those with indexed facts, the targets of indexed reference facts,
        # and every property of an "ip" object (its first value decides v4 or v6) or of the owner
        # of an indexed reference fact (a reference counts only if its owner has some value).
        needed: dict[str, set[int]] = {}
        for spec in mapping.objects:
            types = _spec_types(spec)
            own = [k for t in types for k in self.own_keys(spec, t)]
            refs = [k for t in types for k in self.ref_keys(spec, t)]
            if not own and not refs:
                continue
            if spec.object_type == "ip" or refs:
                needed.setdefault(spec.alias, set()).update(range(len(spec.properties)))
            else:
                needed.setdefault(spec.alias, set()).update(number for number, _s, _l in own)
            for target, number, _key in refs:
                needed.setdefault(target, set()).add(number)
        for alias in self.aliases:
            spec = self.specs[alias]
            for number in sorted(needed.get(alias, ())):
                var, source, getter = self.var(alias, number), spec.sources[number], spec.properties[number][2]
                normaliser = spec.normalisers[number]
                if normaliser is None:
                    src.source(depth, var, source, getter)
                    continue
                if isinstance(source, dict) and source.get("list"):
                    # Lists are rare in these properties: the mapping's getter normalises each item.
                    src.read.update(_source_fields(source))
                    src.emit(depth, f"{var} = {src.const(getter, 'get')}(r)")
                    continue
                # The value as the mapping gives it (lower case, no final dot, compressed IPv6): the
                # cheap test settles the common value already in that form without a call.
                src.source(depth, var, source, getter)
                test = normaliser[1].format(v=var)
                src.emit(depth, f"if type({var}) is str and {test}: {var} = {src.const(normaliser[0], 'norm')}({var})")

        for spec in mapping.objects:
            if spec.alias not in needed or not spec.properties:
                continue
            if spec.object_type != "ip":
                self.facts_of(depth, spec, spec.object_type)
                continue
            values = [self.var(spec.alias, n) for n in range(len(spec.properties))]
            if len(values) == 1:
                src.emit(depth, f"f = {values[0]}")
            else:
                chain = " ".join(f"{v} if {v} is not None else" for v in values[:-1])
                src.emit(depth, f"f = {chain} {values[-1]}")
            # The first property that has a value decides the address family, as in `to_event`.
            src.emit(depth, "if type(f) is str and ':' in f:")
            if not self.facts_of(depth + 1, spec, "ipv6-addr"):
                src.emit(depth + 1, "pass")
            src.emit(depth, "elif f is not None:")
            if not self.facts_of(depth + 1, spec, "ipv4-addr"):
                src.emit(depth + 1, "pass")
        src.emit(depth, f"return {on_miss}")

    def check(self, depth: int, key: PathKey, value: str) -> None:
        if key in self.equality:
            self.src.emit(depth, f"if {value} in {self.src.const(self.equality[key], 'table')}: return {self.on_hit}")
        elif key in self.other:
            self.src.emit(depth, f"if hit({key!r}, {value}): return {self.on_hit}")
        if key in self.watched:
            # The name's last two labels as written; when ASCII they lower-case alone, and a name not
            # ending (or, short, starting) in space or a dot needs no other normalising (see `_UNTRIMMED`).
            # The answer depends on those two labels alone, and most names in a log end in a few
            # registered domains: a name's last `_QUIET_CHARS` characters, once found quiet, settle every
            # later name ending in them, when they hold its last two labels whole (two dots, or the
            # whole of a shorter name). Slicing a fixed length costs a third of finding the dots.
            tails, quiet = self.watched[key]
            odd = self.src.const(_UNTRIMMED, "untrimmed")
            n = _QUIET_CHARS
            self.src.emit(depth, f"wq = {value}[-{n}:]")
            self.src.emit(depth, f"if wq not in {quiet}:")
            self.src.emit(depth + 1, f"wk = {value}[{value}.rfind('.', 0, {value}.rfind('.')) + 1:]")
            self.src.emit(depth + 1, f"if not wk.isascii() or wk.lower() in {tails} or wk[-1:] in {odd} "
                                     f"or wk[:1] in {odd}: return {self.on_hit}")
            self.src.emit(depth + 1, f"if len({quiet}) < {_QUIET_KEPT} and (wq.count('.') >= 2 or "
                                     f"len({value}) < {n}): {quiet}.add(wq)")

    def facts_of(self, depth: int, spec: _ObjectSpec, object_type: str) -> bool:
        src, emitted = self.src, False
        for number, scalar, listed in self.own_keys(spec, object_type):
            name = self.var(spec.alias, number)
            if scalar in self.indexed:
                src.emit(depth, f"if type({name}) is str:")
                self.check(depth + 1, scalar, name)
                emitted = True
            if listed in self.indexed:
                src.emit(depth, f"if type({name}) is list:")
                src.emit(depth + 1, f"for x in {name}:")
                src.emit(depth + 2, "if type(x) is str:")
                self.check(depth + 3, listed, "x")
                emitted = True
        references = self.ref_keys(spec, object_type)
        if references:
            present = " or ".join(f"{self.var(spec.alias, n)} is not None" for n in range(len(spec.properties)))
            src.emit(depth, f"if {present or 'False'}:")
            for target, number, key in references:
                name = self.var(target, number)
                src.emit(depth + 1, f"if type({name}) is str:")
                self.check(depth + 2, key, name)
            emitted = True
        return emitted


def _hit_function(index: Any) -> Callable[[PathKey, str], bool]:
    def hit(key: PathKey, value: str) -> bool:
        confirmed, maybe = index.candidates(((key[0], key[1], value),))
        return bool(confirmed or maybe)

    return hit


def _watched(src: _Source, watch: ValueWatch | None) -> dict[PathKey, tuple[str, str]]:
    """The watch's domain tails as a probe key (a single name; names in lists are not watched), with
    the name of the tail set in the generated source."""
    tails = watch.domain_tails() if watch is not None else frozenset()
    if not tails:
        return {}
    quiet: set[str] = set()  # name endings found to need no judgement, filled as lines are probed
    return {("domain-name", "value"): (src.const(tails, "tails"), src.const(quiet, "quiet"))}


def compile_probe(mapping: Mapping, index: Any, watch: ValueWatch | None = None) -> tuple[Probe, frozenset[str]] | None:
    """A pre-filter for this mapping against the index as it is now, and the fields it reads.

    True means "some indexed structure may fire for this record", so it must be mapped and matched
    in full; False means the full path would find nothing. None means "always the full path". The
    probe looks at no field outside the set, so a record holding only those fields (a TSV row read
    in part, see fast_tsv.py) gets the same answer as the whole record.
    """
    src = _Source()
    writer = _ProbeWriter(src, mapping, index.lookup_plan(), _watched(src, watch))
    if not writer.possible:
        return None
    src.names["hit"] = _hit_function(index)
    src.emit(0, "def probe(r):")
    src.emit(1, "g = r.get")
    writer.write(1, "True", "False")
    probe: Probe = src.function("probe")
    return probe, frozenset(src.read)


def _unwatched(stix_type: str, value: str, when: float | None) -> None:
    """The judgement when no watch is given (never called: no type is watched then)."""


SETTLED = -2  # classifier outcome: mapped, and no indexed structure fires
UNMAPPED = -1
UNLIKE = -3  # the forced mapping does not accept the record: counted, then read by the full path all the same


def compile_classifier(mappings: list[Mapping], forced: Mapping | None, index: Any, full: set[int],
                       watch: ValueWatch | None = None) -> Selector:
    """record -> UNMAPPED, SETTLED, or the position of its mapping when it needs the full path.

    Mapping selection follows `Mapping.accepts` in order (first accepting mapping wins); the
    mappings at positions in `full` always take the full path.
    """
    src = _Source()
    src.names["hit"] = _hit_function(index)
    plan = index.lookup_plan()
    watched = _watched(src, watch)
    src.emit(0, "def classify(r):")
    src.emit(1, "g = r.get")

    def accepted(depth: int, position: int) -> None:
        writer = _ProbeWriter(src, mappings[position], plan, watched)
        if position in full or not writer.possible:
            src.emit(depth, f"return {position}")
        else:
            writer.write(depth, str(position), str(SETTLED))

    if forced is not None:
        if forced not in mappings:
            src.emit(1, f"return {UNMAPPED}")
        else:
            src.names["forced_accepts"] = forced.accepts
            src.emit(1, "if not forced_accepts(r):")
            src.emit(2, f"return {UNLIKE}")
            accepted(1, mappings.index(forced))
        classifier: Selector = src.function("classify")
        return classifier
    position = 0
    while position < len(mappings):
        first = mappings[position].signature[0] if mappings[position].signature else None
        group = [position]
        while (
            first is not None
            and group[-1] + 1 < len(mappings)
            and mappings[group[-1] + 1].signature[:1] == [first]
        ):
            group.append(group[-1] + 1)
        depth = src.present(1, "a", first) if first is not None else 1
        for candidate in group:
            mapping = mappings[candidate]
            inner = depth
            for name in mapping.signature[1 if first is not None else 0 :]:
                inner = src.present(inner, "b", name)
            for name, expected in mapping.where.items():
                src.field(inner, "b", name)
                src.emit(inner, f"if b == {src.const(expected)}:")
                inner += 1
            accepted(inner, candidate)
        position = group[-1] + 1
    src.emit(1, f"return {UNMAPPED}")
    classifier = src.function("classify")
    return classifier


class LineMatcher:
    """Runs log lines through a `DetectionEngine`, taking the fast path wherever it is sound.

    `tsv_rows=False` reads every Zeek TSV row whole before probing it, as Kizuna did before the
    compiled row readers of fast_tsv.py; it is kept for the differential tests and the benchmark.
    """

    def __init__(self, engine: MatchingEngine, reader: LogReader, *, tsv_rows: bool = True,
                 watch: ValueWatch | None = None) -> None:
        self.engine = engine
        self.reader = reader
        self.watch = watch
        # The types the watch judges; a line it may hit takes the full path, where each value is judged.
        self._watched_types = frozenset({"domain-name"} if watch is not None and watch.domain_tails() else ())
        self._mappings = list(reader.mappings)
        self._version = -1
        self._classify: Selector = lambda record: UNMAPPED
        self._probes: dict[int, tuple[Probe, frozenset[str]] | None] = {}
        self._tsv_rows = tsv_rows
        self._rows: dict[bool, RowProbe | None] = {}
        self._rows_version = (-1, -1)
        self.fast_events = 0  # events settled without mapping (for tests and profiling)
        self.fast_rows = 0  # of which TSV rows settled by a compiled row reader, never read whole
        self._refresh()

    def _refresh(self) -> None:
        """Recompile against the index as it is now (it changed since the last compile)."""
        index = self.engine.index
        full = {n for n, m in enumerate(self._mappings) if self.engine.needs_generic_facts(m)}
        self._classify = compile_classifier(self._mappings, self.reader.forced, index, full, self.watch)
        self._probes = {}  # compiled on first use: only TSV rows need them
        self._version = index.version

    def _probe(self, mapping: Mapping) -> tuple[Probe, frozenset[str]] | None:
        if id(mapping) not in self._probes:
            self._probes[id(mapping)] = (
                None if self.engine.needs_generic_facts(mapping)
                else compile_probe(mapping, self.engine.index, self.watch)
            )
        return self._probes[id(mapping)]

    def _row_probe(self, as_bytes: bool) -> RowProbe | None:
        """The compiled row probe for the header in force (see fast_tsv.py); None when rows of
        this header cannot take the fast path."""
        version = (self.reader.tsv_version, self._version)
        if version != self._rows_version:
            self._rows, self._rows_version = {}, version
        if as_bytes not in self._rows:
            self._rows[as_bytes] = self._compile_row_probe(as_bytes)
        return self._rows[as_bytes]

    def _compile_row_probe(self, as_bytes: bool) -> RowProbe | None:
        layout = self.reader.tsv_layout()
        if not self._tsv_rows or layout is None or layout.mapping is None:
            return None  # no header yet, or each row's mapping depends on its fields
        if layout.mapping is self.reader.forced:
            return None  # each row is checked against the forced mapping's fields (LogReader.read_line)
        compiled = self._probe(layout.mapping)
        if compiled is None:
            return None
        probe, wanted = compiled
        return compile_row_probe(layout, wanted, probe, as_bytes)

    def alerts(self, lines: Iterable[str | bytes], first_line: int = 1) -> Iterator[Alert]:
        """Alerts for these lines, in order; the reader's statistics are kept as `LogReader.events` does."""
        engine, reader, stats, index = self.engine, self.reader, self.reader.stats, self.engine.index
        mappings, loads, decode_error = self._mappings, orjson.loads, orjson.JSONDecodeError
        braces = (b"{", "{")
        if self._version != index.version:
            self._refresh()
        classify = self._classify
        watched = self._watched_types
        see = self.watch.see if self.watch is not None else _unwatched
        lines_read = settled = 0
        # The row probe in force, for this header (`tsv_version`) and this type of line.
        row_probe: RowProbe | None = None
        row_header, row_type = -1, None
        try:
            for number, raw in enumerate(lines, first_line):
                lines_read += 1
                if raw[:1] in braces:
                    try:
                        record = loads(raw)
                    except decode_error:
                        record = None
                    if type(record) is dict:
                        try:
                            outcome = classify(record)
                        except _PROBE_ERRORS:
                            # A value the probe cannot read (say, a bad timestamp): the full
                            # path decides, and reports the problem exactly as it would anyway.
                            found_mapping = reader.pick(record)
                            outcome = UNMAPPED if found_mapping is None else mappings.index(found_mapping)
                        if outcome == SETTLED:
                            settled += 1
                            continue
                        if outcome == UNMAPPED:
                            stats.unmapped(number)
                            continue
                        if outcome == UNLIKE:
                            mapping = reader.forced
                            assert mapping is not None
                            stats.unlike_forced(number, mapping.name)
                        else:
                            mapping = mappings[outcome]
                    else:
                        found = reader.read_line(raw, number)
                        if found is None:
                            continue
                        record, mapping = found
                else:
                    # A TSV row of the header in force: only the cells the probe reads are converted.
                    if reader.tsv_version != row_header or type(raw) is not row_type:
                        row_probe = self._row_probe(isinstance(raw, bytes))
                        row_header, row_type = reader.tsv_version, type(raw)
                    # The row probe answers None when it cannot decide (an odd line, a cell it cannot read).
                    if row_probe is not None and row_probe(raw) is False:
                        settled += 1
                        self.fast_rows += 1
                        continue
                    # Headers, odd whitespace, rows that may hit: the reader's own rules, then the probe.
                    found = reader.read_line(raw, number)
                    if found is None:
                        continue
                    record, mapping = found
                    compiled = self._probe(mapping)
                    if compiled is not None:
                        try:
                            if not compiled[0](record):
                                settled += 1
                                continue
                        except _PROBE_ERRORS:
                            pass
                try:
                    event = mapping.to_event(record, number)
                except (ValueError, TypeError, KeyError, IndexError) as exc:
                    stats.problem(number, f"{mapping.name}: {exc}")
                    continue
                stats.events += 1
                if watched:
                    for stix_type, path, value in event.facts:
                        if path == "value" and stix_type in watched and type(value) is str:
                            see(stix_type, value, event.time)
                alerts = engine.submit_event(event, mapping)
                if alerts:
                    yield from alerts
                    # Whoever consumed the alerts may have changed the index (say, a revocation).
                    if self._version != index.version:
                        self._refresh()
                        classify = self._classify
                        row_header = -1
        finally:
            stats.lines += lines_read
            stats.events += settled
            engine.events_seen += settled
            self.fast_events += settled
