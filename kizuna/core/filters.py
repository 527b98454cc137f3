"""TAXII 2.1 query parameters (§3.4): parsed once, strictly, for every endpoint.

A malformed value or a repeated parameter is a 400 that says which parameter is wrong.
``match[...]`` fields an endpoint does not take, and unknown ones, are ignored as the
standard allows.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Container, Iterable
from dataclasses import dataclass

from kizuna.core.errors import BadRequest
from kizuna.numerals import MAX_INT64, whole_number
from kizuna.stix.timestamps import parse_timestamp
from kizuna.stix.validation import is_type_name
from kizuna.store.base import VersionSelector

_ID = re.compile(
    r"^([a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9])--"
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_SPEC_VERSION = re.compile(r"^[0-9]+\.[0-9]+$")


class Endpoint(enum.Enum):
    OBJECTS = "objects"
    MANIFEST = "manifest"
    OBJECT = "object"
    VERSIONS = "versions"
    DELETE = "delete"


_ACCEPTS: dict[Endpoint, frozenset[str]] = {
    Endpoint.OBJECTS: frozenset({"id", "type", "version", "spec_version"}),
    Endpoint.MANIFEST: frozenset({"id", "type", "version", "spec_version"}),
    Endpoint.OBJECT: frozenset({"version", "spec_version"}),
    Endpoint.VERSIONS: frozenset({"spec_version"}),
    Endpoint.DELETE: frozenset({"version", "spec_version"}),
}
_PAGED = frozenset({Endpoint.OBJECTS, Endpoint.MANIFEST, Endpoint.OBJECT, Endpoint.VERSIONS})


@dataclass(frozen=True, slots=True)
class Filters:
    ids: tuple[str, ...] | None = None
    types: tuple[str, ...] | None = None
    versions: VersionSelector = VersionSelector(last=True)
    spec_versions: tuple[str, ...] | None = None
    added_after: int | None = None
    limit: int | None = None
    next: str | None = None

    def binding(self) -> str:
        """What a ``next`` cursor is bound to: every filter except the page size and cursor."""
        v = self.versions
        return "|".join((
            ",".join(self.ids or ()), ",".join(self.types or ()),
            f"{int(v.all)}{int(v.first)}{int(v.last)}:" + ",".join(map(str, v.exact)),
            ",".join(self.spec_versions or ()), str(self.added_after),
        ))


def is_stix_id(value: str) -> bool:
    return _ID.match(value) is not None


def query_values(params: Iterable[tuple[str, str]], repeatable: Container[str] = ()) -> dict[str, list[str]]:
    """Each query parameter's values, in order; a 400 for a parameter given twice unless it is ``repeatable``.

    The one rule of every HTTP API route (TAXII's own, detection, hashes, federation): a parameter that takes
    one value is refused when repeated, never read as its first or last value (TAXII 2.1 §3.4 gives a
    ``match[]`` field once, its values comma-separated)."""
    values: dict[str, list[str]] = {}
    for name, value in params:
        if name in values and name not in repeatable:
            hint = " with comma-separated values" if name.startswith("match[") else ""
            raise BadRequest(f"query parameter {name!r} is repeated; give it once{hint}")
        values.setdefault(name, []).append(value)
    return values


def parse_filters(params: Iterable[tuple[str, str]], endpoint: Endpoint) -> Filters:
    seen = {name: given[0] for name, given in query_values(params).items()}
    accepts = _ACCEPTS[endpoint]
    values: dict[str, object] = {}
    for name, value in seen.items():
        if name.startswith("match[") and name.endswith("]"):
            field = name[6:-1]
            if field in accepts:
                values[field] = _parse_match(field, value)
        elif endpoint in _PAGED and name == "added_after":
            values["added_after"] = _parse_added_after(value)
        elif endpoint in _PAGED and name == "limit":
            values["limit"] = _parse_limit(value)
        elif endpoint in _PAGED and name == "next":
            if not value:
                raise BadRequest("query parameter 'next' is empty")
            values["next"] = value
    selector = values.get("version")
    return Filters(
        ids=values.get("id"),  # type: ignore[arg-type]
        types=values.get("type"),  # type: ignore[arg-type]
        versions=selector if isinstance(selector, VersionSelector) else _default_versions(endpoint),
        spec_versions=values.get("spec_version"),  # type: ignore[arg-type]
        added_after=values.get("added_after"),  # type: ignore[arg-type]
        limit=values.get("limit"),  # type: ignore[arg-type]
        next=values.get("next"),  # type: ignore[arg-type]
    )


def _default_versions(endpoint: Endpoint) -> VersionSelector:
    # DELETE without match[version] removes the whole object; reads default to the latest.
    return VersionSelector(all=True) if endpoint is Endpoint.DELETE else VersionSelector(last=True)


def _split_list(field: str, value: str) -> list[str]:
    items = value.split(",")
    if not value or any(not item for item in items):
        raise BadRequest(f"match[{field}] needs comma-separated values without empty items")
    if len(set(items)) != len(items):
        raise BadRequest(f"match[{field}] repeats a value")
    return items


def _parse_match(field: str, value: str) -> object:
    items = _split_list(field, value)
    if field == "id":
        for item in items:
            if not is_stix_id(item):
                raise BadRequest(f"match[id] value {item!r} is not a STIX identifier (type--UUID)")
        return tuple(items)
    if field == "type":
        for item in items:
            if not is_type_name(item):
                raise BadRequest(f"match[type] value {item!r} is not a STIX type name")
        return tuple(items)
    if field == "spec_version":
        for item in items:
            if not _SPEC_VERSION.match(item):
                raise BadRequest(f"match[spec_version] value {item!r} is not a version such as 2.1")
        return tuple(items)
    return _parse_version(items)


def _parse_version(items: list[str]) -> VersionSelector:
    if "all" in items:
        if len(items) > 1:
            raise BadRequest("match[version]=all cannot be combined with other values")
        return VersionSelector(all=True)
    exact: list[int] = []
    for item in items:
        if item not in ("first", "last"):
            try:
                exact.append(parse_timestamp(item))
            except ValueError:
                raise BadRequest(
                    f"match[version] value {item!r} is not first, last, all or a timestamp"
                ) from None
    if len(set(exact)) != len(exact):
        raise BadRequest("match[version] repeats a timestamp")
    return VersionSelector(first="first" in items, last="last" in items, exact=tuple(exact))


def _parse_added_after(value: str) -> int:
    try:
        return parse_timestamp(value)
    except ValueError:
        raise BadRequest(
            f"added_after {value!r} is not a timestamp such as 2026-01-01T00:00:00.000000Z"
        ) from None


def _parse_limit(value: str) -> int:
    # A limit past 64 bits asks for everything, which a page gives as its largest (TAXII 2.1 §3.4: the server
    # may use a smaller limit): not "no whole number".
    limit = whole_number(value, maximum=10**40)
    if limit is None or limit < 1:
        raise BadRequest(f"limit {value!r} must be a whole number greater than 0")
    return min(limit, MAX_INT64)
