"""The vocabulary of IOC lists: column and type names, dates, and the options every indicator gets.

Kept apart from the reader (kizuna/formats/ioc_lists.py) so the names a list may use are one table
that documentation and tests can read, and option checking happens once, before any line is read.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Final

from kizuna.formats.base import FormatError
from kizuna.formats.iocs import DOMAIN, EMAIL, IPV4, IPV6, JA3, MD5, SHA1, SHA256, SHA512, URL
from kizuna.numerals import whole_number
from kizuna.policy.tlp import TLP2_IDS, TlpLevel
from kizuna.stix.timestamps import format_timestamp, now_micros, parse_moment

VALUE_COLUMNS: Final = {"value", "indicator", "ioc", "ioc_value", "observable", "entry", "data"}
TYPE_COLUMNS: Final = {"type", "indicator_type", "ioc_type", "kind", "attribute_type"}
COMMENT_COLUMNS: Final = {"comment", "description", "desc", "note", "notes", "context"}
FIRST_SEEN_COLUMNS: Final = {"first_seen", "firstseen", "first_seen_utc", "date", "first_seen_date", "valid_from"}
#: Columns a row may carry for its own indicator (Kizuna's CSV export writes them all): read back, not lost.
ROW_COLUMNS: Final = {
    "name": {"name", "title"},
    "tlp": {"tlp", "tlp_level"},
    "confidence": {"confidence"},
    "valid_until": {"valid_until", "expires", "expiry", "valid_to"},
    "labels": {"labels", "label", "tags", "attribute_tag"},
    "to_ids": {"to_ids"},
}

ANY_IP: Final = "ip"  # a type column's "ip": IPv4 or IPv6, decided by the value
#: Type-column names and the kind they stand for (MISP attribute types included).
TYPE_NAMES: Final = {
    **dict.fromkeys(("ip", "ip-src", "ip-dst", "ip-addr", "ip-address", "ip_address", "cidr", "netblock",
                     "subnet", "network"), ANY_IP),
    **dict.fromkeys(("ipv4", "ipv4-addr", "ipv4_addr", "ipv4-cidr", "ipv4_cidr"), IPV4),
    **dict.fromkeys(("ipv6", "ipv6-addr", "ipv6_addr", "ipv6-cidr", "ipv6_cidr"), IPV6),
    **dict.fromkeys(("domain", "domain-name", "domain_name", "hostname", "host", "fqdn"), DOMAIN),
    **dict.fromkeys(("url", "uri", "link"), URL),
    **dict.fromkeys(("email", "e-mail", "email-addr", "email_addr", "email-src", "email-dst", "email_address"),
                    EMAIL),
    **dict.fromkeys(("md5", "filename|md5", "hash-md5"), MD5),
    **dict.fromkeys(("sha1", "sha-1", "filename|sha1", "hash-sha1"), SHA1),
    **dict.fromkeys(("sha256", "sha-256", "filename|sha256", "hash-sha256"), SHA256),
    **dict.fromkeys(("sha512", "sha-512", "filename|sha512", "hash-sha512"), SHA512),
    **dict.fromkeys(("ja3", "ja3-fingerprint-md5", "ja3_md5", "ja3-hash"), JA3),
    **dict.fromkeys(("hash", "filehash", "file_hash", "file-hash"), "hash"),
}

@functools.lru_cache(maxsize=4096)
def stix_time(text: str) -> str:
    """A STIX timestamp from an ISO 8601 date or date-time (a time without offset is taken as UTC), or from
    seconds since 1970 as MISP's CSV export writes them (9 to 11 digits, so an ISO ``20260101`` stays a date)."""
    text = text.strip()
    seconds = whole_number(text) if 9 <= len(text) <= 11 else None
    if seconds is not None:
        return format_timestamp(seconds * 1_000_000)
    return format_timestamp(parse_moment(text))


def indicator_template(
    tlp: TlpLevel | str | None, markings: Sequence[str], labels: Sequence[str], confidence: int | None,
    valid_from: str | None, valid_until: str | None, created_by_ref: str | None,
    indicator_types: Sequence[str], now: str | None,
) -> dict[str, Any]:
    try:
        stamp = stix_time(now) if now else format_timestamp(now_micros())
        template: dict[str, Any] = {
            "type": "indicator", "spec_version": "2.1", "id": "", "created": stamp, "modified": stamp,
            "name": "", "pattern": "", "pattern_type": "stix", "pattern_version": "2.1",
            "valid_from": stix_time(valid_from) if valid_from else stamp,
        }
        if valid_until:
            template["valid_until"] = stix_time(valid_until)
    except ValueError as exc:
        raise FormatError(f"invalid date or time: {exc}") from None
    refs = list(markings)
    if tlp is not None:
        level = tlp if isinstance(tlp, TlpLevel) else TlpLevel.from_token(str(tlp).removeprefix("TLP:").removeprefix(
            "tlp:"))
        if level is None:
            raise FormatError(f"unknown TLP level {tlp!r} (clear, green, amber, amber+strict, red)")
        refs.insert(0, TLP2_IDS[level])
    for ref in refs:
        if not ref.startswith("marking-definition--"):
            raise FormatError(f"{ref!r} is not a marking-definition id")
    if refs:
        template["object_marking_refs"] = list(dict.fromkeys(refs))
    if confidence is not None:
        if not 0 <= confidence <= 100:
            raise FormatError(f"confidence {confidence} is outside 0-100")
        template["confidence"] = confidence
    if labels:
        template["labels"] = list(labels)
    if indicator_types:
        template["indicator_types"] = list(indicator_types)
    if created_by_ref:
        if not created_by_ref.startswith("identity--"):
            raise FormatError(f"created_by_ref {created_by_ref!r} is not an identity id")
        template["created_by_ref"] = created_by_ref
    return template
