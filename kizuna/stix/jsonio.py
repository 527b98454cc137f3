"""JSON decoding that never changes a number.

orjson is the fast path for every body and bundle, but it turns integers beyond 64 bits
into floats, which would store an object different from the one sent.  A run of 19 or
more digits is the only way such an integer can appear, so only bodies containing one
are decoded again with the standard library, which keeps big integers exact; storing
them is then refused with a reason instead of silently altered.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# Digits become "1" and everything else "0", so a 19-digit run is one bytes.find: about a third
# of the cost of orjson.loads itself, where a regular-expression search costs several times it.
_DIGIT_MARKS = bytes(0x31 if 0x30 <= byte <= 0x39 else 0x30 for byte in range(256))
_LONG_DIGIT_RUN = b"1" * 19


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
