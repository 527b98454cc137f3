"""The HTTP/1.1 connection under every Kizuna API: uvicorn's httptools protocol with two additions.

1. Its own bounds on the request head. A request line longer than ``MAX_TARGET_BYTES`` is refused with
   414 and a head (all header lines) longer than ``MAX_HEAD_BYTES`` with 431, both as TAXII error
   objects; any other request the parser cannot read gets a TAXII 400. uvicorn would answer these with
   a plain-text 400, which a TAXII client cannot parse. The checks sit in the parser callbacks, so they
   fire while the head is still arriving, before any of it is buffered past the bound.
2. The ASGI TLS extension. On an HTTPS connection every request's scope carries
   ``extensions["tls"]`` with the client certificate the TLS layer verified (``client_cert_chain``, PEM)
   so the app can check a token bound to a certificate (core/tokens.py) against the connection that
   presented it, not against anything the client could write in a header.

``kizuna serve`` passes :class:`KizunaHttpProtocol` to uvicorn as its ``http`` implementation.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kizuna.taxii.media import TAXII_MEDIA_TYPE

#: Longest request target (path and query) accepted. A TAXII client sending a thousand ids in
#: ``match[id]`` needs about 48 KiB, so the bound leaves room for that and refuses what is absurd.
MAX_TARGET_BYTES = 64 * 1024
#: Largest sum of header names and values accepted.
MAX_HEAD_BYTES = 64 * 1024

#: After refusing a request, how long and how much of what the client still sends is read and dropped.
LINGER_S = 5.0
LINGER_BYTES = 4 * 1024 * 1024

_REFUSALS = {
    400: ("Bad request", "the request is not valid HTTP/1.1"),
    414: ("URI too long", f"the request target is longer than {MAX_TARGET_BYTES} bytes; send fewer "
                          "match[] values per request"),
    431: ("Request header fields too large", f"the request headers are larger than {MAX_HEAD_BYTES} bytes"),
}
_PHRASES = {400: b"Bad Request", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


class HeadTooLarge(Exception):
    """Raised inside a parser callback; the parser turns it into an error and we answer ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def refusal_bytes(status: int) -> bytes:
    """A complete HTTP response for a request refused before it reached the app (the connection closes)."""
    title, description = _REFUSALS[status]
    body = orjson.dumps({"title": title, "description": description, "http_status": str(status)})
    head = (b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % (status, _PHRASES[status], TAXII_MEDIA_TYPE.encode(), len(body)))
    return head + body


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI ``tls`` scope extension for a connection, or None when it is plain HTTP."""
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    peer = ssl_object.getpeercert(binary_form=True)
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(peer)] if peer else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
        "kizuna_protocol": ssl_object.version(),
        "kizuna_cipher": cipher[0] if cipher else None,
    }


class KizunaHttpProtocol(HttpToolsProtocol):
    """httptools with TAXII errors for unreadable or oversized request heads, and the TLS extension."""

    _head_bytes = 0
    _refusal = 400
    _tls: dict[str, Any] | None = None
    # Raw bytes received since the last request ended: httptools buffers a header value whole before
    # calling on_header, so a single endless header is bounded here, on the wire.
    _raw_head = 0
    _head_tail = b""  # the last bytes of the head read so far: its blank line may span two reads
    _in_head = True
    _headers_started = False
    _refused = False
    _dropped = 0
    _linger: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # The handshake is complete when the protocol sees the connection, so the peer certificate
        # is known here, once per connection.
        self._tls = tls_extension(transport)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            # Lingering after a refusal: read and drop what the client is still sending, so that closing
            # does not reset the connection and destroy the answer before the client has read it.
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES:
                self.transport.close()
            return
        if self._in_head:
            # Only the head counts: one read often carries the head and the start of a large body (a POST
            # of objects), and those body bytes are bounded by the content length, not by this limit.
            seen = self._head_tail + data
            end = seen.find(b"\r\n\r\n")
            self._raw_head += len(data) if end < 0 else max(0, end + 4 - len(self._head_tail))
            self._head_tail = seen[-3:] if end < 0 else b""
            self._headers_started = self._headers_started or b"\r\n" in data
            if self._raw_head > MAX_TARGET_BYTES + MAX_HEAD_BYTES + 4096:
                self._refusal = 431 if self._headers_started else 414
                self.send_400_response("head too large")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._refusal = 400
        if self._tls is not None:
            self.scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > MAX_TARGET_BYTES:
            self._refusal = 414
            raise HeadTooLarge(414)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refusal = 431
            raise HeadTooLarge(431)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._raw_head, self._headers_started, self._head_tail = True, 0, False, b""

    def send_400_response(self, msg: str) -> None:
        self.transport.write(refusal_bytes(self._refusal))
        self._refused = True
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client reads the answer, then end of stream
            self._linger = self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)


#: Sent on every response when the node serves TLS itself: browsers and clients keep to HTTPS for a
#: year, and no response is sniffed or framed. The console adds its Content-Security-Policy on top.
TLS_HEADERS = (
    (b"strict-transport-security", b"max-age=31536000"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)


def with_tls_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in headers}
    return headers + [(name, value) for name, value in TLS_HEADERS if name not in present]


class TransportSecurity:
    """ASGI middleware: the headers above on every response, unless the app set its own value."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": with_tls_headers(list(message.get("headers", [])))}
            await send(message)

        await self.app(scope, receive, send_secured if scope["type"] == "http" else send)
