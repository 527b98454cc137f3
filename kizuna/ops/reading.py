"""Reading an operation's collections: always through `Node.read`, so through the visibility check."""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from kizuna.core.errors import AdminError
from kizuna.core.filters import Endpoint, Filters
from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN, Principal
from kizuna.numerals import whole_number
from kizuna.policy.tlp import TlpLevel, oasis_id
from kizuna.stix.timestamps import FIRST_MICROS, now_micros, parse_moment, parse_timestamp
from kizuna.store.base import Collection, VersionSelector

#: The OASIS TLP 2.0 marking ids back to their level (ingest rewrites the aliases to these ids).
LEVEL_OF_MARKING = {oasis_id(level): level for level in TlpLevel}


def _newest_rows(node: Node, collection: Collection, types: tuple[str, ...] | None, principal: Principal,
                 added_after: int | None, ids: tuple[str, ...] | None) -> Iterator[tuple[Any, bytes]]:
    """(row, body as the principal receives it) of the newest version of each object it may see, oldest
    first: `Node.read`, the one visibility check, page after page."""
    viewer = node.viewer_for(principal, collection)
    last = VersionSelector(last=True)
    filters = Filters(ids=ids, types=types, versions=last, added_after=added_after)
    while True:
        page = node.read(viewer, Endpoint.OBJECTS, filters)
        yield from page.items
        if not page.more:
            return
        filters = Filters(ids=ids, types=types, versions=last, added_after=added_after, next=page.next)


def latest_objects(node: Node, collection: Collection, types: tuple[str, ...] | None = None,
                   principal: Principal = NODE_ADMIN, added_after: int | None = None,
                   ids: tuple[str, ...] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(date added, object) for the newest version of each object the principal may see, oldest first."""
    for row, body in _newest_rows(node, collection, types, principal, added_after, ids):
        yield row.date_added, orjson.loads(body)


def visible_ids(node: Node, collection: Collection, ids: tuple[str, ...],
                principal: Principal = NODE_ADMIN) -> Iterator[str]:
    """Which of ``ids`` the principal sees in the collection: the same read as ``latest_objects``, without
    parsing bodies that only their ids are wanted of."""
    for row, _ in _newest_rows(node, collection, None, principal, None, ids):
        yield row.stix_id


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while an operation's objects are read and judged in bulk.

    A shift report keeps its alerts and the objects that point at others while it reads on, and every
    full collection walks all of them again: the collector's share of the report's CPU grows with the
    day (about 9% at 100,000 objects, 12–17% at 300,000). Parsed JSON holds no reference cycles, so
    refcounting frees it as before. For one-shot commands (the CLI): in a server the switch would
    reach every thread. The collector is switched back on only if it was on.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def tlp_of(obj: dict[str, Any]) -> TlpLevel | None:
    """The most restrictive TLP 2.0 marking an object carries, if any."""
    levels = [LEVEL_OF_MARKING[m] for m in obj.get("object_marking_refs", ()) if m in LEVEL_OF_MARKING]
    return max(levels) if levels else None


def stix_now() -> str:
    """Now as a STIX timestamp with millisecond precision."""
    return stamp(now_micros())


def next_modified(previous: str) -> str:
    """``modified`` for a new version: now, or a millisecond after ``previous`` when now is not later
    (two changes in one millisecond would otherwise be refused as a conflicting version)."""
    return stamp(max(now_micros(), parse_timestamp(previous) + 1000))


def stamp(micros: int) -> str:
    moment = dt.datetime.fromtimestamp(micros / 1_000_000, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def tlp_level(token: str) -> TlpLevel:
    level = TlpLevel.from_token(token)
    if level is None:
        raise AdminError(f"unknown TLP {token!r}: use clear, green, amber, amber+strict or red")
    return level


def since_micros(text: str | None) -> int | None:
    """``--since``: a duration back from now (90m, 12h, 2d) or an ISO date/time; None when not given."""
    if text is None:
        return None
    value = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
    # Any length of digits is a duration (one past the year 1 is refused below as out of range, not as no duration).
    amount = whole_number(value[:-1], maximum=10**40) if value[-1:] in units else None
    if amount is not None:
        at = now_micros() - amount * units[value[-1]] * 1_000_000
        if at < FIRST_MICROS:
            raise AdminError(f"--since {text!r} is out of range: it reaches back before the year 1")
        return at
    try:
        at = parse_moment(value)
    except ValueError:
        raise AdminError(f"--since {text!r} is neither a duration (12h, 2d) nor an ISO date/time") from None
    if at > now_micros():  # nothing has been added after a moment still to come: a typo, not a report
        raise AdminError(f"--since {text!r} is in the future")
    return at
