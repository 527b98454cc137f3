"""Whole numbers written by people and by other programs, read one way everywhere.

``str.isdigit`` accepts characters ``int`` refuses (``²``, ``①``) and ``int`` reads digits of every
script (``٣`` is 3), so ``text.isdigit()`` followed by ``int(text)`` raises on some inputs and reads
others nobody meant. ``whole_number`` accepts ASCII digits only, and at most a bound (by default the
largest signed 64-bit integer, what the stores can bind), and answers None for anything else.
``typed_whole_number`` is the same for a number a person typed into a form, where a Japanese input
method writes full-width digits (``３１``): those, and only those, read as their ASCII digits.
"""

from __future__ import annotations

from typing import Final

MAX_INT64: Final = 2**63 - 1


def whole_number(text: str, maximum: int = MAX_INT64) -> int | None:
    """``text`` as a whole number from 0 to ``maximum``: ASCII digits only, no sign, no space; else None."""
    if not text.isascii() or not text.isdigit() or len(text.lstrip("0")) > len(str(maximum)):
        return None
    value = int(text)
    return value if value <= maximum else None


_FULL_WIDTH_DIGITS: Final = {0xFF10 + d: 0x30 + d for d in range(10)}


def typed_whole_number(text: str, maximum: int = MAX_INT64) -> int | None:
    """``whole_number`` of a form field a person typed: full-width digits (U+FF10-FF19) read as ASCII ones."""
    return whole_number(text.translate(_FULL_WIDTH_DIGITS), maximum)


def integer(text: str, maximum: int = MAX_INT64) -> int | None:
    """``text`` as a whole number with an optional ``-``, at most ``maximum`` either way; else None."""
    negative = text.startswith("-")
    value = whole_number(text[1:] if negative else text, maximum)
    return -value if value is not None and negative else value
