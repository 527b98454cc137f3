"""Named feed definitions: what `GET /feeds/<name>.<ext>` serves, and who may fetch it.

A feed is defined once by the operator (`kizuna feeds create`): a format, one collection, and the
limits a firewall or resolver list needs (TLP ceiling, confidence floor, which IOC kind for a plain
list, whether warninglisted values are forced in). What a request receives is always the *caller's*
view of that collection — the token's markings and agreements, through the node's one visibility
check — so two partners fetching the same feed get different lists, and a feed over a collection the
caller may not read is absent, exactly like a name that was never defined.

The freshness tuple is the cheap half of the feed's HTTP validator: everything a served list depends
on apart from the clock (definition revision, sharing policy, the collection's newest addition and
deletion, the caller's grants). The route compares it before deciding whether to build anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

from kizuna.core.errors import AdminError, NotFound
from kizuna.core.principal import NODE_ADMIN, Principal
from kizuna.policy.tlp import TlpLevel
from kizuna.stix.timestamps import now_micros
from kizuna.store.base import Collection
from kizuna.store.feed_rows import FeedRecord

#: Feed formats and the file extension each is served under (a Suricata feed is a `.rules` file).
FEED_EXTENSIONS: Final = {"txt": "txt", "rpz": "rpz", "suricata": "rules", "zeek": "zeek", "csv": "csv"}
TLP_LEVELS: Final = tuple(level.token for level in TlpLevel)
# Lower-case letters, digits, '-' and '_': a name sits in a URL path before the extension's dot.
_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
#: One label of a zone name: letters, digits, '_' and inner '-', at most 63 (RFC 1035 2.3.4).
_ZONE_LABEL: Final = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def zone_name_problem(origin: str) -> str | None:
    """Why ``origin`` cannot be an RPZ zone's name, or None. An empty name would be the root zone and an
    empty label (``rpz..example``) no name at all; both were written into zones that resolvers refuse."""
    labels = origin.lower().removesuffix(".").split(".")
    if not origin.strip(".") or len(origin) > 253 or not all(_ZONE_LABEL.fullmatch(label) for label in labels):
        return (f"{origin!r} is not a usable zone name: give dot-separated labels of letters, digits, '-' and "
                "'_' (e.g. rpz.example.org)")
    return None


@dataclass(frozen=True, slots=True)
class FeedDefinition:
    name: str
    format: str
    api_root: str
    collection_id: str
    tlp_ceiling: str | None = None
    min_confidence: int | None = None
    kind: str | None = None  # txt feeds: which IOCs (ip, domain, url, hash, …)
    include_warninglisted: bool = False
    rpz_origin: str | None = None
    created_at: int = 0
    revision: int = 0

    @property
    def extension(self) -> str:
        return FEED_EXTENSIONS[self.format]

    @property
    def path(self) -> str:
        return f"/feeds/{self.name}.{self.extension}"

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "format": self.format, "path": self.path, "api_root": self.api_root,
                "collection": self.collection_id, "tlp_ceiling": self.tlp_ceiling,
                "min_confidence": self.min_confidence, "type": self.kind,
                "include_warninglisted": self.include_warninglisted, "rpz_origin": self.rpz_origin}


def _options(feed: FeedDefinition) -> str:
    return orjson.dumps({"tlp_ceiling": feed.tlp_ceiling, "min_confidence": feed.min_confidence,
                         "type": feed.kind, "include_warninglisted": feed.include_warninglisted,
                         "rpz_origin": feed.rpz_origin}).decode()


def _definition(record: FeedRecord) -> FeedDefinition:
    options = orjson.loads(record.options)
    return FeedDefinition(
        record.name, record.format, record.api_root, record.collection_id,
        tlp_ceiling=options.get("tlp_ceiling"), min_confidence=options.get("min_confidence"),
        kind=options.get("type"), include_warninglisted=bool(options.get("include_warninglisted")),
        rpz_origin=options.get("rpz_origin"), created_at=record.created_at, revision=record.revision,
    )


def create_feed(node: Any, feed: FeedDefinition, collection_ref: str) -> FeedDefinition:
    """Store ``feed`` over the collection ``collection_ref`` (id or alias, in ``feed.api_root`` when
    that is set); refused with the reason when a value is impossible or the name is taken."""
    if not _NAME.fullmatch(feed.name):
        raise AdminError(f"feed name {feed.name!r}: use 1-63 lower-case letters, digits, '-' or '_' "
                         "(the name is a URL path before the format's extension)")
    if feed.format not in FEED_EXTENSIONS:
        raise AdminError(f"feed format {feed.format!r}: choose one of {', '.join(FEED_EXTENSIONS)}")
    if feed.tlp_ceiling is not None and feed.tlp_ceiling not in TLP_LEVELS:
        raise AdminError(f"TLP ceiling {feed.tlp_ceiling!r}: choose one of {', '.join(TLP_LEVELS)}")
    if feed.min_confidence is not None and not 0 <= feed.min_confidence <= 100:
        raise AdminError(f"confidence floor {feed.min_confidence}: STIX confidence runs from 0 to 100")
    if feed.kind is not None and feed.format != "txt":
        raise AdminError("--type applies to txt feeds only (the other formats carry every IOC kind)")
    if feed.rpz_origin is not None and feed.format != "rpz":
        raise AdminError("--rpz-origin applies to rpz feeds only")
    if feed.rpz_origin is not None and (problem := zone_name_problem(feed.rpz_origin)) is not None:
        raise AdminError(problem)
    collection = node.find_collection(collection_ref, feed.api_root or None)
    stored = FeedDefinition(
        feed.name, feed.format, collection.api_root, collection.id, feed.tlp_ceiling, feed.min_confidence,
        feed.kind or ("ip" if feed.format == "txt" else None), feed.include_warninglisted, feed.rpz_origin,
        created_at=now_micros(), revision=now_micros(),
    )
    record = FeedRecord(stored.name, stored.format, stored.api_root, stored.collection_id, _options(stored),
                        stored.created_at, stored.revision)
    if not node.store.create_feed(record):
        raise AdminError(f"feed {feed.name!r} already exists (remove it first, or choose another name)")
    node.audit.record("feed-created", NODE_ADMIN.key, stored.as_json())
    return stored


def list_feeds(node: Any) -> list[FeedDefinition]:
    return [_definition(record) for record in node.store.list_feeds()]


def get_feed(node: Any, name: str) -> FeedDefinition:
    record = node.store.get_feed(name)
    if record is None:
        raise AdminError(f"no feed {name!r} (see `kizuna feeds list`)")
    return _definition(record)


def remove_feed(node: Any, name: str) -> None:
    if not node.store.delete_feed(name):
        raise AdminError(f"no feed {name!r} (see `kizuna feeds list`)")
    node.audit.record("feed-removed", NODE_ADMIN.key, {"name": name})


def collection_of(node: Any, feed: FeedDefinition) -> Collection | None:
    found: Collection | None = node.store.get_collection(feed.api_root, feed.collection_id)
    return found


def feed_for(node: Any, principal: Principal, name: str, extension: str) -> tuple[FeedDefinition, Collection]:
    """The feed ``name`` served as ``extension`` and its collection, if ``principal`` may read that
    collection; NotFound otherwise — a feed the caller may not use looks exactly like no feed."""
    record = node.store.get_feed(name)
    if record is not None:
        feed = _definition(record)
        collection = collection_of(node, feed)
        if (feed.extension == extension and collection is not None and principal.sees_collection(collection)
                and principal.can_read(collection)):
            return feed, collection
    raise NotFound("no such feed")


def freshness(node: Any, feed: FeedDefinition, collection: Collection, principal: Principal) -> tuple[Any, ...]:
    """Everything apart from the clock that a served copy of ``feed`` depends on, read cheaply."""
    return (feed.revision, node.store.policy_generation(), node.store.collection_change_stamp(collection.pk),
            repr(principal))
