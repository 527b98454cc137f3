"""The indexed matcher: every indicator Kizuna holds, compiled into lookup structures.

An event is reduced to *facts* — (object type, property path, value) — and each fact is looked up:

* equality and IN on strings: one dict lookup per fact;
* ISSUBSET: one dict lookup per distinct prefix length in use (IPv4 prefix tables);
* LIKE: one Aho-Corasick pass per value over the literal fragments every match must contain;
* MATCHES: one RE2 set pass per value over all regular expressions (a pre-filter).

So the work per event follows the facts it carries and the candidates it hits, not the number of
indicators. Candidates are then confirmed with the exact evaluator, except IOC-shaped indicators
(ORs of string equalities), for which the lookup itself is the proof. Comparisons that no structure
can anchor (only NOT, !=, ordering, ISSUPERSET, EXISTS) fall back to a per-object-type scan list;
they are counted in `stats()` so their cost is visible.

Patterns with several observation expressions (AND/OR/FOLLOWEDBY across observations, WITHIN,
START/STOP, REPEATS) keep a bounded buffer of the observations that hit any of their leaves and are
re-evaluated on that buffer.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import ahocorasick
import re2

from kizuna.detect.compiler import compile_pattern, ioc_terms
from kizuna.detect.errors import DetectError, MatchError
from kizuna.detect.evaluate import match_observations, observation_passes, path_values
from kizuna.detect.model import (
    CompAnd,
    Comparison,
    CompiledPattern,
    CompNode,
    ObjectPath,
    ObsSimple,
    comparisons,
    observation_leaves,
)
from kizuna.detect.observations import Observation
from kizuna.detect.values import mask, nfc, parse_ip_or_cidr
from kizuna.stix.patterns import pattern_type_problem
from kizuna.stix.vocab import WARNINGLIST_PROPERTY, shared_not_for_detection

Fact = tuple[str, str, Any]  # (object type, dotted path, value)
PathKey = tuple[str, str]

BUFFER_LIMIT = 512

# Compiled patterns are immutable, so a pattern text seen again (a new version of an indicator, the
# same indicator in two collections, a rebuilt engine) skips the grammar's ~0.4 ms.
_compile = functools.lru_cache(maxsize=4096)(compile_pattern)

# An anchor is one index entry that must fire for a pattern to match.
# ("eq", key, value) | ("cidr", key, (network, length)) | ("like", key, fragment) | ("re", key, source)
# | ("scan", object_type, None)
Anchor = tuple[str, Any, Any]


def _anchors(node: CompNode) -> list[Anchor] | None:
    """Anchors such that any match of `node` fires at least one; None when none can be found."""
    if isinstance(node, Comparison):
        return _comparison_anchors(node)
    left, right = _anchors(node.left), _anchors(node.right)
    if isinstance(node, CompAnd):
        options = [a for a in (left, right) if a is not None]
        if not options:
            return None
        return min(options, key=lambda anchors: (sum(a[0] != "eq" for a in anchors), len(anchors)))
    if left is None or right is None:
        return None
    return left + right


def _literal_fragment(like: str) -> str:
    pieces = re.split(r"[%_]", like)
    return max(pieces, key=len)


def _comparison_anchors(node: Comparison) -> list[Anchor] | None:
    if node.negated:
        return None
    key = (node.path.object_type, node.path.dotted())
    if node.operator == "=" and type(node.literal) is str:
        return [("eq", key, node.literal)]
    if node.operator == "IN" and node.literal and all(type(v) is str for v in node.literal):
        return [("eq", key, v) for v in node.literal]
    if node.operator == "ISSUBSET":
        try:
            bits, network, length = parse_ip_or_cidr(node.literal)
        except MatchError:
            return None
        return [("cidr", key, (bits, network & mask(length, bits), length))]
    if node.operator == "LIKE":
        fragment = _literal_fragment(nfc(node.literal))
        return [("like", key, fragment)] if fragment else None
    if node.operator == "MATCHES" and node.text_matcher is not None:
        return [("re", key, node.text_matcher.source)]
    return None


@dataclass(slots=True)
class _Entry:
    """A non-IOC indicator: kept compiled because candidates must be confirmed."""

    pattern: CompiledPattern
    buffer: deque[Observation] | None = None


@dataclass
class AddResult:
    indicator_id: str
    status: str  # indexed | not-stix | invalid | revoked | expired | not-yet-valid | warninglisted
    detail: str = ""


@dataclass
class Hit:
    indicator_id: str
    observations: list[Observation] = field(default_factory=list)


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class IndicatorIndex:
    """All indicators compiled for matching; add, remove and expire them at any time."""

    def __init__(self, *, include_warninglisted: bool = False) -> None:
        #: Index indicators flagged at import as on a warninglist (skipped unless the operator forces it).
        self.include_warninglisted = include_warninglisted
        self._ids: list[str | None] = []
        #: The name of each indicator that has one, by slot, for alerts a person reads (kept apart from the ids:
        #: many feeds name none, and those cost nothing here).
        self._names: dict[int, str] = {}
        self._valid: list[tuple[float | None, float | None]] = []
        self._slot_of: dict[str, int] = {}
        self._entries: dict[int, _Entry] = {}
        self._anchors_of: dict[int, tuple[Anchor, ...]] = {}
        self._eq: dict[PathKey, dict[str, int | list[int]]] = {}
        self._cidr: dict[PathKey, dict[tuple[int, int], dict[int, list[int]]]] = {}
        self._like: dict[PathKey, dict[str, list[int]]] = {}
        self._regex: dict[PathKey, dict[str, list[int]]] = {}
        self._scan: dict[str, set[int]] = {}
        self._automata: dict[PathKey, Any] = {}
        self._regex_sets: dict[PathKey, tuple[Any, list[str], list[str]]] = {}
        self._dirty_text: set[PathKey] = set()
        self._keys: dict[ObjectPath, PathKey] = {}
        self._keys_by_type: dict[str, list[tuple[str, ObjectPath]]] = {}
        self._multi: set[int] = set()
        # Bumped on every add and remove, so compiled per-mapping probes know when to rebuild.
        self.version = 0
        self.not_stix = 0
        self.invalid = 0

    # --- maintenance ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slot_of)

    def add(self, indicator: dict[str, Any], *, now: float | None = None) -> AddResult:
        """Index one STIX indicator, replacing an earlier version with the same id."""
        indicator_id = str(indicator.get("id", ""))
        if indicator_id in self._slot_of:
            self.remove(indicator_id)
        if indicator.get("pattern_type", "stix") != "stix":
            self.not_stix += 1
            return AddResult(indicator_id, "not-stix", str(indicator.get("pattern_type")))
        if indicator.get("revoked"):
            return AddResult(indicator_id, "revoked")
        # A value on a warninglist (8.8.8.8, an empty file's hash) would sight every benign event.
        if not self.include_warninglisted and indicator.get(WARNINGLIST_PROPERTY):
            return AddResult(indicator_id, "warninglisted", ", ".join(map(str, indicator[WARNINGLIST_PROPERTY])))
        if shared_not_for_detection(indicator):
            return AddResult(indicator_id, "not-for-detection")
        valid_from, valid_until = (
            _timestamp(indicator.get("valid_from")),
            _timestamp(indicator.get("valid_until")),
        )
        if now is not None and valid_until is not None and valid_until <= now:
            return AddResult(indicator_id, "expired")
        text = indicator.get("pattern")
        if not isinstance(text, str):
            self.invalid += 1
            return AddResult(indicator_id, "invalid", "no pattern")
        result = self.add_pattern(indicator_id, text, valid_from=valid_from, valid_until=valid_until)
        name = indicator.get("name")
        if result.status == "indexed" and isinstance(name, str) and name:
            self._names[self._slot_of[indicator_id]] = name
        return result

    def add_pattern(
        self,
        indicator_id: str,
        text: str,
        *,
        valid_from: float | None = None,
        valid_until: float | None = None,
    ) -> AddResult:
        terms = ioc_terms(text)
        if terms is not None:
            if (problem := _types_problem({path.object_type for path, _ in terms})) is not None:
                self.invalid += 1
                return AddResult(indicator_id, "invalid", problem)
            slot = self._new_slot(indicator_id, valid_from, valid_until)
            anchors: list[Anchor] = [("eq", self._key_for(path), value) for path, value in terms]
        else:
            try:
                pattern = _compile(text)
            except DetectError as exc:
                self.invalid += 1
                return AddResult(indicator_id, "invalid", str(exc))
            leaves = observation_leaves(pattern.root)
            types = {c.path.object_type for leaf in leaves for c in _leaf_comparisons(leaf)}
            if (problem := _types_problem(types)) is not None:
                self.invalid += 1
                return AddResult(indicator_id, "invalid", problem)
            anchors = []
            for leaf in leaves:
                found = _anchors(leaf.expression)
                if found is None:
                    found = [("scan", t, None) for t in {c.path.object_type for c in _leaf_comparisons(leaf)}]
                anchors.extend(found)
            slot = self._new_slot(indicator_id, valid_from, valid_until)
            entry = _Entry(pattern)
            if pattern.single_observation is None:
                entry.buffer = deque(maxlen=BUFFER_LIMIT)
                self._multi.add(slot)
            self._entries[slot] = entry
            for comparison in (c for leaf in leaves for c in _leaf_comparisons(leaf)):
                self._key_for(comparison.path)
        for anchor in anchors:
            self._insert(anchor, slot)
        self._anchors_of[slot] = tuple(anchors)
        self.version += 1
        return AddResult(indicator_id, "indexed")

    def _new_slot(self, indicator_id: str, valid_from: float | None, valid_until: float | None) -> int:
        slot = len(self._ids)
        self._ids.append(indicator_id)
        self._valid.append((valid_from, valid_until))
        self._slot_of[indicator_id] = slot
        return slot

    def _key_for(self, path: ObjectPath) -> PathKey:
        """The shared index key of a path; also remembers the path for resolving STIX objects."""
        key = self._keys.get(path)
        if key is None:
            key = (path.object_type, path.dotted())
            self._keys[path] = key
            self._keys_by_type.setdefault(path.object_type, []).append((key[1], path))
        return key

    def _insert(self, anchor: Anchor, slot: int) -> None:
        kind, key, value = anchor
        if kind == "eq":
            table = self._eq.get(key)
            if table is None:
                table = self._eq[key] = {}
            existing = table.get(value)
            if existing is None:
                table[value] = slot
            elif isinstance(existing, int):
                table[value] = [existing, slot]
            else:
                existing.append(slot)
        elif kind == "cidr":
            bits, network, length = value
            self._cidr.setdefault(key, {}).setdefault((bits, length), {}).setdefault(network, []).append(slot)
        elif kind == "like":
            self._like.setdefault(key, {}).setdefault(value, []).append(slot)
            self._dirty_text.add(key)
        elif kind == "re":
            self._regex.setdefault(key, {}).setdefault(value, []).append(slot)
            self._dirty_text.add(key)
        else:
            self._scan.setdefault(key, set()).add(slot)

    def remove(self, indicator_id: str) -> bool:
        slot = self._slot_of.pop(indicator_id, None)
        if slot is None:
            return False
        for kind, key, value in self._anchors_of.pop(slot, ()):
            if kind == "eq":
                table = self._eq[key]
                existing = table[value]
                if isinstance(existing, int) or len(existing) == 1:
                    del table[value]
                else:
                    existing.remove(slot)
            elif kind == "cidr":
                bits, network, length = value
                self._cidr[key][(bits, length)][network].remove(slot)
            elif kind in ("like", "re"):
                (self._like if kind == "like" else self._regex)[key][value].remove(slot)
                self._dirty_text.add(key)
            else:
                self._scan[key].discard(slot)
        self._ids[slot] = None
        self._names.pop(slot, None)
        self._entries.pop(slot, None)
        self._multi.discard(slot)
        self.version += 1
        return True

    def name_of(self, indicator_id: str) -> str | None:
        """The `name` of an indexed indicator, or None when it has none (or is not indexed)."""
        slot = self._slot_of.get(indicator_id)
        return None if slot is None else self._names.get(slot)

    def expire(self, now: float) -> list[str]:
        """Drop indicators whose valid_until has passed; returns their ids."""
        gone = [
            i for i, s in self._slot_of.items() if (until := self._valid[s][1]) is not None and until <= now
        ]
        for indicator_id in gone:
            self.remove(indicator_id)
        return gone

    def stats(self) -> dict[str, int]:
        return {
            "indicators": len(self._slot_of),
            "compiled": len(self._entries),
            "multi_observation": len(self._multi),
            "scan": sum(len(s) for s in self._scan.values()),
            "not_stix": self.not_stix,
            "invalid": self.invalid,
        }

    # --- matching -------------------------------------------------------------------------------

    def _refresh_text_structures(self) -> None:
        for key in self._dirty_text:
            likes = self._like.get(key, {})
            automaton = ahocorasick.Automaton()
            for fragment, slots in likes.items():
                if slots:
                    automaton.add_word(fragment, fragment)
            if len(automaton):
                automaton.make_automaton()
                self._automata[key] = automaton
            else:
                self._automata.pop(key, None)
            sources = [s for s, slots in self._regex.get(key, {}).items() if slots]
            in_set, python_only = [], []
            regex_set = re2.Set.SearchSet()
            for source in sources:
                # RE2 is a pre-filter only; expressions it reads differently from Python's re
                # (backreferences, look-around, Unicode classes) are tried one by one instead.
                if re.search(r"\\[dDwWsSbB1-9]|\(\?[=!<]", source):
                    python_only.append(source)
                    continue
                try:
                    regex_set.Add(source)
                    in_set.append(source)
                except re2.error:
                    python_only.append(source)
            if in_set:
                regex_set.Compile()
            if in_set or python_only:
                self._regex_sets[key] = (regex_set if in_set else None, in_set, python_only)
            else:
                self._regex_sets.pop(key, None)
        self._dirty_text.clear()

    def candidates(self, facts: Iterable[Fact]) -> tuple[set[int], set[int]]:
        """Return (confirmed slots, slots needing confirmation) for an event's facts."""
        if self._dirty_text:
            self._refresh_text_structures()
        confirmed: set[int] = set()
        maybe: set[int] = set()
        eq, cidr, automata, regex_sets = self._eq, self._cidr, self._automata, self._regex_sets
        entries = self._entries
        for object_type, dotted, value in facts:
            key = (object_type, dotted)
            if type(value) is bytes:
                # Binary data equals a string whose code points are its bytes (STIX comparison rule).
                value = value.decode("latin-1")
            table = eq.get(key)
            if table is not None and type(value) is str:
                hit = table.get(value)
                if hit is not None:
                    for slot in (hit,) if isinstance(hit, int) else hit:
                        if slot not in entries:
                            confirmed.add(slot)
                        else:
                            maybe.add(slot)
            if type(value) is not str:
                continue
            prefixes = cidr.get(key)
            if prefixes:
                maybe.update(_cidr_hits(prefixes, value))
            automaton = automata.get(key)
            if automaton is not None:
                likes = self._like[key]
                for _, fragment in automaton.iter(nfc(value)):
                    maybe.update(likes[fragment])
            regexes = regex_sets.get(key)
            if regexes is not None:
                maybe.update(self._regex_hits(key, regexes, value))
        return confirmed, maybe

    def _regex_hits(
        self, key: PathKey, regexes: tuple[Any, list[str], list[str]], value: str
    ) -> Iterator[int]:
        regex_set, in_set, python_only = regexes
        table = self._regex[key]
        if regex_set is not None:
            text = nfc(value)
            found = set(regex_set.Match(text) or ())
            # Python's `$` also matches before a final newline; RE2's does not.
            if text.endswith("\n"):
                found.update(regex_set.Match(text[:-1]) or ())
            for index in found:
                yield from table[in_set[index]]
        for source in python_only:
            yield from table[source]

    def match(
        self,
        facts: Iterable[Fact],
        observation: Callable[[], Observation],
        object_types: Iterable[str] = (),
        *,
        at: float | None = None,
    ) -> list[Hit]:
        """Match one event; `observation` builds its full form only if a candidate needs it."""
        confirmed, maybe = self.candidates(facts)
        for object_type in object_types:
            scan = self._scan.get(object_type)
            if scan:
                maybe.update(scan)
        hits = [Hit(self._ids[s] or "") for s in confirmed if self._valid_at(s, at)]
        if maybe:
            built = observation()
            for slot in maybe:
                if slot in confirmed or not self._valid_at(slot, at):
                    continue
                entry = self._entries.get(slot)
                if entry is None:
                    continue
                found = self._confirm(entry, built)
                if found:
                    hits.append(Hit(self._ids[slot] or "", found))
        return hits

    def _valid_at(self, slot: int, at: float | None) -> bool:
        if at is None:
            return True
        start, end = self._valid[slot]
        return (start is None or start <= at) and (end is None or at < end)

    @staticmethod
    def _confirm(entry: _Entry, observation: Observation) -> list[Observation]:
        expression = entry.pattern.single_observation
        try:
            if expression is not None:
                return [observation] if observation_passes(expression, observation) else []
            assert entry.buffer is not None
            entry.buffer.append(observation)
            return match_observations(entry.pattern, list(entry.buffer))
        except DetectError:
            return []

    def lookup_plan(self) -> tuple[dict[PathKey, dict[str, Any]], set[PathKey], set[str]]:
        """What a fast pre-filter must look at: (equality-only tables, other keys, scan types).

        An equality-only key is answered by membership in its table; any other indexed key
        (ISSUBSET, LIKE, MATCHES, possibly with equalities too) needs `candidates`; a type with a
        scan list makes every event carrying that type a candidate.
        """
        other = {k for k, v in self._cidr.items() if v}
        other |= {k for k, v in self._like.items() if any(v.values())}
        other |= {k for k, v in self._regex.items() if any(v.values())}
        equality = {k: t for k, t in self._eq.items() if t and k not in other}
        scan = {t for t, slots in self._scan.items() if slots}
        return equality, other, scan

    def known_paths(self, object_type: str) -> list[tuple[str, ObjectPath]]:
        return self._keys_by_type.get(object_type, [])


