"""Errors a node reports to a client, each carrying its TAXII/HTTP status.

They are raised anywhere in the core and rendered in one place at the HTTP edge, as
TAXII error objects; their text never names an object the caller may not see.
"""

from __future__ import annotations

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
