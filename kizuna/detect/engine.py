"""The detection engine: indicators in, events in, sightings and alerts out.

Sightings are aggregated per indicator per time window (default one hour): a busy indicator yields
one `sighting` with a count and first/last seen, not one object per log line. Alerts are emitted as
they happen, one JSON object per hit, for SIEMs that want the stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from kizuna.detect.fast import LineMatcher, ValueWatch
from kizuna.detect.index import IndicatorIndex, observation_facts
from kizuna.detect.mappings import Event, LogReader, Mapping
from kizuna.detect.observations import Observation, observations_from_stix
from kizuna.detect.sightings import Alert, SightingAggregator


class DetectionEngine:
    """Holds the indicator index and turns events into alerts and aggregated sightings."""

    def __init__(self, identity_id: str, *, window_seconds: int = 3600, include_warninglisted: bool = False) -> None:
        self.index = IndicatorIndex(include_warninglisted=include_warninglisted)
        self.aggregator = SightingAggregator(identity_id, window_seconds)
        self.events_seen = 0
        self.hits = 0
        self._native_keys: dict[str, set[tuple[str, str]]] = {}

    def load_indicators(self, objects: Iterable[dict[str, Any]], *, now: float | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for obj in objects:
            if obj.get("type") != "indicator":
                continue
            status = self.index.add(obj, now=now).status
            counts[status] = counts.get(status, 0) + 1
        return counts

    def submit_event(self, event: Event, mapping: Mapping | None = None) -> list[Alert]:
        """Match one mapped log event."""
        self.events_seen += 1
        facts = event.facts
        if mapping is not None and self._needs_generic_facts(mapping, event.types):
            facts = observation_facts(self.index, event.build())
        hits = self.index.match(facts, event.build, event.types, at=event.time)
        return self._record(hits, event.time, event.line, event.mapping, facts)

    def line_matcher(self, reader: LogReader, watch: ValueWatch | None = None) -> LineMatcher:
        """Match raw log lines, skipping the mapping of lines that hit nothing (see fast.py); a `watch`
        judges the lines' values in the same pass."""
        return LineMatcher(self, reader, watch=watch)

    def submit_observed_data(
        self,
        objects: Iterable[dict[str, Any]],
        on_error: Callable[[Any, str], None] | None = None,
    ) -> list[Alert]:
        """Match STIX observed-data (bundles or bare objects), the API form of submission.

        An unusable observed-data object raises MatchError, or goes to `on_error` and is skipped.
        """
        alerts: list[Alert] = []
        for observation in observations_from_stix(list(objects), on_error=on_error):
            alerts.extend(self.submit_observation(observation))
        return alerts

    def submit_observation(self, observation: Observation) -> list[Alert]:
        self.events_seen += 1
        facts = observation_facts(self.index, observation)
        types = {o.get("type") for o in observation.objects.values() if isinstance(o, dict)}
        at = observation.last_observed.timestamp()
        hits = self.index.match(facts, lambda: observation, {t for t in types if isinstance(t, str)}, at=at)
        # Its sighting spans what the observed-data spans and counts what it counted (number_observed).
        return self._record(hits, at, None, observation.id or "observed-data", facts, stix=True,
                            first=observation.first_observed.timestamp(), count=observation.count)

    def _record(
        self,
        hits: list[Any],
        at: float | None,
        line: int | None,
        source: str,
        facts: list[Any],
        *,
        stix: bool = False,
        first: float | None = None,
        count: int = 1,
    ) -> list[Alert]:
        alerts = []
        for hit in hits:
            self.hits += 1
            when = at if at is not None else datetime.now(UTC).timestamp()
            # Only real STIX observed-data has ids a sighting may refer to; mapped log records don't.
            refs = [o.id for o in hit.observations if o.id] if stix else []
            if stix and not refs and source != "observed-data":
                refs = [source]
            self.aggregator.record(hit.indicator_id, when if first is None else min(first, when), refs, count=count,
                                   until=when)
            alerts.append(Alert(hit.indicator_id, at, line, source, facts,
                                indicator_name=self.index.name_of(hit.indicator_id)))
        return alerts

    def _needs_generic_facts(self, mapping: Mapping, types: set[str]) -> bool:
        """True when the index holds a path of these types that the mapping cannot produce directly.

        The mapping's own facts cover its properties, their list elements and one reference hop;
        anything else (say `protocols[0]`) is resolved on the built objects so no match is lost.
        """
        native = self._native_keys.get(mapping.name)
        if native is None:
            native = self._native_keys[mapping.name] = _native_keys(mapping)
        for object_type in types:
            for dotted, _path in self.index.known_paths(object_type):
                if (object_type, dotted) not in native:
                    return True
        return False

    def needs_generic_facts(self, mapping: Mapping) -> bool:
        """Whether any type this mapping can produce has an indexed path it cannot produce."""
        types = {t for spec in mapping.objects for t in _spec_types(spec.object_type)}
        return self._needs_generic_facts(mapping, types)

    def run(self, events: Iterable[Event], mappings: dict[str, Mapping]) -> Iterator[Alert]:
        for event in events:
            yield from self.submit_event(event, mappings.get(event.mapping))


def _spec_types(object_type: str) -> list[str]:
    return ["ipv4-addr", "ipv6-addr"] if object_type == "ip" else [object_type]


def _native_keys(mapping: Mapping) -> set[tuple[str, str]]:
    keys: set[tuple[str, str]] = set()
    by_alias: dict[str, list[str]] = {}
    types_of: dict[str, list[str]] = {}
    for spec in mapping.objects:
        types = ["ipv4-addr", "ipv6-addr"] if spec.object_type == "ip" else [spec.object_type]
        types_of[spec.alias] = types
        by_alias[spec.alias] = [dotted for dotted, _steps, _getter in spec.properties]
        for object_type in types:
            for dotted in by_alias[spec.alias]:
                keys.add((object_type, dotted))
                keys.add((object_type, dotted + "[*]"))
    for spec in mapping.objects:
        for ref, target in spec.refs.items():
            for object_type in types_of[spec.alias]:
                for dotted in by_alias.get(target, []):
                    keys.add((object_type, f"{ref}.{dotted}"))
    return keys
