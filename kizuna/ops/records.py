"""Where an operation is kept: its record in the node's settings, its context as STIX in its collections.

The record (dates, partner set, the tokens' ids, the collections, open or closed) is operator state,
like the node's title, so it lives in the store's settings under ``ops:index`` (no schema step). What
partners should see of it — the operation's identity and its ``grouping`` — is STIX in the watchlist
collection, marked with the operation's default TLP, and read through the usual visibility check.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from kizuna.core.errors import AdminError
from kizuna.policy.tlp import TlpLevel, oasis_id
from kizuna.store.base import Store

INDEX_KEY = "ops:index"
LOOKALIKE_KEY = "ops:lookalikes:"
# Letters and digits of any script (東京2027 stays itself): an ASCII-only key turned 東京 into nothing and
# 東京2027 and 大阪2027 into the same "2027".
_SLUG_OUT = re.compile(r"[\W_]+")


def slug_of(name: str) -> str:
    """A short key for an operation name: lower case words joined by '-' (``rugby-world-cup-2019``,
    ``東京-2027``)."""
    slug = _SLUG_OUT.sub("-", name.lower()).strip("-")
    if not slug:
        raise AdminError(f"operation name {name!r} needs at least one letter or digit")
    return slug[:60]


@dataclass
class Partner:
    organisation: str  # the organisation's name, as operators know it
    organisation_id: str
    agreement: str
    token_id: str


@dataclass
class Operation:
    name: str
    slug: str
    start: str  # ISO timestamps
    end: str
    expires: str  # end plus the grace period: when the partner tokens stop working
    tlp_default: str
    identity_id: str
    grouping_id: str
    collections: dict[str, str]  # role (intel, incidents, watchlist) -> collection id
    partners: list[Partner] = field(default_factory=list)
    state: str = "open"
    closed_at: str | None = None

    def require_open(self) -> None:
        """Refuse a change to a closed operation: its record is final (``ops close``)."""
        if self.state != "open":
            raise AdminError(f"operation {self.name!r} is closed")

    @property
    def marking_refs(self) -> list[str]:
        """The markings of what the operation itself publishes: its default TLP (AMBER if unreadable)."""
        level = TlpLevel.from_token(self.tlp_default)
        return [oasis_id(TlpLevel.AMBER if level is None else level)]  # not `or`: TLP:CLEAR is level 0

    @property
    def last_day(self) -> str:
        """The ``--to`` day: ``end`` is the midnight after it (UTC)."""
        day = dt.date.fromisoformat(self.end[:10]) - dt.timedelta(days=1)
        return day.isoformat()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Operation:
        partners = [Partner(**p) for p in data.get("partners", [])]
        return cls(**{**data, "partners": partners})


def load_all(store: Store) -> dict[str, Operation]:
    raw = store.get_setting(INDEX_KEY)
    found = orjson.loads(raw) if raw else {}
    return {slug: Operation.from_json(data) for slug, data in found.items()}


def save(store: Store, operation: Operation) -> None:
    everything = load_all(store)
    everything[operation.slug] = operation
    store.set_setting(INDEX_KEY, orjson.dumps({k: v.to_json() for k, v in everything.items()}).decode())


def find(store: Store, ref: str) -> Operation:
    """An operation by name or slug; an operator error naming the known ones otherwise."""
    everything = load_all(store)
    key = ref if ref in everything else (slug_of(ref) if ref.strip() else "")
    if key in everything:
        return everything[key]
    known = ", ".join(sorted(everything)) or "none yet; create one with `kizuna ops create`"
    raise AdminError(f"no operation {ref!r} (known: {known})")


def load_lookalikes(store: Store, slug: str) -> dict[str, tuple[str, str]]:
    """The watch set: lookalike domain -> (protected domain, dnstwist fuzzer)."""
    raw = store.get_setting(LOOKALIKE_KEY + slug)
    return {k: (v[0], v[1]) for k, v in orjson.loads(raw).items()} if raw else {}


def save_lookalikes(store: Store, slug: str, watch: dict[str, tuple[str, str]]) -> None:
    store.set_setting(LOOKALIKE_KEY + slug, orjson.dumps({k: list(v) for k, v in watch.items()}).decode())
    # A new mark each time, so a reused watchlist (ops/alerts.py) knows the set changed without reading it.
    store.set_setting(LOOKALIKE_KEY + slug + ":version", uuid.uuid4().hex)


def lookalikes_version(store: Store, slug: str) -> str | None:
    return store.get_setting(LOOKALIKE_KEY + slug + ":version")
