"""HTTP plumbing every Kizuna API shares: TAXII JSON responses and error objects, token
authentication, bounded request bodies, and the handlers that keep even a 404 or a 500 TAXII JSON.

The TAXII, detection and federation routes all build on this module; none of them builds on another.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kizuna.core.errors import (
    BadRequest,
    KizunaError,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
)
from kizuna.core.limits import RequestLimits
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.core.tokens import certificate_fingerprint
from kizuna.numerals import whole_number
from kizuna.taxii.media import TAXII_MEDIA_TYPE, check_accept

_CHALLENGE = 'Bearer realm="kizuna", Basic realm="kizuna"'

Handler = Callable[[Request, Principal], Awaitable[Response]]


def taxii_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=TAXII_MEDIA_TYPE, headers=headers)


def error_response(status: int, title: str, description: str, headers: dict[str, str] | None = None,
                   retry_after: float | None = None) -> Response:
    body = {"title": title, "description": description, "http_status": str(status)}
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = _CHALLENGE
    if retry_after is not None:
        headers["Retry-After"] = str(int(retry_after))
    return taxii_response(orjson.dumps(body), status, headers or None)


def kizuna_error_response(exc: KizunaError) -> Response:
    """The TAXII error object for a raised error, with Retry-After when it is a rate limit."""
    retry_after = exc.retry_after if isinstance(exc, TooManyRequests) else None
    return error_response(exc.status, exc.title, exc.description, retry_after=retry_after)


def presented_token(request: Request) -> str | None:
    """The token of the request's Authorization header; None without one or with one no token can be read from.

    Two or more Authorization headers are refused as an authentication failure (401), whatever they hold:
    which one to believe would be a guess (the first, as Starlette's ``get`` returns it, let a request carry a
    valid token past a proxy that added or checked the other), and a request that does not say who it is gets
    the challenge, as one without a readable token does."""
    found = request.headers.getlist("authorization")
    if len(found) > 1:
        raise Unauthorized(f"send one Authorization header; this request has {len(found)}")
    header = found[0] if found else None
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def client_certificate(request: Request) -> str | None:
    """The SHA-256 fingerprint of the client certificate the TLS layer verified for this connection
    (the ASGI ``tls`` extension set by taxii/transport.py), or None on plain HTTP or without one."""
    tls = request.scope.get("extensions", {}).get("tls")
    chain = tls.get("client_cert_chain") if isinstance(tls, dict) else None
    return certificate_fingerprint(chain[0]) if chain else None


def _limits(request: Request) -> RequestLimits:
    limits = getattr(request.app.state, "limits", None)
    if limits is None:
        limits = request.app.state.limits = RequestLimits()
    return limits


async def _limited(limits: RequestLimits, check: Callable[[Any, float], Any], key: str | None) -> Any:
    """``check(key, now)`` on the event loop for a process's own buckets, in a thread for node-wide ones
    (a store round trip must not stall every other request)."""
    if limits.shared:
        return await run_in_threadpool(check, key, limits.now())
    return check(key, limits.now())


async def authenticated(request: Request) -> Principal:
    """The principal of the request's token; Unauthorized (401) without a valid one (or with one bound
    to a certificate this connection did not present), and a failed attempt recorded and throttled;
    429 when the address or the token has spent its rate. As for every API endpoint."""
    node: Node = request.app.state.node
    limits = _limits(request)
    client = request.client.host if request.client else None
    wait = await _limited(limits, limits.admit_address, client)
    if wait is not None:
        raise TooManyRequests(f"too many requests or failed sign-ins from {client}; retry in {int(wait)} s", wait)
    token = presented_token(request)
    fingerprint = client_certificate(request)
    principal = await run_in_threadpool(node.authenticate, token, fingerprint) if token else None
    if principal is None:
        if token:
            await _limited(limits, limits.failed, client)
            await run_in_threadpool(node.record_auth_failure, token, request.url.path, client)
        raise Unauthorized("send a Kizuna API token as 'Authorization: Bearer <token>'")
    wait = await _limited(limits, limits.admit_token, principal.key)
    if wait is not None:
        raise TooManyRequests(f"this token has made too many requests; retry in {int(wait)} s", wait)
    return principal


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Negotiation, authentication and error rendering shared by every TAXII endpoint."""

    async def run(request: Request) -> Response:
        try:
            check_accept(request.headers.get("accept"))
            return await handler(request, await authenticated(request))
        except KizunaError as exc:
            return kizuna_error_response(exc)

    return run


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes, and with 415 when it comes in a
    content coding (gzip, say): read as it is, it would be taken for the records it compresses."""
    coding = request.headers.get("content-encoding", "identity").strip().lower()
    if coding not in ("", "identity"):
        raise UnsupportedMediaType(f"Content-Encoding {coding!r} is not accepted: send the body uncompressed")
    declared = request.headers.get("content-length")
    if declared is not None:
        size = whole_number(declared)
        if size is None:
            raise BadRequest("Content-Length must be a whole number")
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than this API root's max_content_length ({limit} bytes)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than this API root's max_content_length ({limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    titles = {404: "Not found", 405: "Method not allowed"}
    description = "no such TAXII resource" if exc.status_code == 404 else str(exc.detail)
    # The router's headers travel with the error: a 405 must say which methods the resource has
    # (Allow, RFC 9110 §15.5.6), which schemathesis found missing.
    return error_response(exc.status_code, titles.get(exc.status_code, "Error"), description,
                          dict(exc.headers) if exc.headers else None)


async def server_error(request: Request, exc: Exception) -> Response:
    return _internal_error()


def _internal_error() -> Response:
    return error_response(500, "Internal server error", "the server could not complete the request")


_log = logging.getLogger("kizuna.http")


class AnswerFailures:
    """ASGI middleware: a request that fails before anything of its answer was sent gets the TAXII 500 here,
    and the failure goes to the log. Starlette's last-resort handler (``server_error``) answers as well, but
    then raises again and the server closes the kept-alive connection: the client's next request on it
    failed with a reset."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            if started:
                raise  # part of the answer left already: only closing the connection can end it
            _log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            await _internal_error()(scope, receive, send)


class RefuseNul:
    """ASGI middleware: a request whose path, or an API request (TAXII, detection, hashes, feeds) whose query,
    holds a NUL character is refused with a TAXII 400 before any route sees it. PostgreSQL text cannot hold NUL,
    so every look-up by such a name failed there with a 500 (on SQLite it found nothing); no name, id, alias or
    query value the node issues contains one. A console page's query is the console's to answer (its search
    reads a NUL as the index does: as nothing)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query: bytes = scope.get("query_string", b"")
        path: str = scope.get("path", "")
        if scope["type"] == "http" and ("\x00" in path or (
                not path.startswith("/console/") and (b"%00" in query or b"\x00" in query))):
            await error_response(400, "Bad request", "the request's path or query holds a NUL character, "
                                 "which no name, id or value of this node contains")(scope, receive, send)
            return
        await self.app(scope, receive, send)
