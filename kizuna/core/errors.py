"""Errors a node reports to a client, each carrying its TAXII/HTTP status.

They are raised anywhere in the core and rendered in one place at the HTTP edge, as
TAXII error objects; their text never names an object the caller may not see.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kizuna.store.base import Collection


class KizunaError(Exception):
    status = 400
    title = "Bad request"

    def __init__(self, description: str, *, title: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        if title is not None:
            self.title = title


class BadRequest(KizunaError):
    status = 400
    title = "Bad request"


class Unauthorized(KizunaError):
    status = 401
    title = "Authentication required"


class Forbidden(KizunaError):
    status = 403
    title = "Forbidden"


class NotFound(KizunaError):
    status = 404
    title = "Not found"


class NotAcceptable(KizunaError):
    status = 406
    title = "Not acceptable"


class PayloadTooLarge(KizunaError):
    status = 413
    title = "Request body too large"


class TooManyRequests(KizunaError):
    """A rate limit or failed-authentication throttle (core/limits.py); ``retry_after`` in seconds."""

    status = 429
    title = "Too many requests"

    def __init__(self, description: str, retry_after: float) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class UnsupportedMediaType(KizunaError):
    status = 415
    title = "Unsupported media type"


class Unprocessable(KizunaError):
    status = 422
    title = "Unprocessable content"


class AdminError(KizunaError):
    """A node administration step that cannot be done as asked (CLI)."""


def alias_in_several_roots(ref: str, found: Sequence[Collection]) -> str:
    """What to say when ``ref`` is the alias of collections in several API roots (an alias is unique within its
    root only): every command refuses to pick one, and names them so that the caller can give an id."""
    named = ", ".join(f"{c.id} in {c.api_root!r}" for c in found)
    return f"alias {ref!r} names a collection in more than one API root ({named}): give the id"


#: The longest label a token may carry (the console's form allows as many characters: templates/tokens.html).
MAX_LABEL_CHARS = 200
#: What breaks a name out of its line: controls (a line break, a tab, an escape), line and paragraph separators,
#: and lone surrogates (bytes of an argument that were not UTF-8).
_OUT_OF_LINE = frozenset({"Cc", "Zl", "Zp", "Cs"})


def name_problem(text: str, what: str, most: int | None = None) -> str | None:
    """Why ``text`` cannot be the name or label an operator gives something (``what``: "an organisation's name"),
    or None: every listing, audit line and console page shows it as one line, so it may hold no control character,
    and, with ``most``, no more characters than that. Any script is welcome: 東京 2027 is a name."""
    bad = next((char for char in text if unicodedata.category(char) in _OUT_OF_LINE), None)
    if bad is not None:
        shown = repr(text if len(text) <= 80 else text[:80] + "…")
        return (f"{what} may not hold a control character such as a line break (U+{ord(bad):04X} in {shown}): "
                "it is one line in every listing")
    if most is not None and len(text) > most:
        return f"{what} is {len(text):,} characters long; it may be at most {most}"
    return None


def check_name(text: str, what: str, most: int | None = None) -> None:
    """Refuse, as an AdminError, a name or label ``name_problem`` finds wrong."""
    if (problem := name_problem(text, what, most)) is not None:
        raise AdminError(problem)
