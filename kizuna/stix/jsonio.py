"""JSON decoding that never changes a number, and why a decoded value may not be written back.

orjson is the fast path for every body and bundle, but it turns integers beyond 64 bits
into floats, which would store an object different from the one sent.  A run of 19 or
more digits is the only way such an integer can appear, so only bodies containing one
are decoded again with the standard library, which keeps big integers exact; storing
them is then refused with a reason instead of silently altered.

orjson also reads deeper than it writes: it parses arrays and objects nested up to 1024 levels
but serialises no more than :data:`MAX_WRITABLE_DEPTH`.  Every stored body and every answer is
written by orjson, so a value between the two limits parses and cannot be stored;
:func:`unwritable_reason` says which of the two causes applies.
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson

# Digits become "1" and everything else "0", so a 19-digit run is one bytes.find: about a third
# of the cost of orjson.loads itself, where a regular-expression search costs several times it.
_DIGIT_MARKS = bytes(0x31 if 0x30 <= byte <= 0x39 else 0x30 for byte in range(256))
_LONG_DIGIT_RUN = b"1" * 19

#: The deepest nesting of arrays and objects (empty ones count) that orjson serialises; it parses up to
#: 1024 levels. tests/conformance/test_add_objects_and_bad_input.py holds orjson to it.
MAX_WRITABLE_DEPTH: Final = 254


def _has_huge_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float and abs(item) >= 9.2e18:
            return True
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_exact(data: bytes | bytearray | memoryview) -> Any:
    """Decode JSON like ``orjson.loads``; integers of any size stay integers.

    Raises ``orjson.JSONDecodeError`` (a ``ValueError``) for invalid JSON.
    """
    raw = data if isinstance(data, bytes) else bytes(data)
    value = orjson.loads(raw)  # the strict parser decides validity and error positions
    if raw.translate(_DIGIT_MARKS).find(_LONG_DIGIT_RUN) < 0 or not _has_huge_float(value):
        # Long digit runs are mostly inside strings (hashes, URLs); only a float as large as
        # 2**63 can be an integer orjson widened.
        return value
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise orjson.JSONDecodeError(str(exc), "", 0) from None


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest in ``value`` more than ``limit`` levels (without recursing: a parsed
    value may be 1024 levels deep)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is dict or kind is list:
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if kind is dict else item))
    return False


def unwritable_reason(value: Any) -> str:
    """Why ``orjson.dumps(value)`` of a value ``loads_exact`` decoded failed, as the refusal of an object says it."""
    if nested_deeper_than(value, MAX_WRITABLE_DEPTH):
        return (f"nests arrays and objects deeper than {MAX_WRITABLE_DEPTH} levels, "
                "which this node cannot store or send back")
    return "contains an integer outside the 64-bit range, which cannot be stored or exchanged exactly"
