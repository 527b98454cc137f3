"""Literal values and the comparison rules of STIX patterning.

The rules follow the STIX 2.1 patterning text (section 9); where the OASIS reference matcher reads
it differently the text wins (docs/detection.md lists those corners): numbers compare across int/float,
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
from kizuna.numerals import whole_number

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
    """Translate a LIKE operand ('%' any run, '_' one character) into a regex for fullmatch.

    No `^`/`$` anchors: `$` also matches before a final newline, which would make 'a' LIKE
    "a\\n" true. TextMatcher compiles it with DOTALL so that '%' and '_' match newlines too.
    """
    parts = []
    for c in like:
        if c == "%":
            parts.append(".*")
        elif c == "_":
            parts.append(".")
        else:
            parts.append(c if c.isalnum() else "\\" + c)
    return "".join(parts)


def nfc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFC", text)


class TextMatcher:
    """A compiled LIKE or MATCHES operand that accepts both text and binary values."""

    __slots__ = ("anchored", "binary_regex", "regex", "source")

    def __init__(self, source: str, *, anchored: bool) -> None:
        self.source = source
        self.anchored = anchored
        # LIKE follows SQL: every character, a newline included, is "a character" (STIX 9.6.1).
        flags = re.DOTALL if anchored else 0
        self.regex = re.compile(source, flags)
        self.binary_regex = (
            re.compile(source.encode("latin-1"), flags) if all(ord(c) < 256 for c in source) else None
        )

    def test(self, value: Any) -> bool:
        if self.anchored:
            # LIKE reads binary values as UTF-8 text.
            if type(value) is bytes and self.binary_regex is not None:
                value = value.decode("utf8")
            if type(value) is str:
                return self.regex.fullmatch(nfc(value)) is not None
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


def ipv6_to_int(text: str) -> int:
    try:
        packed = socket.inet_pton(socket.AF_INET6, text)
    except (OSError, ValueError) as exc:
        raise MatchError(f"Invalid IPv6 address: {text}") from exc
    return int.from_bytes(packed, "big")


IpBlock = tuple[int, int, int]
"""(address width in bits: 32 or 128, network as an int, prefix length)."""


def parse_ip_or_cidr(text: str) -> IpBlock:
    """Read an IPv4/IPv6 address or CIDR block; a bare address is its /32 or /128 (STIX 9.6.1)."""
    address, slash, prefix = text.partition("/")
    bits = 128 if ":" in address else 32
    network = ipv6_to_int(address) if bits == 128 else ipv4_to_int(address)
    if not slash:
        return bits, network, bits
    length = whole_number(prefix, bits)
    if length is None or length < 1:
        raise MatchError(f"Invalid CIDR subnet: {text}")
    return bits, network, length


def mask(length: int, bits: int = 32) -> int:
    return ((1 << length) - 1) << (bits - length)


def ip_in_subnet(inner_text: str, outer_text: str) -> bool:
    """True when the block `inner_text` lies wholly within `outer_text` (each an address or CIDR).

    Addresses of different families are never subsets of each other.
    """
    inner_bits, inner, inner_len = parse_ip_or_cidr(inner_text)
    outer_bits, outer, outer_len = parse_ip_or_cidr(outer_text)
    if inner_bits != outer_bits or outer_len > inner_len:
        return False
    m = mask(outer_len, outer_bits)
    return (inner & m) == (outer & m)


Predicate = Callable[[Any], bool]
