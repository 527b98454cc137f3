"""Protected assets: STIX objects in the operation's watchlist collection, and the lookalike watch set.

A domain is a ``domain-name``, a network a ``ipv4-addr``/``ipv6-addr`` whose value is a CIDR, a site a
``url``, a person or organisation an ``identity``; each carries the operation's default marking, so
partners see them under the usual policy. SCO ids are the STIX 2.1 deterministic ones (UUIDv5 of the
value), so adding the same asset twice stores one object.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import idna
import orjson

from kizuna.core.errors import AdminError
from kizuna.core.node import Node
from kizuna.ops.lookalikes import lookalikes_of
from kizuna.ops.reading import latest_objects, stix_now
from kizuna.ops.records import Operation, load_lookalikes, save_lookalikes

KINDS = ("domain", "cidr", "url", "identity")
#: The shortest prefix a protected range may have, by IP version. A /8 is the largest block ever assigned to one
#: organisation and a /16 of IPv6 more than any registry allocation; wider ones (0.0.0.0/0 at worst) would turn
#: every address partners mention into an alert of the operation.
WIDEST_PREFIX = {4: 8, 6: 16}
ASSET_TYPES = ("domain-name", "ipv4-addr", "ipv6-addr", "url", "identity")
_SCO_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")  # STIX 2.1, section 2.9
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}$")


def sco_id(kind: str, value: str) -> str:
    return f"{kind}--{uuid.uuid5(_SCO_NAMESPACE, orjson.dumps({'value': value}).decode())}"


def normalise_domain(text: str) -> str:
    """The domain as DNS carries it: lower case, no final dot, an internationalised name (東京.example) as
    its A-labels (xn--1lqs71d.example), which is what resolver and proxy logs show."""
    domain = text.strip().lower().rstrip(".")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError:
            raise AdminError(f"{text!r} is not a domain name such as tickets.example.org or 東京.example") from None
    if not _DOMAIN.match(domain):
        raise AdminError(f"{text!r} is not a domain name such as tickets.example.org")
    if "xn--" in domain:
        try:
            idna.decode(domain)  # an A-label that is no punycode of a name: its lookalikes could not be made
        except idna.IDNAError:
            raise AdminError(f"{text!r} is not a domain name: an xn-- label that IDNA cannot read") from None
    return domain


def asset_object(operation: Operation, kind: str, value: str) -> dict[str, Any]:
    """The STIX object for one asset, checked and normalised."""
    marking = operation.marking_refs
    if kind == "domain":
        domain = normalise_domain(value)
        return {"type": "domain-name", "spec_version": "2.1", "id": sco_id("domain-name", domain),
                "value": domain, "object_marking_refs": marking}
    if kind == "cidr":
        try:
            network = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise AdminError(f"{value!r} is not an IP address or CIDR range such as 192.0.2.0/24") from None
        widest = WIDEST_PREFIX[network.version]
        if network.prefixlen < widest:
            raise AdminError(f"{value.strip()!r} is /{network.prefixlen}: a protected range may be at most "
                             f"/{widest} for IPv{network.version} (wider ones would make alerts of a large part "
                             "of the Internet); give the operation's own ranges")
        sco = "ipv4-addr" if network.version == 4 else "ipv6-addr"
        return {"type": sco, "spec_version": "2.1", "id": sco_id(sco, str(network)), "value": str(network),
                "object_marking_refs": marking}
    if kind == "url":
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AdminError(f"{value!r} is not an http(s) URL with a host")
        return {"type": "url", "spec_version": "2.1", "id": sco_id("url", value.strip()), "value": value.strip(),
                "object_marking_refs": marking}
    if kind == "identity":
        if not value.strip():
            raise AdminError("a protected identity needs a name")
        now = stix_now()
        return {"type": "identity", "spec_version": "2.1", "id": f"identity--{uuid.uuid4()}", "created": now,
                "modified": now, "name": value.strip(), "identity_class": "individual",
                "object_marking_refs": marking}
    raise AdminError(f"unknown asset kind {kind!r}: use one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class AddedAssets:
    """What `add_assets` did with each asset asked for (once each): stored now, or already protected."""

    added: list[dict[str, Any]]
    already: list[dict[str, Any]]


def add_assets(node: Node, operation: Operation, assets: list[tuple[str, str]],
               each_domain: Callable[[list[str]], Iterable[str]] = iter) -> AddedAssets:
    """Store the assets not yet protected in the watchlist collection; each new domain's lookalikes join the
    watch set (``each_domain`` walks the new domains, for a caller showing progress). An asset given twice, or
    again, is reported as already protected: SCO ids derive from the value, and a person or organisation is
    protected once by name (an identity's id is random, so naming it again, in any case, finds the one already
    watched instead of adding a second)."""
    operation.require_open()
    protected = {a["id"]: a for a in list_assets(node, operation)}
    named = {a["value"].casefold(): a["id"] for a in protected.values()
             if a["kind"] == "identity" and isinstance(a["value"], str)}
    added: dict[str, dict[str, Any]] = {}
    already: dict[str, dict[str, Any]] = {}
    for kind, value in assets:
        known = named.get(value.strip().casefold()) if kind == "identity" else None
        obj = asset_object(operation, kind, value) if known is None else None
        stix_id: str = obj["id"] if obj is not None else str(known)
        if obj is not None and kind == "identity":
            named[value.strip().casefold()] = stix_id
        if stix_id in protected:
            already.setdefault(stix_id, protected[stix_id])
        elif obj is not None:
            added.setdefault(stix_id, obj)  # (an identity named twice in one call: its first object)
    if added:
        report = node.import_objects(node.find_collection(operation.collections["watchlist"]), list(added.values()))
        if report.failures:
            raise AdminError(f"asset refused: {report.failures[0].get('message')}")
    domains = [o["value"] for o in added.values() if o["type"] == "domain-name"]
    if domains:
        watch = load_lookalikes(node.store, operation.slug)
        for domain in each_domain(domains):
            for candidate, fuzzer in lookalikes_of(domain).items():
                watch.setdefault(candidate, (domain, fuzzer))
        save_lookalikes(node.store, operation.slug, watch)
    return AddedAssets([{"id": o["id"], "value": o.get("value") or o.get("name")} for o in added.values()],
                       [{"id": a["id"], "value": a["value"]} for a in already.values()])


def list_assets(node: Node, operation: Operation) -> list[dict[str, Any]]:
    """The protected assets (the operation's own identity left out), oldest first."""
    collection = node.find_collection(operation.collections["watchlist"])
    found = []
    for _, obj in latest_objects(node, collection, ASSET_TYPES):
        if obj["id"] == operation.identity_id:
            continue
        found.append({"id": obj["id"], "kind": _kind_of(obj["type"]), "value": obj.get("value") or obj.get("name")})
    return found


def _kind_of(stix_type: str) -> str:
    return {"domain-name": "domain", "ipv4-addr": "cidr", "ipv6-addr": "cidr"}.get(stix_type, stix_type)
