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

``export_misp_feed`` is what ``kizuna export --format misp-feed`` writes with: it records in the directory
(`VIEW`) which view of the node the feed was written for, and replaces the directory whole, so that after
an export the directory holds only what that view allows (see its text).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from kizuna.formats.base import FormatError
from kizuna.numerals import whole_number

MANIFEST = "manifest.json"
HASHES = "hashes.csv"
#: The file that says which view a feed directory was exported for: a digest of the view, and per collection
#: (by a digest of its id) the events that collection's last export wrote. Digests, so that a published
#: directory names no token, organisation or collection. Hidden, and no ``.json``: no feed reader takes it
#: for an event.
VIEW = ".kizuna-feed-view"
_UUID: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


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


class ViewMismatch(FormatError):
    """The directory holds a feed exported for another view, or files of unknown origin."""


def export_misp_feed(events: Iterable[Mapping[str, Any]], directory: Path, *, org: Mapping[str, str] | None,
                     view: str, collection: str, replace: bool = False) -> list[str]:
    """Export ``events`` of ``collection`` (a digest of its id), as seen by ``view`` (a digest of who reads
    and under which ceiling), into the feed ``directory``; the event uuids written.

    A feed is published as a whole, so the directory must hold only what ``view`` allows. A directory
    exported for the same view keeps the events other collections' exports wrote into it (one feed of
    several collections), but not the events this collection's earlier export wrote and this one does not
    (now hidden, re-marked or gone). A non-empty directory written for another view, or not by an export, is
    refused (`ViewMismatch`) unless ``replace``, which writes this export in its place. The new directory is
    built inside it and moved into place once whole (`_move_into`), so a failed export leaves it as it was."""
    kept = kept_events(directory, view, collection, replace)
    created = not directory.exists()
    directory.mkdir(exist_ok=True)
    building = directory / f".kizuna-building.{os.getpid()}"  # beside the files it replaces: renames stay atomic
    shutil.rmtree(building, ignore_errors=True)
    try:
        building.mkdir()
        _copy_events(directory, building, {uuid for uuids in kept.values() for uuid in uuids})
        written = write_misp_feed(events, building, org=org)
        kept = {part: [uuid for uuid in uuids if uuid not in written] for part, uuids in kept.items()}
        kept[collection] = written
        _atomic_write(building / VIEW, orjson.dumps({"view": view, "events": kept}))
        _move_into(building, directory)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        if created:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    return written


def kept_events(directory: Path, view: str, collection: str, replace: bool = False) -> dict[str, list[str]]:
    """The events an export of ``collection`` for ``view`` keeps in ``directory``, per collection: those other
    collections' exports for the same view wrote. Raises `ViewMismatch` for a non-empty directory of another
    view or of unknown origin, unless ``replace`` (then nothing is kept). Asked before anything is read, so a
    refused export reads (and audits as egress) nothing."""
    if replace or not directory.is_dir() or not any(directory.iterdir()):
        return {}
    recorded = _recorded_view(directory)
    if recorded is None or recorded.get("view") != view:
        raise ViewMismatch(f"{directory} holds a MISP feed exported for another view (another organisation, token "
                           "or --tlp-max, or not by kizuna export); export into an empty directory, or add "
                           "--replace to write this export in its place")
    return {part: uuids for part, uuids in recorded.get("events", {}).items() if part != collection}


def _recorded_view(directory: Path) -> dict[str, Any] | None:
    try:
        recorded = orjson.loads((directory / VIEW).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return recorded if isinstance(recorded, dict) else None


def _copy_events(source: Path, target: Path, uuids: set[str]) -> None:
    """The files, manifest entries and value hashes of the events ``uuids`` of the feed in ``source``."""
    if not uuids:
        return
    manifest = orjson.loads((source / MANIFEST).read_bytes())
    uuids = {event_uuid for event_uuid in uuids
             if _UUID.fullmatch(event_uuid) and event_uuid in manifest and (source / f"{event_uuid}.json").is_file()}
    for event_uuid in uuids:
        shutil.copy2(source / f"{event_uuid}.json", target / f"{event_uuid}.json")
    _atomic_write(target / MANIFEST, orjson.dumps({k: v for k, v in manifest.items() if k in uuids},
                                                  option=orjson.OPT_INDENT_2))
    lines = [line for line in (source / HASHES).read_text(encoding="utf-8").splitlines(keepends=True)
             if line.rstrip("\n").partition(",")[2] in uuids]
    _atomic_write(target / HASHES, "".join(lines).encode("utf-8"))


def _move_into(built: Path, directory: Path) -> None:
    """Put the feed ``built`` in place of the one in ``directory``, once it is whole: the events first, then the
    files that list them, then away with the events no longer listed. Each step is a rename, so a reader
    polling the feed never finds a listed event missing; other files of the directory stay."""
    before = directory / MANIFEST
    listed_before = set(orjson.loads(before.read_bytes())) if before.is_file() else set()
    listed = set(orjson.loads((built / MANIFEST).read_bytes()))
    for event_uuid in listed:
        os.replace(built / f"{event_uuid}.json", directory / f"{event_uuid}.json")
    for name in (HASHES, VIEW, MANIFEST):
        os.replace(built / name, directory / name)
    for event_uuid in listed_before - listed:
        if _UUID.fullmatch(event_uuid):  # a name from a manifest --replace may not have written: no path in it
            (directory / f"{event_uuid}.json").unlink(missing_ok=True)
    shutil.rmtree(built)
