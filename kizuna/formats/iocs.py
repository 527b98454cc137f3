"""The IOC kinds Kizuna exchanges as lists and feeds: recognising values, and their STIX patterns.

One table ties each kind to its canonical value form, its STIX pattern and back, so that a value read
from a CSV list, written into a pattern and read out of that pattern by a feed writer is the same
string. Every value a writer puts into a blocklist, zone or rule passes `canonical()` first: patterns
come from partners, and a value that is not a well-formed IOC of its kind must never reach a file
that another program parses (a domain carrying a newline would add records to an RPZ zone).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import uuid
from typing import Final
from urllib.parse import quote as percent_encode

# the one-IOC pattern, defined below the formats room (the store reads it too); re-exported
from kizuna.stix.ioc_terms import KIND_BY_PATH as KIND_BY_PATH
from kizuna.stix.ioc_terms import PATTERN_PATHS
from kizuna.stix.ioc_terms import SINGLE_TERM as SINGLE_TERM
from kizuna.stix.pattern_scan import scan_comparisons, unquote

IPV4: Final = "ipv4"
IPV6: Final = "ipv6"
DOMAIN: Final = "domain"
URL: Final = "url"
EMAIL: Final = "email"
MD5: Final = "md5"
SHA1: Final = "sha1"
SHA256: Final = "sha256"
SHA512: Final = "sha512"
JA3: Final = "ja3"

#: Every kind, in the order feeds and documentation list them. IPv4/IPv6 kinds cover CIDR blocks too.
KINDS: Final = (IPV4, IPV6, DOMAIN, URL, EMAIL, MD5, SHA1, SHA256, SHA512, JA3)
HASH_KINDS: Final = (MD5, SHA1, SHA256, SHA512)
NETWORK_KINDS: Final = (IPV4, IPV6, DOMAIN, URL, JA3)

#: uuid5 namespace of indicator ids derived from kind and value (re-imports update, never duplicate).
INDICATOR_NAMESPACE: Final = uuid.UUID("5a0c4f4e-2b7d-4c1e-9f0a-6b1d3e8c7a21")

_HEX_LENGTH = {32: MD5, 40: SHA1, 64: SHA256, 128: SHA512}
_HEX = re.compile(r"[0-9a-fA-F]+\Z")
_IPV4_SHAPE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?\Z")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_EXACT = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}\Z")  # one address, as ipaddress would accept it
_IPV6_SHAPE = re.compile(r"[0-9a-fA-F:.]*:[0-9a-fA-F:.]*(?:/\d{1,3})?\Z")
# A whole ASCII DNS name in one match: labels of letters, digits, '_' and inner '-', a TLD of letters
# (or an IDNA one). One regex over the name is several times quicker than a test per label.
_HOST = re.compile(r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})\Z")
#: A lower-case ASCII DNS name as `canonical` returns it (the 253-octet limit is checked apart).
CANONICAL_HOST: Final = _HOST
_URL = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]{0,15})://([^/?#\s@]*@)?(\[[0-9a-fA-F:.]+\]|[^/?#\s:\[\]]+)(:\d{1,5})?([/?#]\S*)?\Z")
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&*+/=?^_`{|}~.-]{1,64}\Z")
_URL_SCHEMES = frozenset({"http", "https", "ftp", "ftps", "sftp", "ws", "wss", "tcp", "udp", "smb", "file"})


def _host_ok(host: str) -> str | None:
    """The canonical (lower-case, no trailing dot) form of a DNS name of two labels or more."""
    host = host.lower().rstrip(".") if host.endswith(".") else host.lower()
    if not host or len(host) > 253:
        return None
    ascii_host = host
    if not host.isascii():
        try:
            ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if not _HOST.match(ascii_host):
        return None
    if ascii_host is host:
        return host  # ASCII, punycode labels included (as DNS logs write them), is its own canonical form
    # IDNA maps full-width and other compatibility forms to the name itself ("ＥＶＩＬ.com" is evil.com):
    # written so, a name would be an indicator of its own that no log line naming it matches. A real IDN
    # comes back in Unicode, in which it is kept.
    try:
        return ascii_host.encode("ascii").decode("idna")
    except UnicodeError:
        return None


def to_ascii_domain(domain: str) -> str:
    """The IDNA (punycode) form of a canonical domain, as DNS zones and IDS engines see it."""
    return domain if domain.isascii() else domain.encode("idna").decode("ascii")


#: Why a value that IDNA cannot write is left out of a feed (a loss in the report).
NO_WIRE_FORM: Final = "IDNA cannot write its domain name, so no device could match it"

# Every printable ASCII character: kept as it is when a URL is percent-encoded, '%' among them, so an
# escape the URL already has is not escaped a second time.
_KEPT_IN_URLS: Final = "".join(chr(c) for c in range(0x21, 0x7F))


def _wire_host(host: str) -> str:
    """A URL's host as its Host header carries it: A-labels (the trailing dots the URL check allows kept)."""
    if host.isascii():
        return host
    name = host.rstrip(".")
    return to_ascii_domain(name) + host[len(name):]


