"""A MISP feed as a partner: poll ``manifest.json``, fetch the new or changed events, ingest their STIX.

A MISP feed is a directory of ``<event uuid>.json`` files listed by ``manifest.json`` with each event's
``timestamp`` (MISP bumps it whenever the event changes).  A run asks for the manifest with the
validators of the last complete run (``If-None-Match``/``If-Modified-Since``; for a directory, the
manifest's size and modification time): unchanged means nothing to do.  Otherwise each listed event
whose timestamp differs from the one last imported is fetched, converted to STIX by the converter the
caller injects (federation does not import the formats room), and committed through the node's own
ingest together with its provenance and the event's new timestamp (``commit_pull_page``), so a killed
run resumes with the events it had not finished.

One bad event never stops the others.  An event the feed cannot serve (404, a server error) is
reported and fetched again at the next run: the manifest's validators are kept only after a run in
which every listed event was read.  An event that was served but cannot be used (not JSON, not a MISP
event, refused by the converter) is quarantined with its bytes and its timestamp is remembered, so it
is not fetched again until the feed changes it, like a poison object in a TAXII pull.

An event that was read and is no longer listed is recalled (`MispFeedPoller._withdraw`), like a
deletion a Kizuna partner announces in its tombstones.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urljoin, urlsplit

import httpx
import orjson

from kizuna.core.node import Node
from kizuna.federation.client import PartnerError, http_client
from kizuna.federation.config import PartnerConfig
from kizuna.federation.state import CursorKey, FederationState, QuarantineEntry, Source
from kizuna.numerals import whole_number
from kizuna.store.base import Collection

MANIFEST = "manifest.json"
#: Cursor directions: the manifest's validators, and the last timestamp read of each event.
MANIFEST_CURSOR = "misp-manifest"
EVENT_CURSOR = "misp-event"
#: Event uuids become file names and URL paths: nothing but a canonical uuid is ever requested.
#: What an event brings that other events of the same feed share: never recalled with one event.
_SHARED_TYPES = ("identity", "marking-definition", "extension-definition")
_EVENT_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ConvertedEvent(Protocol):
    """What the injected converter returns for one event: STIX objects and a report of what was lost."""

    objects: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]: ...


#: ``converter(event file bytes, name for messages)``; raises (e.g. ``ValueError``) when it cannot convert.
MispConverter = Callable[[bytes, str], ConvertedEvent]


class EventUnavailable(Exception):
    """The feed did not serve one event this time (404, server error): try again at the next run."""


@dataclass(frozen=True, slots=True)
class ManifestAnswer:
    body: bytes | None  # None: unchanged since the validators were taken
    validators: dict[str, Any]


def feed_directory(url: str) -> Path | None:
    """The local directory of a ``file://`` feed URL (None for http and https)."""
    parts = urlsplit(url)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None


class HttpFeed:
    """A feed served over HTTP(S), asked conditionally for its manifest."""

    def __init__(self, partner: PartnerConfig, timeout_s: float = 60.0) -> None:
        self.partner = partner
        self.base = partner.base_url
        self._client = http_client(partner, "application/json", timeout_s, follow_redirects=True)

    def close(self) -> None:
        self._client.close()

    def _get(self, name: str, headers: dict[str, str] | None = None) -> httpx.Response:
        url = urljoin(self.base, name)
        try:
            return self._client.get(url, headers=headers or {})
        except httpx.TimeoutException as exc:
            raise PartnerError(f"{self.partner.name}: timed out on {url} ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise PartnerError(f"{self.partner.name}: cannot reach {url}: {exc}") from None

    def manifest(self, validators: dict[str, Any]) -> ManifestAnswer:
        headers = {}
        if validators.get("etag"):
            headers["If-None-Match"] = str(validators["etag"])
        if validators.get("last_modified"):
            headers["If-Modified-Since"] = str(validators["last_modified"])
        response = self._get(MANIFEST, headers)
        if response.status_code == 304:
            return ManifestAnswer(None, validators)
        if response.status_code != 200:
            kind = "refused" if response.status_code in (401, 403, 404) else "unavailable"
            raise PartnerError(f"{self.partner.name}: GET {self.base}{MANIFEST} answered {response.status_code}: "
                               "check the feed URL and credentials", kind=kind, status_code=response.status_code)
        fresh = {"etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified")}
        return ManifestAnswer(response.content, {k: v for k, v in fresh.items() if v})

    def event(self, event_uuid: str) -> bytes:
        response = self._get(f"{event_uuid}.json")
        if response.status_code != 200:
            raise EventUnavailable(f"GET {event_uuid}.json answered {response.status_code}")
        return response.content


