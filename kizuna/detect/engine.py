"""The detection engine: indicators in, events in, sightings and alerts out.

Sightings are aggregated per indicator per time window (default one hour): a busy indicator yields
one `sighting` with a count and first/last seen, not one object per log line. Alerts are emitted as
they happen, one JSON object per hit, for SIEMs that want the stream.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kizuna.detect.index import IndicatorIndex, observation_facts
from kizuna.detect.mappings import Event, LogReader, Mapping
from kizuna.detect.observations import Observation, observations_from_stix

if TYPE_CHECKING:
    from kizuna.detect.fast import LineMatcher

# Sighting ids are derived from (indicator, window, sighter) so re-running a log gives the same ids
# and a store that already holds the sighting updates it instead of duplicating it.
_SIGHTING_NAMESPACE = uuid.UUID("6c1f4a2e-93b5-4f63-a9c7-8e1f0d8b2a51")


def _stix_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class _Window:
    indicator_id: str
    start: float
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    observed_data: dict[str, None] = field(default_factory=dict)  # ordered set of ids


@dataclass
class SightingAggregator:
    identity_id: str
    window_seconds: int = 3600
    windows: dict[tuple[str, int], _Window] = field(default_factory=dict)

    def record(self, indicator_id: str, at: float, observed_data: Iterable[str] = ()) -> None:
        """Count one hit; `observed_data` names the STIX observed-data it was seen in, if any."""
        bucket = int(at // self.window_seconds)
        window = self.windows.get((indicator_id, bucket))
        if window is None:
            window = self.windows[(indicator_id, bucket)] = _Window(indicator_id, bucket, 0, at, at)
        window.count += 1
        window.first = min(window.first, at)
        window.last = max(window.last, at)
        for ref in observed_data:
            window.observed_data[ref] = None

    def sightings(self, *, created: float | None = None) -> list[dict[str, Any]]:
        stamp = _stix_time(created if created is not None else datetime.now(UTC).timestamp())
        out = []
        for (indicator_id, bucket), window in sorted(self.windows.items(), key=lambda kv: (kv[1].first, kv[0])):
            name = f"{indicator_id}|{bucket * self.window_seconds}|{self.identity_id}"
            sighting: dict[str, Any] = {
                "type": "sighting",
                "spec_version": "2.1",
                "id": f"sighting--{uuid.uuid5(_SIGHTING_NAMESPACE, name)}",
                "created": stamp,
                "modified": stamp,
                "sighting_of_ref": indicator_id,
                "count": window.count,
                "first_seen": _stix_time(window.first),
                "last_seen": _stix_time(window.last),
                "where_sighted_refs": [self.identity_id],
                "created_by_ref": self.identity_id,
            }
            if window.observed_data:
                sighting["observed_data_refs"] = list(window.observed_data)
            out.append(sighting)
        return out


@dataclass
class Alert:
    indicator_id: str
    time: float | None
    line: int | None
    source: str
    facts: list[tuple[str, str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {
            "indicator": self.indicator_id,
            "time": _stix_time(self.time) if self.time is not None else None,
            "line": self.line,
            "source": self.source,
            "observables": [{"type": t, "path": p, "value": v} for t, p, v in self.facts if isinstance(v, str)],
        }


class DetectionEngine:
    """Holds the indicator index and turns events into alerts and aggregated sightings."""

    def __init__(self, identity_id: str, *, window_seconds: int = 3600) -> None:
        self.index = IndicatorIndex()
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

    def line_matcher(self, reader: LogReader) -> LineMatcher:
        """Match raw log lines, skipping the mapping of lines that hit nothing (see fast.py)."""
        from kizuna.detect.fast import LineMatcher

        return LineMatcher(self, reader)

    def submit_observed_data(self, objects: Iterable[dict[str, Any]]) -> list[Alert]:
        """Match STIX observed-data (bundles or bare objects), the API form of submission."""
        alerts: list[Alert] = []
        for observation in observations_from_stix(list(objects)):
            alerts.extend(self.submit_observation(observation))
        return alerts

    def submit_observation(self, observation: Observation) -> list[Alert]:
        self.events_seen += 1
        facts = observation_facts(self.index, observation)
        types = {o.get("type") for o in observation.objects.values() if isinstance(o, dict)}
        at = observation.last_observed.timestamp()
        hits = self.index.match(facts, lambda: observation, {t for t in types if isinstance(t, str)}, at=at)
        return self._record(hits, at, None, observation.id or "observed-data", facts, stix=True)

    def _record(
        self,
        hits: list[Any],
        at: float | None,
        line: int | None,
        source: str,
        facts: list[Any],
        *,
        stix: bool = False,
    ) -> list[Alert]:
        alerts = []
        for hit in hits:
            self.hits += 1
            when = at if at is not None else datetime.now(UTC).timestamp()
            # Only real STIX observed-data has ids a sighting may refer to; mapped log records don't.
            refs = [o.id for o in hit.observations if o.id] if stix else []
            if stix and not refs and source != "observed-data":
                refs = [source]
            self.aggregator.record(hit.indicator_id, when, refs)
            alerts.append(Alert(hit.indicator_id, at, line, source, facts))
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
