"""`kizuna match --yara`: scan files with the YARA rules that shared indicators carry.

Every indicator with `pattern_type: yara` becomes one YARA namespace named by the indicator's id,
so two producers who both call a rule `apt_loader` do not clash, and a hit names the indicator it
came from without a lookup. All namespaces are compiled into one rule set and every file is
scanned once against all of them. Rules are compiled with `include` switched off: a shared rule
must not make the node read its own files.

A hit becomes an alert (file, rule, indicator, the file's SHA-256) and counts towards the
indicator's sighting for the time window, exactly as a log hit does (`SightingAggregator`). A file
that cannot be read is recorded with its reason and the other files are scanned.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kizuna.detect.bundle import SightingBundle
from kizuna.detect.run import NothingToMatch
from kizuna.detect.sightings import Alert, SightingAggregator
from kizuna.stix.vocab import shared_not_for_detection

_UNSCANNED_IN_SUMMARY = 100
# A rule that runs away (a pathological regular expression) must not stall the scan for ever.
_SCAN_TIMEOUT_SECONDS = 60


@dataclass
class Unscanned:
    file: str
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"file": self.file, "reason": self.reason}


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def expand_paths(names: Iterable[str]) -> tuple[list[Path], list[Unscanned]]:
    """The regular files named, with directories walked recursively (sorted, symlinked directories not
    followed, so a link loop cannot recurse); names that do not exist are returned as unscanned."""
    files: list[Path] = []
    missing: list[Unscanned] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            for directory, subdirs, entries in os.walk(path):
                subdirs.sort()
                files.extend(Path(directory, entry) for entry in sorted(entries)
                             if Path(directory, entry).is_file())
        elif path.is_file():
            files.append(path)
        elif path.exists():
            missing.append(Unscanned(name, "not a regular file or directory"))
        else:
            missing.append(Unscanned(name, "does not exist"))
    return files, missing


class YaraScan:
    """One scan: YARA indicators loaded, files scanned, alerts and aggregated sightings."""

    def __init__(self, identity_id: str, *, window: int = 3600) -> None:
        self.aggregator = SightingAggregator(identity_id, window)
        self.bundle = SightingBundle()
        self.load_counts: dict[str, int] = {}
        self.invalid: dict[str, str] = {}
        self.names: dict[str, str] = {}  # the name of each indicator that has one, for what a person reads
        self.indicators_read = 0
        self.files_scanned = 0
        self.bytes_scanned = 0
        self.hits = 0
        self.unscanned: list[Unscanned] = []
        self.compile_seconds = 0.0
        self._sources: dict[str, str] = {}
        self._rules: Any = None

    # --- indicators -----------------------------------------------------------------------------

    def load(self, objects: Iterable[dict[str, Any]]) -> None:
        """Take the YARA indicators among `objects` (newest version of each); keep the others' ids for
        the bundle like log matching does."""
        now = time.time()
        for obj in objects:
            if not self.bundle.remember(obj) or obj.get("type") != "indicator":
                continue
            self.indicators_read += 1
            status = self._status(obj, now)
            indicator_id = str(obj.get("id"))
            name = obj.get("name")
            if isinstance(name, str) and name:
                self.names[indicator_id] = name
            else:
                self.names.pop(indicator_id, None)
            if status == "yara" and "\0" in obj["pattern"]:
                # yara-python cannot take a NUL in a source (ValueError): the rule can never compile.
                self.invalid[indicator_id] = "the rule contains a NUL character"
                self._sources.pop(indicator_id, None)
            elif status == "yara":
                self._sources[indicator_id] = obj["pattern"]
                self.invalid.pop(indicator_id, None)  # an earlier version's NUL no longer counts
            else:
                self._sources.pop(indicator_id, None)  # a newer version that is no longer usable
            self.load_counts[status] = self.load_counts.get(status, 0) + 1
        self._rules = None

    @staticmethod
    def _status(indicator: dict[str, Any], now: float) -> str:
        if indicator.get("pattern_type") != "yara":
            return "not-yara"
        if indicator.get("revoked"):
            return "revoked"
        if shared_not_for_detection(indicator):
            return "not-for-detection"
        valid_until = _timestamp(indicator.get("valid_until"))
        if valid_until is not None and valid_until <= now:
            return "expired"
        return "yara" if isinstance(indicator.get("pattern"), str) else "invalid"

    def compile(self) -> Any:
        """All usable rules as one rule set; an indicator whose rule does not compile is left out and
        listed in `invalid` with the compiler's reason (the rest still compile)."""
        import yara

        if self._rules is not None:
            return self._rules
        started = time.perf_counter()
        try:
            self._rules = yara.compile(sources=self._sources, includes=False) if self._sources else None
        except yara.Error:
            # One bad rule fails the whole set: find the culprits one by one, then compile the rest.
            for indicator_id, source in list(self._sources.items()):
                try:
                    yara.compile(source=source, includes=False)
                except yara.Error as exc:
                    self.invalid[indicator_id] = _one_line(exc)
                    del self._sources[indicator_id]
            self._rules = yara.compile(sources=self._sources, includes=False) if self._sources else None
        self.compile_seconds += time.perf_counter() - started
        return self._rules

    def require_indicators(self) -> None:
        """NothingToMatch unless at least one YARA rule compiled."""
        if self.compile() is not None:
            return
        if self.indicators_read == 0:
            raise NothingToMatch("no indicators to match: the inputs held none "
                                 "(give --indicators or --from-collection)", "no-indicators")
        counts = dict(self.load_counts)
        if self.invalid:
            counts["yara"] = counts.get("yara", 0) - len(self.invalid)
            counts["invalid"] = counts.get("invalid", 0) + len(self.invalid)
        reasons = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()) if count)
        raise NothingToMatch(f"none of the {self.indicators_read} indicators is a usable YARA rule ({reasons})",
                             "no-usable-indicators")

    # --- files ----------------------------------------------------------------------------------

    def scan(self, path: Path) -> list[Alert]:
        """Alerts for one file; a file that cannot be read is recorded in `unscanned`."""
        import yara

        rules = self.compile()
        try:
            size = path.stat().st_size
            matches = rules.match(filepath=str(path), timeout=_SCAN_TIMEOUT_SECONDS) if rules is not None else []
        except (OSError, yara.Error) as exc:
            self.unscanned.append(Unscanned(str(path), _one_line(exc)))
            return []
        self.files_scanned += 1
        self.bytes_scanned += size
        if not matches:
            return []
        at = time.time()
        digest = _sha256(path)
        facts: list[tuple[str, str, Any]] = [("file", "name", path.name)]
        if digest is not None:
            facts.append(("file", "hashes.'SHA-256'", digest))
        alerts = []
        # Scanned again unchanged, a file counts once (core/sighting_shares.py). A scanned file is named by its
        # path and whole content: a sample changed since is another input, not a log that grew.
        self.aggregator.begin_input(f"file:{path.resolve()}:{digest or 'unreadable'}")
        for found in matches:
            self.hits += 1
            self.aggregator.record(found.namespace, at)
            alerts.append(Alert(found.namespace, at, None, "yara", facts, file=str(path), rule=found.rule,
                                indicator_name=self.names.get(found.namespace)))
        return alerts

    def scan_all(self, paths: Iterable[Path]) -> Iterator[Alert]:
        for path in paths:
            yield from self.scan(path)

    def require_files(self) -> None:
        """NothingToMatch when not one file could be scanned."""
        if self.files_scanned:
            return
        first = f"; first: {self.unscanned[0].file}: {self.unscanned[0].reason}" if self.unscanned else ""
        raise NothingToMatch(f"no file could be scanned ({len(self.unscanned)} could not be read{first})",
                             "no-files")

    # --- results --------------------------------------------------------------------------------

    def summary(self, sightings: int, _observed_data: bool = False) -> dict[str, Any]:
        return {
            "indicators": {"yara": len(self._sources), "invalid": len(self.invalid)},
            "indicator_load": self.load_counts,
            "invalid_rules": self.invalid,
            "compile_seconds": round(self.compile_seconds, 3),
            "files": self.files_scanned,
            "bytes": self.bytes_scanned,
            "unscanned": [u.as_json() for u in self.unscanned[:_UNSCANNED_IN_SUMMARY]],
            "unscanned_count": len(self.unscanned),
            "hits": self.hits,
            "sightings": sightings,
        }


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()
