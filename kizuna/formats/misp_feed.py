"""Write MISP events as a MISP feed directory that a MISP instance can subscribe to.

Entry point: ``write_misp_feed(events, directory, *, org=None) -> list[str]`` (the event uuids written).
The layout is the one MISP reads from a feed URL:

- ``<event uuid>.json``: the event as ``{"Event": {…}}``; every event names its creator (``Orgc``).
- ``manifest.json``: one JSON object, keyed by event uuid, holding what MISP lists before fetching an
  event: ``Orgc`` (``name``, ``uuid``), ``Tag`` (``name``, plus ``colour`` when known), ``info``, ``date``
  (YYYY-MM-DD), ``analysis``, ``threat_level_id`` and ``timestamp`` (Unix seconds).
- ``hashes.csv``: one line ``<md5 of a value>,<event uuid>`` per attribute value (object attributes too),
  no header. Composite values (a type with ``|``, and ``malware-sample``) give one line per part, which
  is how MISP looks a value up in a feed without downloading it.

An existing directory is updated: events already there stay listed unless they are rewritten. Files are
written to a temporary name and renamed, so a reader polling the feed never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from kizuna.formats.base import FormatError
from kizuna.numerals import whole_number

MANIFEST = "manifest.json"
HASHES = "hashes.csv"


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _event(document: Mapping[str, Any]) -> dict[str, Any]:
    event = document.get("Event", document)
    if not isinstance(event, Mapping) or not event.get("uuid") or not event.get("info"):
        raise FormatError("a feed event needs a uuid and an info", str(event.get("uuid") if isinstance(
            event, Mapping) else None))
    return dict(event)


def _timestamp(value: object) -> int:
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and (seconds := whole_number(value)) is not None:
        return seconds
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
        except ValueError:
            pass
    return int(time.time())


def _date(event: Mapping[str, Any], timestamp: int) -> str:
    date = event.get("date")
    if isinstance(date, str) and len(date) >= 10:
        return date[:10]
    return datetime.fromtimestamp(timestamp, UTC).date().isoformat()


def _complete(event: dict[str, Any], org: Mapping[str, str] | None) -> dict[str, Any]:
    """Fill what a feed consumer requires (Orgc, date, timestamp, analysis, threat level)."""
    if not isinstance(event.get("Orgc"), Mapping) or not event["Orgc"].get("uuid"):
        if org is None:
            raise FormatError("event names no creator organisation (Orgc) and no org was given", event["uuid"])
        event["Orgc"] = {"name": org["name"], "uuid": org["uuid"]}
    timestamp = _timestamp(event.get("timestamp"))
    event["timestamp"] = str(timestamp)
    event["date"] = _date(event, timestamp)
    event.setdefault("analysis", "0")
    event.setdefault("threat_level_id", "4")
    event.setdefault("published", True)
    return event


def manifest_entry(event: Mapping[str, Any]) -> dict[str, Any]:
    """What ``manifest.json`` says about one (completed) event."""
    tags = []
    for tag in event.get("Tag") or ():
        entry = {"name": tag["name"]}
        if tag.get("colour"):
            entry["colour"] = tag["colour"]
        tags.append(entry)
    return {
        "Orgc": {"name": event["Orgc"].get("name", ""), "uuid": event["Orgc"]["uuid"]},
        "Tag": tags, "info": event["info"], "date": event["date"],
        "analysis": str(event["analysis"]), "threat_level_id": str(event["threat_level_id"]),
        "timestamp": int(event["timestamp"]),
    }


def _attributes(event: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from event.get("Attribute") or ()
    for misp_object in event.get("Object") or ():
        yield from misp_object.get("Attribute") or ()


def value_hashes(event: Mapping[str, Any]) -> list[str]:
    """The md5 of every attribute value of an event, composite values split into their parts."""
    hashes: list[str] = []
    for attribute in _attributes(event):
        value = str(attribute.get("value", ""))
        kind = str(attribute.get("type", ""))
        parts = value.split("|") if "|" in kind or kind == "malware-sample" else [value]
        hashes.extend(hashlib.md5(part.encode("utf-8"), usedforsecurity=False).hexdigest() for part in parts)
    return hashes


def write_misp_feed(events: Iterable[Mapping[str, Any]], directory: str | os.PathLike[str], *,
                    org: Mapping[str, str] | None = None) -> list[str]:
    """Write (or update) a MISP feed in ``directory``; ``org`` = {"name", "uuid"} for events without Orgc."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    manifest_path = root / MANIFEST
    manifest: dict[str, Any] = orjson.loads(manifest_path.read_bytes()) if manifest_path.exists() else {}
    hashes: dict[str, list[str]] = {}
    if (root / HASHES).exists():
        for line in (root / HASHES).read_text(encoding="utf-8").splitlines():
            digest, _, event_uuid = line.partition(",")
            hashes.setdefault(event_uuid, []).append(digest)
    written = []
    for document in events:
        event = _complete(_event(document), org)
        event_uuid = str(event["uuid"])
        _atomic_write(root / f"{event_uuid}.json", orjson.dumps({"Event": event}, option=orjson.OPT_INDENT_2))
        manifest[event_uuid] = manifest_entry(event)
        hashes[event_uuid] = value_hashes(event)
        written.append(event_uuid)
    lines = "".join(f"{digest},{event_uuid}\n" for event_uuid, digests in hashes.items() for digest in digests)
    _atomic_write(root / HASHES, lines.encode("utf-8"))
    _atomic_write(manifest_path, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return written