class DirectoryFeed:
    """A feed in a local directory (air-gapped sites, a mounted share): the manifest's size and
    modification time stand in for HTTP validators."""

    def __init__(self, partner: PartnerConfig, directory: Path) -> None:
        self.partner = partner
        self.directory = directory

    def close(self) -> None:
        return None

    def manifest(self, validators: dict[str, Any]) -> ManifestAnswer:
        path = self.directory / MANIFEST
        try:
            before = path.stat()
            body = path.read_bytes()
        except OSError as exc:
            raise PartnerError(f"{self.partner.name}: cannot read {path}: {exc.strerror or exc}") from None
        fresh = {"mtime_ns": before.st_mtime_ns, "size": before.st_size}
        if validators == fresh:
            return ManifestAnswer(None, validators)
        return ManifestAnswer(body, fresh)

    def event(self, event_uuid: str) -> bytes:
        try:
            return (self.directory / f"{event_uuid}.json").read_bytes()
        except OSError as exc:
            raise EventUnavailable(f"cannot read {event_uuid}.json: {exc.strerror or exc}") from None


def open_feed(partner: PartnerConfig) -> HttpFeed | DirectoryFeed:
    directory = feed_directory(partner.api_root_url)
    return HttpFeed(partner) if directory is None else DirectoryFeed(partner, directory)


