"""What an operator configures for one partner node: where it is, how to authenticate, what maps where.

A partner's configuration is stored as one JSON document in the store, so every process of the node
(the CLI, the sync worker, the API) sees the same partners without sharing a file.
"""

from __future__ import annotations

import enum
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PIN = re.compile(r"^[0-9a-f]{64}$")
#: Sane bounds for the schedule: at least once a second, at most a week apart.
SCHEDULE_RANGE_S = (1, 7 * 24 * 3600)
PAGE_SIZE_RANGE = (1, 10000)
DEFAULT_SCHEDULE_S = 300
#: What a partner is: a TAXII 2.1 API root, or a MISP feed (manifest.json + event files) read into one collection.
TAXII = "taxii"
MISP_FEED = "misp-feed"
PARTNER_KINDS = (TAXII, MISP_FEED)
#: The remote side of a MISP feed partner's one mapping (a feed has no collections).
FEED_REMOTE = "misp-feed"


def printable_ascii(value: str) -> bool:
    """Only visible ASCII (no spaces, tabs or controls): what an HTTP header carries unchanged."""
    return bool(value) and all("!" <= char <= "~" for char in value)


def is_collection_ref(text: str) -> bool:
    """Whether ``text`` can name a partner's collection in a URL path: an id or alias, printable ASCII, and
    no '/', '?', '#' or '%'."""
    return bool(text) and printable_ascii(text) and not any(char in text for char in "/?#%")


