"""What an operator configures for one partner node: where it is, how to authenticate, what maps where.

A partner's configuration is stored as one JSON document in the store, so every process of the node
(the CLI, the sync worker, the API) sees the same partners without sharing a file.
"""

from __future__ import annotations

import enum
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ConfigProblem(ValueError):
    """A partner configuration that cannot work; the message says what to fix."""


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
        pair, _, direction = text.partition(":")
        local, sep, remote = pair.partition("=")
        if not sep or not local or not remote:
            raise ConfigProblem(f"mapping {text!r} must read LOCAL=REMOTE[:pull|push|both]")
        try:
            return cls(local, remote, Direction(direction or "pull"))
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
    #: The partner's organisation in this node (its STIX identity id); egress reads as this organisation.
    organisation: str | None = None
    #: The policy agreement the partner receives under.
    agreement: str | None = None
    #: Seconds between scheduled syncs.
    schedule_s: int = 300
    page_size: int = 1000
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigProblem(f"partner name {self.name!r} must be letters, digits, '.', '_' or '-'")
        if not self.api_root_url.startswith(("http://", "https://")):
            raise ConfigProblem(f"{self.api_root_url!r} must be an http:// or https:// API root URL")
        if not self.mappings:
            raise ConfigProblem("a partner needs at least one collection mapping (--map LOCAL=REMOTE:pull)")
        if self.token and self.basic_auth:
            raise ConfigProblem("give either a bearer token or basic credentials, not both")
        if self.basic_auth is not None and ":" not in self.basic_auth:
            raise ConfigProblem("basic credentials must read user:password")
        if (self.client_cert is None) != (self.client_key is None):
            raise ConfigProblem("a client certificate needs its key, and a key its certificate")
        if self.schedule_s < 1 or not 1 <= self.page_size <= 10000:
            raise ConfigProblem("schedule must be ≥ 1 s and page size between 1 and 10000")

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
        data = orjson.loads(text)
        data["mappings"] = tuple(
            CollectionMapping(m["local"], m["remote"], Direction(m["direction"])) for m in data["mappings"]
        )
        return cls(**data)

    def public(self) -> dict[str, Any]:
        """The configuration without its secrets, for listings."""
        data = orjson.loads(self.to_json())
        data["token"] = "set" if self.token else None
        data["basic_auth"] = self.basic_auth.split(":", 1)[0] + ":***" if self.basic_auth else None
        return dict(data)