def _leaf_comparisons(leaf: ObsSimple) -> list[Comparison]:
    return comparisons(leaf.expression)


def _cidr_hits(prefixes: dict[tuple[int, int], dict[int, list[int]]], value: str) -> Iterator[int]:
    try:
        bits, address, length = parse_ip_or_cidr(value)
    except MatchError:
        return
    for (prefix_bits, prefix_length), networks in prefixes.items():
        if prefix_bits == bits and prefix_length <= length:
            slots = networks.get(address & mask(prefix_length, bits))
            if slots:
                yield from slots


def observation_facts(index: IndicatorIndex, observation: Observation) -> list[Fact]:
    """Facts for a STIX observation: every indexed path of every object, resolved exactly."""
    facts: list[Fact] = []
    for obj in observation.objects.values():
        if not isinstance(obj, dict):
            continue
        object_type = obj.get("type")
        if not isinstance(object_type, str) or (
            observation.skip_sdo_types and object_type == "observed-data"
        ):
            continue
        for dotted, path in index.known_paths(object_type):
            try:
                values = path_values(path, obj, observation)
            except DetectError:
                continue
            facts.extend((object_type, dotted, v) for v in values if type(v) in (str, bytes))
    return facts


def _types_problem(types: Iterable[str]) -> str | None:
    """An indicator naming an object type no observation can have is refused here as `kizuna import` refuses
    it (stix/patterns.py), instead of being indexed to match nothing."""
    for object_type in sorted(types):
        if (problem := pattern_type_problem(object_type)) is not None:
            return problem
    return None
