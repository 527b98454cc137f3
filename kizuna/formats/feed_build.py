"""Writing a feed: the text of a blocklist, RPZ zone, Zeek Intel file, Suricata rules or CSV from the
objects a principal may see. Shared by `kizuna export` and the feed endpoints, so a feed fetched over
HTTP is byte for byte what `kizuna export --as-token-id` writes for the same token at the same instant.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Final

from kizuna.core.feeds import FeedDefinition
from kizuna.core.principal import Principal
from kizuna.formats.base import ConversionReport
from kizuna.formats.blocklists import write_blocklist
from kizuna.formats.csv_out import write_csv
from kizuna.formats.feeds import FeedOptions
from kizuna.formats.rpz import write_rpz
from kizuna.formats.suricata import write_suricata
from kizuna.formats.zeek_intel import write_zeek_intel
from kizuna.policy.tlp import TlpLevel
from kizuna.store.base import Collection

DEFAULT_RPZ_ORIGIN: Final = "rpz.kizuna.invalid"
#: What each feed format is served as. RPZ is a DNS master file (text/dns, RFC 4027).
MEDIA_TYPES: Final = {
    "txt": "text/plain; charset=utf-8", "rpz": "text/dns; charset=utf-8", "suricata": "text/plain; charset=utf-8",
    "zeek": "text/plain; charset=utf-8", "csv": "text/csv; charset=utf-8",
}


def feed_lines(fmt: str, objects: Iterable[bytes | str], options: FeedOptions, report: ConversionReport,
               kind: str = "ip", rpz_origin: str = DEFAULT_RPZ_ORIGIN) -> Iterator[str]:
    """The text of a ``fmt`` feed (csv, txt, rpz, zeek, suricata) of ``objects`` (`feed_input`), in pieces of
    whole lines: one line a piece, or many (blocklists and RPZ), with a line that carries the build time
    always a piece of its own."""
    source = iter(objects)
    writers: dict[str, Callable[[], Iterator[str]]] = {
        "csv": lambda: write_csv(source, options=options, report=report),
        "txt": lambda: write_blocklist(source, kind, options=options, report=report),
        "rpz": lambda: write_rpz(source, rpz_origin, options=options, report=report),
        "zeek": lambda: write_zeek_intel(source, options=options, report=report),
        "suricata": lambda: write_suricata(source, options=options, report=report),
    }
    return writers[fmt]()


#: The formats whose writers read only an indicator's IOCs (and id), so stored feed facts can stand in for it.
FACT_FORMATS: Final = frozenset({"txt", "rpz"})


def feed_input(node: Any, fmt: str, collection: Collection, principal: Principal,
               ceiling: TlpLevel | None = None) -> Iterator[bytes | str]:
    """What the writer of ``fmt`` reads: the newest version the principal sees of each object, through the
    visibility check (`Node.export_feed` for blocklists and RPZ, `Node.export_objects` otherwise). ``ceiling``:
    the feed's TLP ceiling, which the check applies on top of the principal's own rules, as to any export: an
    indicator marked above it is left out, and a part of one (its name, description, labels, pattern) that a
    granular marking above it covers is removed, the indicator with it when that part is required. The writers'
    own test of an indicator's TLP (formats/feeds.py) sees only its object markings."""
    principal = with_ceiling(principal, ceiling)
    if fmt in FACT_FORMATS:
        found: Iterator[bytes | str] = node.export_feed(collection, principal)
        return found
    objects: Iterator[bytes] = node.export_objects(collection, principal, latest_only=True)
    return objects


def with_ceiling(principal: Principal, ceiling: TlpLevel | None) -> Principal:
    """``principal`` reading at most up to ``ceiling`` (its own ceiling, when lower, still holds)."""
    if ceiling is None or (principal.tlp_ceiling is not None and principal.tlp_ceiling <= ceiling):
        return principal
    return dataclasses.replace(principal, tlp_ceiling=ceiling)


def feed_options(feed: FeedDefinition) -> FeedOptions:
    return FeedOptions(tlp_ceiling=TlpLevel.from_token(feed.tlp_ceiling) if feed.tlp_ceiling else None,
                       min_confidence=feed.min_confidence, include_flagged=feed.include_warninglisted)


@dataclass(frozen=True, slots=True)
class BuiltFeed:
    #: The body, read from its start: a temporary file, in memory up to `_IN_MEMORY` bytes and on disk beyond,
    #: because a million-line body held by the server would be 46 MB of its peak memory (beside the build's own).
    #: Whoever takes it closes it.
    body: IO[bytes]
    size: int  # bytes in the body
    etag: str  # strong validator: a digest of the body
    report: ConversionReport


def build_feed(node: Any, feed: FeedDefinition, collection: Collection, principal: Principal) -> BuiltFeed:
    """The feed as ``principal`` receives it now. The objects come from `feed_input` (`Node.export_feed` or
    `Node.export_objects`), which reads through the visibility check and audits what leaves as egress."""
    report = ConversionReport(feed.format)
    options = feed_options(feed)
    objects = feed_input(node, feed.format, collection, principal, options.tlp_ceiling)
    lines = feed_lines(feed.format, objects, options, report, feed.kind or "ip",
                       feed.rpz_origin or DEFAULT_RPZ_ORIGIN)
    digest = hashlib.sha256()
    body: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY)  # handed to the caller
    try:
        batch: list[str] = []
        for piece in lines:
            batch.append(piece)
            if len(batch) == _BATCH or len(piece) > _LONG:
                _append(body, digest, batch)
                batch.clear()
        _append(body, digest, batch)
        size = body.tell()
        body.seek(0)
    except BaseException:
        body.close()
        raise
    return BuiltFeed(body, size, '"' + digest.hexdigest()[:40] + '"', report)


_IN_MEMORY: Final = 1024 * 1024  # a body up to this size stays in memory (most feeds); a longer one goes to disk
_BATCH: Final = 1024  # lines encoded and hashed together: per-line calls cost more than the writer's work
_LONG: Final = 4096  # a piece this long (many lines: blocklists and RPZ) is encoded and hashed as it comes


def _append(body: IO[bytes], digest: Any, lines: list[str]) -> None:
    """Add ``lines`` (pieces of `feed_lines`) to the body, and to the digest those that do not carry the build
    time. A batch without either marker anywhere has no such line, so it is encoded and hashed in one go."""
    text = "".join(lines)
    if "# Kizuna " not in text and " IN SOA " not in text:
        data = text.encode("utf-8")
        body.write(data)
        digest.update(data)
        return
    for line in lines:
        data = line.encode("utf-8")
        body.write(data)
        if not _carries_build_time(line):
            digest.update(data)


def _carries_build_time(line: str) -> bool:
    """The lines that say when a list was written (a blocklist's "as of" comment, an RPZ zone's SOA
    serial) stay out of the validator, so an unchanged list keeps its ETag from one build to the next."""
    return line.startswith("# Kizuna ") or " IN SOA " in line
