"""The one form a DNS name or an IP address is compared in, on both sides of a comparison.

Kizuna's IOC importer stores a domain in lower case without the final dot and an IPv6 address compressed in
lower case (RFC 5952); log mappings (mappings.py) give a log's names and addresses in that form, and the
pattern compiler (compiler.py) puts a pattern's constants compared with those properties in it too, as
observed data's values are put when they are read (observations.py). A pattern's `=` compares text exactly
(STIX 2.1, 9.5), but a DNS name is the same name in any case (RFC 4343) and an IPv6 address has one canonical
text (RFC 5952): compared as written, `EVIL.Example.COM` would miss the `evil.example.com` a log names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any


def domain_value(value: str) -> str:
    """A DNS name (a log's, observed data's or a pattern constant's) as a domain-name value: lower case
    without the final dot, the form Kizuna's IOC importer stores. Resolvers randomise the case of the names
    they ask for (DNS 0x20) and a fully qualified name ends in a dot, so the name as written would miss an
    indicator naming the domain."""
    name = value.lower()
    if ":" in name:
        # An HTTP Host header or a URL's authority may carry a port (`evil.com:8080`); the domain is
        # the name before it. A colon elsewhere (an IPv6 literal) is left as it is.
        head, _, port = name.rpartition(":")
        if port.isdigit() and ":" not in head:
            name = head
    if name.endswith("."):
        name = name[:-1]
    if name.isascii():
        return name
    # One spelling of an international name on both sides: its A-label (RFC 5890), as a DNS log writes it
    # and as compatibility forms (full-width letters) reduce to the name they stand for. The IOC importer keeps
    # an IDN as it was written, punycode or Unicode, and a pattern constant or an observed value in Unicode is
    # put in this form when compiled or read, so either spelling matches a log naming the domain either way.
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


@lru_cache(maxsize=65_536)
def ip_value(value: str) -> str:
    """An IP address (a log's, observed data's or a pattern constant's) as an ipv4-addr/ipv6-addr value: an
    IPv6 address in the compressed lower-case form the IOC importer stores (RFC 5952; a log may write it in
    full or in capitals); anything else as written."""
    if ":" not in value:
        return value
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value


#: The value normaliser of a (mapping object type, property): the properties whose values are compared with
#: indicators in a canonical form. The fast path (fast.py) tests these cheap conditions inline and calls the
#: normaliser only when a value may not be in that form already.
NORMALISERS: dict[tuple[str, str], tuple[Callable[[str], str], str]] = {
    ("domain-name", "value"): (
        domain_value, "not ({v}.islower() and {v}[-1:] != '.' and ':' not in {v} and {v}.isascii())"),
    ("ip", "value"): (ip_value, "':' in {v}"),
    ("ipv6-addr", "value"): (ip_value, "':' in {v}"),
}


def _uncached(normalise: Callable[[str], str]) -> Callable[[str], str]:
    """The normaliser without its cache: a pattern's constants are put in form once, when they are compiled,
    and would only push the log values a busy matcher sees again out of the cache."""
    wrapped: Callable[[str], str] = getattr(normalise, "__wrapped__", normalise)
    return wrapped


#: The normaliser of a pattern's (object type, property path): NORMALISERS with the mapping's pseudo-type `ip`
#: read as the two types it becomes.
PATTERN_NORMALISERS: dict[tuple[str, str], Callable[[str], str]] = {
    (object_type, dotted): _uncached(normalise)
    for (kind, dotted), (normalise, _test) in NORMALISERS.items()
    for object_type in (("ipv4-addr", "ipv6-addr") if kind == "ip" else (kind,))
}

#: The (object type, property path) pairs whose values are names, the same in any case (RFC 4343): a LIKE
#: operand is lower-cased for them and a MATCHES expression ignores case.
CASELESS: frozenset[tuple[str, str]] = frozenset(
    key for key, normalise in PATTERN_NORMALISERS.items() if normalise is domain_value)

#: By object type, the normaliser of its top-level `value` (every pair above is one), for observed data.
_VALUE_NORMALISERS: dict[str, Callable[[str], str]] = {
    object_type: normalise for (object_type, dotted), normalise in PATTERN_NORMALISERS.items() if dotted == "value"
}


def canonical_object(obj: Any) -> Any:
    """A cyber-observable of observed data with its name or address in the form it is compared in: the object
    itself when it is in that form already, else a copy (the submitted object is never changed)."""
    if not isinstance(obj, Mapping):
        return obj
    normalise = _VALUE_NORMALISERS.get(obj.get("type"))  # type: ignore[arg-type]
    value = obj.get("value")
    if normalise is None or type(value) is not str:
        return obj
    canonical = normalise(value)
    return obj if canonical == value else {**obj, "value": canonical}


def canonical_objects(objects: Mapping[str, Any]) -> dict[str, Any]:
    """`canonical_object` of each object of an observation, by the same keys."""
    return {key: canonical_object(obj) for key, obj in objects.items()}
