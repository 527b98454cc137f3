"""Sightings and alerts: what a hit becomes.

Sightings are aggregated per indicator per time window: a busy indicator yields one `sighting` with
a count and first/last seen, not one object per log line. Alerts are the per-hit stream for SIEMs.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from kizuna.store.sighting_inputs import SightingShare

# Sighting ids are derived from (indicator, window, sighter) so re-running a log gives the same ids,
# and a store that already holds the sighting adds this input's share to it instead of duplicating it
# (core/sighting_shares.py).
_SIGHTING_NAMESPACE = uuid.UUID("6c1f4a2e-93b5-4f63-a9c7-8e1f0d8b2a51")


def sighting_uuid(indicator_id: str, window_start: int, identity_id: str) -> uuid.UUID:
    """The id of the sighting of an indicator by an identity in the window starting then."""
    return uuid.uuid5(_SIGHTING_NAMESPACE, f"{indicator_id}|{window_start}|{identity_id}")


def _stix_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


#: How much of a file's beginning tells it from another file that took its place (a log rotated by copy and
#: truncate, an inode reused): the lines of a log start with their times, and a Zeek log's ``#open`` header
#: line falls within its first 200 bytes.
FILE_WITNESS_BYTES: Final = 512


def input_key(path: Path) -> str:
    """What names a log file's share of the sightings it is matched into (store/sighting_inputs.py): the file
    itself (path, device and inode) and its first bytes. Matching always reads a file from its start, so the
    same file matched again, grown or not, replaces its own share with one that covers it all; a file
    rotated in under the path, or rewritten, is another input and adds its hits. A file shorter than
    `FILE_WITNESS_BYTES` when matched, and grown since, is taken for another one (it counts its first lines
    again): a rare log, and the safe side of telling two different files apart."""
    stat = path.stat()
    with path.open("rb") as handle:
        head = handle.read(FILE_WITNESS_BYTES)
    witness = hashlib.sha256(head).hexdigest()[:32]
    return f"file:{path.resolve()}:{stat.st_dev}:{stat.st_ino}:{witness}"


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
    #: Each input's own tally of the same windows, under the key that names the input (a file, a request
    #: body): what the store adds up across inputs (core/sighting_shares.py). Empty until an input begins.
    inputs: list[tuple[str, dict[tuple[str, int], list[float]]]] = field(default_factory=list)

    def begin_input(self, key: str) -> None:
        """The hits recorded from now on are also counted as ``key``'s share."""
        self.inputs.append((key, {}))

    def name_input(self, key: str) -> None:
        """Name the input under way once its name is known (the digest of standard input, read to its end)."""
        self.inputs[-1] = (key, self.inputs[-1][1])

    def record(self, indicator_id: str, at: float, observed_data: Iterable[str] = (), *, count: int = 1,
               until: float | None = None) -> None:
        """Count ``count`` hits seen from ``at`` to ``until`` (an observed-data's first and last observed; a
        log line's one moment when ``until`` is None), in the window of ``at``; `observed_data` names the STIX
        observed-data they were seen in."""
        last = at if until is None else max(at, until)
        bucket = int(at // self.window_seconds)
        window = self.windows.get((indicator_id, bucket))
        if window is None:
            window = self.windows[(indicator_id, bucket)] = _Window(indicator_id, bucket, 0, at, last)
        window.count += count
        window.first = min(window.first, at)
        window.last = max(window.last, last)
        for ref in observed_data:
            window.observed_data[ref] = None
        if self.inputs:
            tally = self.inputs[-1][1].setdefault((indicator_id, bucket), [0, at, last])
            tally[0] += count
            tally[1] = min(tally[1], at)
            tally[2] = max(tally[2], last)

    def shares(self) -> list[SightingShare]:
        """Every input's share of every sighting it touched (none when no input was begun)."""
        return [
            SightingShare(f"sighting--{sighting_uuid(indicator_id, bucket * self.window_seconds, self.identity_id)}",
                          key, int(count), _stix_time(first), _stix_time(last))
            for key, tallies in self.inputs
            for (indicator_id, bucket), (count, first, last) in tallies.items()
        ]

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
    #: the indicator's `name`, for the person who reads the alert (None when it has none); the id stays the key
    indicator_name: str | None = None

    def as_json(self) -> dict[str, Any]:
        head: dict[str, Any] = {
            "indicator": self.indicator_id,
            "indicator_name": self.indicator_name,
            "time": _stix_time(self.time) if self.time is not None else None,
        }
        if self.file is not None:
            head["file"] = self.file
        body: dict[str, Any] = {**head, "line": self.line, "source": self.source}
        if self.rule is not None:
            body["rule"] = self.rule
        body["observables"] = [{"type": t, "path": p, "value": v} for t, p, v in self.facts if isinstance(v, str)]
        return body
