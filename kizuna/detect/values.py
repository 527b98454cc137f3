"""Literal values and the comparison rules of STIX patterning.

The rules follow the STIX 2.1 patterning specification as the OASIS reference matcher reads it, so
that Kizuna and other consumers agree on what an indicator matches: numbers compare across int/float,
booleans only with booleans, binary with binary or with strings whose code points are all < 256,
timestamps with timestamps (a string property compared to a timestamp literal is parsed as one).
"""

from __future__ import annotations

import re
import socket
import struct
import unicodedata
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from kizuna.detect.errors import MatchError

Literal = int | float | bool | str | bytes | datetime

_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_TIMESTAMP_FRACTION_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@lru_cache(maxsize=65536)
def parse_timestamp(text: str) -> datetime:
    """Parse a STIX timestamp; raise ValueError when it is not one.

    Upper-case 'T' and 'Z' are required, and fractions beyond microseconds are truncated.
    """
    if any(c.islower() for c in text):
        raise ValueError(f"invalid timestamp (T and Z must be upper case): {text}")
    if "." in text:
        head, _, fraction = text.partition(".")
        if len(fraction) > 7 and fraction.endswith("Z"):
            text = f"{head}.{fraction[:6]}Z"
        parsed = datetime.strptime(text, _TIMESTAMP_FRACTION_FORMAT)
    else:
        parsed = datetime.strptime(text, _TIMESTAMP_FORMAT)
    return parsed.replace(tzinfo=UTC)


def json_timestamp(value: str) -> datetime:
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise MatchError(f"Invalid timestamp in JSON: {value}") from exc


def _string_as_binary(text: str) -> bytes | None:
    """A string compares to binary data only when every code point fits in a byte."""
    if all(ord(c) < 256 for c in text):
        return text.encode("latin-1")
    return None


_NUMBER_TYPES = (int, float)


def values_equal(value: Any, literal: Any) -> bool:
    """Equality as STIX defines it; values of incomparable types are simply not equal."""
    tv, tl = type(value), type(literal)
    if tv in _NUMBER_TYPES and tl in _NUMBER_TYPES:
        return bool(value == literal)
    if tv is tl and tv in (str, bytes, bool, datetime):
        return bool(value == literal)
    if tv is bytes and tl is str:
        return _string_as_binary(literal) == value
    if tv is str and tl is bytes:
        return _string_as_binary(value) == literal
    return False


def compare_order(value: Any, literal: Any) -> int | None:
    """Return <0, 0, >0 for ordered comparison, or None when the types are not orderable.

    Raises ValueError for a string that cannot stand for binary data: the comparison is then
    false, but unlike unorderable types a NOT in front of it still applies.
    """
    tv, tl = type(value), type(literal)
    if (tv in _NUMBER_TYPES and tl in _NUMBER_TYPES) or (tv is tl and tv in (str, bytes, datetime)):
        return (value > literal) - (value < literal)
    if tv is bytes and tl is str:
        as_bin = _string_as_binary(literal)
        if as_bin is None:
            raise ValueError("string is not comparable to binary")
        return (value > as_bin) - (value < as_bin)
    if tv is str and tl is bytes:
        as_bin = _string_as_binary(value)
        if as_bin is None:
            raise ValueError("string is not comparable to binary")
        return (as_bin > literal) - (as_bin < literal)
    return None


def make_literal_set(values: Iterable[Literal]) -> frozenset[Any]:
    """Build the set for IN; mixed types are rejected except ints mixed with floats."""
    items = list(values)
    types = {type(v) for v in items}
    if len(types) > 1 and not types <= {int, float}:
        raise ValueError("set literal mixes types")
    return frozenset(items)


def like_to_regex(like: str) -> str:
    """Translate a LIKE operand ('%' any run, '_' one character) into an anchored regex."""
    parts = ["^"]
    for c in like:
        if c == "%":
            parts.append(".*")
        elif c == "_":
            parts.append(".")
        else:
            parts.append(c if c.isalnum() else "\\" + c)
    parts.append("$")
    return "".join(parts)


def nfc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFC", text)


class TextMatcher:
    """A compiled LIKE or MATCHES operand that accepts both text and binary values."""

    __slots__ = ("anchored", "binary_regex", "regex", "source")

    def __init__(self, source: str, *, anchored: bool) -> None:
        self.source = source
        self.anchored = anchored
        self.regex = re.compile(source)
        self.binary_regex = (
            re.compile(source.encode("latin-1")) if all(ord(c) < 256 for c in source) else None
        )

    def test(self, value: Any) -> bool:
        if self.anchored:
            # LIKE reads binary values as UTF-8 text.
            if type(value) is bytes and self.binary_regex is not None:
                value = value.decode("utf8")
            if type(value) is str:
                return self.regex.match(nfc(value)) is not None
            return False
        if type(value) is str:
            return self.regex.search(nfc(value)) is not None
        if type(value) is bytes and self.binary_regex is not None:
            return self.binary_regex.search(value) is not None
        return False


def ipv4_to_int(text: str) -> int:
    try:
        packed = socket.inet_aton(text)
    except (OSError, ValueError) as exc:
        raise MatchError(f"Invalid IPv4 address: {text}") from exc
    value: int = struct.unpack(">I", packed)[0]
    return value


def parse_cidr(text: str) -> tuple[int, int]:
    """Return (network int, prefix length) of an IPv4 CIDR; prefix must be 1..32."""
    address, slash, prefix = text.partition("/")
    if not slash or not prefix.isdigit():
        raise MatchError(f"Invalid CIDR subnet: {text}")
    network = ipv4_to_int(address)
    length = int(prefix)
    if not 1 <= length <= 32:
        raise MatchError(f"Invalid CIDR subnet: {text}")
    return network, length


def parse_ip_or_cidr(text: str) -> tuple[int, int]:
    if "/" in text:
        return parse_cidr(text)
    return ipv4_to_int(text), 32


def mask(length: int) -> int:
    return ((1 << length) - 1) << (32 - length)


def ip_in_subnet(ip_or_cidr: str, subnet: str) -> bool:
    """True when the address or subnet `ip_or_cidr` lies within the CIDR `subnet`."""
    inner, inner_len = parse_ip_or_cidr(ip_or_cidr)
    outer, outer_len = parse_cidr(subnet)
    if outer_len > inner_len:
        return False
    m = mask(outer_len)
    return (inner & m) == (outer & m)


Predicate = Callable[[Any], bool]
