"""Stateless ``next`` cursors.

A cursor carries the position (the last ``date_added`` served) and is bound by an HMAC
to the principal, the collection, the endpoint and the filters.  Any process sharing
the node's key can continue a page, cursors never expire, and a cursor from another
principal or another query is refused instead of leaking anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from kizuna.core.errors import BadRequest

_VERSION = b"1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, scope: str, position: bytes) -> bytes:
        message = _VERSION + b"\0" + scope.encode() + b"\0" + position
        return hmac.new(self._key, message, hashlib.sha256).digest()[:18]

    def encode(self, scope: str, position: int) -> str:
        raw = str(position).encode()
        return f"{_b64(raw)}.{_b64(self._mac(scope, raw))}"

    def decode(self, scope: str, token: str) -> int:
        position_text, _, mac_text = token.partition(".")
        try:
            raw, mac = _unb64(position_text), _unb64(mac_text)
        except (ValueError, TypeError):
            raise BadRequest("'next' is not a cursor this server issued") from None
        if not hmac.compare_digest(mac, self._mac(scope, raw)) or not raw.isdigit():
            raise BadRequest(
                "'next' does not belong to this query: repeat the same filters, as the same "
                "principal, that produced it"
            )
        return int(raw)