def _timestamp(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return whole_number(value) if isinstance(value, str) else None


def parse_manifest(partner: str, body: bytes) -> tuple[dict[str, int], list[str]]:
    """The manifest's events (uuid -> timestamp) and a sentence for each entry that cannot be used."""
    try:
        manifest = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PartnerError(f"{partner}: {MANIFEST} is not JSON ({exc})", kind="malformed") from None
    if not isinstance(manifest, dict):
        raise PartnerError(f"{partner}: {MANIFEST} is not a JSON object keyed by event uuid", kind="malformed")
    events: dict[str, int] = {}
    problems: list[str] = []
    for key, entry in manifest.items():
        stamp = _timestamp(entry.get("timestamp")) if isinstance(entry, dict) else None
        if not _EVENT_UUID.match(key):
            problems.append(f"manifest entry {key[:80]!r} is not an event uuid; skipped")
        elif stamp is None:
            problems.append(f"event {key}: the manifest gives no timestamp; skipped")
        else:
            events[key] = stamp
    return events, problems


class MispFeedPoller:
    """One run of one MISP feed partner into its collection."""

    def __init__(self, node: Node, state: FederationState, converter: MispConverter,
                 after_event: Callable[[], None]) -> None:
        self.node = node
        self.state = state
        self.converter = converter
        self.after_event = after_event

    def poll(self, partner: PartnerConfig, local: Collection, counts: dict[str, Any], notes: list[str]) -> None:
        """Bring the collection up to date with the feed; ``counts`` and ``notes`` receive the run's account."""
        manifest_key = CursorKey(partner.name, MANIFEST_CURSOR, local.id, MANIFEST)
        saved = self.state.get_cursor(manifest_key)
        feed = open_feed(partner)
        try:
            answer = feed.manifest(orjson.loads(saved) if saved else {})
            counts["requests"] += 1
            if answer.body is None:
                counts["manifest"] = "unchanged"
                return
            counts["manifest"] = "changed"
            listed, problems = parse_manifest(partner.name, answer.body)
            notes.extend(f"{partner.name}: {problem}" for problem in problems)
            counts["listed"] = len(listed)
            seen = self._last_read(partner.name, local.id)
            complete = True
            for event_uuid, stamp in sorted(listed.items(), key=lambda item: (item[1], item[0])):
                if seen.get(event_uuid) == stamp:
                    continue
                complete = self._event(feed, partner, local, event_uuid, stamp, counts, notes) and complete
                self.after_event()
            for event_uuid in sorted(set(seen) - set(listed)):
                self._withdraw(partner, local, event_uuid, counts, notes)
                self.after_event()
            if complete:
                self.state.save_cursor(manifest_key, orjson.dumps(answer.validators).decode())
        finally:
            feed.close()

    def _last_read(self, partner: str, local_id: str) -> dict[str, int]:
        """The timestamp each event had when it was last read (imported, or refused as unusable)."""
        found: dict[str, int] = {}
        for key, position, _ in self.state.cursors(partner):
            if key.direction == EVENT_CURSOR and key.local_collection == local_id:
                stamp = _timestamp(orjson.loads(position).get("timestamp"))
                if stamp is not None:
                    found[key.remote_collection] = stamp
        return found

    def _withdraw(self, partner: PartnerConfig, local: Collection, event_uuid: str, counts: dict[str, Any],
                  notes: list[str]) -> None:
        """An event gone from the manifest (deleted or unpublished at the source) is recalled here: the
        versions it brought are deleted as a TAXII partner's tombstones would delete them, and kept as
        recalled copies so the nodes that pulled them from this one are told in turn.  The identities and
        marking definitions an event brought stay: other events of the feed refer to the same ones."""
        source = Source(partner.name, f"misp-event:{event_uuid}")
        wanted = self.state.received_from(local.pk, source, _SHARED_TYPES)
        key = CursorKey(partner.name, EVENT_CURSOR, local.id, event_uuid)
        # No timestamp in the cursor: the event counts as never read, so it is fetched again if it returns.
        removed = self.state.withdraw_received(self.node, local.pk, wanted, frozenset({partner.name}), key,
                                               orjson.dumps({"removed": True}).decode())
        counts["withdrawn_events"] += 1
        counts["recalled"] += removed
        notes.append(f"{partner.name}: event {event_uuid} is no longer in the feed; {removed} version(s) it "
                     "brought were recalled")

    def _event(self, feed: HttpFeed | DirectoryFeed, partner: PartnerConfig, local: Collection, event_uuid: str,
               stamp: int, counts: dict[str, Any], notes: list[str]) -> bool:
        """Fetch, convert and commit one event; False when the feed did not serve it (retried next run)."""
        key = CursorKey(partner.name, EVENT_CURSOR, local.id, event_uuid)
        source = Source(partner.name, f"misp-event:{event_uuid}")
        try:
            data = feed.event(event_uuid)
        except EventUnavailable as exc:
            counts["requests"] += 1
            counts["failed"].append({"uuid": event_uuid, "reason": str(exc)})
            notes.append(f"{partner.name}: event {event_uuid}: {exc}; it is fetched again at the next run")
            return False
        counts["requests"] += 1
        counts["fetched"] += 1
        try:
            converted = self.converter(data, f"{event_uuid}.json")
            summary = converted.summary()
        except Exception as exc:  # whatever the converter raises is this event's fault, not the feed's
            reason = " ".join(str(exc).split())[:300] or type(exc).__name__
            self.state.quarantine(source, local.id, [QuarantineEntry(None, str(stamp), f"MISP event {event_uuid} "
                                                                     f"cannot be converted: {reason}", data)])
            self.state.save_cursor(key, orjson.dumps({"timestamp": stamp, "refused": reason}).decode())
            counts["failed"].append({"uuid": event_uuid, "reason": reason})
            counts["quarantined"] += 1
            notes.append(f"{partner.name}: event {event_uuid} cannot be converted ({reason}); quarantined, and "
                         "not fetched again until the feed changes it")
            return True
        commit = self.state.commit_pull_page(
            self.node, local.pk, converted.objects, source, key, orjson.dumps({"timestamp": stamp}).decode(),
        )
        losses = summary.get("losses") or []
        self.node.audit.record("misp-import", f"partner:{partner.name}", {
            "collection": local.id, "event": event_uuid, "timestamp": stamp, "objects": len(converted.objects),
            "added": commit.added, "duplicates": commit.duplicates, "quarantined": commit.quarantined,
            "normalised": commit.normalised, "losses": losses, "rejected": summary.get("rejected") or [],
            "warnings": summary.get("warnings") or [],
        })
        counts["imported"] += 1
        counts["losses"] += len(losses)
        for name in ("added", "duplicates", "quarantined", "redacted_copies", "upgraded", "normalised"):
            counts[name] += getattr(commit, name)
        return True


def new_counts(local: Collection) -> dict[str, Any]:
    """The per-run account of a feed, as it appears in the run report's ``mappings``."""
    return {"direction": "misp-feed", "local": local.alias or local.id, "remote": "manifest.json", "manifest": None,
            "requests": 0, "listed": 0, "fetched": 0, "imported": 0, "failed": [], "losses": 0, "added": 0,
            "duplicates": 0, "quarantined": 0, "redacted_copies": 0, "upgraded": 0, "normalised": 0,
            "withdrawn_events": 0, "recalled": 0}


__all__ = ["ConvertedEvent", "MispConverter", "MispFeedPoller", "feed_directory", "new_counts"]
