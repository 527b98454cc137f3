"""One `kizuna match` run: indicators loaded, inputs matched file by file, a summary at the end.

The command (`kizuna.cli.match`) handles options, files and the screen; this class holds what a
run knows: the engine, the log reader (whose statistics count lines, events and bad lines), the
objects a self-contained sightings bundle may need, and the per-file bookkeeping that lets every
alert and every bad line name its input file and line.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from kizuna.detect.bundle import SightingBundle
from kizuna.detect.engine import DetectionEngine
from kizuna.detect.fast import LineMatcher, ValueWatch
from kizuna.detect.files import read_stix_file
from kizuna.detect.mappings import LogReader, Mapping, ReadStats
from kizuna.detect.sightings import Alert, input_key

_PROBLEMS_IN_SUMMARY = 100


class NothingToMatch(Exception):
    """The run cannot produce a meaningful result: no usable indicators, or no usable input."""

    def __init__(self, message: str, code: str, file: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.file, self.line = file, line  # the first problem, when one input line is to blame


def require_indicators(usable: int, load_counts: dict[str, int], inputs: str) -> None:
    """NothingToMatch unless at least one of the indicators read (``load_counts``: how many of each load
    status; ``usable`` of them indexed) can match; ``inputs`` names the options that gave them."""
    if usable > 0:
        return
    read = sum(load_counts.values())
    if read == 0:
        raise NothingToMatch(f"no indicators to match: the indicator inputs given ({inputs}) held none",
                             "no-indicators")
    reasons = ", ".join(f"{count} {status}" for status, count in sorted(load_counts.items()))
    raise NothingToMatch(f"none of the {read} indicators can be matched ({reasons})", "no-usable-indicators")


def require_log_lines(stats: ReadStats) -> None:
    """NothingToMatch, naming the first bad file:line, when no line read was a log line of a known format."""
    if stats.events == 0:
        first = stats.problems[0] if stats.problems else None
        where = f"; first: {first.file or 'line'}:{first.line}: {first.reason}" if first else ""
        raise NothingToMatch(
            f"no log line could be matched: {stats.lines} lines read, {stats.problem_count} unparsable, "
            f"{stats.skipped} of no known format (see --mapping, --mapping-file){where}",
            "no-log-lines", first.file if first else None, first.line if first else None,
        )


class MatchRun:
    def __init__(self, identity_id: str, mappings: list[Mapping], *, forced: str | None, window: int,
                 include_warninglisted: bool = False, watch: ValueWatch | None = None) -> None:
        self.engine = DetectionEngine(identity_id, window_seconds=window, include_warninglisted=include_warninglisted)
        self.reader = LogReader(mappings, forced=forced)
        self.watch = watch  # judges the log lines' values in the same pass (`kizuna match --operation`)
        self.matcher: LineMatcher | None = None  # built once the indicators are loaded (its probes follow the index)
        self.bundle = SightingBundle()
        self.load_counts: dict[str, int] = {}
        self.indicators_read = 0
        self.observed_data = 0
        self.compile_seconds = 0.0

    # --- indicators -----------------------------------------------------------------------------

    def load(self, objects: Iterable[dict[str, Any]]) -> None:
        """Index the indicators among `objects`; keep indicators and identities for the bundle."""
        started = time.perf_counter()
        now = time.time()
        for obj in objects:
            newest = self.bundle.remember(obj)
            if obj.get("type") != "indicator" or not newest:
                continue
            self.indicators_read += 1
            status = self.engine.index.add(obj, now=now).status
            self.load_counts[status] = self.load_counts.get(status, 0) + 1
        self.compile_seconds += time.perf_counter() - started

    def require_indicators(self) -> None:
        """NothingToMatch unless at least one indicator can match."""
        require_indicators(self.engine.index.stats()["indicators"], self.load_counts,
                           "--indicators, --zeek-intel, --from-collection")

    # --- inputs ---------------------------------------------------------------------------------

    def log_alerts(self, label: str, lines: Iterable[bytes], key: str | None = None) -> Iterator[Alert]:
        """Alerts for the lines of one log input, each naming `label` and its line; its hits are the share of
        the input ``key`` names (``input_key``; the digest of standard input, named once it is read)."""
        self.engine.aggregator.begin_input(key or label)
        if self.matcher is None:
            self.matcher = self.engine.line_matcher(self.reader, self.watch)
        self.reader.start_input()
        stats = self.reader.stats
        first_problem = len(stats.problems)
        try:
            for alert in self.matcher.alerts(lines):
                alert.file = label
                yield alert
        finally:
            for problem in stats.problems[first_problem:]:
                problem.file = label
            stats.name_file(label)

    def observed_data_alerts(self, path: Path, label: str, key: str | None = None) -> list[Alert]:
        """Alerts for a STIX observed-data file; an unusable observed-data is a bad line, not a failure."""
        self.engine.aggregator.begin_input(key or input_key(path))
        lines: dict[int, int] = {}
        objects = []
        for line, obj in read_stix_file(path, label):
            lines[id(obj)] = line
            objects.append(obj)
        line_of_id = {o.get("id"): lines[id(o)] for o in objects if o.get("type") == "observed-data"}
        stats = self.reader.stats

        def bad(sdo: Any, reason: str) -> None:
            kept = len(stats.problems)
            stats.problem(lines.get(id(sdo), 0), f"{sdo.get('id', 'observed-data')}: {reason}")
            if len(stats.problems) > kept:
                stats.problems[-1].file = label

        before = self.engine.events_seen
        alerts = self.engine.submit_observed_data(objects, on_error=bad)
        self.observed_data += self.engine.events_seen - before
        for alert in alerts:
            alert.file, alert.line = label, line_of_id.get(alert.source)
        return alerts

    def require_events(self, observed_data: bool) -> None:
        """NothingToMatch when not one line (or observed-data) of the inputs could be matched."""
        stats = self.reader.stats
        if observed_data:
            if self.observed_data == 0:
                raise NothingToMatch(
                    f"no usable observed-data in the inputs ({stats.problem_count} could not be used"
                    + (f"; first: {stats.problems[0].reason}" if stats.problems else "")
                    + ")",
                    "no-observed-data",
                )
            return
        require_log_lines(stats)

    # --- results --------------------------------------------------------------------------------

    def summary(self, sightings: int, observed_data: bool) -> dict[str, Any]:
        stats = self.reader.stats
        return {
            "indicators": self.engine.index.stats(),
            "indicator_load": self.load_counts,
            "warninglisted_skipped": self.load_counts.get("warninglisted", 0),
            "compile_seconds": round(self.compile_seconds, 3),
            "lines": stats.lines,
            "events": stats.events + (self.observed_data if observed_data else 0),
            "unmapped": stats.skipped,
            "first_unmapped": stats.first_unmapped.as_json() if stats.first_unmapped else None,
            "unlike_forced_mapping": stats.unlike,
            "first_unlike": stats.first_unlike.as_json() if stats.first_unlike else None,
            "unparsed": stats.problem_count,
            "unparsed_lines": [p.as_json() for p in stats.problems[:_PROBLEMS_IN_SUMMARY]],
            "hits": self.engine.hits,
            "sightings": sightings,
        }