def partner_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a partner entry, or None. A partner's name goes into cursors, audit records,
    ``node:<name>`` agreements and URLs of the console: ASCII, as a host name."""
    if _NAME.match(name):
        return None
    return (f"partner name {name!r} must be 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter "
            "or digit")


def check_credentials(token: str | None, basic: str | None) -> None:
    """A bearer token or basic credentials that can be sent in an HTTP header (refused here, not mid-sync)."""
    if token and basic:
        raise ConfigProblem("give either a bearer token or basic credentials, not both")
    if token is not None and not printable_ascii(token):
        raise ConfigProblem("the token must be printable ASCII without spaces (check for a pasted quote or "
                            "non-breaking space)")
    if basic is not None and (":" not in basic or not printable_ascii(basic)):
        raise ConfigProblem("basic credentials must read user:password, printable ASCII without spaces")
    if basic is not None and "" in basic.partition(":")[::2]:
        raise ConfigProblem("basic credentials must read user:password with neither the user nor the password "
                            "empty")


def check_http_url(url: str, option: str) -> None:
    """An http(s) URL with a host and a port that can be connected to, without credentials or a query."""
    if not printable_ascii(url):
        raise ConfigProblem(f"{option} {url!r} must be printable ASCII without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigProblem(f"{option} {url!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigProblem(f"{option} {url!r} must start with http:// or https://")
    if not parts.hostname:
        raise ConfigProblem(f"{option} {url!r} has no host")
    if port == 0:
        raise ConfigProblem(f"{option} {url!r}: port 0 cannot be connected to")
    if parts.username is not None or parts.password is not None:
        raise ConfigProblem(f"{option} {url!r}: give credentials with --token or --basic, not in the URL")
    if parts.query or parts.fragment:
        raise ConfigProblem(f"{option} {url!r} must be a URL without a query or fragment")


def check_tls_over_https(url: str, given: dict[str, object]) -> None:
    """Refuse TLS options (``--pin``, ``--cert``, ``--key``, ``--ca``: option -> value, None when not given) for a
    partner reached over http://: there is no TLS there for them to act on, and accepting them silently would
    let an operator believe the partner is pinned or authenticated."""
    named = [option for option, value in given.items() if value is not None]
    if named and url.lower().startswith("http://"):
        listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
        raise ConfigProblem(f"{listed} {'needs' if len(named) == 1 else 'need'} an https:// URL, not {url!r}: "
                            f"over http:// there is no TLS for {'it' if len(named) == 1 else 'them'} to act on")


class ConfigProblem(ValueError):
    """A partner configuration that cannot work; the message says what to fix."""


def parse_pin(text: str) -> str:
    """A pin as operators paste it (hex with or without colons, any case) in the form stored."""
    value = text.strip().replace(":", "").lower()
    if len(value) != 64 or any(char not in "0123456789abcdef" for char in value):
        raise ConfigProblem(f"--pin {text!r}: give the SHA-256 fingerprint of the partner's certificate "
                            "(64 hex digits, colons allowed)")
    return value


class Direction(enum.Enum):
    PULL = "pull"
    PUSH = "push"
    BOTH = "both"

    @property
    def pulls(self) -> bool:
        return self is not Direction.PUSH

    @property
    def pushes(self) -> bool:
        return self is not Direction.PULL


@dataclass(frozen=True, slots=True)
class CollectionMapping:
    """One local collection (id or alias) exchanged with one remote collection (id or alias)."""

    local: str
    remote: str
    direction: Direction

    @classmethod
    def parse(cls, text: str) -> CollectionMapping:
        """``LOCAL=REMOTE[:pull|push|both]`` (pull when no direction is given)."""
        pair, colon, direction = text.partition(":")
        local, sep, remote = pair.partition("=")
        if not sep or not local or not remote:
            raise ConfigProblem(f"mapping {text!r} must read LOCAL=REMOTE[:pull|push|both]")
        try:  # a ':' with nothing after it is a direction left out by mistake, not a pull
            return cls(local, remote, Direction(direction if colon else "pull"))
        except ValueError:
            raise ConfigProblem(f"mapping {text!r}: direction must be pull, push or both") from None


@dataclass(frozen=True, slots=True)
class PartnerConfig:
    name: str
    #: The partner's TAXII API root URL, e.g. ``https://taxii.partner.example/main/``.
    api_root_url: str
    mappings: tuple[CollectionMapping, ...]
    #: Bearer token the partner issued to this node (sent as ``Authorization: Bearer``).
    token: str | None = None
    #: ``user:password`` for servers that only speak HTTP Basic (medallion).
    basic_auth: str | None = None
    #: Client certificate and key (PEM files) for mutual TLS, and a CA file to pin the partner's server.
    client_cert: str | None = None
    client_key: str | None = None
    ca_file: str | None = None
    #: SHA-256 (hex) of the partner's server certificate: only that certificate is accepted (federation/tls.py).
    pin_sha256: str | None = None
    #: The partner's organisation in this node (its STIX identity id); egress reads as this organisation.
    organisation: str | None = None
    #: The policy agreement the partner receives under.
    agreement: str | None = None
    #: Seconds between scheduled syncs.
    schedule_s: int = DEFAULT_SCHEDULE_S
    page_size: int = 1000
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``taxii`` (the URL is an API root) or ``misp-feed`` (the URL is a feed: http(s):// or file://).
    kind: str = TAXII

    def __post_init__(self) -> None:
        if (problem := partner_name_problem(self.name)) is not None:
            raise ConfigProblem(f"{problem} (the organisation's own name goes in `--org`)")
        if self.kind not in PARTNER_KINDS:
            raise ConfigProblem(f"partner kind {self.kind!r} must be one of {', '.join(PARTNER_KINDS)}")
        if self.kind == MISP_FEED:
            if not self.api_root_url.startswith(("http://", "https://", "file://")):
                raise ConfigProblem(f"{self.api_root_url!r} must be an http://, https:// or file:// MISP feed URL")
            if len(self.mappings) != 1 or not self.mappings[0].direction.pulls:
                raise ConfigProblem("a MISP feed partner reads into exactly one collection (--collection)")
        elif not self.api_root_url.startswith(("http://", "https://")):
            raise ConfigProblem(f"{self.api_root_url!r} must be an http:// or https:// API root URL")
        if not self.mappings:
            raise ConfigProblem("a partner needs at least one collection mapping (--map LOCAL=REMOTE:pull)")
        check_credentials(self.token, self.basic_auth)
        if self.pin_sha256 is not None and not _PIN.match(self.pin_sha256):
            raise ConfigProblem("a pin is the SHA-256 of the partner's certificate: 64 hex digits, colons allowed")
        check_tls_over_https(self.api_root_url, {"--pin": self.pin_sha256})
        if (self.client_cert is None) != (self.client_key is None):
            raise ConfigProblem("a client certificate needs its key, and a key its certificate")
        low, high = SCHEDULE_RANGE_S
        if not low <= self.schedule_s <= high:
            raise ConfigProblem(f"schedule must be between {low} and {high} seconds, not {self.schedule_s}")
        low, high = PAGE_SIZE_RANGE
        if not low <= self.page_size <= high:
            raise ConfigProblem(f"page size must be between {low} and {high}, not {self.page_size}")

    @property
    def is_misp_feed(self) -> bool:
        return self.kind == MISP_FEED

    @property
    def base_url(self) -> str:
        return self.api_root_url if self.api_root_url.endswith("/") else self.api_root_url + "/"

    def to_json(self) -> str:
        data = asdict(self)
        data["mappings"] = [
            {"local": m.local, "remote": m.remote, "direction": m.direction.value} for m in self.mappings
        ]
        return orjson.dumps(data).decode()

    @classmethod
    def from_json(cls, text: str) -> PartnerConfig:
        """Read a stored configuration; anything wrong with it is a :class:`ConfigProblem`."""
        try:
            data = orjson.loads(text)
            data["mappings"] = tuple(
                CollectionMapping(m["local"], m["remote"], Direction(m["direction"])) for m in data["mappings"]
            )
            return cls(**data)
        except ConfigProblem as exc:
            raise ConfigProblem(f"the stored configuration is invalid: {exc}") from None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigProblem(f"the stored configuration is unreadable ({type(exc).__name__}: {exc})") from None

    def public(self) -> dict[str, Any]:
        """The configuration without its secrets, for listings."""
        data = orjson.loads(self.to_json())
        data["token"] = "set" if self.token else None
        data["basic_auth"] = self.basic_auth.split(":", 1)[0] + ":***" if self.basic_auth else None
        return dict(data)
