"""Stateless ``next`` cursors.

A cursor carries the position (where the next page continues) sealed with AES-GCM under a key derived from
the node's cursor key, with the principal, the collection, the endpoint and the filters as its associated
data.  Any process sharing the node's key can continue a page, cursors never expire, and a cursor from
another principal or another query is refused instead of leaking anything.  The position is sealed, not
only signed, because a page may stop after the rows it was allowed to read (``core/query.py``): its
position is then the ``date_added`` of a row the reader may not see, which must not be readable from the
cursor.  Cursors issued before sealing (the position in clear, with an HMAC) are still accepted.

The cursor key can be rotated (``kizuna cursor-keys rotate``) without breaking cursors in flight: each
key has an id, a cursor made with a newer key names it (``kid~s.sealed``), and the node keeps the
last few retired keys, so a client paging through a collection finishes with the key it started with.
The node's first key (setting ``cursor_key``) has the id ``0`` and its cursors carry no id, so cursors
issued before rotation existed stay valid. Other server processes learn of a rotation when they meet
a key id they do not know, and at the latest a minute later for the keys they issue.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from kizuna.core.errors import BadRequest
from kizuna.store.base import Store

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"1"
_SEALED = "s"  # marks a sealed cursor: a clear position's base64 is never one character
_SEAL_CONTEXT = b"kizuna cursor position seal"
_NONCE = 12


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


LEGACY_KEY_ID = "0"
#: Seconds a process trusts its copy of the key ring before reading it again.
RELOAD_S = 60.0


class BadCursor(BadRequest):
    """A ``next`` value this server will not continue from: not one it wrote, written with a retired key, or
    written for another query. A page of its own (the console) words it for its readers."""


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The key new cursors are made with (by id), and every key a cursor may still name."""

    current: str
    keys: dict[str, bytes]


def load_key_ring(store: Store) -> KeyRing:
    legacy = store.get_setting("cursor_key")
    keys = {LEGACY_KEY_ID: base64.b64decode(legacy)} if legacy is not None else {}
    stored = store.get_setting("cursor_keys")
    if stored is None:
        return KeyRing(LEGACY_KEY_ID, keys)
    ring = orjson.loads(stored)
    keys = {kid: base64.b64decode(key) for kid, key in ring["keys"].items()}
    return KeyRing(ring["current"], keys)


def rotate_cursor_key(store: Store, keep: int) -> tuple[str, list[str]]:
    """Make a new current key and keep the ``keep`` newest before it; return its id and the retired ids."""
    ring = load_key_ring(store)
    ordered = list(ring.keys)  # oldest first: ids are added in order
    new_id = secrets.token_hex(4)
    kept = ordered[len(ordered) - keep:] if keep > 0 else []
    keys = {kid: base64.b64encode(ring.keys[kid]).decode() for kid in kept}
    keys[new_id] = base64.b64encode(secrets.token_bytes(32)).decode()
    store.set_setting("cursor_keys", orjson.dumps({"current": new_id, "keys": keys}).decode())
    return new_id, [kid for kid in ordered if kid not in kept]


class CursorCodec:
    def __init__(self, ring: Callable[[], KeyRing] | bytes) -> None:
        # A bare key is a ring of one that never changes (tests, tools); the node passes a loader.
        if callable(ring):
            self._load = ring
        else:
            fixed = KeyRing(LEGACY_KEY_ID, {LEGACY_KEY_ID: ring})
            self._load = lambda: fixed
        self._ring = self._load()
        self._loaded_at = time.monotonic()

    def reload(self) -> None:
        """Read the key ring again now (after a rotation by this process)."""
        self._reload()

    def _reload(self) -> None:
        self._ring = self._load()
        self._loaded_at = time.monotonic()

    def _mac(self, key: bytes, scope: str, position: bytes) -> bytes:
        message = _VERSION + b"\0" + scope.encode() + b"\0" + position
        return hmac.new(key, message, hashlib.sha256).digest()[:18]

    @staticmethod
    def _sealer(key: bytes) -> AESGCM:
        # Imported on first use: every `kizuna` command builds a node, few of them page (16 ms of each start).
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(hmac.new(key, _SEAL_CONTEXT, hashlib.sha256).digest())

    def encode(self, scope: str, position: int) -> str:
        if time.monotonic() - self._loaded_at > RELOAD_S:
            self._reload()
        kid = self._ring.current
        nonce = secrets.token_bytes(_NONCE)
        sealed = self._sealer(self._ring.keys[kid]).encrypt(
            nonce, position.to_bytes(8, "big", signed=True), _VERSION + b"\0" + scope.encode()
        )
        body = f"{_SEALED}.{_b64(nonce + sealed)}"
        return body if kid == LEGACY_KEY_ID else f"{kid}~{body}"

    def _key(self, kid: str) -> bytes:
        if kid not in self._ring.keys:
            self._reload()  # another process may have rotated
        key = self._ring.keys.get(kid)
        if key is None:
            raise BadCursor("'next' was issued with a key this server has retired; start the query again")
        return key

    def decode(self, scope: str, token: str) -> int:
        kid, marked, body = token.partition("~")
        if not marked:
            kid, body = LEGACY_KEY_ID, token
        position_text, dotted, mac_text = body.partition(".")
        if not dotted or not mac_text:  # every cursor this server writes has both halves
            raise BadCursor("'next' is not a cursor this server issued")
        try:
            raw = b"" if position_text == _SEALED else _unb64(position_text)
            mac = _unb64(mac_text)
        except (ValueError, TypeError):
            raise BadCursor("'next' is not a cursor this server issued") from None
        if position_text == _SEALED:
            return self._unseal(self._key(kid), scope, mac)
        if not hmac.compare_digest(mac, self._mac(self._key(kid), scope, raw)) or not raw.isdigit():
            raise _foreign()
        return int(raw)

    def _unseal(self, key: bytes, scope: str, sealed: bytes) -> int:
        if len(sealed) <= _NONCE:
            raise BadCursor("'next' is not a cursor this server issued")
        from cryptography.exceptions import InvalidTag

        try:
            clear = self._sealer(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], _VERSION + b"\0" + scope.encode())
        except InvalidTag:
            raise _foreign() from None
        if len(clear) != 8:
            raise _foreign()
        return int.from_bytes(clear, "big", signed=True)


def _foreign() -> BadCursor:
    return BadCursor(
        "'next' does not belong to this query: repeat the same filters, as the same principal, that produced it"
    )