def _wire_url(url: str) -> str | None:
    """A canonical URL as a client sends it: host in A-labels, other non-ASCII text percent-encoded UTF-8."""
    match = _URL.match(url)
    if match is None:
        return None
    scheme, userinfo, host, port, rest = match.groups()
    userinfo = percent_encode(userinfo or "", safe=_KEPT_IN_URLS)
    rest = percent_encode(rest or "", safe=_KEPT_IN_URLS)
    return f"{scheme}://{userinfo}{_wire_host(host)}{port or ''}{rest}"


def wire_form(kind: str, value: str) -> str | None:
    """A canonical IOC as devices see it on the wire, which is how DNS filters, proxies and IDS engines
    compare it: a domain (an e-mail address's too, a URL's host) in IDNA A-labels, the rest of a URL
    percent-encoded as UTF-8 as a browser sends it. ASCII values, the bulk of any feed, are their own wire
    form; callers test ``value.isascii()`` first and call this only for the others. None when IDNA cannot
    write the name: the value has no form a device could match, and is reported as lost, not written."""
    if value.isascii():
        return value
    try:
        if kind == DOMAIN:
            return to_ascii_domain(value)
        if kind == URL:
            return _wire_url(value)
        if kind == EMAIL:
            local, _, domain = value.rpartition("@")
            return f"{local}@{to_ascii_domain(domain)}"
    except UnicodeError:
        return None
    return value


def _ip(value: str, version: int) -> str | None:
    try:
        if "/" in value:
            network = ipaddress.ip_network(value, strict=True)
            return str(network) if network.version == version else None
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    return str(address) if address.version == version else None


def canonical(kind: str, value: str) -> str | None:
    """The canonical form of ``value`` as an IOC of ``kind``, or None when it is not one.

    IPv4/IPv6 accept single addresses and CIDR blocks without host bits; domains are lower-cased
    and lose a trailing dot; hashes are lower-cased hex of the right length; URLs need a scheme and
    a host and are otherwise kept byte for byte.
    """
    if not value or value != value.strip() or len(value) > 8192:
        return None
    if kind == IPV4:
        if IPV4_EXACT.match(value):  # the common case, without ipaddress's cost
            return value
        return _ip(value, 4) if _IPV4_SHAPE.match(value) else None
    if kind == IPV6:
        return _ip(value, 6) if _IPV6_SHAPE.match(value) else None
    if kind == DOMAIN:
        return _host_ok(value)
    if kind in HASH_KINDS or kind == JA3:
        expected = 32 if kind == JA3 else {MD5: 32, SHA1: 40, SHA256: 64, SHA512: 128}[kind]
        return value.lower() if len(value) == expected and _HEX.match(value) else None
    if kind == URL:
        match = _URL.match(value)
        if match is None or match.group(1).lower() not in _URL_SCHEMES or not value.isprintable():
            return None
        host = match.group(3)
        if host.startswith("["):
            return value if _ip(host[1:-1], 6) else None
        if _IPV4_SHAPE.match(host):
            return value if _ip(host, 4) else None
        return value if _host_ok(host) else None
    if kind == EMAIL:
        local, at, domain = value.rpartition("@")
        if not at or not _EMAIL_LOCAL.match(local) or local.startswith(".") or local.endswith("."):
            return None
        host = _host_ok(domain)
        return f"{local}@{host}" if host else None
    return None


