"""JSON decoding that never changes a number.

orjson is the fast path for every body and bundle, but it turns integers beyond 64 bits
into floats, which would store an object different from the one sent.  A run of 19 or
more digits is the only way such an integer can appear, so only bodies containing one
are decoded again with the standard library, which keeps big integers exact; storing
them is then refused with a reason instead of silently altered.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_LONG_DIGITS = re.compile(rb"\d{19}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_exact(data: bytes | bytearray | memoryview) -> Any:
    """Decode JSON like ``orjson.loads``; integers of any size stay integers.

    Raises ``orjson.JSONDecodeError`` (a ``ValueError``) for invalid JSON.
    """
    value = orjson.loads(data)
    if _LONG_DIGITS.search(data):
        try:
            return json.loads(bytes(data), parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise orjson.JSONDecodeError(str(exc), "", 0) from None
    return value
