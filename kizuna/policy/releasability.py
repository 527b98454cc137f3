"""Kizuna's releasability markings: "REL TO" and the TLP:RED recipients list.

Both are marking-definition objects carrying one property extension that Kizuna defines,
``extension-definition--0e8e88cc-f10e-4272-8f6c-642bf0dee276`` ("Kizuna releasability", see
docs/policy.md). Marking definitions cannot be versioned, so instances get deterministic ids
(derived from a hash of their canonical content): every node that builds "REL TO GBR, JPN" builds
the same object with the same id, and the number of distinct marking objects stays small.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from kizuna.policy.tlp import TLP2_EXTENSION_CREATOR

RELEASABILITY_EXTENSION_ID: Final = "extension-definition--0e8e88cc-f10e-4272-8f6c-642bf0dee276"
KIZUNA_IDENTITY_ID: Final = "identity--f3cbe584-b382-4e8f-b507-79349c37b055"
#: Names for the creators of the definitions every node carries, whose identity objects no node holds
#: (listings and object pages show these names instead of the bare ids).
WELL_KNOWN_CREATORS: Final = {TLP2_EXTENSION_CREATOR: "CISA", KIZUNA_IDENTITY_ID: "Kizuna project"}
#: Namespace mixed into the content hash that gives releasability marking instances their ids.
MARKING_ID_NAMESPACE: Final = uuid.UUID("9c121e3a-0441-496f-88c5-d98bedc12e0d")
#: ``created`` of every instance Kizuna builds, so that equal content serialises identically everywhere.
MARKING_CREATED: Final = "2026-11-28T00:00:00.000Z"

_DATA = resources.files("kizuna.policy").joinpath("data")
ISO3166_ALPHA3: Final[frozenset[str]] = frozenset(
    json.loads(_DATA.joinpath("iso3166-alpha3.json").read_text(encoding="utf-8"))
)
_SHIPPED: Final[list[dict[str, Any]]] = json.loads(
    _DATA.joinpath("kizuna-releasability.json").read_text(encoding="utf-8")
)


class ReleasabilityError(ValueError):
    """A releasability marking that Kizuna cannot build or parse."""


def releasability_extension_definition() -> dict[str, Any]:
    """Fresh copy of the extension-definition object every node ships."""
    return json.loads(json.dumps(next(o for o in _SHIPPED if o["type"] == "extension-definition")))


def kizuna_identity() -> dict[str, Any]:
    """Fresh copy of the identity that publishes the extension (its ``created_by_ref``)."""
    return json.loads(json.dumps(next(o for o in _SHIPPED if o["type"] == "identity")))


def _country_codes(countries: Iterable[str]) -> list[str]:
    codes = sorted({c.strip().upper() for c in countries})
    unknown = [c for c in codes if c not in ISO3166_ALPHA3]
    if unknown:
        raise ReleasabilityError(f"not ISO 3166-1 alpha-3 country codes: {', '.join(unknown)}")
    return codes


def _identity_ids(identities: Iterable[str]) -> list[str]:
    ids = sorted(set(identities))
    bad = [i for i in ids if not (isinstance(i, str) and i.startswith("identity--"))]
    if bad:
        raise ReleasabilityError(f"not identity ids: {', '.join(map(str, bad))}")
    return ids


def content_uuid(canonical: str) -> uuid.UUID:
    """A UUID in version-4 format derived from content (SHA-256 under Kizuna's namespace).

    STIX asks for UUIDv4 on non-SCO objects; a hash-derived v4-format UUID keeps that shape while
    letting every node compute the same id for the same releasability.
    """
    digest = hashlib.sha256(MARKING_ID_NAMESPACE.bytes + canonical.encode("utf-8")).digest()
    return uuid.UUID(bytes=digest[:16], version=4)


def _instance(name: str, body: dict[str, Any], created_by_ref: str | None = None) -> dict[str, Any]:
    extension = {"extension_type": "property-extension", **body}
    canonical = json.dumps([created_by_ref, extension], sort_keys=True, separators=(",", ":"))
    marking: dict[str, Any] = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": f"marking-definition--{content_uuid(canonical)}",
        "created": MARKING_CREATED,
        "name": name,
        "extensions": {RELEASABILITY_EXTENSION_ID: extension},
    }
    if created_by_ref is not None:
        marking["created_by_ref"] = created_by_ref
    return marking


def build_rel_to_marking(
    countries: Iterable[str] = (), identities: Iterable[str] = ()
) -> dict[str, Any]:
    """A "REL TO" marking-definition, e.g. ``build_rel_to_marking(["GBR", "JPN"])``.

    The marked content is releasable only to organisations whose country or identity id is listed.
    """
    codes = _country_codes(countries)
    ids = _identity_ids(identities)
    if not codes and not ids:
        raise ReleasabilityError("REL TO needs at least one country or identity")
    body: dict[str, Any] = {}
    if codes:
        body["rel_to_countries"] = codes
    if ids:
        body["rel_to_identities"] = ids
    return _instance("REL TO " + ", ".join(codes + ids), body)


def build_recipients_marking(
    identities: Iterable[str], created_by_ref: str | None = None
) -> dict[str, Any]:
    """A recipients marking-definition: who, besides the producer, may see TLP:RED content.

    Pass the producer as ``created_by_ref``: a recipients list is shown only to the identities it names
    and to its producer, so without it the producer could not see the marking it applied.
    """
    ids = _identity_ids(identities)
    if not ids:
        raise ReleasabilityError("a recipients marking needs at least one identity")
    return _instance(f"RECIPIENTS ({len(ids)})", {"recipients": ids}, created_by_ref)


@dataclass(frozen=True, slots=True)
class RelTo:
    """Parsed REL TO marking: released to these countries and these identities."""

    countries: frozenset[str]
    identities: frozenset[str]

    @property
    def tokens(self) -> frozenset[str]:
        """Countries and identities as one set; a principal matches if it holds any token."""
        return self.countries | self.identities


@dataclass(frozen=True, slots=True)
class Recipients:
    """Parsed recipients marking: the identities that may see TLP:RED content."""

    identities: frozenset[str]


def parse_releasability(marking_definition: Mapping[str, Any]) -> RelTo | Recipients | None:
    """Read a Kizuna releasability marking; None if the object does not use the extension.

    Raises ``ReleasabilityError`` for an instance that uses the extension wrongly (it must then be
    treated as an unknown marking, i.e. denied by default).
    """
    extensions = marking_definition.get("extensions")
    if not isinstance(extensions, Mapping):
        return None
    body = extensions.get(RELEASABILITY_EXTENSION_ID)
    if body is None:
        return None
    if not isinstance(body, Mapping) or body.get("extension_type") != "property-extension":
        raise ReleasabilityError("releasability extension must be a property-extension")
    countries = body.get("rel_to_countries", [])
    identities = body.get("rel_to_identities", [])
    recipients = body.get("recipients")
    if not isinstance(countries, list) or not isinstance(identities, list):
        raise ReleasabilityError("rel_to_countries and rel_to_identities must be lists")
    if recipients is not None:
        if countries or identities or not isinstance(recipients, list) or not recipients:
            raise ReleasabilityError("a recipients marking carries a non-empty recipients list and no REL TO")
        return Recipients(frozenset(_identity_ids(recipients)))
    if not countries and not identities:
        raise ReleasabilityError("REL TO needs at least one country or identity")
    return RelTo(frozenset(_country_codes(countries)), frozenset(_identity_ids(identities)))