def classify(value: str) -> tuple[str, str] | None:
    """(kind, canonical value) of a bare value, guessing the kind from its shape; None if no IOC.

    A 32-digit hex value is taken for an MD5 (a JA3 fingerprint needs an explicit type column).
    """
    if not value:
        return None
    first = value[0]
    if first.isdigit() and _IPV4_SHAPE.match(value):
        found = value if IPV4_EXACT.match(value) else _ip(value, 4)
        return (IPV4, found) if found else None
    if len(value) in _HEX_LENGTH and _HEX.match(value):
        return _HEX_LENGTH[len(value)], value.lower()
    if ":" in value:
        if "://" in value:
            found = canonical(URL, value)
            return (URL, found) if found else None
        if _IPV6_SHAPE.match(value):
            found = _ip(value, 6)
            return (IPV6, found) if found else None
        return None
    if "@" in value:
        found = canonical(EMAIL, value)
        return (EMAIL, found) if found else None
    if "/" in value:  # host/path without a scheme, as many lists write URLs
        host = value.split("/", 1)[0]
        if (_host_ok(host) or _ip(host, 4)) and canonical(URL, "http://" + value):
            return URL, "http://" + value
        return None
    found = _host_ok(value)
    return (DOMAIN, found) if found else None


# --- STIX patterns ------------------------------------------------------------------------------

_PATTERN_PATH: Final = PATTERN_PATHS
_HASH_NAMES: Final = {
    "md5": MD5, "sha-1": SHA1, "sha1": SHA1, "sha-256": SHA256, "sha256": SHA256,
    "sha-512": SHA512, "sha512": SHA512,
}
_TYPE_KIND: Final = {
    "ipv4-addr": IPV4, "ipv6-addr": IPV6, "domain-name": DOMAIN, "url": URL, "email-addr": EMAIL,
}


def quote(value: str) -> str:
    """A STIX pattern string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pattern_for(kind: str, value: str) -> str:
    """The STIX pattern that matches exactly this IOC; a CIDR block matches the addresses inside it, which is
    ``ISSUBSET`` (STIX 2.1 §9.5): ``=`` compares the text, and would match only a log naming the block."""
    operator = "ISSUBSET" if "/" in value and kind in (IPV4, IPV6) else "="
    return f"[{_PATTERN_PATH[kind]} {operator} {quote(value)}]"


_NAMESPACE_BYTES: Final = INDICATOR_NAMESPACE.bytes
_VARIANT_DIGIT: Final = {f"{n:x}": f"{8 + (n & 3):x}" for n in range(16)}


def indicator_id(kind: str, value: str) -> str:
    """The stable id of Kizuna's indicator for one IOC: a re-import yields a new version, not a copy.

    ``uuid.uuid5(INDICATOR_NAMESPACE, kind + ":" + value)``, computed without the UUID object (a
    third of the cost of a list import went there).
    """
    h = hashlib.sha1(_NAMESPACE_BYTES + (kind + ":" + value).encode("utf-8")).hexdigest()
    # version 5 in the 13th digit, the RFC 4122 variant (10xx) in the 17th
    h = h[:12] + "5" + h[13:16] + _VARIANT_DIGIT[h[16]] + h[17:32]
    return f"indicator--{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _kind_of_path(object_type: str, steps: list[str], operator: str) -> str | None:
    if object_type in _TYPE_KIND and steps == ["value"]:
        kind = _TYPE_KIND[object_type]
        return kind if operator == "=" or kind in (IPV4, IPV6) else None
    if operator != "=":
        return None
    if object_type in ("file", "artifact", "x509-certificate") and len(steps) == 2 and steps[0] == "hashes":
        return _HASH_NAMES.get(steps[1].lower()) if object_type == "file" or object_type == "artifact" else None
    if object_type == "network-traffic" and any("ja3" in s.lower() and "ja3s" not in s.lower() for s in steps):
        return JA3
    return None


def pattern_terms(pattern: str) -> list[tuple[str, str]] | None:
    """The (kind, raw value) IOCs a pattern ORs together, or None if it is anything else.

    Accepted: one observation of ``=`` comparisons joined by OR (``ISSUBSET`` for IP blocks), on the
    paths of the kind table. AND, FOLLOWEDBY, qualifiers or other paths make the pattern no IOC list:
    a blocklist cannot express them, so writers skip such indicators and say so.
    """
    single = SINGLE_TERM.fullmatch(pattern)  # what Kizuna and most producers write: one term, a table path
    if single is not None:
        return [(KIND_BY_PATH[single.group(1)], unquote(single.group(2)))]
    groups = scan_comparisons(pattern)
    if groups is None:
        return None
    terms: list[tuple[str, str]] = []
    for group in groups:
        if len(group) != 1:  # an AND
            return None
        object_type, steps, operator, literal = group[0]
        kind = _kind_of_path(object_type, [unquote(s) for s in steps], operator)
        if kind is None:
            return None
        value = unquote(literal)
        if kind == IPV6 and "/" not in value and operator == "ISSUBSET":
            return None
        terms.append((kind, value))
    return terms or None
