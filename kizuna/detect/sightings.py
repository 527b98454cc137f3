"""Sightings and alerts: what a hit becomes.

Sightings are aggregated per indicator per time window: a busy indicator yields one `sighting` with
a count and first/last seen, not one object per log line. Alerts are the per-hit stream for SIEMs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Sighting ids are derived from (indicator, window, sighter) so re-running a log gives the same ids
# and a store that already holds the sighting updates it instead of duplicating it.
_SIGHTING_NAMESPACE = uuid.UUID("6c1f4a2e-93b5-4f63-a9c7-8e1f0d8b2a51")


def sighting_uuid(indicator_id: str, window_start: int, identity_id: str) -> uuid.UUID:
    """The id of the sighting of an indicator by an identity in the window starting then."""
    return uuid.uuid5(_SIGHTING_NAMESPACE, f"{indicator_id}|{window_start}|{identity_id}")


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
            sighting_id = sighting_uuid(indicator_id, bucket * self.window_seconds, self.identity_id)
            sighting: dict[str, Any] = {
                "type": "sighting",
                "spec_version": "2.1",
                "id": f"sighting--{sighting_id}",
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
    source: str  # the mapping (log format) of the line, or the id of the observed-data
    facts: list[tuple[str, str, Any]]
    file: str | None = None  # the input file, when the hit came from one
    rule: str | None = None  # the YARA rule that matched, for a `--yara` hit

    def as_json(self) -> dict[str, Any]:
        head: dict[str, Any] = {
            "indicator": self.indicator_id,
            "time": _stix_time(self.time) if self.time is not None else None,
        }
        if self.file is not None:
            head["file"] = self.file
        body: dict[str, Any] = {**head, "line": self.line, "source": self.source}
        if self.rule is not None:
            body["rule"] = self.rule
        body["observables"] = [{"type": t, "path": p, "value": v} for t, p, v in self.facts if isinstance(v, str)]
        return body
